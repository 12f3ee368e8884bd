"""The enrollment wizard driven end to end on the real pipeline, a real registry with a real HR account and
a real frame source (a folder of real photos played as a camera), beside the real guard console.

The person enrolled is Madonna, erased from a copy of the demo registry (so nobody enrolled looks like
her): the HR desk "camera" plays her *train* photos, with a frame without a face and a frame with two
faces in between; the guard console's demo camera shows her *val* photos, never enrolled.
Waits are on signals and widget state, never sleeps.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import HR_PASSPHRASE, compose, face_crop, make_hr

EID = "madonna"


@pytest.fixture(scope="module")
def without_madonna(demo_registry, tmp_path_factory) -> Path:
    """The demo registry with Madonna erased (the active model retrained without her) and an HR account."""
    from core.registry import Registry
    from core.registry.decision import set_approved_cameras
    from core.registry.pruning import prune_erased

    data = Path(shutil.copytree(demo_registry, tmp_path_factory.mktemp("wizard") / "data"))
    with Registry.open(data / "facegate.db") as reg:
        reg.remove_operator(EID, actor="test")
        prune_erased(reg, data / "models", actor="test")
        session = make_hr(reg)
        set_approved_cameras(reg, session, ["demo"], ["demo"])
    return data


@pytest.fixture()
def data_dir(without_madonna, tmp_path) -> Path:
    return Path(shutil.copytree(without_madonna, tmp_path / "data"))


@pytest.fixture(scope="module")
def desk_camera(seed, tmp_path_factory) -> Path:
    """A folder played as the HR desk camera: no face, two faces, then Madonna's train photos."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("desk")
    blank = np.full((480, 640, 3), 110, np.uint8)
    two = compose([face_crop(seed, "jerry_seinfeld", 0), face_crop(seed, "madonna", 1)])
    for i in range(3):  # a few of each: the worker analyses the newest frame only
        Image.fromarray(blank).save(folder / f"00_empty_{i}.jpg")
        Image.fromarray(two).save(folder / f"01_two_{i}.jpg")
    for path in sorted((seed.dataset / "train" / EID).iterdir()):
        shutil.copy(path, folder / f"10_{path.name}")
    return folder


def login(qtbot, access) -> None:
    qtbot.waitUntil(lambda: access.dialog is not None and access.dialog.isVisible(), timeout=10_000)
    access.dialog.passphrase.setText(HR_PASSPHRASE)
    with qtbot.waitSignal(access.changed, timeout=30_000):
        access.dialog.accept()


def active_id(data_dir: Path) -> int | None:
    from core.registry import Registry

    with Registry.open(data_dir / "facegate.db") as reg:
        mv = reg.active_model()
    return None if mv is None else mv.id


