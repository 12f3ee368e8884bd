"""OpenCV captures: network streams (RTSP, HTTP MJPEG, …) and webcams, and the capture reader files use.

Also :func:`redact_url`, which masks the password in a stream's URL wherever it is shown.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from core.live.sources.addresses import display_spec
from core.live.sources.base import SourceOptions
from core.live.sources.threaded import _FFMPEG_OPEN_GATE, _Reader, _SourceFailure, _ThreadedSource
from core.vision.imageio import to_rgb8

DEFAULT_FILE_FPS = 25.0  # when the container does not say (or says something absurd)

_FILE_RESYNC_READS = 2  # extra reads after a failed read in the middle of a file (FFmpeg may resync)


@contextmanager
def _no_gate() -> Iterator[None]:
    yield


def _bgr_to_rgb(frame: Any) -> np.ndarray | None:
    """OpenCV capture output (BGR, BGRA or gray) as contiguous ``uint8`` RGB; None for an empty frame."""
    import cv2

    if frame is None or not isinstance(frame, np.ndarray) or frame.size == 0:
        return None
    if frame.ndim == 3 and frame.shape[2] == 3:
        return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    if frame.ndim == 3 and frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return to_rgb8(frame)


class _CaptureReader(_Reader):
    """A ``cv2.VideoCapture`` opened with a list of (api, params) to try in order."""

    def __init__(self, target: str | int, attempts: list[tuple[int, list[int]]], fail_message: Callable[[float], str],
                 *, buffer_one: bool = False, rate: float | None = None, file_rate: bool = False,
                 resync: bool = False) -> None:
        self.target = target
        self.attempts = attempts
        self.fail_message = fail_message
        self.buffer_one = buffer_one
        self.rate = rate
        self.file_rate = file_rate
        self.resync = resync
        self.cap: Any = None
        self.announced = 0  # frame count the container claims (files)
        self.read_count = 0

    def open(self) -> None:
        import cv2

        elapsed = 0.0
        for api, params in self.attempts:
            gate = _FFMPEG_OPEN_GATE.hold(self.session) if api == cv2.CAP_FFMPEG else _no_gate()
            with gate:
                t0 = time.monotonic()
                cap = cv2.VideoCapture(self.target, api, params) if params else cv2.VideoCapture(self.target, api)
                elapsed = max(elapsed, time.monotonic() - t0)
            if cap.isOpened():
                self.cap = cap
                break
            cap.release()
        if self.cap is None:
            raise _SourceFailure(self.fail_message(elapsed))
        if self.buffer_one:
            self.cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # webcams: keep the driver from queueing old frames
        if self.file_rate:
            fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 0.0)
            self.rate = self.rate or (fps if 0.5 <= fps <= 240.0 else DEFAULT_FILE_FPS)
            count = self.cap.get(cv2.CAP_PROP_FRAME_COUNT)
            self.announced = int(count) if 0 < count < 1e9 else 0
        self.read_count = 0

    def read(self) -> np.ndarray | None:
        import cv2

        tries = 1 + (_FILE_RESYNC_READS if self.resync else 0)
        for _ in range(tries):
            ok, frame = self.cap.read()
            image = _bgr_to_rgb(frame) if ok else None
            if image is not None:
                self.read_count += 1
                return image
            # A damaged stretch of a file: FFmpeg may find the next good frame on a later read.
            pos = self.cap.get(cv2.CAP_PROP_POS_FRAMES)
            if not (self.announced and 0 <= pos < self.announced - 1):
                break
        return None

    def close(self) -> None:
        cap, self.cap = self.cap, None
        if cap is not None:
            cap.release()

    def end_note(self) -> str | None:
        if self.announced and self.read_count < 0.98 * self.announced:
            return (f"only {self.read_count} of the {self.announced} frames the file announces could be "
                    "decoded (the file is damaged or truncated)")
        return None


def redact_url(url: str) -> str:
    """The URL as it may be shown in logs and status lines: the user-info password and password-like
    parameters masked (``rtsp://admin:***@10.0.0.7/…?pwd=***``); never raises."""
    return display_spec(url)


class StreamSource(_ThreadedSource):
    """A network camera or stream (RTSP, HTTP MJPEG, …) read with OpenCV's FFmpeg backend.

    Open and read timeouts are passed to FFmpeg; a watchdog abandons a connection whose open or read
    hangs anyway.  A lost stream is reconnected with capped exponential backoff.
    """

    def __init__(self, name: str, url: str, options: SourceOptions | None = None) -> None:
        super().__init__(name, url, options)
        self._host = urlsplit(url).hostname or "stream"

    @property
    def _what(self) -> str:
        return f"stream {self._host}"

    def _display_spec(self) -> str:
        return redact_url(self.spec)

    def _make_reader(self) -> _Reader:
        import cv2

        o = self.options
        # The timeouts only take effect as open parameters of the FFmpeg backend.
        params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(o.open_timeout_s * 1000),
                  cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(o.read_timeout_s * 1000)]
        shown = redact_url(self.spec)

        def fail(elapsed: float) -> str:
            if elapsed >= 0.9 * o.open_timeout_s:
                return (f"stream {shown} did not answer within {o.open_timeout_s:.1f} s "
                        "(camera offline, wrong address, or blocked by a firewall)")
            return (f"stream {shown} could not be opened (connection refused, wrong address or password, "
                    "or not a video stream)")

        return _LiveCaptureReader(self.spec, [(cv2.CAP_FFMPEG, params)], fail,
                                  lost=f"connection to {self._host} lost (the stream ended or sent nothing "
                                       f"for {o.read_timeout_s:.1f} s)")


class _LiveCaptureReader(_CaptureReader):
    """A camera or stream: a failed read means the connection is gone, not the end of a file."""

    def __init__(self, target: str | int, attempts: list[tuple[int, list[int]]],
                 fail_message: Callable[[float], str], *, lost: str, buffer_one: bool = False) -> None:
        super().__init__(target, attempts, fail_message, buffer_one=buffer_one)
        self.lost = lost

    def read(self) -> np.ndarray | None:
        image = super().read()
        if image is None:
            raise _SourceFailure(self.lost)
        return image


class WebcamSource(_ThreadedSource):
    """A local camera by index (``"0"``) or device path (``/dev/video0``)."""

    def __init__(self, name: str, index: int, options: SourceOptions | None = None, spec: str | None = None) -> None:
        super().__init__(name, spec if spec is not None else str(index), options)
        self.index = index

    @property
    def _what(self) -> str:
        return f"camera {self.index}"

    def _make_reader(self) -> _Reader:
        import cv2

        what = self._what
        return _LiveCaptureReader(
            self.index, [(cv2.CAP_ANY, [])],
            lambda _elapsed: f"{what} could not be opened (no such device, or it is in use)",
            lost=f"{what} stopped delivering frames (unplugged, or taken by another program)",
            buffer_one=True,
        )
