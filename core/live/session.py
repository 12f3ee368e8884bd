"""One live session — cameras → recognition → decisions and events — for the CLI and the console.

``facegate monitor`` and the guard console both run exactly this; neither wires the pipeline itself::

    session = LiveSession(SessionSettings(sources=("demo",)), SessionCallbacks(on_decision=show))
    session.start()          # returns at once: loading runs in the background, with progress
    session.wait(90)         # until every source has ended, a fatal error, or 90 s
    report = session.stop()  # bounded; says what it flushed

Which thread runs each callback (keep them quick; hand work to your own thread or event loop):

=====================  ==========================  ==============================================
callback               thread                      when
=====================  ==========================  ==============================================
``on_progress``        ``live-session``            while loading: demo enrollment and training,
                                                   the model, the networks — ``(fraction, text)``
``on_ready``           ``live-session``            the model is loaded, the cameras are starting
``on_status``          ``live-session``            a camera's health changed (connecting → live →
                                                   stalled → …), and once for each camera at start
``on_frame``           the camera's ``-overlay``   every processed frame (:class:`FrameResult`)
``on_decision``        the camera's ``-overlay``   a track was named, called unknown, changed, or
                                                   left undecided (:class:`TrackDecision`)
``on_event``           ``event-writer``            a decision is in the registry: ``(event id,
                                                   TrackDecision)`` — what a guard's confirm or
                                                   override refers to
``on_model``           ``model-watcher``           a retrain, rollback, enrollment or erasure
                                                   changed the model in use
``on_error``           the thread that failed      :class:`SessionError`; ``fatal`` ones end the
                                                   session
``on_ended``           ``live-session``            the session ended (:class:`SessionEnd`), by
                                                   itself or through :meth:`LiveSession.stop`
=====================  ==========================  ==============================================

A callback that raises is logged and otherwise ignored: a display bug never stops recognition.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from core.errors import FaceGateError, ModelError, UntrustedState
from core.live.monitor import (
    FrameResult,
    Monitor,
    MonitorOptions,
    check_embedder,
    decision_code,
    lower_thread_priority,
)
from core.live.sources import FrameSource, SourceOptions, SourceState, SourceStatus, default_name, open_source
from core.live.tracking import TrackDecision
from core.recognition.engine import Policy, RecognitionModel

log = logging.getLogger(__name__)

__all__ = [
    "CameraStats",
    "LiveSession",
    "ModelInfo",
    "RecordedEvent",
    "SessionCallbacks",
    "SessionEnd",
    "SessionError",
    "SessionSettings",
    "SessionState",
    "SettingsError",
    "StopReport",
    "parse_sources",
]

DEFAULT_SOURCE = "demo"
_NAMED = re.compile(r"^([A-Za-z][A-Za-z0-9_-]{0,31})=(.+)$")


class SettingsError(FaceGateError, ValueError):
    """A session setting is out of range (the message names the setting and the allowed values)."""


def parse_sources(specs: Sequence[str]) -> list[tuple[str, str]]:
    """``NAME=SPEC`` or ``SPEC`` per camera → ``(name, spec)``, every name unique.

    A prefix counts as a name only if it is a short identifier and the whole argument is not an
    existing file or folder (so ``a=b.mp4`` on disk stays a file).  Unnamed cameras are named from
    their spec (:func:`~core.live.sources.default_name`); a repeated name gets ``-2``, ``-3``.

    Raises
    ------
    SettingsError
        If no camera is given, or two cameras were given the same explicit name.
    """
    if not specs:
        raise SettingsError("No camera given: name at least one source (or 'demo').")
    parsed: list[tuple[str | None, str]] = []
    for spec in specs:
        match = _NAMED.match(spec)
        if match and not Path(spec).exists() and "://" not in match.group(1):
            parsed.append((match.group(1), match.group(2)))
        else:
            parsed.append((None, spec))
    explicit = [name for name, _ in parsed if name is not None]
    if len(set(explicit)) != len(explicit):
        raise SettingsError(f"Two cameras have the same name ({', '.join(explicit)}); give each its own NAME=.")
    seen: Counter[str] = Counter()
    out = []
    for name, spec in parsed:
        base = name or default_name(spec)
        seen[base] += 1
        out.append((base if seen[base] == 1 else f"{base}-{seen[base]}", spec))
    return out


@dataclass(frozen=True)
class SessionSettings:
    """What a live session runs.

    Attributes
    ----------
    sources
        Camera specs, ``SPEC`` or ``NAME=SPEC`` (see :func:`parse_sources`): ``demo``, a webcam index,
        an ``rtsp://`` / ``http(s)://`` URL, a video file or an image folder.
    data_dir
        The registry folder (``facegate.db`` and ``models/``); ``None``: the default
        (:func:`core.registry.data_dir`).
    policy
        A run-time override of the decision policy, used only with ``policy_authorized_by``.  Without
        it the session decides with the decision settings HR signed in the registry
        (:data:`~core.registry.decision.DECISION_SETTING`), else each model's own policy.
    policy_authorized_by
        The HR account that authorised ``policy`` (and ``min_face``) for this run, e.g. ``"hr:alice"``;
        the caller logs it in and audits the override (``facegate monitor --threshold …``).
    min_face
        Smallest face to look for, in frame pixels (≥ 20), when HR signed no decision settings (or with
        ``policy_authorized_by``).
    max_frame_age_s
        Never decide on a frame older than this (> 0).
    open_timeout_s, read_timeout_s
        How long a network camera may take to open, and to deliver the next frame (> 0).
    bootstrap_demo
        With a ``demo`` source and an empty registry, enroll the demo people and train first.
    record_events
        Write every decision to the registry's event log (off only for tests and benchmarks).
    stop_timeout_s
        How long :meth:`LiveSession.stop` waits for pending events to be written.
    """

    sources: tuple[str, ...] = (DEFAULT_SOURCE,)
    data_dir: Path | None = None
    policy: Policy | None = None
    min_face: int = 80
    policy_authorized_by: str = ""
    max_frame_age_s: float = 1.0
    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    bootstrap_demo: bool = True
    record_events: bool = True
    stop_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if isinstance(self.sources, str):
            raise SettingsError("sources must be a list of camera specs, not one string.")
        if not self.sources:
            raise SettingsError("No camera given: name at least one source (or 'demo').")
        if not 20 <= self.min_face <= 4096:
            raise SettingsError(f"The minimum face size must be 20 to 4096 pixels (got {self.min_face}).")
        for label, value in (("maximum frame age", self.max_frame_age_s), ("open timeout", self.open_timeout_s),
                             ("read timeout", self.read_timeout_s), ("stop timeout", self.stop_timeout_s)):
            if not (math.isfinite(value) and value > 0):
                raise SettingsError(f"The {label} must be a positive number of seconds (got {value}).")


@dataclass(frozen=True)
class ModelInfo:
    """The model in use: its version, the people it knows, and their names (employee id → name)."""

    version: str
    people: int
    names: dict[str, str] = field(hash=False)
    reloaded: bool = False
    trust: str = ""
    """What the security check found: signed, anchored or not, or unsigned (see :mod:`core.registry.signing`)."""
    policy: Policy | None = None
    """The decision policy in force (HR's signed settings, an authorised override, or the model's own)."""
    min_face: int = 80
    """The smallest face looked for, in pixels."""
    networks: str = ""
    """Which runtime runs the networks, e.g. ``ONNX Runtime`` or ``TensorFlow (ONNX Runtime unavailable: …)``."""


class _Loader:
    """Loads a pipeline's embedder (and detector) in a thread of its own, started at once."""

    def __init__(self, pipeline: Any, *, load_detector: bool) -> None:
        self._pipeline = pipeline
        self._load_detector = load_detector
        self._error: Exception | None = None
        # Not a daemon: a session that fails or stops while the networks load (nobody enrolled, the
        # window closed) leaves it to finish; the interpreter must wait for it, not tear ONNX Runtime
        # down under it at exit (that aborts the process: "terminate called without an active exception").
        self._thread = threading.Thread(target=self._run, name="load-networks", daemon=False)
        self._thread.start()

    def _run(self) -> None:
        # ONNX Runtime's pool threads, created here, inherit the recognition threads' lower priority.
        lower_thread_priority(MonitorOptions().recognition_nice)
        try:
            self._pipeline.embedder.load()
            if self._load_detector:
                self._pipeline.detector.load()  # the cameras' detectors share its networks
        except Exception as exc:  # re-raised in the session thread by wait()
            self._error = exc

    def wait(self, stop: threading.Event) -> None:
        """Until the networks are loaded or ``stop`` is set; re-raises what loading raised."""
        while self._thread.is_alive() and not stop.is_set():
            self._thread.join(0.1)
        if self._error is not None:
            raise self._error