def test_hr_enrolls_a_new_operator_and_the_console_recognises_her(qtbot, data_dir, desk_camera):
    from core.live.session import SessionSettings
    from core.live.tracking import TrackState
    from gui.hr.access import HRAccess
    from gui.hr.wizard import open_enrollment_wizard
    from gui.hr.wizard.wizard import CAPTURE, RESULTS, REVIEW, TRAIN, EnrollmentWizard
    from gui.main_window import MainWindow

    db, models = data_dir / "facegate.db", data_dir / "models"
    before = active_id(data_dir)

    # The guard console runs on the demo camera the whole time.
    console = MainWindow(SessionSettings(sources=("demo",), data_dir=data_dir))
    qtbot.addWidget(console)
    console.resize(1366, 768)
    console.show()
    tile = console.grid.tiles["demo"]

    access = HRAccess(db)
    # Opening the wizard needs an HR login.
    open_enrollment_wizard(console, db, models, access, str(desk_camera))
    login(qtbot, access)
    wizards = [w for w in console.findChildren(EnrollmentWizard)]
    assert len(wizards) == 1
    wizard = wizards[0]
    try:
        qtbot.waitUntil(lambda: wizard.capture_ready, timeout=120_000)

        # 1 · Operator: an id that is taken is refused as it is typed; a new one is accepted.
        page = wizard.operator_page
        page.employee_id.setText("elton_john")
        assert "already enrolled" in page.id_status.text() and not page.isComplete()
        assert not wizard.button(wizard.WizardButton.NextButton).isEnabled()
        page.employee_id.setText("bad id!")
        assert "no spaces" in page.id_status.text() and not page.isComplete()
        page.employee_id.setText(EID)
        page.name.setText("Madonna Ciccone")
        page.department.setText("Logistics")
        assert page.id_status.text().startswith("✔") and page.isComplete()
        wizard.next()
        assert wizard.currentId() == CAPTURE

        # 2 · Capture: plain feedback on a frame without a face and on one with two; auto-capture.
        seen: set[str] = set()
        show = wizard.capture_page.show_frame

        def record(view):
            seen.add(view.feedback)
            show(view)

        wizard.capture_page.show_frame = record
        qtbot.waitUntil(lambda: any(s.startswith("No face found") for s in seen)
                        and "Only one person in the picture, please (2 faces found)." in seen
                        and len(wizard.shots) >= 8, timeout=240_000)
        assert wizard.capture_page.preview.painted > 0
        counts = wizard.pose_counts()
        # A varied set (which side poses a looping folder yields first depends on frame timing).
        assert counts["frontal"] >= 2 and sum(1 for p in counts if counts[p]) >= 3
        assert all(counts[p] <= wizard.quota[p] for p in counts)  # a full pose is not over-filled
        # Near-duplicates skipped: the folder loops, yet no shot is kept twice.
        emb = np.stack([s.embedding for s in wizard.shots])
        d = np.linalg.norm(emb[:, None] - emb[None], axis=2)[np.triu_indices(len(emb), 1)]
        assert d.min() >= 0.2
        assert wizard.duplicate.kind == "ok" and not wizard.capture_page.duplicate.isVisible()
        assert "✔ frontal" in wizard.capture_page.guide.cells["frontal"].text() or counts["frontal"] < 4
        assert wizard.capture_page.isComplete()
        wizard.next()
        assert wizard.currentId() == REVIEW

        # 3 · Review: remove a shot.
        n = len(wizard.shots)
        assert len(wizard.review_page.cards) == n
        removed = wizard.review_page.cards[0].shot.id
        wizard.review_page.cards[0].remove.click()
        assert len(wizard.shots) == n - 1 and removed not in {s.id for s in wizard.shots}
        assert len(wizard.review_page.cards) == n - 1 and wizard.review_page.isComplete()

        # 4 · Train: enrolled, training cancelled (the active model untouched), then trained to the end.
        painted = {}
        with qtbot.waitSignal(wizard.enrolled, timeout=120_000) as enrolled:
            wizard.next()
        assert wizard.currentId() == TRAIN
        assert len(enrolled.args[0].accepted) == n - 1
        qtbot.waitUntil(lambda: wizard.training and wizard.train_page.bar.value() > 0, timeout=60_000)
        with qtbot.waitSignal(wizard.trainingCancelled, timeout=120_000):
            wizard.train_page.cancel_button.click()
        assert active_id(data_dir) == before
        assert "cancelled" in wizard.train_page.step.text() and wizard.train_page.retry_button.isVisible()
        assert not wizard.button(wizard.WizardButton.NextButton).isEnabled()

        painted["start"] = tile.painted
        gaps = []
        last = [time.monotonic()]

        def tick():
            now = time.monotonic()
            gaps.append(now - last[0])
            last[0] = now

        from PySide6.QtCore import QTimer

        timer = QTimer()
        timer.timeout.connect(tick)
        timer.start(50)
        with qtbot.waitSignal(wizard.trained, timeout=300_000) as trained:
            wizard.train_page.retry_button.click()
        timer.stop()
        candidate = trained.args[0]
        assert candidate.status == "candidate" and not candidate.active
        assert active_id(data_dir) == before  # a candidate until HR activates it
        # The console kept painting its camera and its event loop kept running while the model trained
        # (behaviour, not speed: how long the GUI thread may wait is benchmarks/bench_console.py's job).
        assert tile.painted > painted["start"] and len(gaps) > 1

        # 5 · Results: both versions and the held-out shots.
        with qtbot.waitSignal(wizard.resultsReady, timeout=300_000) as ready:
            wizard.next()
        assert wizard.currentId() == RESULTS
        results = ready.args[0]
        assert results.candidate.id == candidate.id and results.active is not None
        assert len(results.new) == n - 1 and results.folds >= 2
        assert sum(r.decision == EID for r in results.new) >= (n - 1) // 2
        assert wizard.results_page.new_panel.report is not None and wizard.results_page.old_panel.report is not None
        assert wizard.results_page.heldout.rowCount() == len(results.new) + len(results.old)

        # Activate.
        with qtbot.waitSignal(wizard.decided, timeout=60_000) as decided:
            wizard.results_page.activate_button.click()
        assert decided.args == ["activate", candidate.id]
        assert active_id(data_dir) == candidate.id
        assert wizard.button(wizard.WizardButton.FinishButton).isEnabled()
        wizard.accept()
    finally:
        wizard.shutdown()

    # The guard console picks up the new model and names her on the live demo (her val photos).
    def named() -> bool:
        frame = tile.frame
        return frame is not None and any(t.state is TrackState.NAMED and t.identity == EID
                                         for t in frame.result.tracks)

    qtbot.waitUntil(named, timeout=120_000)

    from core.registry import Registry

    with Registry.open(db) as reg:
        assert reg.verify() == []
        mine = {a.action for a in reg.audit_log() if a.actor == "admin:hr.lead"}
        print(sorted(mine))
        assert {"activate_model"} <= mine
    access.stop()
    with qtbot.waitSignal(console.closed, timeout=120_000):
        console.close()


