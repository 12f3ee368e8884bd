"""HR's operators view (``gui.hr.operators``), offscreen, on a copy of the real demo registry with a real HR
account: listing and search, the recognition history, edit, deactivate and reactivate, the erasure with
its confirmation (checked against what is then really gone), a refused login, the idle lock — and the
done-means test: a running console stops recognising a person deactivated from the view, without a restart.

Waits are on signals and widget state, never sleeps.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from core.errors import RegistryError
from core.registry import Registry
from core.registry.erasure import PRUNED_NOTE
from core.registry.signing import verify_state
from gui.hr.access import HRAccess
from gui.hr.operators import COLUMNS, OperatorsView
from gui.threads import running_threads
from tests.conftest import HR_PASSPHRASE, make_hr

WRONG = "wrong horse battery staple"
T0 = datetime.now(UTC) - timedelta(days=40)
ADMIN: dict[Path, object] = {}
"""hr.lead's session per data folder (to lift the wait after a wrong passphrase, as an admin would)."""


@pytest.fixture()
def data(demo_registry: Path, tmp_path: Path) -> Path:
    """A copy of the demo registry with HR's first account (hr.lead, an admin) and some of madonna's events."""
    folder = Path(shutil.copytree(demo_registry, tmp_path / "data"))
    with Registry.open(folder / "facegate.db") as reg:
        ADMIN[folder] = make_hr(reg)
        for day in range(12):  # her recognitions creep towards the threshold
            distance = 0.45 if day < 4 else 0.88
            reg.record_event("gate", "recognised", "madonna", {m: {"madonna": 0.93} for m in
                                                               ("svc", "stacker", "super_learner")},
                             distance, None, "v1", time=T0 + timedelta(days=3 * day))
    return folder


def open_view(qtbot, data: Path, access: HRAccess | None = None) -> OperatorsView:
    access = access or HRAccess(data / "facegate.db")
    view = OperatorsView(data / "facegate.db", data / "models", access)
    qtbot.addWidget(view)
    view._test_access = access  # keep it alive with the view
    with qtbot.waitSignal(view.loaded, timeout=30_000):
        view.resize(1400, 800)
        view.show()
    return view


def log_in(qtbot, access: HRAccess, passphrase: str = HR_PASSPHRASE) -> None:
    """Answer the HR login dialog HRAccess opened."""
    qtbot.waitUntil(lambda: access.dialog is not None and access.dialog.isVisible(), timeout=10_000)
    dialog = access.dialog
    dialog.account.setText("hr.lead")
    dialog.passphrase.setText(passphrase)
    qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)


def deactivate(qtbot, view: OperatorsView) -> None:
    view.toggle_active()
    qtbot.waitUntil(lambda: view.confirm_box is not None and view.confirm_box.isVisible(), timeout=5_000)
    [button] = [b for b in view.confirm_box.buttons() if b.text() == "Deactivate"]
    qtbot.mouseClick(button, Qt.MouseButton.LeftButton)


def close_view(qtbot, view: OperatorsView, *, alone: bool = True) -> None:
    view.shutdown()
    view._test_access.stop()
    view.close()
    if alone:
        assert running_threads() == []


def test_the_table_lists_and_searches_the_operators_and_shows_a_drifting_history(qtbot, data: Path):
    view = open_view(qtbot, data)
    assert view.visible_ids() == ["ben_afflek", "elton_john", "jerry_seinfeld", "madonna", "mindy_kaling"]
    assert view.count.text() == "5 operators"
    assert view.model.rows[0].thumbnail is not None  # the face, cut from their first photo
    row = view.model.rows[view.model.row_of("madonna")]
    assert row.last_seen == T0 + timedelta(days=33)
    cells = dict(zip(COLUMNS, [view.model.index(view.model.row_of("madonna"), c).data()
                               for c in range(len(COLUMNS))]))
    assert (cells["Employee id"], cells["Photos"], cells["Status"]) == ("madonna", "16", "Active")
    assert cells["Last seen"] == f"{(T0 + timedelta(days=33)).astimezone():%Y-%m-%d %H:%M}"
    assert view.model.index(0, COLUMNS.index("Last seen")).data() == "never"

    view.search.setText("  MAD ")
    assert view.visible_ids() == ["madonna"] and view.count.text() == "1 of 5 operators"
    view.search.setText("nobody at all")
    assert view.visible_ids() == [] and "No operator matches" in view.history.summary.text()
    assert not view.erase_button.isEnabled()
    view.search.clear()

    with qtbot.waitSignal(view.historyShown, timeout=20_000) as shown:
        view.select("madonna")
    assert shown.args == ["madonna"]
    history = view.history.history
    assert len(history.points) == 12 and history.threshold is not None
    assert view.history.advice.isVisible() and "Re-enrollment suggested" in view.history.advice.text()
    assert "close to the threshold (median 0.88 of" in view.history.advice.text()
    assert "12 recognitions since" in view.history.summary.text()
    with qtbot.waitSignal(view.historyShown, timeout=20_000):
        view.select("elton_john")
    assert "Not seen at the gate yet" in view.history.summary.text()
    assert "Too few recognitions" in view.history.advice.text()
    close_view(qtbot, view)