def networks_line(pipeline: Any) -> str:
    """``ONNX Runtime``, ``TensorFlow`` or ``TensorFlow (ONNX Runtime unavailable: …)`` for ``pipeline``."""
    from core.vision.backends import backend_of

    used = {backend_of(pipeline.detector), backend_of(pipeline.embedder)}
    names = {"onnx": "ONNX Runtime", "tf": "TensorFlow"}
    text = " + ".join(names.get(b, b) for b in sorted(used))
    reasons = pipeline.fallback_reasons() if hasattr(pipeline, "fallback_reasons") else []
    return f"{text} ({reasons[0]})" if reasons else text


@dataclass(frozen=True)
class SessionError:
    """A failure in a background thread.

    ``where`` is ``loading``, ``event-writer``, ``model-watcher`` or a camera's name; ``fatal`` errors
    end the session (nothing could be recorded, no model could be loaded).
    """

    where: str
    message: str
    fatal: bool


class SessionState(str, Enum):
    """Where a session is in its life."""

    NEW = "new"
    LOADING = "loading"
    RUNNING = "running"
    STOPPING = "stopping"
    ENDED = "ended"


@dataclass(frozen=True)
class SessionEnd:
    """Why a session ended: ``stopped`` (asked to), ``sources-ended`` (every file/folder played to its
    end) or ``failed`` (``error`` says what)."""

    reason: str
    error: SessionError | None = None


