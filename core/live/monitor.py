"""Live monitoring: camera sources → detection and recognition → tracks → decisions and events.

One :class:`CameraWorker` per camera, each with two threads of its own, so that a slow or dead
camera never holds up another:

* the **recognition thread** takes the newest frame (never a queued one), detects the faces,
  aligns, embeds and classifies them, and hands the pass over — or drops it if its frame has grown
  older than ``max_frame_age_s`` meanwhile: no decision is ever made on an old frame;
* the **overlay thread** takes every new frame, moves the tracks' boxes by optical flow, merges the
  finished recognition passes into the tracks (:class:`core.live.tracking.Tracker`), and publishes a
  :class:`FrameResult` — the frame with up-to-date boxes, landmarks, identities and each model's
  probabilities — for the console to paint.  It runs at the camera's frame rate whatever
  recognition costs.

Decisions (a track named, called unknown, changed, or gone before a decision) go to an
:class:`~core.live.events.EventWriter`, a thread that owns its own registry connection and appends one event per
decision, with the face's thumbnail, each model's probability, the distance, the camera and the
model version.  :class:`Monitor` puts cameras, one shared recognition model and the writer
together, and reloads the model when the registry's active model or enrolment changes.

Nothing here imports Qt: the console drives a :class:`Monitor` through :mod:`core.live.session`.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import FaceGateError, ModelError, UntrustedState
from core.live.events import ErrorCallback, EventWriter, decision_code
from core.live.sources import FrameSource, SourceState, SourceStatus
from core.live.tracking import (
    FlowShifter,
    Observation,
    TrackDecision,
    Tracker,
    TrackerOptions,
    TrackView,
    is_strong,
    observation_weight,
)
from core.recognition.engine import FacePipeline, Policy, RecognitionModel
from core.types import UNKNOWN, Decision, FaceResult

log = logging.getLogger(__name__)

__all__ = [
    "CameraWorker",
    "EventWriter",
    "FrameResult",
    "Monitor",
    "MonitorOptions",
    "decision_code",
]


def lower_thread_priority(nice: int) -> None:
    """Give the calling thread ``nice`` more niceness (Linux: per thread; elsewhere nothing happens).

    Recognition is the bulk of the work and can wait a few milliseconds; the console's window and
    each camera's overlay cannot.  Threads the calling thread creates later (ONNX Runtime's pool
    threads) inherit it.
    """
    if nice <= 0 or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + nice))
    except (OSError, AttributeError) as exc:  # not allowed, or not supported: run at normal priority
        log.debug("could not lower the priority of %s: %s", threading.current_thread().name, exc)


@dataclass(frozen=True)
class MonitorOptions:
    """Settings of the live pipeline.

    Attributes
    ----------
    max_frame_age_s
        A frame older than this (from capture) is never used for a decision: a recognition pass
        that finishes later than this is dropped.
    min_face_size
        Smallest face, in frame pixels, the live detector looks for.  Faces at a gate are large;
        a larger value makes detection much cheaper (see :mod:`core.vision.detector`).
    tracker
        Track matching and voting rules.
    flow_width
        Width of the grey copy optical flow runs on.
    thumbnail_size
        Side of the face thumbnail stored with each event.
    reload_every_s
        How often the registry is asked whether the model or the enrolment changed.
    recognition_budget_per_s
        Recognition passes per second that all the monitor's cameras share: each camera starts a pass
        at most every ``cameras / budget`` seconds (one camera: every 25 ms, i.e. as fast as it can;
        four: every 100 ms).  With ONNX Runtime a pass is cheap enough that four unthrottled cameras
        ran 21 passes/s each and took the interpreter lock from the console's window (13 painted fps
        instead of 25); two agreeing passes decide a face, so 10 a second per camera loses little.
    """

    max_frame_age_s: float = 1.0
    min_face_size: int = 80
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    flow_width: int = 320
    thumbnail_size: int = 96
    reload_every_s: float = 5.0
    keep_decisions: int = 256
    recognition_budget_per_s: float = 24.0
    recognition_nice: int = 5

    #: ``keep_decisions``: how many recent decisions :attr:`Monitor.decisions` keeps (each holds a
    #: thumbnail); a monitor that runs for months must not grow.

    def __post_init__(self) -> None:
        if self.max_frame_age_s <= 0:
            raise ValueError("max_frame_age_s must be positive.")
        if self.min_face_size < 20:
            raise ValueError("min_face_size must be at least 20 pixels.")
        if self.keep_decisions < 1:
            raise ValueError("keep_decisions must be at least 1.")
        if not self.recognition_budget_per_s > 0:
            raise ValueError("recognition_budget_per_s must be positive.")


@dataclass(frozen=True)
class FrameResult:
    """One processed frame: what the console paints.

    ``stages`` holds the last recognition pass's milliseconds per stage (``detect``, ``align``,
    ``embed``, ``classify``) and the overlay's own (``track``).  ``processed_fps`` counts frames the
    overlay thread published, ``recognition_fps`` recognition passes, both over the last ~2 s.
    """

    camera: str
    frame_index: int
    image: np.ndarray = field(repr=False, compare=False)
    captured: float
    tracks: tuple[TrackView, ...]
    status: SourceStatus
    processed_fps: float
    recognition_fps: float
    stages: dict[str, float] = field(hash=False)
    model_version: str


@dataclass(frozen=True)
class _Pass:
    frame_index: int
    captured: float
    gray: tuple[np.ndarray, float]
    results: tuple[FaceResult, ...]
    thumbnails: tuple[np.ndarray, ...]
    partial: tuple[FaceResult, ...]
    stages: dict[str, float]


class _Rate:
    """Events per second over a sliding window."""

    def __init__(self, window_s: float = 2.0) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()

    def tick(self, now: float) -> None:
        self._times.append(now)
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self.window_s:
            self._times.popleft()

    def value(self, now: float) -> float:
        self._trim(now)
        if len(self._times) < 2:
            return 0.0
        span = max(self._times[-1] - self._times[0], 1e-6)
        return (len(self._times) - 1) / span


def _inside(box: tuple[int, int, int, int], width: int, height: int, margin: int = 2) -> bool:
    x, y, w, h = box
    return x >= -margin and y >= -margin and x + w <= width + margin and y + h <= height + margin


def _inside_share_ok(box: tuple[int, int, int, int], gray: tuple[np.ndarray, float]) -> bool:
    small, scale = gray
    width, height = small.shape[1] / scale, small.shape[0] / scale
    x, y, w, h = box
    ix = max(0.0, min(x + w, width) - max(x, 0))
    iy = max(0.0, min(y + h, height) - max(y, 0))
    return ix * iy >= 0.3 * max(1, w * h)


class ModelHolder:
    """The recognition model shared by all cameras; swapped whole when the registry changes."""

    def __init__(self, model: RecognitionModel) -> None:
        self._model = model
        self._lock = threading.Lock()

    def get(self) -> RecognitionModel:
        with self._lock:
            return self._model

    def set(self, model: RecognitionModel) -> None:
        with self._lock:
            self._model = model


class CameraWorker:
    """One camera's recognition and overlay threads (see the module docstring).

    Parameters
    ----------
    source
        The frame source (started and stopped by this worker).
    models
        The shared model holder.
    pipeline
        Alignment and the embedder (shared, thread-safe); detection uses this worker's own
        detector, built with ``options.min_face_size``.
    options
        Live pipeline settings.
    on_frame
        Called from the overlay thread with every :class:`FrameResult`; keep it quick.
    on_decision
        Called from the overlay thread with every :class:`~core.live.tracking.TrackDecision`.
    detector
        A detector to use instead of building one (tests, benchmarks).
    cameras
        How many cameras share ``options.recognition_budget_per_s``.
    """

    def __init__(self, source: FrameSource, models: ModelHolder, pipeline: FacePipeline,
                 options: MonitorOptions | None = None, *,
                 on_frame: Callable[[FrameResult], None] | None = None,
                 on_decision: Callable[[TrackDecision], None] | None = None,
                 detector: Any = None, cameras: int = 1) -> None:
        self.source = source
        self.cameras = max(1, int(cameras))
        self.name = source.name
        self.models = models
        self.pipeline = pipeline
        self.options = options or MonitorOptions()
        self.on_frame = on_frame
        self.on_decision = on_decision
        if detector is None:
            detector = pipeline.detector_like(self.options.min_face_size)
        self.detector = detector
        self.tracker = Tracker(self.name, self.options.tracker)
        self.flow = FlowShifter(self.options.flow_width)
        self._stop = threading.Event()
        self._pending: deque[_Pass] = deque(maxlen=8)
        self._pending_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._processed = _Rate()
        self._recognised = _Rate()
        self._stages: dict[str, float] = {}
        self.latest: FrameResult | None = None
        self.frames_processed = 0
        self.passes = 0
        self.stale_dropped = 0
        self.last_error: str | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the source and both threads; returns at once."""
        self.source.start()
        for target, role in ((self._recognition_loop, "recognition"), (self._overlay_loop, "overlay")):
            thread = threading.Thread(target=target, name=f"{self.name}-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the threads and the source; undecided tracks are reported as such."""
        self._stop.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.source.stop()
        for decision in self.tracker.clear():
            self._emit(decision)

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    # -- recognition thread -----------------------------------------------------------------------

    def _recognition_loop(self) -> None:
        lower_thread_priority(self.options.recognition_nice)
        last = -1
        max_age = self.options.max_frame_age_s
        interval = self.cameras / self.options.recognition_budget_per_s
        next_pass = 0.0
        while not self._stop.is_set():
            wait = next_pass - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            frame = self.source.wait(after=last, timeout=0.5)
            if frame is None:
                continue
            last = frame.index
            if time.monotonic() - frame.captured > max_age:
                self.stale_dropped += 1
                continue
            next_pass = time.monotonic() + interval
            try:
                done = self._recognise(frame.image, frame.index, frame.captured)
            except FaceGateError as exc:
                self._fail(f"recognition failed: {exc}")
                continue
            except Exception as exc:  # a bug must not take the camera down: log it and go on
                log.exception("%s: recognition pass failed", self.name)
                self._fail(f"recognition failed: {type(exc).__name__}: {exc}")
                continue
            if time.monotonic() - frame.captured > max_age:
                self.stale_dropped += 1  # too late to decide on
                continue
            with self._pending_lock:
                self._pending.append(done)
            self.passes += 1
            self._recognised.tick(time.monotonic())
            if self.passes == 1:  # benchmarks/bench_cold_start.py times a start to this line
                log.info("%s: first recognition pass done (%.0f ms after its frame)", self.name,
                         1000 * (time.monotonic() - frame.captured))

    def _fail(self, message: str) -> None:
        if message != self.last_error:
            log.warning("%s: %s", self.name, message)
        self.last_error = message
        self._stop.wait(0.2)  # don't spin on a persistent failure

    def _recognise(self, image: np.ndarray, index: int, captured: float) -> _Pass:
        model = self.models.get()
        t0 = time.perf_counter()
        found = self.detector.detect(image)
        t1 = time.perf_counter()
        stages = {"detect": 1000 * (t1 - t0)}
        # A face cut by the frame's edge is tracked but not recognised: half a face is no evidence.
        h, w = image.shape[:2]
        detections = [d for d in found if _inside(d.box, w, h)]
        partial = tuple(FaceResult(d, (), {}, Decision(UNKNOWN, False, math.nan, math.nan, math.nan,
                                                       "face cut by the frame edge"), UNKNOWN, model.version)
                        for d in found if not _inside(d.box, w, h))
        results: tuple[FaceResult, ...] = ()
        thumbs: tuple[np.ndarray, ...] = ()
        if detections:
            crops = self.pipeline.align(image, detections)
            t2 = time.perf_counter()
            embeddings = np.asarray(self.pipeline.embedder.embed(crops), dtype=np.float32)
            t3 = time.perf_counter()
            decided = model.decide(embeddings)
            t4 = time.perf_counter()
            enrolled = model.enrolled_probability(np.array([d.distance for _, _, d, _ in decided]))
            results = tuple(FaceResult(det, votes, table, decision, nearest, model.version, float(p))
                            for det, (votes, table, decision, nearest), p in zip(detections, decided, enrolled))
            thumbs = tuple(self._thumbnail(crop) for crop in crops)
            stages.update(align=1000 * (t2 - t1), embed=1000 * (t3 - t2), classify=1000 * (t4 - t3))
        gray = self.flow.prepare(image)
        return _Pass(index, captured, gray, results, thumbs, partial, stages)

    def _thumbnail(self, crop: np.ndarray) -> np.ndarray:
        import cv2

        size = self.options.thumbnail_size
        return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)

    # -- overlay thread ---------------------------------------------------------------------------

    def _overlay_loop(self) -> None:
        last = -1
        previous: tuple[np.ndarray, float] | None = None
        idle_since = time.monotonic()
        while not self._stop.is_set():
            frame = self.source.wait(after=last, timeout=0.25)
            if frame is None:
                now = time.monotonic()
                for decision in self.tracker.expire(now):
                    self._emit(decision)
                if now - idle_since > 1.0 and self.latest is not None:
                    idle_since = now
                    self._publish_status()
                continue
            idle_since = time.monotonic()
            last = frame.index
            t0 = time.perf_counter()
            try:
                gray = self.flow.prepare(frame.image)
                if previous is not None and len(self.tracker):
                    self.tracker.move(self.flow.shift(previous, gray, self.tracker.boxes()), frame.index)
                previous = gray
                decisions = self._merge(gray, frame.index)
                height, width = frame.image.shape[:2]
                decisions += self.tracker.expire(frame.captured, (width, height))
            except Exception as exc:
                log.exception("%s: overlay update failed", self.name)
                self.last_error = f"tracking failed: {type(exc).__name__}: {exc}"
                previous, decisions = None, []
            for decision in decisions:
                self._emit(decision)
            now = time.monotonic()
            self._processed.tick(now)
            self.frames_processed += 1
            stages = {**self._stages, "track": 1000 * (time.perf_counter() - t0)}
            self._publish(self._frame_result(frame.index, frame.image, frame.captured, stages,
                                             self.models.get().version, now))

    def _merge(self, gray: tuple[np.ndarray, float], frame_index: int) -> list[TrackDecision]:
        with self._pending_lock:
            passes = list(self._pending)
            self._pending.clear()
        decisions: list[TrackDecision] = []
        for done in passes:
            self._stages = done.stages
            faces = [(r, t, False) for r, t in zip(done.results, done.thumbnails)] + [
                (r, None, True) for r in done.partial]
            if not faces:
                continue
            shifts = self.flow.shift(done.gray, gray, [r.detection.box for r, _, _ in faces])
            observations = []
            for (result, thumb, partial), shift in zip(faces, shifts):
                box, landmarks = result.detection.box, result.detection.landmarks
                if shift is not None:
                    dx, dy, scale = shift
                    x, y, w, h = box
                    cx, cy = x + w / 2, y + h / 2
                    nw, nh = w * scale, h * scale
                    box = (round(cx + dx - nw / 2), round(cy + dy - nh / 2), round(nw), round(nh))
                    landmarks = tuple((cx + dx + (px - cx) * scale, cy + dy + (py - cy) * scale)
                                      for px, py in landmarks)  # type: ignore[assignment]
                if not _inside_share_ok(box, gray):
                    continue  # the face has left the frame since that pass
                weight = 0.0 if partial else observation_weight(result)
                obs = Observation(done.frame_index, done.captured, result, weight, thumb, partial,
                                  strong=not partial and is_strong(result))
                observations.append((obs, box, tuple(landmarks)))
            decisions += self.tracker.observe(observations, frame_index)
        return decisions

    def _publish_status(self) -> None:
        """Re-publish the last frame with a fresh source status (the camera went quiet)."""
        latest = self.latest
        if latest is None:
            return
        self._publish(self._frame_result(latest.frame_index, latest.image, latest.captured, latest.stages,
                                         latest.model_version, time.monotonic()))

    def _frame_result(self, index: int, image: np.ndarray, captured: float, stages: dict[str, float],
                      model_version: str, now: float) -> FrameResult:
        return FrameResult(self.name, index, image, captured, self.tracker.snapshot(), self.source.status(),
                           self._processed.value(now), self._recognised.value(now), stages, model_version)

    def _publish(self, result: FrameResult) -> None:
        self.latest = result
        if self.on_frame is not None:
            try:
                self.on_frame(result)
            except Exception:
                log.exception("%s: frame callback failed", self.name)

    def _emit(self, decision: TrackDecision) -> None:
        if self.on_decision is None:
            return
        try:
            self.on_decision(decision)
        except Exception:
            log.exception("%s: decision callback failed", self.name)