def test_a_face_already_enrolled_is_named_before_going_on_and_the_override_is_audited(
        qtbot, data_dir, seed, tmp_path):
    from core.registry import Registry
    from gui.hr.access import HRAccess
    from gui.hr.wizard.wizard import CAPTURE, EnrollmentWizard

    access = HRAccess(data_dir / "facegate.db")
    wizard = EnrollmentWizard(data_dir / "facegate.db", data_dir / "models", access, str(empty_desk(tmp_path)))
    qtbot.addWidget(wizard)
    wizard.show()
    try:
        qtbot.waitUntil(lambda: wizard.capture_ready, timeout=120_000)
        wizard.operator_page.employee_id.setText("E9001")
        wizard.operator_page.name.setText("Jerry Twin")
        wizard.next()
        assert wizard.currentId() == CAPTURE
        photos = sorted((seed.dataset / "train" / "jerry_seinfeld").iterdir())[:8]
        with qtbot.waitSignal(wizard.capture_page.completeChanged, timeout=60_000):
            wizard.capture_page.import_files(photos)
        qtbot.waitUntil(lambda: wizard.duplicate.kind == "duplicate" and len(wizard.shots) >= 5, timeout=120_000)
        page = wizard.capture_page
        assert "already enrolled as" in page.duplicate.text() and "jerry_seinfeld" in page.duplicate.text()
        assert page.duplicate.isVisible() and not page.isComplete()
        assert not wizard.button(wizard.WizardButton.NextButton).isEnabled()
        assert all(s.manual and s.origin != "camera" for s in wizard.shots)
        page.override.setChecked(True)
        assert page.isComplete() and wizard.button(wizard.WizardButton.NextButton).isEnabled()
        assert enroll_with_override_then_cancel(qtbot, wizard, access).duplicate_of == "jerry_seinfeld"
    finally:
        wizard.shutdown()
        access.stop()
    with Registry.open(data_dir / "facegate.db") as reg:
        confirmed = reg.audit_log(action="duplicate_confirmed")
        assert confirmed and confirmed[-1].actor == "admin:hr.lead"
        assert reg.verify() == []


