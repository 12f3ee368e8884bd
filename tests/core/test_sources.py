"""Frame sources against real streams, files and folders, read through real OpenCV captures.

Network cameras are played by :mod:`tests.core.mjpeg_server` (an HTTP MJPEG server that can be cut off
and restarted, and a server that accepts connections but never sends).  Nothing here sleeps for a
fixed time where a condition can be polled: :func:`until` polls with a deadline.
"""

from __future__ import annotations

import gc
import itertools
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Self, TypeVar

import cv2
import numpy as np
import pytest
from PIL import Image

from core.errors import CameraError
from core.live.sources import (
    Frame,
    FrameSource,
    RenderedSource,
    SourceOptions,
    SourceState,
    default_name,
    open_source,
    redact_url,
)
from tests.core.mjpeg_server import MjpegServer, SilentServer, card_frame

T = TypeVar("T")
S = SourceState
# Short timeouts and backoff so recovery happens within a test's time budget, yet long enough for a
# healthy local stream on a loaded 2-core machine.
FAST = SourceOptions(open_timeout_s=2.0, read_timeout_s=2.0, stall_after_s=0.5,
                     backoff_initial_s=0.2, backoff_max_s=1.0)


def until(predicate: Callable[[], T | None | bool], timeout: float = 10.0, what: str = "condition") -> T:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value  # type: ignore[return-value]  # truthy, so not None or False
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.01)


class StateRecorder:
    """Samples a source's state every few milliseconds and keeps the sequence of distinct states."""

    def __init__(self, source: FrameSource) -> None:
        self.source = source
        self.states: list[SourceState] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        state = self.source.status().state
        if not self.states or self.states[-1] is not state:
            self.states.append(state)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(0.005)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(2.0)
        self._sample()


def state_is(source: FrameSource, *states: SourceState) -> Callable[[], bool]:
    return lambda: source.status().state in states


def take_frames(source: FrameSource, count: int, after: int = -1, timeout: float = 10.0) -> list[Frame]:
    """The next ``count`` frames a consumer gets (each newer than the one before)."""
    frames: list[Frame] = []
    deadline = time.monotonic() + timeout
    while len(frames) < count:
        frame = source.wait(after=after, timeout=max(0.0, deadline - time.monotonic()))
        assert frame is not None, f"only {len(frames)} of {count} frames arrived"
        frames.append(frame)
        after = frame.index
    return frames


# ------------------------------------------------------------------------------------------------ specs


def test_default_names_and_spec_errors(tmp_path):
    (tmp_path / "gate_clip.avi").write_bytes(b"x")
    (tmp_path / "visitors").mkdir()
    assert default_name("demo") == "demo"
    assert default_name("0") == "cam0"
    assert default_name("rtsp://admin:pw@10.1.2.3:554/stream1") == "10.1.2.3"
    assert default_name(str(tmp_path / "gate_clip.avi")) == "gate_clip"
    assert default_name(str(tmp_path / "visitors")) == "visitors"
    assert open_source("3").name == "cam3"
    assert open_source(str(tmp_path / "visitors"), name="lobby").name == "lobby"

    src = open_source("rtsp://admin:s3cret@10.1.2.3/stream1")
    assert src.name == "10.1.2.3"
    assert "s3cret" not in src.status().spec and "***" in src.status().spec
    assert redact_url("http://cam.local/x.mjpg") == "http://cam.local/x.mjpg"
    # Credentials in the query string are masked too, and a malformed address never raises.
    assert redact_url("http://10.0.0.9/video.cgi?user=admin&pwd=s3cret") == "http://10.0.0.9/video.cgi?user=admin&pwd=***"
    assert redact_url("rtsp://admin:s3cret@10.0.0.9:99999/x?token=abc") == "rtsp://admin:***@10.0.0.9:99999/x?token=***"
    query = open_source("http://10.1.2.3/video.cgi?user=admin&password=s3cret")
    assert "s3cret" not in query.status().spec and "s3cret" not in query.status().line()
    assert src.status().state is S.STOPPED  # created, not started

    with pytest.raises(CameraError, match="does not exist"):
        open_source(str(tmp_path / "no_such_clip.mp4"))
    with pytest.raises(CameraError, match="Unknown kind"):
        open_source("ftp://10.1.2.3/feed")
    with pytest.raises(CameraError, match="No camera given"):
        open_source("   ")
    with pytest.raises(CameraError, match="positive"):
        SourceOptions(read_timeout_s=0)


