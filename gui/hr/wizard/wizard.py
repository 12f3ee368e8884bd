"""The enrollment wizard (issue 11): Operator → Capture → Review → Train → Results.

HR enrolls an operator at a desk camera (any :func:`core.live.sources.open_source` spec: a webcam, an IP
camera, a folder of pictures) or from photo files, trains a candidate model version in the background,
compares it with the active one and activates or discards it.  Opening the wizard needs an HR login
(:func:`open_enrollment_wizard`), and every change — enrolling, training, activating, discarding — goes
through :meth:`gui.hr.access.HRAccess.require` (asking again if the login locked meanwhile) and is signed
with :func:`core.registry.security.signed`, the same core code the CLI uses.

Nothing heavy runs on the GUI thread: see :mod:`gui.hr.wizard.workers`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import QMetaObject, Qt, QThread, Signal, Slot
from PySide6.QtWidgets import QWidget, QWizard

from core.registry.capture import DEFAULT_QUOTA, POSES, CapturePlan, Shot
from gui import theme
from gui.hr.access import HRAccess
from gui.hr.wizard.capture_page import CapturePage
from gui.hr.wizard.pages import OperatorPage, ReviewPage
from gui.hr.wizard.train_pages import ResultsPage, TrainPage
from gui.hr.wizard.workers import (
    CaptureWorker,
    DecideWorker,
    DuplicateCheck,
    EnrollRequest,
    Results,
    ResultsWorker,
    TrainWorker,
)
from gui.threads import start_worker, stop_thread

log = logging.getLogger(__name__)

MIN_SHOTS = 5
"""Shots an operator needs at least (training needs 3; a held-out check needs a few more)."""

OPERATOR, CAPTURE, REVIEW, TRAIN, RESULTS = range(5)


class EnrollmentWizard(QWizard):
    """See the module docstring.

    Parameters
    ----------
    registry_path
        The registry database (``<data dir>/facegate.db``).
    models_dir
        Its model versions' folder (``<data dir>/models``).
    access
        The console's HR login.
    source_spec
        The HR desk camera, as ``facegate monitor --source`` takes it.
    min_shots, quota
        Shots needed at least, and wanted per pose (default 12: :data:`core.registry.capture.DEFAULT_QUOTA`).
    """

    # Requests to the capture worker (queued: it lives in its own thread).
    request_start = Signal(str)
    request_stop = Signal()
    request_auto = Signal(bool)
    request_capture = Signal(str)
    request_import = Signal(list)
    request_remove = Signal(int)
    request_operator = Signal(str, bool)
    request_enroll = Signal(object)
    # What happened (for the console and the tests).
    loaded = Signal()
    shotsChanged = Signal(int)
    enrolled = Signal(object)  # EnrollResult
    trained = Signal(object)  # ModelVersion
    trainingCancelled = Signal(str)
    resultsReady = Signal(object)  # Results
    decided = Signal(str, int)  # ("activate" | "discard", version id)
    failed = Signal(str)

    def __init__(self, registry_path: Path | str, models_dir: Path | str, access: HRAccess, source_spec: str,
                 parent: QWidget | None = None, *, min_shots: int = MIN_SHOTS,
                 quota: Mapping[str, int] | None = None) -> None:
        super().__init__(parent)
        self.registry_path, self.models_dir = Path(registry_path), Path(models_dir)
        self.access, self.source_spec = access, source_spec
        self.min_shots = int(min_shots)
        self.quota = {p: int((quota or DEFAULT_QUOTA).get(p, 0)) for p in POSES}
        self.operators: dict[str, Any] = {}
        self.operators_loaded = False
        self.capture_ready = False
        self.shots: list[Shot] = []
        self.duplicate = DuplicateCheck("ok")
        self.enrolled_result: Any = None
        self.candidate: Any = None
        self.results: Results | None = None
        self.decision: str | None = None
        self.training = False
        self.embedder: Any = None
        self._threads: dict[str, tuple[Any, QThread]] = {}

        self.setWindowTitle("Enroll an operator")
        self.setWizardStyle(QWizard.WizardStyle.ModernStyle)
        # The console's colours, and radio buttons and check boxes that stay visible on them.
        self.setStyleSheet(theme.STYLESHEET + """
            QRadioButton::indicator, QCheckBox::indicator { width: 14px; height: 14px; border: 2px solid #9aa3b5;
                background: #242833; }
            QRadioButton::indicator { border-radius: 9px; }
            QRadioButton::indicator:checked, QCheckBox::indicator:checked { background: #3b82f6; }""")
        self.setFont(theme.font(theme.BASE_POINTS))
        self.setOption(QWizard.WizardOption.NoBackButtonOnLastPage, True)
        self.setOption(QWizard.WizardOption.NoCancelButtonOnLastPage, True)
        self.resize(1400, 900)

        self.operator_page = OperatorPage(self)
        self.capture_page = CapturePage(self)
        self.review_page = ReviewPage(self)
        self.train_page = TrainPage(self)
        self.results_page = ResultsPage(self)
        for page_id, page in enumerate((self.operator_page, self.capture_page, self.review_page, self.train_page,
                                        self.results_page)):
            self.setPage(page_id, page)
        self.currentIdChanged.connect(self._page_changed)

        worker = CaptureWorker(self.registry_path, self.models_dir, CapturePlan(self.quota))
        worker.ready.connect(self._on_loaded)
        worker.loadFailed.connect(self._on_load_failed)
        worker.frameReady.connect(self._on_frame)
        worker.sourceStatus.connect(self.capture_page.show_status)
        worker.shotAdded.connect(self._on_shot)
        worker.shotRefused.connect(self.capture_page.show_refused)
        worker.duplicateChecked.connect(self._on_duplicate)
        worker.enrolled.connect(self._on_enrolled)
        worker.enrollFailed.connect(self._on_enroll_failed)
        self.request_start.connect(worker.start_capture)
        self.request_stop.connect(worker.stop_capture)
        self.request_auto.connect(worker.set_auto)
        self.request_capture.connect(worker.capture_now)
        self.request_import.connect(worker.import_files)
        self.request_remove.connect(worker.remove_shot)
        self.request_operator.connect(worker.set_operator)
        self.request_enroll.connect(worker.enroll)
        self.capture = worker
        self.capture_thread = start_worker(worker, "hr-capture")

    # -- capture worker ----------------------------------------------------------------------------

    @Slot(object)
    def _on_loaded(self, operators: list) -> None:
        self.operators = {op.employee_id: op for op in operators}
        self.operators_loaded = True
        self.capture_ready = True
        self.embedder = self.capture.embedder_info()
        self.operator_page.set_loaded()
        self.capture_page.completeChanged.emit()
        self.loaded.emit()

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.operator_page.set_loaded(message)
        self.failed.emit(message)

    @Slot()
    def _on_frame(self) -> None:
        view = self.capture.take_frame()
        if view is not None:
            self.capture_page.show_frame(view)

    @Slot(object)
    def _on_shot(self, shot: Shot) -> None:
        if self.currentId() != CAPTURE:  # kept by the camera just as HR left the page: not reviewed, dropped
            self.request_remove.emit(shot.id)
            return
        self.shots.append(shot)
        self.access.touch()
        self.capture_page.refresh()
        self.shotsChanged.emit(len(self.shots))

    @Slot(object)
    def _on_duplicate(self, check: DuplicateCheck) -> None:
        self.duplicate = check
        self.capture_page.show_duplicate(check)

    def pose_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(POSES, 0)
        for shot in self.shots:
            counts[shot.pose] += 1
        return counts

    def remove_shot(self, shot_id: int) -> None:
        """Forget a shot (the Review page's Remove)."""
        self.shots = [s for s in self.shots if s.id != shot_id]
        self.request_remove.emit(shot_id)
        self.access.touch()
        self.capture_page.refresh()
        if self.currentId() == REVIEW:
            self.review_page.rebuild()
        self.shotsChanged.emit(len(self.shots))

    @Slot(int)
    def _page_changed(self, page_id: int) -> None:
        self.access.touch()
        if page_id == CAPTURE:
            self.request_operator.emit(self.field("employee_id").strip(), self.operator_page.existing)
            self.request_start.emit(self.source_spec)
        else:
            self.request_stop.emit()

    # -- enrolling and training ----------------------------------------------------------------------

    def start_enrollment(self) -> None:
        """Enroll the shots (HR login asked if needed), then train."""
        if self.enrolled_result is not None:
            self.start_training()
            return
        eid = self.field("employee_id").strip()
        self.train_page.set_step("Waiting for the HR login… (press 'Try again' if it was cancelled)", busy=False)
        self.train_page.retry_button.setText("Try again")
        self.train_page.retry_button.show()
        self.access.require(self, f"enroll {eid} ({len(self.shots)} photos) and train a new model", self._enroll_as)

    def _enroll_as(self, session: Any) -> None:
        page = self.operator_page
        eid = self.field("employee_id").strip()
        confirmed = self.capture_page.override.isChecked()
        self.train_page.retry_button.hide()
        self.train_page.set_step(f"Enrolling {len(self.shots)} photos of {eid}…", busy=True)
        self.train_page.set_progress(0.02, "each photo passes the quality gate again as it is stored")
        self.request_enroll.emit(EnrollRequest(
            eid, page.name.text().strip(), page.department.text().strip(), session, tuple(self.shots),
            confirm_duplicate=confirmed and self.duplicate.kind == "duplicate",
            confirm_new_look=confirmed and self.duplicate.kind == "new_look"))

    @Slot(object)
    def _on_enrolled(self, result: Any) -> None:
        self.enrolled_result = result
        self.train_page.retry_button.setText("Train again")
        rejected = "".join(f"\n  • {name}: {why}" for name, why in result.rejected)
        self.train_page.outcome.setText(f"{len(result.accepted)} photos enrolled for {result.employee_id}"
                                        + (f"; {len(result.rejected)} not enrolled:{rejected}" if rejected else "."))
        self.enrolled.emit(result)
        if not result.accepted:
            self.enrolled_result = None
            self.train_page.set_step("No photo was enrolled — go back is not possible; close the wizard and "
                                     "start again.", busy=False)
            return
        self.start_training()

    @Slot(str)
    def _on_enroll_failed(self, message: str) -> None:
        self.train_page.set_step("Nothing was enrolled.", busy=False)
        self.train_page.outcome.setText(message)
        self.train_page.outcome.setStyleSheet(f"color: {theme.DECISION_COLOURS['unknown'].name()};")
        self.train_page.retry_button.setText("Try again")
        self.train_page.retry_button.show()
        self.failed.emit(message)

    def start_training(self) -> None:
        if self.enrolled_result is None:
            self.start_enrollment()
            return
        if self.training:
            return
        self.access.require(self, "train a new model version", self._train_as)

    def _train_as(self, session: Any) -> None:
        worker = TrainWorker(self.registry_path, self.models_dir, self.embedder, session)
        # A bound slot of this (GUI-thread) object, never a lambda: a lambda would run in the worker's thread.
        worker.progress.connect(self._on_train_progress)
        worker.trained.connect(self._on_trained)
        worker.cancelled.connect(self._on_train_cancelled)
        worker.failed.connect(self._on_train_failed)
        self.training = True
        self.train_page.set_step("Training a new model version (the three models, the threshold, a 5-fold "
                                 "cross-validation)…", busy=True)
        self._start("train", worker)

    @Slot(float, str)
    def _on_train_progress(self, fraction: float, message: str) -> None:
        self.train_page.set_progress(0.05 + 0.95 * fraction, message)

    def cancel_training(self) -> None:
        entry = self._threads.get("train")
        if entry is not None:
            entry[0].cancel()
            self.train_page.set_step("Cancelling…", busy=True)
            self.train_page.cancel_button.setEnabled(False)

    @Slot(object)
    def _on_trained(self, version: Any) -> None:
        self._stop("train")
        self.training = False
        self.candidate = version
        if version.status == "candidate":
            self.train_page.set_step(f"✔ New model version #{version.id} is trained. It is not active yet: compare "
                                     "it with the active one on the next page.", busy=False)
        else:
            self.train_page.set_step(f"✖ New model version #{version.id} failed its checks ({version.notes}). "
                                     "The active model is unchanged.", busy=False)
        self.train_page.set_progress(1.0, version.notes)
        self.trained.emit(version)

    @Slot(str)
    def _on_train_cancelled(self, message: str) -> None:
        self._stop("train")
        self.training = False
        self.train_page.set_step("Training cancelled. The active model is unchanged. The photos stay enrolled "
                                 "(the gate recognises the operator by distance alone until a model is trained). "
                                 "Press 'Train again' to train.", busy=False)
        self.train_page.set_progress(0.0, message)
        self.trainingCancelled.emit(message)

    @Slot(str)
    def _on_train_failed(self, message: str) -> None:
        self._stop("train")
        self.training = False
        self.train_page.set_step(f"Training failed: {message}. The active model is unchanged.", busy=False)
        self.failed.emit(message)

    # -- results and the decision --------------------------------------------------------------------

    def start_results(self) -> None:
        if self.candidate is None or "results" in self._threads:
            return
        worker = ResultsWorker(self.registry_path, self.models_dir, self.candidate.id,
                               self.field("employee_id").strip(), self.embedder)
        worker.ready.connect(self._on_results)
        worker.failed.connect(self._on_results_failed)
        self._start("results", worker)

    @Slot(object)
    def _on_results(self, results: Results) -> None:
        self._stop("results")
        self.results = results
        self.results_page.show_results(results)
        self.resultsReady.emit(results)

    @Slot(str)
    def _on_results_failed(self, message: str) -> None:
        self._stop("results")
        self.results_page.show_failed(message)
        self.failed.emit(message)

    def decide(self, activate: bool) -> None:
        """Activate (``True``) or discard the candidate, after an HR login if the last one locked."""
        if self.candidate is None or "decide" in self._threads:
            return
        what = "activate" if activate else "discard"
        self.access.require(self, f"{what} model version {self.candidate.id}",
                            lambda session: self._decide_as(session, activate))

    def _decide_as(self, session: Any, activate: bool) -> None:
        worker = DecideWorker(self.registry_path, self.models_dir, self.candidate.id, activate, session)
        worker.done.connect(self._on_decided)
        worker.failed.connect(self._on_decide_failed)
        self.results_page.activate_button.setEnabled(False)
        self.results_page.discard_button.setEnabled(False)
        self._start("decide", worker)

    @Slot(str, int)
    def _on_decided(self, what: str, version_id: int) -> None:
        self._stop("decide")
        self.decision = what
        self.results_page.show_decided(what, version_id)
        self.decided.emit(what, version_id)

    @Slot(str)
    def _on_decide_failed(self, message: str) -> None:
        self._stop("decide")
        self.results_page.show_decide_failed(message)
        self.failed.emit(message)

    # -- threads -----------------------------------------------------------------------------------

    def _start(self, name: str, worker: Any) -> None:
        self._threads[name] = (worker, start_worker(worker, f"hr-{name}"))

    def _stop(self, name: str) -> None:
        entry = self._threads.pop(name, None)
        if entry is not None:
            stop_thread(entry[1])

    def shutdown(self) -> None:
        """Stop every thread the wizard started (cancelling training and the check); idempotent."""
        for name in list(self._threads):
            worker = self._threads[name][0]
            if hasattr(worker, "cancel"):
                worker.cancel()
            self._stop(name)
        if self.capture_thread is not None:
            self.capture.request_stop()
            if self.capture_thread.isRunning():  # its timer is stopped in its own thread, never from this one
                QMetaObject.invokeMethod(self.capture, "stop_capture", Qt.ConnectionType.BlockingQueuedConnection)
            stop_thread(self.capture_thread)
            self.capture.close_source()
            self.capture_thread = None

    def done(self, result: int) -> None:
        self.shutdown()
        super().done(result)

    def closeEvent(self, event) -> None:
        self.shutdown()
        super().closeEvent(event)


def open_enrollment_wizard(parent: QWidget | None, registry_path: Path | str, models_dir: Path | str,
                           access: HRAccess, source_spec: str) -> None:
    """Open the wizard once HR has logged in (nothing opens if the login is cancelled or refused)."""

    def show(_session: Any) -> None:
        wizard = EnrollmentWizard(registry_path, models_dir, access, source_spec, parent)
        wizard.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose, True)
        wizard.show()

    access.require(parent, "open the enrollment wizard", show)