@dataclass(frozen=True)
class CameraStats:
    """One camera's counters, for status lines and summaries."""

    name: str
    spec: str
    status: SourceStatus
    processed_fps: float
    recognition_fps: float
    tracks: int
    frames_processed: int
    recognition_passes: int
    stale_dropped: int
    last_error: str | None


@dataclass(frozen=True)
class StopReport:
    """What :meth:`LiveSession.stop` did.

    ``seconds`` counts from when the cameras started (loading is not monitoring); ``events_pending`` is
    the number of decisions still unwritten when the stop timeout ran out (0 after a clean stop);
    ``events_failed`` those that could not be recorded at all.
    """

    end: SessionEnd
    seconds: float
    decisions: dict[str, int]
    events_written: int
    events_failed: int
    events_pending: int
    cameras: tuple[CameraStats, ...]

    @property
    def clean(self) -> bool:
        """Ended without a fatal error and with every decision recorded."""
        return self.end.reason != "failed" and self.events_failed == 0 and self.events_pending == 0


@dataclass(frozen=True)
class SessionCallbacks:
    """The session's reports; any may be ``None``.  See the module docstring for their threads."""

    on_progress: Callable[[float, str], None] | None = None
    on_ready: Callable[[ModelInfo], None] | None = None
    on_status: Callable[[SourceStatus], None] | None = None
    on_frame: Callable[[FrameResult], None] | None = None
    on_decision: Callable[[TrackDecision], None] | None = None
    on_event: Callable[[RecordedEvent], None] | None = None
    on_model: Callable[[ModelInfo], None] | None = None
    on_error: Callable[[SessionError], None] | None = None
    on_ended: Callable[[SessionEnd], None] | None = None


@dataclass(frozen=True)
class RecordedEvent:
    """A decision as recorded in the registry's event log."""

    event_id: int
    decision: TrackDecision


class _Stopped(Exception):
    """Loading was interrupted by :meth:`LiveSession.stop`."""