# ------------------------------------------------------------------------------------ network streams


def test_mjpeg_stream_survives_server_restart():
    with MjpegServer(fps=25) as server:
        src = open_source(server.url, options=FAST)
        assert src.name == "127.0.0.1"
        with StateRecorder(src) as rec:
            src.start()
            before = take_frames(src, 10)
            image = before[-1].image
            assert image.dtype == np.uint8 and image.shape == (120, 160, 3)
            # The card's background is BGR (40, 90, 160): the source must hand out RGB.
            assert np.abs(np.median(image.reshape(-1, 3), axis=0) - (160, 90, 40)).max() < 12
            assert not image.flags.writeable
            until(state_is(src, S.LIVE), what="live")

            server.stop()  # cut the stream mid-sequence; the port now refuses connections
            until(state_is(src, S.FAILED), what="a failed reconnect while the server is down")
            down = src.status()
            assert down.retry_in is not None and down.last_error
            assert "could not be opened" in down.last_error or "did not answer" in down.last_error

            server.start()  # same port
            until(lambda: src.status().state is S.LIVE and src.status().reconnects >= 1, what="live again")
            after = take_frames(src, 10, after=before[-1].index)
            src.stop()

    assert [f.index for f in after] == sorted({f.index for f in after})
    assert after[0].index > before[-1].index  # indexes keep counting across reconnects
    live = rec.states.index(S.LIVE)
    trouble = next(i for i, s in enumerate(rec.states) if i > live and s in (S.STALLED, S.CONNECTING, S.FAILED))
    assert S.LIVE in rec.states[trouble:], rec.states
    assert rec.states[-1] is S.STOPPED
    status = src.status()
    assert status.reconnects >= 1 and status.frames >= 20


def test_frozen_stream_goes_stalled_then_reconnects():
    """A camera that keeps the connection open but stops sending: stalled, then the read times out.

    This camera also leaves ``Content-Length`` out of its MJPEG parts, as many cheap cameras do.
    """
    with MjpegServer(fps=25, content_length=False) as server:
        src = open_source(server.url, options=FAST)
        src.start()
        first = take_frames(src, 5)[-1]
        server.freeze()
        until(state_is(src, S.STALLED), what="stalled")
        line = src.status().line()
        assert line.startswith("127.0.0.1 stalled ") and "no frame for" in line
        until(lambda: "connection to 127.0.0.1 lost" in (src.status().last_error or ""), what="read timeout")
        server.thaw()
        take_frames(src, 5, after=first.index)
        assert src.status().state is S.LIVE and src.status().reconnects >= 1
        src.stop()


def test_silent_server_fails_within_open_timeout_without_blocking_the_caller():
    options = SourceOptions(open_timeout_s=1.0, read_timeout_s=1.0, backoff_initial_s=5.0, backoff_max_s=10.0)
    with SilentServer() as server:
        src = open_source(server.url, options=options)
        t0 = time.monotonic()
        src.start()
        assert time.monotonic() - t0 < 1.0  # start() only starts a thread; the open happens there
        assert src.status().state is S.CONNECTING
        status = until(lambda: (s := src.status()).state is S.FAILED and s, timeout=8, what="failed")
        # Failed by the FFmpeg open timeout (1 s), well before the watchdog would abandon the attempt.
        assert status.since - t0 < 5.0
        assert server.accepted >= 1
        assert status.last_error == (f"stream {server.url} did not answer within 1.0 s "
                                     "(camera offline, wrong address, or blocked by a firewall)")
        assert status.retry_in is not None and 0 < status.retry_in <= 10.0
        assert status.frames == 0 and status.last_frame_age is None
        assert src.latest() is None
        assert status.line().startswith(f"127.0.0.1 failed: stream {server.url} did not answer")
        assert "(retrying in " in status.line()
        t0 = time.monotonic()
        src.stop()
        assert time.monotonic() - t0 < 2.0
        assert src.status().state is S.STOPPED


