"""Testing a camera before it is saved: a live preview and the camera's health, off the GUI thread.

:class:`PreviewWorker` opens the camera with the real source classes
(:func:`core.live.sources.open_source`) in its own QThread, resizes each frame for the preview there,
and keeps only the newest one: ``frameReady`` is emitted only when the GUI has taken the previous
frame (a pending flag), so a slow paint drops frames instead of building lag.  :class:`PreviewView`
paints that frame 1:1 in ``paintEvent``; :class:`CameraTester` starts and stops the pair (always
``quit()`` + ``wait()``, through :mod:`gui.threads`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from PySide6.QtCore import QObject, QRect, QSize, Qt, QThread, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPainter, QPaintEvent, QPen, QResizeEvent
from PySide6.QtWidgets import QSizePolicy, QWidget

from core.errors import FaceGateError
from core.live.settings import CameraConfig, mask_text
from core.live.sources import FrameSource, SourceOptions, SourceState, SourceStatus, open_source
from gui import theme
from gui.threads import start_worker, stop_thread

log = logging.getLogger(__name__)

STATUS_EVERY_S = 1.0
"""How often the health line is refreshed while nothing changes (for the fps)."""


@dataclass(frozen=True)
class PreviewFrame:
    """A frame ready to paint 1:1: RGB ``image`` already sized for the preview (a new array, never
    written again), its ``index`` in the source, and the camera's own frame size."""

    index: int
    image: np.ndarray = field(repr=False, compare=False)
    source_size: tuple[int, int]


def failed_status(camera: CameraConfig, reason: str) -> SourceStatus:
    """The health of a camera that could not even be created (a missing file, an unknown scheme)."""
    now = time.monotonic()
    return SourceStatus(camera.name, camera.shown_spec, SourceState.FAILED, 0.0, 0, 0, 0, reason, now, None, None)


def health_text(status: SourceStatus | None) -> str:
    """One line: ``live 25.0 fps, 0 reconnects``, ``failed: <reason> (retrying in 2.0 s)`` — every
    address in it masked (:func:`~core.live.settings.mask_text`)."""
    if status is None:
        return "not tested"
    return mask_text(status.line().removeprefix(f"{status.camera} "))


class PreviewWorker(QObject):
    """Reads one camera in its QThread (start slot ``run``); see the module docstring.

    Thread-safe from the GUI thread: :meth:`set_size`, :meth:`take`, :meth:`request_stop`.
    """

    status = Signal(object)  # SourceStatus
    frameReady = Signal()

    def __init__(self, camera: CameraConfig, options: SourceOptions, size: tuple[int, int] = (480, 270)) -> None:
        super().__init__()
        self.camera = camera
        self.options = options
        self._size = size
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._frame: PreviewFrame | None = None
        self._pending = False

    # -- GUI thread ---------------------------------------------------------------------------------

    def set_size(self, width: int, height: int) -> None:
        """The box frames are resized to fit (the preview's size)."""
        self._size = (max(16, width), max(16, height))

    def take(self) -> PreviewFrame | None:
        """The newest frame not taken yet (clears the pending flag)."""
        with self._lock:
            frame, self._frame = self._frame, None
            self._pending = False
        return frame

    def request_stop(self) -> None:
        self._stop.set()

    # -- the worker's thread ----------------------------------------------------------------------

    @Slot()
    def run(self) -> None:
        try:
            source = open_source(self.camera.spec, name=self.camera.name, options=self.options)
        except FaceGateError as exc:
            self.status.emit(failed_status(self.camera, str(exc)))
            return
        except Exception as exc:  # a bug must still show as a failed test, not vanish in the thread
            log.exception("camera test: %s could not be created", self.camera.name)
            self.status.emit(failed_status(self.camera, f"{type(exc).__name__}: {exc}"))
            return
        try:
            self._read(source)
        finally:
            source.stop(timeout=2.0)  # bounded: the dialog waits for this thread when a test stops
            self.status.emit(source.status())

    def _read(self, source: FrameSource) -> None:
        source.start()
        last_index, last_key, last_sent = -1, None, 0.0
        while not self._stop.is_set():
            frame = source.wait(after=last_index, timeout=0.1)
            if frame is not None:
                last_index = frame.index
                self._publish(frame.index, frame.image)
            status = source.status()
            key = (status.state, status.last_error, status.retry_in is None)
            now = time.monotonic()
            if key != last_key or now - last_sent >= STATUS_EVERY_S:
                self.status.emit(status)
                last_key, last_sent = key, now
            if frame is None and status.state in (SourceState.ENDED, SourceState.STOPPED):
                self._stop.wait(0.1)  # wait() returns at once on an ended source: do not spin

    def _publish(self, index: int, image: np.ndarray) -> None:
        import cv2

        h, w = image.shape[:2]
        box_w, box_h = self._size
        scale = min(box_w / w, box_h / h)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        if size == (w, h):
            resized = np.array(image, copy=True, order="C")
        else:
            resized = cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        frame = PreviewFrame(index, np.ascontiguousarray(resized), (w, h))
        with self._lock:
            self._frame = frame
            notify = not self._pending
            self._pending = True
        if notify:
            self.frameReady.emit()