def test_editing_details_needs_hr_and_is_audited_and_signed(qtbot, data: Path):
    view = open_view(qtbot, data)
    assert view.select("madonna")
    view.edit()
    dialog = view.edit_dialog
    assert dialog is not None and not dialog.save_button.isEnabled()  # nothing changed yet
    dialog.name.setText("Madonna Ciccone")
    dialog.department.setText("Logistics")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(view.actionDone, timeout=30_000) as done:
        log_in(qtbot, view.access)
    assert "Saved the details of madonna, signed by admin:hr.lead" in done.args[0]
    qtbot.waitUntil(lambda: view.model.rows[view.model.row_of("madonna")].operator.name == "Madonna Ciccone",
                    timeout=20_000)
    assert view.hr_status.text() == "HR: logged in as admin:hr.lead"
    with Registry.open(data / "facegate.db") as reg:
        op = reg.get_operator("madonna")
        assert (op.name, op.department) == ("Madonna Ciccone", "Logistics")
        [row] = reg.audit_log(action="update_operator")
        assert row.actor == "admin:hr.lead" and row.new == {"name": "Madonna Ciccone", "department": "Logistics"}
        state = verify_state(reg)
        assert state.ok, state.problems
        assert state.signed_by == "admin:hr.lead"
    close_view(qtbot, view)


def test_deactivate_then_reactivate_and_a_wrong_passphrase_changes_nothing(qtbot, data: Path):
    view = open_view(qtbot, data)
    view.select("madonna")
    assert view.active_button.text() == "Deactivate"

    deactivate(qtbot, view)
    with qtbot.waitSignal(view.access.refused, timeout=30_000):
        log_in(qtbot, view.access, WRONG)
    assert "HR login refused" in view.message.text() and "Wrong passphrase" in view.message.text()
    with Registry.open(data / "facegate.db") as reg:
        assert reg.get_operator("madonna").active
        assert [a.actor for a in reg.audit_log(action="hr_denied")] == ["login:hr.lead"]
        from core.registry.accounts import reset_lockout

        reset_lockout(reg, ADMIN[data], "hr.lead")

    deactivate(qtbot, view)
    with qtbot.waitSignal(view.actionDone, timeout=30_000) as done:
        log_in(qtbot, view.access)
    assert "Deactivated madonna" in done.args[0] and "stay on file" in done.args[0]
    qtbot.waitUntil(lambda: view.active_button.text() == "Reactivate", timeout=20_000)
    assert view.model.index(view.model.row_of("madonna"), COLUMNS.index("Status")).data() == "Deactivated"
    with Registry.open(data / "facegate.db") as reg:
        assert not reg.get_operator("madonna").active
        assert verify_state(reg).ok

    # Logged in now: reactivating asks for nothing more.
    with qtbot.waitSignal(view.actionDone, timeout=30_000) as done:
        view.toggle_active()
    assert "Reactivated madonna" in done.args[0]
    qtbot.waitUntil(lambda: view.active_button.text() == "Deactivate", timeout=20_000)
    with Registry.open(data / "facegate.db") as reg:
        assert reg.get_operator("madonna").active
        assert [(a.actor, a.new) for a in reg.audit_log(action="set_active")] == [
            ("admin:hr.lead", {"active": False}), ("admin:hr.lead", {"active": True})]
        state = verify_state(reg)
        assert state.ok, state.problems
    close_view(qtbot, view)