class Monitor:
    """Several cameras, one model, one event writer.

    Parameters
    ----------
    sources
        Frame sources, one per camera (names must differ).
    model
        The recognition model to start with.
    pipeline
        Shared alignment + embedder (its detector is not used for live frames).
    options
        Live pipeline settings.
    registry_path
        The registry file: decisions are recorded there, and the model reloaded from it when its
        active model or enrolment changes (with ``models_dir``).  ``None``: no events, no reload.
    models_dir
        Folder of the model versions, for reloading.
    on_frame, on_decision
        Called from the cameras' overlay threads.
    policy
        Decision policy applied to every (re)loaded model; ``None`` keeps the model's own.
    policy_from_registry
        On every reload, decide with the decision settings HR signed in the registry (when there are
        some) instead of ``policy``: the console and an un-overridden ``facegate monitor``.
    on_error
        ``on_error(where, message, fatal)``, called from the event writer's or the model watcher's
        thread when it fails (see :data:`ErrorCallback`).
    on_model
        Called from the model watcher's thread with each reloaded model.
    on_written
        ``on_written(decision, event_id)``, called from the event writer's thread once a decision is
        in the registry (the id a guard's confirm or override refers to).
    loaded_state
        :meth:`~core.registry.Registry.gallery_state` when ``model`` was loaded; the watcher reloads
        when the registry differs from it (default: as it is when the watcher starts).
    """

    def __init__(self, sources: Sequence[FrameSource], model: RecognitionModel, pipeline: FacePipeline,
                 options: MonitorOptions | None = None, *, registry_path: Path | None = None,
                 models_dir: Path | None = None, on_frame: Callable[[FrameResult], None] | None = None,
                 on_decision: Callable[[TrackDecision], None] | None = None, policy: Policy | None = None,
                 policy_from_registry: bool = False,
                 detector_factory: Callable[[], Any] | None = None, on_error: ErrorCallback | None = None,
                 on_model: Callable[[RecognitionModel], None] | None = None,
                 on_written: Callable[[TrackDecision, int], None] | None = None,
                 loaded_state: tuple[Any, ...] | None = None) -> None:
        names = [s.name for s in sources]
        if len(set(names)) != len(names):
            raise ValueError(f"Two cameras have the same name ({', '.join(names)}); name them apart.")
        if not sources:
            raise ValueError("The monitor needs at least one source.")
        self.options = options or MonitorOptions()
        self.policy = policy
        self.policy_from_registry = policy_from_registry
        self.loaded_state = loaded_state
        self.models = ModelHolder(self._with_policy(model))
        self.pipeline = pipeline
        self.registry_path = registry_path
        self.models_dir = models_dir
        self.on_decision = on_decision
        self.on_error = on_error
        self.on_model = on_model
        self.writer = (EventWriter(registry_path, on_error=on_error, on_written=on_written)
                       if registry_path is not None else None)
        self.decisions: deque[TrackDecision] = deque(maxlen=self.options.keep_decisions)
        self._decisions_lock = threading.Lock()
        self.workers = [
            CameraWorker(s, self.models, pipeline, self.options, on_frame=on_frame, on_decision=self._decided,
                         detector=detector_factory() if detector_factory is not None else None,
                         cameras=len(sources))
            for s in sources
        ]
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None
        self.reloads = 0
        self.reload_error: str | None = None
        self.watcher_error: str | None = None

    def _with_policy(self, model: RecognitionModel) -> RecognitionModel:
        if self.policy is None:
            return model
        from dataclasses import replace

        return replace(model, policy=self.policy)

    def _decided(self, decision: TrackDecision) -> None:
        with self._decisions_lock:
            self.decisions.append(decision)
        if self.writer is not None:
            self.writer.submit(decision)
        if self.on_decision is not None:
            self.on_decision(decision)

    def start(self) -> None:
        """Start the event writer, every camera and the model watcher; returns at once."""
        self.pipeline.embedder.load()
        if self.writer is not None:
            self.writer.start()
        for worker in self.workers:
            worker.start()
        if self.registry_path is not None and self.models_dir is not None:
            self._watcher = threading.Thread(target=self._watch, name="model-watcher", daemon=True)
            self._watcher.start()

    def stop(self, writer_timeout: float = 30.0) -> bool:
        """Stop every camera, then write every pending event.  Idempotent.

        Returns ``False`` if the event writer was still writing after ``writer_timeout`` seconds
        (:attr:`EventWriter.pending` then says how many were left).
        """
        self._stop.set()
        for worker in self.workers:
            worker.stop()
        if self._watcher is not None:
            self._watcher.join(5.0)
            self._watcher = None
        if self.writer is not None:
            return self.writer.stop(writer_timeout)
        return True

    def statuses(self) -> list[SourceStatus]:
        return [w.source.status() for w in self.workers]

    @property
    def all_sources_ended(self) -> bool:
        """Every source is a file or folder that has played to its end."""
        return all(w.source.status().state is SourceState.ENDED for w in self.workers)

    def _report(self, where: str, message: str, fatal: bool) -> None:
        log.error("%s: %s", where, message)
        if self.on_error is not None:
            try:
                self.on_error(where, message, fatal)
            except Exception:
                log.exception("%s: error callback failed", where)

    def _watch(self) -> None:
        from core.registry import Registry
        from core.registry.decision import decision_settings
        from core.registry.signing import audit_refusal
        from core.registry.training import load_active_model

        assert self.registry_path is not None and self.models_dir is not None
        try:
            registry = Registry.open(self.registry_path)
            # Compare with the registry as it was when the model was loaded, not as it is when this thread
            # starts: a change in between must be looked at too.
            state = self.loaded_state if self.loaded_state is not None else registry.gallery_state()
        except Exception as exc:  # the thread must say why it stopped, never die silently
            self.watcher_error = f"cannot open the registry {self.registry_path} to watch for model changes: {exc}"
            self._report("model-watcher", self.watcher_error, fatal=True)
            return
        try:
            while not self._stop.wait(self.options.reload_every_s):
                try:
                    now = registry.gallery_state()
                    if now == state:
                        continue
                    try:
                        model = load_active_model(registry, self.models_dir, live_gallery=True)
                    except UntrustedState as exc:
                        if str(exc) != self.reload_error:  # once per distinct problem, not every poll
                            audit_refusal(registry, "console", str(exc))
                        raise
                    state = now
                    if model is None:
                        continue
                    if self.policy_from_registry:
                        signed = decision_settings(registry)
                        if signed is not None:
                            self.policy = signed[0]
                    model = self._with_policy(model)  # what decides from now on, and what listeners see
                    self.models.set(model)
                    self.reloads += 1
                    self.reload_error = None
                    log.info("model reloaded: version %s, %d people in the gallery", model.version,
                             len(model.gallery.identities))
                    if self.on_model is not None:
                        self.on_model(model)
                except Exception as exc:
                    # Keep recognising with the model we have; say why the new one is not used.
                    message = str(exc) if isinstance(exc, FaceGateError) else f"{type(exc).__name__}: {exc}"
                    if message != self.reload_error:
                        if not isinstance(exc, FaceGateError):
                            log.exception("model-watcher: reload failed")
                        self._report("model-watcher", f"keeping the current model: {message}", fatal=False)
                    self.reload_error = message
        finally:
            registry.close()


def expected_identity(model: RecognitionModel, identity: str) -> str:
    """``identity`` if the model's gallery knows it, else :data:`~core.types.UNKNOWN` (for reports)."""
    return identity if identity in set(model.gallery.identities.tolist()) else UNKNOWN


def check_embedder(model: RecognitionModel, pipeline: FacePipeline) -> None:
    """Refuse a model trained on another embedder's embeddings.

    Raises
    ------
    ModelError
        If the model records a different embedder version than ``pipeline``'s.
    """
    version = model.metadata.get("embedder_version")
    if version and str(version) != str(pipeline.embedder.version):
        raise ModelError(f"The active model was trained on embeddings of FaceNet {version}, but this program "
                         f"uses {pipeline.embedder.version}; retrain with 'facegate train'.")