def test_offline_cameras_do_not_get_a_healthy_camera_abandoned():
    """OpenCV runs one FFmpeg open at a time: hanging cameras must not make a healthy one look hung.

    Three dead cameras take 1.5 s each to fail, one after the other; the healthy camera asks to open
    while the first is dialling, so it waits its turn for ~4 s, longer than its own open watchdog limit
    (2 s timeout + 1 s margin).  Only time spent in its own open may count against it.
    """
    dead = SourceOptions(open_timeout_s=1.5, read_timeout_s=1.5, backoff_initial_s=20.0, backoff_max_s=30.0)
    with SilentServer() as d1, SilentServer() as d2, SilentServer() as d3, MjpegServer() as good:
        sources = [open_source(d.url, name=f"dead{i}", options=dead) for i, d in enumerate((d1, d2, d3))]
        for src in sources:
            src.start()
        until(lambda: d1.accepted + d2.accepted + d3.accepted >= 1, timeout=5, what="a dead camera being dialled")
        healthy = open_source(good.url, name="good", options=FAST)
        healthy.start()
        sources.append(healthy)
        try:
            assert healthy.wait(timeout=20) is not None
            assert healthy.status().last_error is None and healthy.status().reconnects == 0
            until(lambda: all(s.status().state is S.FAILED for s in sources[:3]), what="dead cameras failed")
        finally:
            for src in sources:
                src.stop()


def test_missing_camera_index_fails_clearly_and_keeps_retrying():
    src = open_source("99", options=SourceOptions(backoff_initial_s=0.1, backoff_max_s=0.4))
    assert src.name == "cam99"
    src.start()
    status = until(lambda: (s := src.status()).state is S.FAILED and s.reconnects >= 2 and s, what="retries")
    assert status.last_error == "camera 99 could not be opened (no such device, or it is in use)"
    assert "cam99 failed: camera 99 could not be opened" in status.line()
    assert src.wait(timeout=0.2) is None
    t0 = time.monotonic()
    src.stop()
    assert time.monotonic() - t0 < 1.0
    assert src.status().state is S.STOPPED


# ------------------------------------------------------------------------------------- files, folders


def write_clip(path: Path, frames: int = 100) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 25.0, (160, 120))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(card_frame(i))
    writer.release()


def play_to_end(src: FrameSource) -> list[Frame]:
    """Consume every frame the consumer can get until the source ends."""
    got: list[Frame] = []
    src.start()
    while (frame := src.wait(after=got[-1].index if got else -1, timeout=10.0)) is not None:
        got.append(frame)
    return got


def test_video_file_plays_to_the_end(tmp_path):
    clip = tmp_path / "gate.avi"
    write_clip(clip)
    src = open_source(str(clip), options=SourceOptions(fps=200))
    assert src.name == "gate"
    got = play_to_end(src)
    status = src.status()
    assert status.state is S.ENDED and status.frames == 100 and status.last_error is None
    assert len(got) >= 50 and got[0].index == 0
    assert status.line() == "gate ended after 100 frames"
    src.stop()


def test_looping_file_and_folder_start_again(tmp_path):
    clip = tmp_path / "short.avi"
    write_clip(clip, frames=10)
    folder = tmp_path / "two"
    folder.mkdir()
    for i in range(2):
        Image.new("RGB", (32, 32), COLOURS[i]).save(folder / f"{i}.png")
    for spec, n in ((clip, 10), (folder, 2)):
        src = open_source(str(spec), options=SourceOptions(fps=200, loop=True))
        src.start()
        target = 3 * n
        until(lambda: src.status().frames > target, what=f"{spec.name} to loop")
        assert src.status().state is S.LIVE and src.status().reconnects == 0
        src.stop()


@pytest.mark.parametrize("damage", ["zeros_and_noise", "truncated"])
def test_corrupted_video_file_delivers_what_it_can_then_ends(tmp_path, damage):
    clip = tmp_path / "damaged.avi"
    write_clip(clip)
    data = bytearray(clip.read_bytes())
    n = len(data)
    if damage == "truncated":
        data = data[: n // 2]
    else:
        data[int(n * 0.30): int(n * 0.42)] = bytes(int(n * 0.42) - int(n * 0.30))
        data[int(n * 0.6): int(n * 0.6) + 3000] = np.random.default_rng(1).integers(0, 256, 3000, np.uint8).tobytes()
    clip.write_bytes(bytes(data))

    src = open_source(str(clip), options=SourceOptions(fps=200))
    got = play_to_end(src)
    status = src.status()
    assert status.state is S.ENDED
    assert 30 <= status.frames < 100 and len(got) >= 15
    assert all(f.image.shape == (120, 160, 3) for f in got)
    assert "damaged or truncated" in (status.last_error or "")
    src.stop()


def test_unreadable_video_file_fails_without_retrying(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 20000, np.uint8).tobytes())
    src = open_source(str(junk))
    src.start()
    until(state_is(src, S.FAILED), what="failed")
    status = src.status()
    assert status.last_error == "junk.mp4 could not be opened as a video (unsupported format, or a damaged file)"
    assert status.retry_in is None and status.line().endswith("(not retrying), 0 reconnects")
    assert src.wait(timeout=5) is None  # returns at once: nothing more will come
    src.stop()