def enroll_with_override_then_cancel(qtbot, wizard, access):
    """From the Capture page with its override ticked: Review, enroll (after the HR login), then cancel
    the training that follows.  Returns the enrollment's result."""
    from gui.hr.wizard.wizard import REVIEW, TRAIN

    wizard.next()
    assert wizard.currentId() == REVIEW
    wizard.next()  # enroll: an HR login is asked first
    assert wizard.currentId() == TRAIN
    login(qtbot, access)
    with qtbot.waitSignal(wizard.enrolled, timeout=120_000) as enrolled:
        pass
    with qtbot.waitSignal(wizard.trainingCancelled, timeout=120_000):
        wizard.cancel_training()
    return enrolled.args[0]


def open_for_existing(qtbot, data_dir, desk: Path, employee_id: str):
    """A wizard (shown) in 'add photos to an operator who is already enrolled' mode, on the Capture page."""
    from gui.hr.access import HRAccess
    from gui.hr.wizard.wizard import CAPTURE, EnrollmentWizard

    access = HRAccess(data_dir / "facegate.db")
    wizard = EnrollmentWizard(data_dir / "facegate.db", data_dir / "models", access, str(desk))
    qtbot.addWidget(wizard)
    wizard.show()
    qtbot.waitUntil(lambda: wizard.capture_ready, timeout=120_000)
    page = wizard.operator_page
    page.more.setChecked(True)
    page.employee_id.setText(employee_id)
    assert page.id_status.text().startswith("✔") and page.name.isReadOnly() and page.isComplete()
    wizard.next()
    assert wizard.currentId() == CAPTURE
    return wizard, access