def test_the_hr_login_locks_again_when_idle(qtbot, data: Path):
    access = HRAccess(data / "facegate.db", idle_ms=300)
    view = open_view(qtbot, data, access)
    assert view.hr_status.text().startswith("HR: locked") and not view.lock_button.isVisible()
    ran = []
    with qtbot.waitSignal(access.changed, timeout=30_000) as changed:
        access.require(view, "look", ran.append)
        log_in(qtbot, access)
    assert changed.args[0] is not None and ran and view.lock_button.isVisible()
    with qtbot.waitSignal(access.changed, timeout=10_000) as locked:
        pass  # nothing done for 0.3 s
    assert locked.args == [None] and access.session is None
    assert view.hr_status.text().startswith("HR: locked")
    close_view(qtbot, view)


def test_erasure_lists_exactly_what_goes_then_it_is_gone_everywhere(qtbot, data: Path):
    registry_path = data / "facegate.db"
    with Registry.open(registry_path) as reg:
        op = reg.get_operator("madonna")
        photos, embeddings = op.photos, op.embeddings
        events = len([e for e in reg.events() if e.operator_id == op.id])
        knew = [mv.id for mv in reg.list_models() if mv.path]
        active_before = reg.active_model().id
    view = open_view(qtbot, data)
    view.select("madonna")
    with qtbot.waitSignal(view.previewReady, timeout=30_000) as ready:
        view.erase()
    preview = ready.args[0]
    assert (preview.photos, preview.embeddings, preview.events) == (photos, embeddings, events)
    assert preview.model_versions == tuple(knew) and preview.active_retrained
    dialog = view.erase_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=5_000)
    text = dialog.items.text()
    assert f"{photos} enrollment photos — deleted" in text and f"{embeddings} face embeddings" in text
    assert f"{events} gate events" in text and f"model version {active_before} " in text
    assert "retrained without them" in text
    assert not dialog.erase_button.isEnabled()
    dialog.confirm.setText("madonn")
    assert not dialog.erase_button.isEnabled()
    dialog.confirm.setText("madonna")
    assert dialog.erase_button.isEnabled()
    qtbot.mouseClick(dialog.erase_button, Qt.MouseButton.LeftButton)
    log_in(qtbot, view.access)
    qtbot.waitUntil(lambda: view.busy and view.progress.isVisible(), timeout=10_000)
    assert not view.erase_button.isEnabled()
    with qtbot.waitSignal(view.actionDone, timeout=600_000) as done:
        pass
    message = done.args[0]
    assert message.startswith(f"Erased madonna: {photos} photos, {embeddings} embeddings deleted, {events} events")
    assert f"model version {active_before} deleted" in message and "active without madonna" in message
    qtbot.waitUntil(lambda: "madonna" not in view.visible_ids(), timeout=30_000)
    with Registry.open(registry_path) as reg:
        with pytest.raises(RegistryError):
            reg.get_operator("madonna")
        assert all(p.operator_id != op.id for p in reg.list_photos())
        _, labels, _ = reg.embeddings(reg.active_model().embedder_version)
        assert "madonna" not in set(labels)
        for mv in reg.list_models():
            if mv.id in knew:
                assert mv.path == "" and mv.notes == PRUNED_NOTE
        assert reg.active_model().id not in knew
        assert not any((data / "models").glob("*/model.json")) or all(
            "madonna" not in (f.read_text()) for f in (data / "models").glob("*/model.json"))
        [row] = reg.audit_log(action="remove_operator")
        assert row.actor == "admin:hr.lead"
        state = verify_state(reg)
        assert state.ok, state.problems
        assert reg.verify() == []
    close_view(qtbot, view)


# -- done means: the running console stops recognising a deactivated person, without a restart --------------


@pytest.fixture(scope="module")
def madonna_clip(seed, tmp_path_factory) -> Path:
    """A video of madonna (a val photo, never trained on) walking up to the gate again and again."""
    from core.demo.scene import DemoScene
    from core.vision.detector import MtcnnDetector
    from core.vision.imageio import read_image
    from tests.conftest import write_clip

    path = min((seed.dataset / "val" / "madonna").iterdir())
    photo = read_image(path)
    scene = DemoScene.with_faces([("madonna", photo, MtcnnDetector().detect(photo)[0].box)], script=[[0]] * 30)
    return write_clip(scene, tmp_path_factory.mktemp("clips") / "madonna.avi")


