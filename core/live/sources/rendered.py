"""Rendered sources: :class:`RenderedSource` plays a ``render(index)`` callable; :func:`demo_source`
plays the built-in demo scene (:mod:`core.demo.scene`) on it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from core.errors import CameraError
from core.live.sources.base import SourceOptions
from core.live.sources.threaded import _Reader, _Session, _ThreadedSource
from core.vision.imageio import to_rgb8

DEFAULT_RENDER_FPS = 25.0


class _RenderReader(_Reader):
    def __init__(self, source: RenderedSource) -> None:
        self.source = source

    def open(self) -> None:
        self.source._ensure_built(self.session)
        self.rate = self.source.fps

    def read(self) -> np.ndarray | None:
        index = self.source._peek_index()
        image = np.asarray(self.source.render(index))
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            image = to_rgb8(image)
        # Copy: the renderer may reuse its buffer, and published frames are read-only.
        return np.array(image, dtype=np.uint8, order="C", copy=True)


class RenderedSource(_ThreadedSource):
    """Plays ``render(index) -> uint8 RGB (H, W, 3)`` endlessly at ``options.fps`` or ``fps`` (default 25).

    The index passed to ``render`` is the index of the frame it produces, so a deterministic renderer
    gives the same picture for the same :attr:`Frame.index`.  An exception from the renderer puts the
    source in ``failed`` and it retries with backoff.

    Parameters
    ----------
    name
        Source name.
    render
        Callable returning the picture for a frame index.
    fps
        The renderer's natural rate; ``options.fps`` overrides it.
    options
        Pacing and recovery options.
    spec
        Spec shown in the status (default ``"rendered"``).
    """

    def __init__(self, name: str, render: Callable[[int], np.ndarray], fps: float | None = None, *,
                 options: SourceOptions | None = None, spec: str = "rendered") -> None:
        super().__init__(name, spec, options)
        self.render = render
        self.fps = float(self.options.fps or fps or DEFAULT_RENDER_FPS)
        if not self.fps > 0:
            raise CameraError("A rendered source needs a positive frame rate.")
        self._build: Callable[[], tuple[Callable[[int], np.ndarray], float | None]] | None = None
        self._build_lock = threading.Lock()

    @classmethod
    def deferred(cls, name: str, build: Callable[[], tuple[Callable[[int], np.ndarray], float | None]], *,
                 options: SourceOptions | None = None, spec: str = "rendered") -> RenderedSource:
        """A rendered source whose renderer is built in the reader thread when it first starts.

        For renderers with a slow set-up (the demo scene runs the face detector over its photos): the
        caller is never blocked, the source shows ``connecting`` meanwhile, and the open watchdog does
        not time the build.  ``build()`` returns ``(render, fps)``; ``options.fps`` overrides that fps.
        """

        def not_built(index: int) -> np.ndarray:
            raise CameraError(f"The renderer of {name} has not been built yet.")

        source = cls(name, not_built, options=options, spec=spec)
        source._build = build
        return source

    def _ensure_built(self, session: _Session | None) -> None:
        with self._build_lock:
            build = self._build
            if build is None:
                return
            if session is not None:
                session.phase, session.busy_since = "setup", None  # not an open that can hang on a network
            render, fps = build()
            self.render = render
            if self.options.fps is None and fps:
                self.fps = float(fps)
            self._build = None

    def _peek_index(self) -> int:
        with self._cond:
            return self._next_index

    @property
    def _what(self) -> str:
        return f"rendered source {self.name}"

    def _make_reader(self) -> _Reader:
        return _RenderReader(self)


_DEMO_LOCK = threading.Lock()
_DEMO_SCENES: list[Any] = []


def demo_source(name: str, options: SourceOptions | None = None) -> RenderedSource:
    """The built-in demo scene (:class:`core.demo.scene.DemoScene`) as a rendered source; not started.

    Raises
    ------
    CameraError
        If the demo scene is not available in this installation.
    """
    try:
        from core.demo.scene import DemoScene
    except ImportError as exc:
        raise CameraError(f"The demo scene is not available in this installation ({exc}).") from exc

    def build() -> tuple[Callable[[int], np.ndarray], float | None]:
        # Slow (1.5–2.5 s from the cache; it runs the face detector over the demo photos the first time):
        # done in the reader thread, once per process — demo cameras share the scene (render only reads it).
        with _DEMO_LOCK:
            if not _DEMO_SCENES:
                _DEMO_SCENES.append(DemoScene.from_assets())
            scene = _DEMO_SCENES[0]
        return scene.render, scene.fps

    return RenderedSource.deferred(name, build, options=options, spec="demo")