class LiveSession:
    """A running live session (see the module docstring).

    Parameters
    ----------
    settings
        What to run.
    callbacks
        Where to report.
    detector_factory
        Builds each camera's detector instead of MTCNN at ``settings.min_face`` (tests, benchmarks).

    Raises
    ------
    SettingsError, CameraError
        From the constructor, at once, for a bad setting or a camera spec that cannot be a camera
        (a missing file, an unknown scheme) — before any model is loaded.
    """

    POLL_S = 0.2

    def __init__(self, settings: SessionSettings, callbacks: SessionCallbacks | None = None, *,
                 detector_factory: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.callbacks = callbacks or SessionCallbacks()
        self._detector_factory = detector_factory
        self.cameras = parse_sources(settings.sources)
        source_options = SourceOptions(open_timeout_s=settings.open_timeout_s, read_timeout_s=settings.read_timeout_s)
        self._sources: list[FrameSource] = [open_source(spec, name=name, options=source_options)
                                            for name, spec in self.cameras]
        self.monitor: Monitor | None = None
        self.model_info: ModelInfo | None = None
        self.state = SessionState.NEW
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._end: SessionEnd | None = None
        self._fatal: SessionError | None = None
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._names: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        self._started = 0.0
        self._running_since: float | None = None
        self._report: StopReport | None = None
        self.demo_enrolled = False
        """Whether this session enrolled the demo people into an empty registry and trained."""

    # -- public API ---------------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        if self.settings.data_dir is not None:
            return Path(self.settings.data_dir)
        from core.registry import data_dir

        return data_dir()

    @property
    def registry_path(self) -> Path:
        return self.data_dir / "facegate.db"

    @property
    def names(self) -> dict[str, str]:
        """Employee id → name of the people the model in use knows."""
        return dict(self._names)

    def start(self) -> None:
        """Start loading in the background; returns at once.  A session starts once."""
        if self.state is not SessionState.NEW:
            raise RuntimeError("A live session can be started only once.")
        self.state = SessionState.LOADING
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="live-session", daemon=True)
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the session has ended (by itself or stopped); ``True`` if it has."""
        return self._ended.wait(timeout)

    @property
    def ended(self) -> SessionEnd | None:
        """Why the session ended, once it has."""
        return self._end

    def stop(self, timeout: float | None = None) -> StopReport:
        """Stop the cameras and write every pending event; bounded by ``timeout`` (default:
        ``settings.stop_timeout_s`` plus the cameras' own few seconds).  Idempotent."""
        if self._report is not None:
            return self._report
        self._stop.set()
        limit = timeout if timeout is not None else self.settings.stop_timeout_s + 15.0
        if self._thread is not None:
            self._thread.join(limit)
            if self._thread.is_alive():
                log.warning("live session: still busy after %.0f s; leaving it to finish on its own", limit)
        if self._end is None:  # never started, or still loading past the limit
            self._finish(SessionEnd("stopped"))
        self._report = self._make_report()
        return self._report

    def camera_stats(self) -> list[CameraStats]:
        """Each camera's counters now (thread-safe)."""
        monitor = self.monitor
        out = []
        for (name, spec), source in zip(self.cameras, self._sources):
            worker = next((w for w in monitor.workers if w.source is source), None) if monitor else None
            latest = worker.latest if worker is not None else None
            out.append(CameraStats(
                name, spec, source.status(),
                latest.processed_fps if latest is not None else 0.0,
                latest.recognition_fps if latest is not None else 0.0,
                len(latest.tracks) if latest is not None else 0,
                worker.frames_processed if worker is not None else 0,
                worker.passes if worker is not None else 0,
                worker.stale_dropped if worker is not None else 0,
                worker.last_error if worker is not None else None))
        return out

    @property
    def events_written(self) -> int:
        writer = self.monitor.writer if self.monitor is not None else None
        return writer.written if writer is not None else 0

    def decision_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    # -- the session thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            monitor = self._load()
        except _Stopped:
            self._stop_sources()
            self._finish(SessionEnd("stopped"))
            return
        except Exception as exc:
            self._stop_sources()
            if self._stop.is_set():  # interrupted while training the demo, say
                self._finish(SessionEnd("stopped"))
                return
            if not isinstance(exc, FaceGateError):
                log.exception("live session: loading failed")
            message = str(exc) if isinstance(exc, FaceGateError) else f"{type(exc).__name__}: {exc}"
            error = SessionError("loading", message, True)
            self._call("on_error", error)
            self._finish(SessionEnd("failed", error))
            return
        end = self._supervise(monitor)
        self.state = SessionState.STOPPING
        flushed = monitor.stop(self.settings.stop_timeout_s)
        if not flushed:
            log.error("live session: events still being written after %.0f s", self.settings.stop_timeout_s)
        self._finish(end)

    def _check(self) -> None:
        if self._stop.is_set():
            raise _Stopped

    def _stop_sources(self) -> None:
        """Stop the cameras started while loading (loading failed or was stopped: no monitor owns them)."""
        for source in self._sources:
            try:
                source.stop()
            except Exception as exc:  # a source that cannot stop must not hide why loading ended
                log.warning("live session: camera %s did not stop: %s", source.name, exc)

    def _load(self) -> Monitor:
        from core.recognition.engine import FacePipeline
        from core.registry import Registry
        from core.registry.signing import audit_refusal
        from core.registry.training import load_active_model

        progress = self.callbacks.on_progress
        report: Callable[[float, str], None] = (
            (lambda f, m: self._call("on_progress", f, m)) if progress is not None else (lambda f, m: None))
        data_dir = self.data_dir
        models_dir = data_dir / "models"
        pipeline = FacePipeline()
        networks: _Loader | None = None
        report(0.0, "opening the registry")
        with Registry.open(self.registry_path) as registry:
            if self.settings.bootstrap_demo and any(spec == "demo" for _, spec in self.cameras):
                from core.demo.setup import ensure_demo_registry

                self.demo_enrolled = ensure_demo_registry(registry, pipeline, models_dir,
                                                          lambda f, m: report(0.8 * f, m), cancel=self._stop.is_set)
            self._check()
            # Only cameras HR approved are opened; they start now, so that a camera is connected (and the
            # demo scene built) by the time the models are ready.
            self._check_cameras(registry)
            for source in self._sources:
                source.start()
            if registry.active_model() is not None:
                # The networks load in their own thread while HR's signature is checked and the model
                # is read (scikit-learn's import alone is ~1.3 s): both are needed before the first pass.
                networks = _Loader(pipeline, load_detector=self._detector_factory is None)
            report(0.8, "checking HR's signature and loading the model")
            loaded_state = registry.gallery_state()
            try:
                model = load_active_model(registry, models_dir, live_gallery=True)
            except UntrustedState as exc:
                audit_refusal(registry, "console", str(exc))
                raise
            policy, min_face = self._decision(registry)
            if model is None:
                if not registry.list_operators():
                    raise ModelError("Nobody is enrolled yet. Enroll operators ('facegate enroll' or 'facegate "
                                     "import') and train ('facegate train'), or run the demo camera ('demo').")
                raise ModelError("No model has been trained yet: HR must train one first ('facegate train').")
            self._names = {op.employee_id: op.name for op in registry.list_operators()}
        self._check()
        report(0.85, "loading the face networks")
        networks = networks or _Loader(pipeline, load_detector=self._detector_factory is None)
        networks.wait(self._stop)
        self._check()
        check_embedder(model, pipeline)
        # What loading made (TensorFlow's graphs, the model) lives as long as the process: freeze it so
        # that a full garbage collection no longer walks it.  Measured: ~175 ms per collection after
        # TensorFlow's import, a stall every thread (and the console's GUI thread) waits out.
        import gc

        gc.freeze()  # no gc.collect() first: that full collection is itself the stall
        self._check()
        options = MonitorOptions(max_frame_age_s=self.settings.max_frame_age_s, min_face_size=min_face)
        monitor = Monitor(self._sources, model, pipeline, options,
                          registry_path=self.registry_path if self.settings.record_events else None,
                          models_dir=models_dir, on_frame=self.callbacks.on_frame, on_decision=self._decided,
                          policy=policy, policy_from_registry=not self.settings.policy_authorized_by,
                          detector_factory=self._detector_factory,
                          on_error=self._background_error, on_model=self._model_changed,
                          on_written=lambda d, i: self._call("on_event", RecordedEvent(i, d)),
                          loaded_state=loaded_state)
        self.monitor = monitor
        self._policy, self._min_face = policy or model.policy, min_face
        self.model_info = ModelInfo(model.version, len(model.gallery.identities), dict(self._names),
                                    trust=str(model.metadata.get("trust", "")), policy=self._policy,
                                    min_face=self._min_face, networks=networks_line(pipeline))
        report(1.0, f"model version {model.version} ({len(model.gallery.identities)} people) ready")
        self._call("on_ready", self.model_info)
        monitor.start()
        self._running_since = time.monotonic()
        self.state = SessionState.RUNNING
        return monitor

    def _check_cameras(self, registry: Any) -> None:
        """Once HR owns the registry (it has accounts), run only the cameras HR approved.

        Raises
        ------
        SettingsError
            Naming the first camera HR did not approve (its address masked).
        """
        from core.live.sources.addresses import display_spec
        from core.registry.accounts import has_accounts
        from core.registry.decision import approved_cameras

        if not has_accounts(registry):
            return
        entries = approved_cameras(registry) or []
        approved = {spec.strip() for _, spec in parse_sources(entries)} if entries else set()
        for name, spec in self.cameras:
            if spec.strip() not in approved:
                raise SettingsError(f"Camera {name} ({display_spec(spec)}) is not one HR approved for this registry; "
                                    "HR approves cameras in Settings → Cameras or with 'facegate cameras approve'.")

    def _decision(self, registry: Any) -> tuple[Policy | None, int]:
        """The policy and minimum face size to run with: an authorised override, else what HR signed."""
        from core.registry.decision import decision_settings

        if self.settings.policy_authorized_by:
            return self.settings.policy, self.settings.min_face
        signed = decision_settings(registry)
        if signed is None:
            return None, self.settings.min_face
        return signed

    def _supervise(self, monitor: Monitor) -> SessionEnd:
        """Report camera health changes; end on a fatal error, on stop, or when every source ended."""
        last: dict[str, SourceState] = {}
        while True:
            for status in monitor.statuses():
                if last.get(status.camera) is not status.state:
                    last[status.camera] = status.state
                    self._call("on_status", status)
            if self._fatal is not None:
                return SessionEnd("failed", self._fatal)
            if self._stop.is_set():
                return SessionEnd("stopped")
            if monitor.all_sources_ended:
                return SessionEnd("sources-ended")
            self._stop.wait(self.POLL_S)

    # -- callbacks from the monitor's threads -----------------------------------------------------

    def _decided(self, decision: TrackDecision) -> None:
        with self._lock:
            self._counts[decision_code(decision)] += 1
        self._call("on_decision", decision)

    def _background_error(self, where: str, message: str, fatal: bool) -> None:
        error = SessionError(where, message, fatal)
        if fatal and self._fatal is None:
            self._fatal = error
            self._stop.set()  # wake the supervisor: the session cannot do its job any more
        self._call("on_error", error)

    def _model_changed(self, model: RecognitionModel) -> None:
        from core.registry import Registry

        try:
            with Registry.open(self.registry_path) as registry:
                self._names = {op.employee_id: op.name for op in registry.list_operators()}
        except FaceGateError as exc:
            log.warning("live session: names not refreshed: %s", exc)
        self.model_info = ModelInfo(model.version, len(model.gallery.identities), dict(self._names), reloaded=True,
                                    trust=str(model.metadata.get("trust", "")), policy=model.policy,
                                    min_face=self._min_face,
                                    networks=self.model_info.networks if self.model_info else "")
        self._call("on_model", self.model_info)

    # -- helpers -----------------------------------------------------------------------------------

    def _call(self, name: str, *args: Any) -> None:
        fn = getattr(self.callbacks, name)
        if fn is None:
            return
        try:
            fn(*args)
        except Exception:
            log.exception("live session: the %s callback failed", name)

    def _finish(self, end: SessionEnd) -> None:
        with self._lock:
            if self._end is not None:
                return
            self._end = end
        self.state = SessionState.ENDED
        self._call("on_ended", end)
        self._ended.set()

    def _make_report(self) -> StopReport:
        writer = self.monitor.writer if self.monitor is not None else None
        assert self._end is not None
        return StopReport(
            end=self._end,
            seconds=time.monotonic() - (self._running_since or self._started) if self._started else 0.0,
            decisions=self.decision_counts(),
            events_written=writer.written if writer is not None else 0,
            events_failed=writer.failed if writer is not None else 0,
            events_pending=writer.pending if writer is not None else 0,
            cameras=tuple(self.camera_stats()))