def test_deactivating_from_the_view_makes_the_running_console_say_unknown_without_a_restart(
        qtbot, data: Path, madonna_clip: Path):
    from core.live.session import SessionSettings
    from core.live.tracking import TrackState
    from core.registry.accounts import login as core_login
    from core.registry.decision import set_approved_cameras
    from gui.main_window import MainWindow

    spec = f"gate={madonna_clip}"
    with Registry.open(data / "facegate.db") as reg:
        session = core_login(reg, "hr.lead", HR_PASSPHRASE, action="approve the test camera")
        set_approved_cameras(reg, session, [spec], [spec])
    window = MainWindow(SessionSettings(sources=(spec,), data_dir=data))
    qtbot.addWidget(window)
    window.resize(1366, 768)
    window.show()
    decisions: list = []
    window.worker.decision.connect(decisions.append)
    qtbot.waitUntil(lambda: any(d.track.state is TrackState.NAMED and d.track.identity == "madonna"
                                for d in decisions), timeout=180_000)

    view = open_view(qtbot, data)
    view.select("madonna")
    reloads: list = []
    window.worker.model.connect(reloads.append)
    deactivate(qtbot, view)
    with qtbot.waitSignal(view.actionDone, timeout=30_000):
        log_in(qtbot, view.access)
    qtbot.waitUntil(lambda: bool(reloads), timeout=60_000)  # the console's model watcher reloaded the signed state
    seen = len(decisions)
    qtbot.waitUntil(lambda: any(d.kind != "undecided" for d in decisions[seen:]), timeout=120_000)
    after = [d for d in decisions[seen:] if d.kind != "undecided"]
    assert all(d.track.state is TrackState.UNKNOWN for d in after), [(d.kind, d.track.state) for d in after]
    assert reloads[-1].reloaded and reloads[-1].people == 4, reloads[-1]

    close_view(qtbot, view, alone=False)
    with qtbot.waitSignal(window.closed, timeout=120_000):
        window.close()
    assert running_threads() == []


def test_erasing_from_the_view_makes_the_running_console_stop_naming_them_without_a_restart(
        qtbot, data: Path):
    """The demo camera shows the five demo people in turn; once madonna is erased (and the model retrained
    without her), the running console never names her again — no restart."""
    from core.live.session import SessionSettings
    from core.live.tracking import TrackState
    from core.registry.accounts import login as core_login
    from core.registry.decision import set_approved_cameras
    from gui.main_window import MainWindow

    with Registry.open(data / "facegate.db") as reg:
        session = core_login(reg, "hr.lead", HR_PASSPHRASE, action="approve the demo camera")
        set_approved_cameras(reg, session, ["demo=demo"], ["demo=demo"])
    window = MainWindow(SessionSettings(sources=("demo=demo",), data_dir=data))
    qtbot.addWidget(window)
    window.resize(1366, 768)
    window.show()
    decisions: list = []
    window.worker.decision.connect(decisions.append)
    qtbot.waitUntil(lambda: any(d.track.state is TrackState.NAMED and d.track.identity == "madonna"
                                for d in decisions), timeout=240_000)

    view = open_view(qtbot, data)
    view.select("madonna")
    reloads: list = []
    window.worker.model.connect(reloads.append)
    with qtbot.waitSignal(view.previewReady, timeout=60_000):
        view.erase()
    dialog = view.erase_dialog
    qtbot.waitUntil(dialog.isVisible, timeout=5_000)
    dialog.confirm.setText("madonna")
    qtbot.mouseClick(dialog.erase_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(view.actionDone, timeout=600_000):
        log_in(qtbot, view.access)
    qtbot.waitUntil(lambda: any(r.people == 4 for r in reloads), timeout=120_000)
    seen = len(decisions)
    # Long enough for the demo's cycle to bring every face to the gate again, madonna's among them.
    qtbot.waitUntil(lambda: sum(d.kind != "undecided" for d in decisions[seen:]) >= 10, timeout=300_000)
    after = [d for d in decisions[seen:] if d.kind != "undecided"]
    assert not any(d.track.state is TrackState.NAMED and d.track.identity == "madonna" for d in after)
    assert any(d.track.state is TrackState.UNKNOWN for d in after), [(d.kind, d.track.identity) for d in after]
    close_view(qtbot, view, alone=False)
    with qtbot.waitSignal(window.closed, timeout=120_000):
        window.close()
    assert running_threads() == []