class PreviewView(QWidget):
    """The newest preview frame painted 1:1, centred, with the camera's health over it.

    ``frames_shown`` counts the frames taken for painting, ``status`` is the latest health.
    """

    sizeChanged = Signal(int, int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.frame: PreviewFrame | None = None
        self.status: SourceStatus | None = None
        self.frames_shown = 0
        self._image: QImage | None = None
        self.setMinimumSize(QSize(400, 240))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)

    def clear(self) -> None:
        self.frame, self.status, self._image = None, None, None
        self.update()

    def set_frame(self, frame: PreviewFrame) -> None:
        h, w = frame.image.shape[:2]
        # QImage keeps the array alive; the worker never writes an array it has handed over.
        self._image = QImage(frame.image.data, w, h, frame.image.strides[0], QImage.Format.Format_RGB888)
        self.frame = frame
        self.frames_shown += 1
        self.update()

    def set_status(self, status: SourceStatus) -> None:
        self.status = status
        self.update()

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self.sizeChanged.emit(self.width() - 4, self.height() - 4)

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.fillRect(self.rect(), theme.PANEL)
        state = self.status.state.value if self.status is not None else None
        live = state == SourceState.LIVE.value
        if self._image is not None:
            x = (self.width() - self._image.width()) // 2
            y = (self.height() - self._image.height()) // 2
            p.drawImage(x, y, self._image)
            if not live:  # the last frame, greyed: what the guard sees of a camera that stopped
                p.fillRect(self.rect(), QColor(18, 20, 24, 150))
        colour = theme.HEALTH_COLOURS.get(state or "", theme.MUTED)
        p.setPen(QPen(colour, 3))
        p.drawRect(self.rect().adjusted(1, 1, -2, -2))
        self._paint_health(p, colour)
        p.end()

    def _paint_health(self, p: QPainter, colour: QColor) -> None:
        text = "Choose a camera and press Test"
        if self.status is not None:  # the chip says the state: the text says why
            state = self.status.state.value
            text = health_text(self.status).removeprefix(f"{state}: ").removeprefix(f"{state} ")
            text = text[:1].upper() + text[1:]
        word = self.status.state.value.upper() if self.status is not None else ""
        if self.status is not None and self.status.state is SourceState.LIVE and self.status.fps > 0:
            word += f"  {self.status.fps:.1f} fps"
        p.setFont(theme.font(12, bold=True))
        metrics = p.fontMetrics()
        chip = f"\u25cf {word}" if word else ""
        if chip:
            box = QRect(10, 10, metrics.horizontalAdvance(chip) + 16, metrics.height() + 8)
            p.fillRect(box, QColor(0, 0, 0, 190))
            p.setPen(colour)
            p.drawText(box, Qt.AlignmentFlag.AlignCenter, chip)
        if self.status is None or self.status.state is not SourceState.LIVE or self._image is None:
            p.setFont(theme.font(11))
            area = self.rect().adjusted(24, 50, -24, -24)
            p.setPen(theme.TEXT)
            p.drawText(area, Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)


class CameraTester(QObject):
    """Starts and stops one camera test at a time, wiring a :class:`PreviewWorker` to a
    :class:`PreviewView`.  ``statusChanged`` repeats each health report for the dialog's text."""

    statusChanged = Signal(object)  # SourceStatus

    def __init__(self, view: PreviewView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.view = view
        self.camera: CameraConfig | None = None
        self._worker: PreviewWorker | None = None
        self._thread: QThread | None = None
        view.sizeChanged.connect(self._resize)

    @property
    def running(self) -> bool:
        return self._thread is not None

    def start(self, camera: CameraConfig, options: SourceOptions) -> None:
        """Test ``camera`` (stopping any test running)."""
        self.stop()
        self.view.clear()
        self.camera = camera
        worker = PreviewWorker(camera, options, (self.view.width() - 4, self.view.height() - 4))
        worker.frameReady.connect(self._take)
        worker.status.connect(self._status)
        self._worker = worker
        self._thread = start_worker(worker, f"camera-test-{camera.name}")

    def stop(self) -> None:
        """Stop the test, if one runs, and wait for its thread (bounded by the source's own stop)."""
        if self._worker is not None:
            self._worker.request_stop()
        if self._thread is not None:
            if not stop_thread(self._thread, 15_000):
                log.warning("camera test: the thread did not finish in 15 s")
            self._thread = None

    @Slot()
    def _take(self) -> None:
        worker = self.sender()
        if worker is not self._worker:  # a late report from a test already replaced
            return
        frame = self._worker.take() if self._worker is not None else None
        if frame is not None:
            self.view.set_frame(frame)

    @Slot(object)
    def _status(self, status: SourceStatus) -> None:
        if self.sender() is not self._worker:
            return
        self.view.set_status(status)
        self.statusChanged.emit(status)

    @Slot(int, int)
    def _resize(self, width: int, height: int) -> None:
        if self._worker is not None:
            self._worker.set_size(width, height)