COLOURS = [(200, 30, 10), (10, 200, 30), (30, 10, 200), (250, 250, 0), (0, 250, 250), (120, 60, 240)]


def test_image_folder_at_a_given_rate_skips_a_corrupt_picture(tmp_path):
    folder = tmp_path / "visitors"
    folder.mkdir()
    for i, colour in enumerate(COLOURS):
        Image.new("RGB", (64, 48), colour).save(folder / f"img_{i:02d}.png")
    (folder / "img_02b.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "notes.txt").write_text("not a picture")
    rate = 20.0
    src = open_source(str(folder), options=SourceOptions(fps=rate))
    assert src.name == "visitors"
    got = play_to_end(src)
    status = src.status()
    assert status.state is S.ENDED and status.frames == len(COLOURS)
    assert status.last_error is not None and "img_02b.jpg" in status.last_error
    # Name order, RGB, corrupt picture skipped; a consumer waiting on the source misses nothing here.
    seen = [(int(f.image[0, 0, 0]), int(f.image[0, 0, 1]), int(f.image[0, 0, 2])) for f in got]
    assert [COLOURS.index(c) for c in seen] == [f.index for f in got]  # frame k is the k-th good picture
    assert len(got) >= len(COLOURS) - 1
    # Paced on a fixed schedule: never faster than the rate (it may run slower on a busy machine).  One
    # period of slack: the schedule starts when the folder is opened, before the first picture is decoded.
    first, last = got[0], got[-1]
    assert last.captured - first.captured >= 0.9 * (last.index - first.index - 1) / rate

    with pytest.raises(CameraError, match="does not exist"):
        open_source(str(tmp_path / "missing_folder"))
    src.stop()


def test_empty_folder_fails_clearly(tmp_path):
    src = open_source(str(tmp_path))
    src.start()
    until(state_is(src, S.FAILED), what="failed")
    assert "holds no pictures" in (src.status().last_error or "")
    src.stop()


# -------------------------------------------------------------------------------- latest-frame rules


def coded(index: int, size: tuple[int, int] = (240, 320)) -> np.ndarray:
    """A picture whose pixels encode its frame index (so a consumer can check what it got)."""
    return np.full((*size, 3), (index % 251, (index // 251) % 251, 7), np.uint8)


def code_of(image: np.ndarray) -> int:
    return int(image[0, 0, 0]) + 251 * int(image[0, 0, 1])


def count_frames_alive(camera: str) -> int:
    gc.collect()
    return sum(isinstance(o, Frame) and o.camera == camera for o in gc.get_objects())


def test_slow_consumer_only_gets_the_newest_frame_and_memory_stays_flat():
    src = RenderedSource("synthetic", coded, options=SourceOptions(fps=200))
    assert src.fps == 200
    src.start()
    warmed = take_frames(src, 3)[-1].index  # running
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        got: list[int] = []
        dropped: list[int] = []
        for _ in range(20):
            time.sleep(0.05)  # a slow consumer: busy with the previous frame
            newest_before = src.status().frames - 1
            frame = until(lambda: src.latest(after=got[-1] if got else warmed), what="a new frame")
            assert frame.index >= newest_before  # never an older, queued frame
            assert code_of(frame.image) == frame.index % (251 * 251)
            got.append(frame.index)
            dropped.append(src.status().dropped)
        growth = tracemalloc.get_traced_memory()[0] - base
        del frame
    finally:
        tracemalloc.stop()
    src.stop()
    status = src.status()

    assert got == sorted(set(got))
    assert max(b - a for a, b in itertools.pairwise(got)) > 1  # indexes skip: frames were dropped, not queued
    assert dropped[-1] > dropped[0]  # and keeps growing: the producer runs ahead of the consumer
    # Every frame was either taken, dropped or is still in the slot: nothing is queued anywhere.
    assert status.frames - status.dropped - len(got) - 3 in (0, 1)
    assert growth < 10 * coded(0).nbytes, f"memory grew by {growth / 1e6:.1f} MB"
    assert count_frames_alive("synthetic") == 1  # the slot; nothing else holds a frame

    # max_age: the last frame is kept after stop(), but it is not fresh.
    time.sleep(0.15)
    assert src.latest(max_age=0.1) is None
    last = src.latest(max_age=60.0)
    assert last is not None and last.index == status.frames - 1 and last.age() >= 0.1
    assert src.latest(after=last.index) is None
    assert src.wait(after=last.index, timeout=5.0) is None  # stopped: returns at once


def test_stuck_read_is_abandoned_and_its_late_frame_ignored():
    release = threading.Event()
    hung = threading.Event()

    def render(index: int) -> np.ndarray:
        if index == 5 and not hung.is_set():
            hung.set()
            release.wait(20)  # a read that hangs (a driver that never returns)
            return coded(9999)  # the late frame: must never be delivered
        return coded(index)

    options = SourceOptions(fps=40, read_timeout_s=0.3, stall_after_s=0.2, backoff_initial_s=0.1)
    src = RenderedSource("hang", render, options=options)
    with StateRecorder(src) as rec:
        src.start()
        until(hung.is_set, what="the hang")
        until(lambda: (src.status().last_error or "").startswith("a read from rendered source hang hung"),
              what="watchdog")
        seen = take_frames(src, 5, after=4)
        release.set()  # the abandoned read returns now; its frame must be thrown away
        seen += take_frames(src, 10, after=seen[-1].index)
        src.stop()
    assert all(code_of(f.image) == f.index for f in seen)
    assert S.STALLED in rec.states and rec.states[-1] is S.STOPPED
    assert src.status().reconnects >= 1
    until(lambda: not any(t.name == "source-hang-1" for t in threading.enumerate()), what="abandoned thread exit")


def test_deferred_renderer_is_built_in_the_reader_thread():
    """A slow set-up (like the demo scene's) neither blocks the caller nor counts as a hung open."""
    ready = threading.Event()
    callers: list[str] = []

    def build() -> tuple[Callable[[int], np.ndarray], float | None]:
        callers.append(threading.current_thread().name)
        ready.wait(10)
        return coded, 100.0

    options = SourceOptions(open_timeout_s=0.1, read_timeout_s=0.1)  # watchdog limit: 1.1 s
    src = RenderedSource.deferred("slow", build, options=options, spec="demo")
    t0 = time.monotonic()
    src.start()
    assert time.monotonic() - t0 < 1.0
    until(lambda: callers, what="the build to start")
    time.sleep(1.3)  # longer than the open watchdog limit
    status = src.status()
    assert status.state is S.CONNECTING and status.last_error is None and status.reconnects == 0
    ready.set()
    frame = src.wait(timeout=10)
    assert frame is not None and code_of(frame.image) == frame.index
    assert src.fps == 100.0 and callers == ["source-slow-1"]
    src.stop()


def test_stop_is_prompt_idempotent_and_status_lines_read_well():
    with MjpegServer(fps=25) as server:
        src = open_source(server.url, name="gate-east", options=FAST)
        assert src.status().line() == "gate-east stopped"
        src.start()
        src.start()  # no second reader
        take_frames(src, 30)
        line = src.status().line()
        assert line.startswith("gate-east live ") and line.endswith(" fps, 0 reconnects"), line
        assert 10 < src.status().fps < 40
        t0 = time.monotonic()
        src.stop()
        assert time.monotonic() - t0 < 1.0
        src.stop()
        status = src.status()
        assert status.state is S.STOPPED and status.line() == f"gate-east stopped after {status.frames} frames"
        until(lambda: server.client_count() == 0, what="the capture to be released")

    # stop() does not hang on a read that never returns.
    release = threading.Event()
    def frozen(index: int) -> np.ndarray:
        if index >= 2:
            release.wait(20)  # a read that never returns (until the test lets it)
        return coded(index)

    src = RenderedSource("frozen", frozen, options=SourceOptions(fps=50, read_timeout_s=30))
    src.start()
    until(lambda: src.status().frames >= 2, what="two frames")
    time.sleep(0.05)
    t0 = time.monotonic()
    src.stop(timeout=0.5)
    assert time.monotonic() - t0 < 2.0 and src.status().state is S.STOPPED
    release.set()

    # A stopped source can be started again; indexes keep counting.
    before = src.status().frames
    src.start()
    assert take_frames(src, 2, after=before - 1)[0].index >= before
    src.stop()
