"""The enrollment wizard's workers: QObjects moved to QThreads (:func:`gui.threads.start_worker`).

* :class:`CaptureWorker` — one per wizard, for its whole life: loads the face pipeline (TensorFlow,
  seconds) in its own thread, reads the camera (any :func:`core.live.sources.open_source` spec) and
  runs detection, the quality gate and the embedding on the **newest** frame only; keeps the
  :class:`~core.registry.capture.CapturePlan`, runs the duplicate check, and finally enrolls the shots
  (it has the pipeline already: enrolling re-runs the gate and the embedding on each shot).
* :class:`TrainWorker` — one per training run: :func:`core.registry.training.retrain` with
  ``activate=False`` (a *candidate*), progress and cancel.
* :class:`ResultsWorker` — the candidate's and the active version's reports, and how the three models
  recognise the new operator's shots when those shots were held out of training (see
  :func:`held_out_check`).
* :class:`DecideWorker` — activate or discard the candidate.

Every change is signed by HR (:func:`core.registry.security.signed`), exactly as the CLI does.
Each worker opens its own :class:`~core.registry.Registry` in its own thread (one connection per thread).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot

from core.errors import FaceGateError
from core.registry.capture import POSES, CapturePlan, Offer, Shot, feedback, pose_bucket
from core.types import Detection

log = logging.getLogger(__name__)

PREVIEW_SIZE = (720, 540)
"""The preview frame is resized to fit this (in the worker), then painted 1:1."""
TICK_MS = 15
MANUAL_WAIT_S = 3.0
"""How long "Capture now" waits for a good picture before it says why none was kept."""
"""How often the capture worker looks for a newer frame."""


@dataclass(frozen=True)
class FrameView:
    """One analysed frame for the preview: the resized picture and what the gate said about it."""

    image: np.ndarray = field(repr=False)  # RGB, already resized for the preview; never reused
    scale: float
    faces: tuple[Detection, ...]  # in the camera frame's pixels
    passed: bool
    feedback: str
    pose: str | None
    offer: str  # what the capture plan did with it ("kept: left (3 of 12)", "almost the same as shot 2 …")
    missing: dict[str, int]
    index: int


@dataclass(frozen=True)
class DuplicateCheck:
    """The duplicate check on the shots kept so far.

    ``kind``: ``"ok"``; ``"duplicate"`` (a new operator's face is an enrolled person's: ``employee_id``,
    ``name``); ``"new_look"`` (photos for an existing operator do not look like them: ``photos`` of
    ``total`` are beyond the threshold).
    """

    kind: str
    employee_id: str = ""
    name: str = ""
    distance: float = 0.0
    threshold: float = 0.0
    photos: int = 0
    total: int = 0


@dataclass(frozen=True)
class EnrollRequest:
    employee_id: str
    name: str
    department: str
    session: Any  # HRSession
    shots: tuple[Shot, ...]  # the shots HR reviewed (not whatever the camera kept since)
    confirm_duplicate: bool = False
    confirm_new_look: bool = False


class _Detected:
    """A pipeline whose detector returns faces already found (the gate must not detect twice)."""

    def __init__(self, pipeline: Any, detections: list[Detection]) -> None:
        self._pipeline, self._detections = pipeline, detections
        self.detector = self

    def detect(self, image: np.ndarray) -> list[Detection]:
        return list(self._detections)

    def align(self, image: np.ndarray, detections: Any) -> np.ndarray:
        return self._pipeline.align(image, detections)


def _resized(image: np.ndarray, box: tuple[int, int]) -> tuple[np.ndarray, float]:
    import cv2

    h, w = image.shape[:2]
    scale = min(box[0] / w, box[1] / h, 2.0)  # a small camera picture is enlarged (at most 2×) for HR to see
    if scale == 1.0:
        return np.ascontiguousarray(image).copy(), 1.0
    out = cv2.resize(image, (max(1, int(w * scale)), max(1, int(h * scale))),
                     interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    return out, scale


class CaptureWorker(QObject):
    """See the module docstring.  Start slot ``run``; every other slot is called through queued signals."""

    ready = Signal(object)  # list[Operator]: who is enrolled (for the employee-id check)
    loadFailed = Signal(str)
    frameReady = Signal()  # the newest FrameView waits in take_frame()
    sourceStatus = Signal(str)
    shotAdded = Signal(object)  # Shot
    shotRefused = Signal(str, str)  # (what, why) for an imported file or a capture by hand
    duplicateChecked = Signal(object)  # DuplicateCheck
    enrolled = Signal(object)  # EnrollResult
    enrollFailed = Signal(str)

    def __init__(self, registry_path: Path, models_dir: Path, plan: CapturePlan | None = None) -> None:
        super().__init__()
        self.registry_path, self.models_dir = Path(registry_path), Path(models_dir)
        self.plan = plan or CapturePlan()
        self.pipeline: Any = None
        self.source: Any = None
        self.auto = True
        self.employee_id = ""
        self.existing = False
        self._manual: str | None = None  # a capture by hand asked for, with its pose ("" = as measured)
        self._manual_until = 0.0  # ... until this time.monotonic(); then it is refused with the last advice
        self._last_index = -1
        self._timer: QTimer | None = None
        self._lock = threading.Lock()
        self._latest: FrameView | None = None
        self._pending = False
        self._stop = threading.Event()
        self.frames_analysed = 0

    # -- life --------------------------------------------------------------------------------------

    @Slot()
    def run(self) -> None:
        from core.recognition.engine import FacePipeline
        from core.registry import Registry

        try:
            self.pipeline = FacePipeline()
            self.pipeline.detector.detect(np.zeros((64, 64, 3), np.uint8))  # load the networks now, not on frame 1
            self.pipeline.embed(np.zeros((64, 64, 3), np.uint8), [])
            with Registry.open(self.registry_path) as reg:
                operators = reg.list_operators()
        except Exception as exc:  # TensorFlow, the weights, the registry: said on the page
            log.exception("enrollment: loading failed")
            self.loadFailed.emit(str(exc) if isinstance(exc, FaceGateError) else f"{type(exc).__name__}: {exc}")
            return
        self.ready.emit(operators)

    def embedder_info(self) -> Any:
        from core.registry.training import EmbedderInfo

        return EmbedderInfo.of(self.pipeline)

    def request_stop(self) -> None:
        """From any thread: stop analysing frames (the thread is quit next)."""
        self._stop.set()

    def close_source(self) -> None:
        """Stop the camera (thread-safe; call after the worker's thread has finished)."""
        source, self.source = self.source, None
        if source is not None:
            source.stop()

    # -- capture -----------------------------------------------------------------------------------

    @Slot(str)
    def start_capture(self, spec: str) -> None:
        from core.live.sources import SourceOptions, open_source

        if self.source is not None or self.pipeline is None:
            return
        try:
            self.source = open_source(spec, name="hr-desk", options=SourceOptions(loop=True))
            self.source.start()
        except FaceGateError as exc:
            self.sourceStatus.emit(f"The camera could not be opened: {exc}")
            self.source = None
            return
        if self._timer is None:
            self._timer = QTimer(self)
            self._timer.timeout.connect(self._tick)
        self._timer.start(TICK_MS)

    @Slot()
    def stop_capture(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self.close_source()

    @Slot(bool)
    def set_auto(self, on: bool) -> None:
        self.auto = bool(on)

    @Slot(str)
    def capture_now(self, pose_name: str) -> None:
        """Keep the next good frame as a shot, even if its pose has its shots (HR pressed Capture)."""
        self._manual = pose_name
        self._manual_until = time.monotonic() + MANUAL_WAIT_S

    @Slot(str, bool)
    def set_operator(self, employee_id: str, existing: bool) -> None:
        self.employee_id, self.existing = employee_id, existing
        self._check_duplicates()

    @Slot(int)
    def remove_shot(self, shot_id: int) -> None:
        if self.plan.remove(shot_id):
            self._check_duplicates()

    @Slot(list)
    def import_files(self, paths: list) -> None:
        from core.vision.imageio import read_image
        from core.vision.quality import check_quality

        for path in paths:
            name = Path(path).name
            try:
                image = read_image(Path(path))
                report = check_quality(image, self.pipeline, self.plan.thresholds)
            except FaceGateError as exc:
                self.shotRefused.emit(name, str(exc))
                continue
            embedding = self.pipeline.embed(image, [report.detection])[0] if report.passed else None
            offer = self.plan.offer(image, report, embedding, manual=True, origin=name)
            self._after_offer(offer, name)
        self._check_duplicates()

    def take_frame(self) -> FrameView | None:
        """The newest analysed frame (called from the GUI thread when ``frameReady`` arrives)."""
        with self._lock:
            view, self._pending = self._latest, False
        return view

    @Slot()
    def _tick(self) -> None:
        from core.vision.quality import check_quality

        if self._stop.is_set() or self.source is None:
            return
        frame = self.source.latest(after=self._last_index)
        if frame is None:
            status = self.source.status()
            if status.state.value not in ("live", "connecting"):
                self.sourceStatus.emit(status.line())
            return
        self._last_index = frame.index
        image = np.array(frame.image)  # the source's frame is shared and read-only: a copy of our own
        detections = list(self.pipeline.detector.detect(image))
        report = check_quality(image, _Detected(self.pipeline, detections), self.plan.thresholds)
        embedding = self.pipeline.embed(image, [report.detection])[0] if report.passed else None
        manual = self._manual
        if manual is not None and (report.passed or time.monotonic() >= self._manual_until):
            self._manual = None  # taken now (a good picture) or given up (none came in time: said why)
        elif manual is not None:
            manual = None  # still waiting for a good picture
        offer = Offer(False, "")
        if report.passed and (self.auto or manual is not None):
            offer = self.plan.offer(image, report, embedding, manual=manual is not None,
                                    pose_name=manual or None)
            self._after_offer(offer, "the picture", quiet=manual is None)
            if offer.accepted:
                self._check_duplicates()
        elif manual is not None:
            self.shotRefused.emit("the picture", feedback(report, len(detections)))
        small, scale = _resized(image, PREVIEW_SIZE)
        view = FrameView(small, scale, tuple(detections), report.passed, feedback(report, len(detections)),
                         pose_bucket(report.detection) if report.detection is not None else None,
                         offer.reason, self.plan.missing(), frame.index)
        self.frames_analysed += 1
        with self._lock:
            self._latest = view
            notify, self._pending = not self._pending, True
        if notify:  # never a queue of frames: one signal until the GUI has taken the newest
            self.frameReady.emit()

    def _after_offer(self, offer: Offer, what: str, quiet: bool = False) -> None:
        if offer.accepted and offer.shot is not None:
            self.shotAdded.emit(offer.shot)
        elif not quiet:
            self.shotRefused.emit(what, offer.reason)

    def _check_duplicates(self) -> None:
        from core.recognition.openset import Gallery
        from core.registry import Registry
        from core.registry.enrollment import Enroller

        shots = list(self.plan.shots)
        if not shots or self.pipeline is None:
            self.duplicateChecked.emit(DuplicateCheck("ok"))
            return
        x_new = np.stack([s.embedding for s in shots])
        try:
            with Registry.open(self.registry_path) as reg:
                enroller = Enroller(reg, self.pipeline)
                threshold = enroller.duplicate_threshold_in_force()
                if not self.existing:
                    match = enroller.find_duplicate(x_new, exclude=self.employee_id or None)
                    if match is None:
                        result = DuplicateCheck("ok", threshold=threshold)
                    else:
                        who = reg.get_operator(match.employee_id)
                        result = DuplicateCheck("duplicate", match.employee_id, who.name, match.distance,
                                                match.threshold, match.photos, len(shots))
                else:
                    x, labels, _ = reg.embeddings(self.pipeline.embedder.version,
                                                  embedder=self.pipeline.embedder.name, active_only=False)
                    mine = np.asarray([label == self.employee_id for label in labels], dtype=bool)
                    if not mine.any():
                        result = DuplicateCheck("ok", threshold=threshold)
                    else:
                        d = Gallery(x[mine], np.asarray(labels)[mine], k=1).distances(x_new)[:, 0]
                        far = int(np.sum(d > threshold))
                        who = reg.get_operator(self.employee_id)
                        result = DuplicateCheck("new_look" if far else "ok", self.employee_id, who.name,
                                                float(np.median(d)), threshold, far, len(shots))
        except FaceGateError as exc:
            log.warning("enrollment: duplicate check failed: %s", exc)
            return
        self.duplicateChecked.emit(result)

    # -- enrolling ---------------------------------------------------------------------------------

    @Slot(object)
    def enroll(self, request: EnrollRequest) -> None:
        from core.registry import Registry
        from core.registry.enrollment import DuplicateIdentity, Enroller
        from core.registry.security import signed

        shots = list(request.shots)
        camera = any(s.origin == "camera" for s in shots)
        try:
            with Registry.open(self.registry_path) as reg, \
                    signed(reg, request.session, reason=f"enroll {request.employee_id}", models_dir=self.models_dir):
                result = Enroller(reg, self.pipeline).enroll_photos(
                    request.employee_id, request.name, request.department, [s.image for s in shots],
                    actor=request.session.actor, confirm_duplicate=request.confirm_duplicate,
                    confirm_new_look=request.confirm_new_look, source="camera:hr-desk" if camera else "file")
        except DuplicateIdentity as exc:
            self.enrollFailed.emit(str(exc))
            return
        except Exception as exc:
            log.exception("enrollment failed")
            self.enrollFailed.emit(str(exc) if isinstance(exc, FaceGateError) else f"{type(exc).__name__}: {exc}")
            return
        self.enrolled.emit(result)


class TrainWorker(QObject):
    """One training run; ``cancel()`` may be called from any thread."""

    progress = Signal(float, str)
    trained = Signal(object)  # ModelVersion (a candidate, or rejected with its reasons)
    cancelled = Signal(str)
    failed = Signal(str)

    def __init__(self, registry_path: Path, models_dir: Path, embedder: Any, session: Any) -> None:
        super().__init__()
        self.registry_path, self.models_dir, self.embedder, self.session = registry_path, models_dir, embedder, session
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        from core.recognition.classifiers import TrainingCancelled
        from core.registry import Registry
        from core.registry.security import signed
        from core.registry.training import retrain

        try:
            with Registry.open(self.registry_path) as reg, \
                    signed(reg, self.session, reason="train a new model (enrollment)", models_dir=self.models_dir):
                version = retrain(reg, self.embedder, self.models_dir, actor=self.session.actor,
                                  progress=lambda f, m: self.progress.emit(float(f), str(m)),
                                  cancel=self._cancel.is_set, activate=False)
        except TrainingCancelled as exc:
            self.cancelled.emit(str(exc))
        except Exception as exc:
            log.exception("training failed")
            self.failed.emit(str(exc) if isinstance(exc, FaceGateError) else f"{type(exc).__name__}: {exc}")
        else:
            self.trained.emit(version)


@dataclass(frozen=True)
class HeldOutShot:
    """How one model version treats one of the new operator's shots it was not trained on."""

    photo: int  # the shot's number (1, 2, …) in enrollment order
    votes: dict[str, tuple[str, float]]  # model → (favourite person, its probability)
    own: dict[str, float]  # model → probability of the new operator
    decision: str  # the gate's identity, or "unknown"
    distance: float
    threshold: float


@dataclass(frozen=True)
class Results:
    candidate: Any  # VersionReport
    active: Any  # VersionReport | None
    new: tuple[HeldOutShot, ...]  # the candidate, each shot held out of its training (leave-shots-out)
    old: tuple[HeldOutShot, ...]  # the active version (it never saw the new operator)
    folds: int
    note: str


def held_out_check(x: np.ndarray, labels: list[str], employee_id: str, *, folds: int = 3,
                   cancel: Any = None) -> tuple[list[HeldOutShot], int]:
    """Leave-shots-out: the operator's shots in ``folds`` groups; for each group a quick model (the three
    classifiers, the gallery and its calibrated threshold) is trained on everything else and decides
    on the group's shots.  Returns one row per shot and the number of groups."""
    from core.recognition.engine import train_model

    y = np.asarray(labels)
    own = np.flatnonzero(y == employee_id)
    k = min(folds, len(own))
    if k < 2:
        return [], 0
    rows: list[HeldOutShot] = []
    for fold in range(k):
        test = own[fold::k]
        keep = np.ones(len(y), bool)
        keep[test] = False
        model = train_model(x[keep], y[keep], cancel=cancel)
        for i, (votes, table, decision, _nearest) in zip(test, model.decide(x[test])):
            rows.append(HeldOutShot(int(np.searchsorted(own, i)) + 1,
                                    {v.model: (v.identity, v.probability) for v in votes},
                                    {m: float(p.get(employee_id, 0.0)) for m, p in table.items()},
                                    decision.identity, decision.distance, decision.threshold))
    return sorted(rows, key=lambda r: r.photo), k


class ResultsWorker(QObject):
    ready = Signal(object)  # Results
    failed = Signal(str)

    def __init__(self, registry_path: Path, models_dir: Path, candidate_id: int, employee_id: str,
                 embedder: Any) -> None:
        super().__init__()
        self.registry_path, self.models_dir = registry_path, models_dir
        self.candidate_id, self.employee_id, self.embedder = candidate_id, employee_id, embedder
        self._cancel = threading.Event()

    def cancel(self) -> None:
        self._cancel.set()

    @Slot()
    def run(self) -> None:
        from core.registry import Registry
        from core.registry.report import version_report
        from core.registry.training import load_active_model

        try:
            with Registry.open(self.registry_path) as reg:
                candidate = version_report(reg, self.models_dir, self.candidate_id)
                active = version_report(reg, self.models_dir) if reg.active_model() is not None else None
                x, labels, _ = reg.embeddings(self.embedder.version, embedder=self.embedder.name)
                # What the gate does today: the active classifiers and the registry's gallery (where the new
                # operator's shots now are: recognised by distance alone).
                model = load_active_model(reg, self.models_dir, live_gallery=True) if active else None
            new, folds = held_out_check(x, labels, self.employee_id, cancel=self._cancel.is_set)
            old: list[HeldOutShot] = []
            mine = np.flatnonzero(np.asarray(labels) == self.employee_id)
            if model is not None and len(mine):
                from dataclasses import replace

                from core.recognition.openset import Gallery

                gx, gy = model.gallery.embeddings, np.asarray(model.gallery.labels)
                for n, i in enumerate(mine, 1):
                    # Each shot held out of the gallery too, else it would match itself at distance 0.
                    keep = ~np.all(np.isclose(gx, x[i][None, :], atol=1e-6), axis=1)
                    held = replace(model, gallery=Gallery(gx[keep], gy[keep], k=model.gallery.k))
                    votes, table, decision, _ = held.decide(x[i:i + 1])[0]
                    old.append(HeldOutShot(n, {v.model: (v.identity, v.probability) for v in votes},
                                           {m: float(p.get(self.employee_id, 0.0)) for m, p in table.items()},
                                           decision.identity, decision.distance, decision.threshold))
        except Exception as exc:
            log.exception("enrollment results failed")
            self.failed.emit(str(exc) if isinstance(exc, FaceGateError) else f"{type(exc).__name__}: {exc}")
            return
        note = (f"New version: each of the {len(mine)} shots was held out of a quick model trained on everything "
                f"else ({folds} groups of shots, leave-shots-out), so these are shots the model had not seen. "
                "Active version: its three models were trained before these shots existed; its gate decision uses the "
                "registry's gallery, each shot left out of it (how the gate recognises a new operator before a "
                "retrain).")
        self.ready.emit(Results(candidate, active, tuple(new), tuple(old), folds, note))


class DecideWorker(QObject):
    """Activate or discard the candidate, signed by HR."""

    done = Signal(str, int)  # ("activate" | "discard", version id)
    failed = Signal(str)

    def __init__(self, registry_path: Path, models_dir: Path, version_id: int, activate: bool, session: Any) -> None:
        super().__init__()
        self.registry_path, self.models_dir = registry_path, models_dir
        self.version_id, self.activate, self.session = version_id, activate, session

    @Slot()
    def run(self) -> None:
        from core.registry import Registry
        from core.registry.security import signed

        what = "activate" if self.activate else "discard"
        try:
            with Registry.open(self.registry_path) as reg, \
                    signed(reg, self.session, reason=f"{what} model {self.version_id}", models_dir=self.models_dir):
                if self.activate:
                    reg.activate_model(self.version_id, actor=self.session.actor)
                else:
                    reg.discard_model(self.version_id, actor=self.session.actor)
        except Exception as exc:
            log.exception("%s model failed", what)
            self.failed.emit(str(exc) if isinstance(exc, FaceGateError) else f"{type(exc).__name__}: {exc}")
            return
        self.done.emit(what, self.version_id)


__all__ = ["POSES", "CaptureWorker", "DecideWorker", "DuplicateCheck", "EnrollRequest", "FrameView",
           "HeldOutShot", "Results", "ResultsWorker", "Shot", "TrainWorker", "held_out_check"]
