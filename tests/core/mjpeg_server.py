"""Test servers for network camera sources: a real HTTP MJPEG stream and a server that never answers.

:class:`MjpegServer` serves ``multipart/x-mixed-replace`` JPEG frames on ``127.0.0.1`` the way IP
cameras do (``GET /stream.mjpg``), and can be stopped mid-stream (every open connection is cut) and
started again on the same port, so a client has to notice the loss and reconnect.  :class:`SilentServer`
accepts TCP connections and never sends a byte: the classic hung camera.

Both run in daemon threads and are usable as context managers.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

import cv2
import numpy as np

BOUNDARY = "facegateframe"
STREAM_PATH = "/stream.mjpg"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def card_frame(index: int, size: tuple[int, int] = (160, 120)) -> np.ndarray:
    """A BGR frame that visibly changes with ``index`` (a moving bar and the frame number)."""
    w, h = size
    frame = np.full((h, w, 3), (40, 90, 160), np.uint8)
    x = (index * 4) % w
    frame[:, x: x + 8] = (255, 255, 255)
    cv2.putText(frame, str(index), (4, h - 8), cv2.FONT_HERSHEY_SIMPLEX, 0.8, (0, 255, 255), 2)
    return frame


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: MjpegServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: object) -> None:  # stdlib signature
        pass

    def do_GET(self) -> None:  # stdlib name
        owner = self.server.owner
        if self.path.split("?")[0] != STREAM_PATH:
            self.send_error(404)
            return
        owner._register(self.connection)
        try:
            self.send_response(200)
            self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            period = 1.0 / owner.fps
            due = time.monotonic()
            while not owner._cut.is_set():
                if owner._frozen.is_set():
                    owner._cut.wait(0.02)
                    due = time.monotonic()
                    continue
                jpeg = owner._next_jpeg()
                length = f"Content-Length: {len(jpeg)}\r\n" if owner.content_length else ""
                part = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n{length}\r\n".encode("ascii")
                self.wfile.write(part + jpeg + b"\r\n")
                self.wfile.flush()
                due += period
                delay = due - time.monotonic()
                if delay > 0:
                    owner._cut.wait(delay)
                else:
                    due = time.monotonic()
        except OSError:
            pass  # the client went away or we cut the connection: both are normal here
        finally:
            owner._unregister(self.connection)


class MjpegServer:
    """An HTTP MJPEG camera on ``127.0.0.1`` (``url`` ends in ``/stream.mjpg``).

    Parameters
    ----------
    fps
        Frames per second sent to each client.
    size
        Frame size ``(width, height)``.
    port
        Port to listen on; 0 picks a free one (kept across :meth:`stop` / :meth:`start`).
    content_length
        Send a ``Content-Length`` header with each part (many cheap cameras do not).
    render
        ``render(index) -> uint8 RGB`` picture of frame ``index`` (e.g. a demo scene's); default: a
        numbered test card of ``size``.
    """

    def __init__(self, fps: float = 25.0, size: tuple[int, int] = (160, 120), port: int = 0,
                 content_length: bool = True, render: Callable[[int], np.ndarray] | None = None) -> None:
        self.fps = fps
        self.render = render
        self.content_length = content_length
        self.size = size
        self.port = port or free_port()
        self.frames_sent = 0
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._cut = threading.Event()
        self._frozen = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{STREAM_PATH}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> Self:
        """Listen (again) on :attr:`port` and serve every client in its own thread."""
        if self._server is not None:
            return self
        self._cut.clear()
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"mjpeg-{self.port}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut every open stream mid-frame-sequence (clients see the connection drop)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._cut.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(5.0)

    def freeze(self) -> None:
        """Keep every connection open but stop sending frames (a camera that hangs mid-stream)."""
        self._frozen.set()

    def thaw(self) -> None:
        """Resume sending frames after :meth:`freeze`."""
        self._frozen.clear()

    def client_count(self) -> int:
        with self._lock:
            return len(self._connections)

    def _next_jpeg(self) -> bytes:
        with self._lock:
            index = self.frames_sent
            self.frames_sent += 1
        picture = (card_frame(index, self.size) if self.render is None
                   else cv2.cvtColor(self.render(index), cv2.COLOR_RGB2BGR))
        ok, buf = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, 80])
        assert ok
        return buf.tobytes()

    def _register(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _unregister(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


class SilentServer:
    """A TCP server on ``127.0.0.1`` that accepts connections, reads nothing and never sends a byte."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self.accepted = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"silent-{self.port}", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{STREAM_PATH}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)  # keep it open (and silent) until stop()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2.0)
        for conn in self._conns:
            conn.close()
        self._sock.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


__all__ = ["BOUNDARY", "MjpegServer", "SilentServer", "card_frame", "free_port"]