def empty_desk(tmp_path: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "empty-desk"
    folder.mkdir()
    Image.fromarray(np.full((480, 640, 3), 90, np.uint8)).save(folder / "nobody.jpg")
    return folder


def test_someone_elses_photos_for_an_enrolled_operator_are_named_and_next_waits_for_the_override(
        qtbot, data_dir, seed, tmp_path):
    from core.registry import Registry

    wizard, access = open_for_existing(qtbot, data_dir, empty_desk(tmp_path), "jerry_seinfeld")
    next_button = wizard.button(wizard.WizardButton.NextButton)
    try:
        page = wizard.capture_page
        photos = sorted((seed.dataset / "train" / "elton_john").iterdir())
        page.import_files(photos)
        # The check on every file imported (an existing operator's check always says how many it saw).
        qtbot.waitUntil(lambda: len(wizard.shots) >= 5 and wizard.duplicate.total == len(wizard.shots),
                        timeout=120_000)
        assert wizard.duplicate.kind == "new_look" and len(wizard.shots) >= 5, (wizard.duplicate, len(wizard.shots))
        assert "do not look like jerry_seinfeld" in page.duplicate.text() or "Jerry" in page.duplicate.text()
        assert page.duplicate.isVisible() and page.override.isVisible()
        assert not page.isComplete()
        assert not next_button.isEnabled()
        page.override.setChecked(True)
        assert page.isComplete() and next_button.isEnabled()
        page.override.setChecked(False)
        assert not next_button.isEnabled()
        page.override.setChecked(True)
        result = enroll_with_override_then_cancel(qtbot, wizard, access)
        assert result.employee_id == "jerry_seinfeld" and result.accepted
    finally:
        wizard.shutdown()
        access.stop()
    with Registry.open(data_dir / "facegate.db") as reg:
        confirmed = reg.audit_log(action="face_mismatch_confirmed")
        assert confirmed and confirmed[-1].actor == "admin:hr.lead"
        assert reg.verify() == []


def test_hr_adds_an_operators_own_photos_trains_and_discards_the_candidate(qtbot, data_dir, seed, tmp_path):
    from core.registry import Registry
    from core.registry.signing import verify_state
    from gui.hr.wizard.wizard import RESULTS, REVIEW, TRAIN

    before = active_id(data_dir)
    with Registry.open(data_dir / "facegate.db") as reg:
        photos_before = reg.get_operator("jerry_seinfeld").photos
    wizard, access = open_for_existing(qtbot, data_dir, empty_desk(tmp_path), "jerry_seinfeld")
    try:
        page = wizard.capture_page
        page.import_files(sorted((seed.dataset / "val" / "jerry_seinfeld").iterdir()))
        qtbot.waitUntil(lambda: len(wizard.shots) >= 5 and wizard.duplicate.total == len(wizard.shots),
                        timeout=120_000)
        # His own new photos: no warning, Next open.
        assert wizard.duplicate.kind == "ok" and not page.duplicate.isVisible() and not page.override.isVisible()
        assert wizard.button(wizard.WizardButton.NextButton).isEnabled()
        wizard.next()
        assert wizard.currentId() == REVIEW
        n = len(wizard.shots)
        wizard.next()
        assert wizard.currentId() == TRAIN
        with qtbot.waitSignal(wizard.enrolled, timeout=120_000) as enrolled:
            login(qtbot, access)
        assert enrolled.args[0].employee_id == "jerry_seinfeld" and len(enrolled.args[0].accepted) == n
        with qtbot.waitSignal(wizard.trained, timeout=300_000) as trained:
            pass
        candidate = trained.args[0]
        assert candidate.status == "candidate"
        with qtbot.waitSignal(wizard.resultsReady, timeout=300_000):
            wizard.next()
        assert wizard.currentId() == RESULTS
        # Discard: the candidate is kept on file as rejected, the active model is unchanged.
        assert wizard.results_page.discard_button.isEnabled()
        with qtbot.waitSignal(wizard.decided, timeout=60_000) as decided:
            wizard.results_page.discard_button.click()
        assert decided.args == ["discard", candidate.id]
        assert "discard" in wizard.results_page.decided.text().lower()
    finally:
        wizard.shutdown()
        access.stop()
    assert active_id(data_dir) == before
    with Registry.open(data_dir / "facegate.db") as reg:
        assert reg.get_operator("jerry_seinfeld").photos == photos_before + n
        added = [a for a in reg.audit_log(action="add_photo") if a.actor == "admin:hr.lead"]
        assert len(added) == n
        assert not reg.audit_log(action="face_mismatch_confirmed")
        version = {mv.id: mv for mv in reg.list_models()}[candidate.id]
        assert version.status == "rejected" and version.notes.startswith("discarded by HR")
        discarded = reg.audit_log(action="discard_model")
        assert discarded and discarded[-1].actor == "admin:hr.lead" and discarded[-1].object == str(candidate.id)
        assert reg.verify() == []
        state = verify_state(reg)
        assert state.ok and state.mode != "unsigned"


def test_capture_now_keeps_a_shot_by_hand_with_the_pose_chosen(qtbot, data_dir, desk_camera):
    from gui.hr.access import HRAccess
    from gui.hr.wizard.wizard import CAPTURE, EnrollmentWizard

    access = HRAccess(data_dir / "facegate.db")
    wizard = EnrollmentWizard(data_dir / "facegate.db", data_dir / "models", access, str(desk_camera))
    qtbot.addWidget(wizard)
    wizard.show()
    try:
        qtbot.waitUntil(lambda: wizard.capture_ready, timeout=120_000)
        wizard.operator_page.employee_id.setText(EID)
        wizard.operator_page.name.setText("Madonna Ciccone")
        page = wizard.capture_page
        page.auto.setChecked(False)  # before the camera starts: nothing is kept on its own
        wizard.next()
        assert wizard.currentId() == CAPTURE
        # Wait until the camera shows her (a good picture), then press Capture now with "smile" chosen.
        qtbot.waitUntil(lambda: page.preview.view is not None and page.preview.view.passed, timeout=120_000)
        assert wizard.shots == []
        page.pose_choice.setCurrentIndex(page.pose_choice.findData("smile"))
        with qtbot.waitSignal(wizard.shotsChanged, timeout=60_000):
            page.capture_button.click()
        assert len(wizard.shots) == 1
        shot = wizard.shots[0]
        assert shot.pose == "smile" and shot.manual and shot.origin == "camera"
        assert "smile\n1 of" in page.guide.cells["smile"].text()
    finally:
        wizard.shutdown()
        access.stop()
    assert len(wizard.shots) == 1  # auto-capture stayed off the whole time
