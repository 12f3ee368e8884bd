"""Camera and frame sources that survive disconnects.

A *source* turns a spec (``"demo"``, ``"0"``, ``"rtsp://…"``, a video file, a folder of pictures) into a
stream of :class:`Frame` objects.  Every source reads in its own daemon threads with **latest-frame
semantics**: there is one slot, each new frame overwrites it, and consumers always get the newest frame.
A slow consumer never builds a queue; frames it did not take are counted as ``dropped``.

Health states (:class:`SourceState`)::

    connecting -> live -> stalled -> (reconnect) connecting -> live
    connecting -> failed (retrying, ``retry_in`` set) -> connecting -> …
    live -> ended          (video files and folders, unless looping)
    any -> stopped         (stop() was called, or start() was never called)

Images are ``uint8`` RGB ``(H, W, 3)``, read-only (one frame may be shared by several consumers: copy it
before drawing on it).  Times are ``time.monotonic()`` unless named ``wall_time``.

Modules
-------
:mod:`.base`
    What every source hands out: :class:`Frame`, :class:`SourceStatus`, :class:`SourceState`,
    :class:`SourceOptions` and the :class:`FrameSource` protocol.
:mod:`.threaded`
    The reading machinery every source runs on: worker and supervisor threads, the latest-frame slot,
    health states, the watchdog and reconnecting with backoff.
:mod:`.capture`
    OpenCV captures: network streams and webcams (and the reader video files use).
:mod:`.files`
    Video files and folders of pictures.
:mod:`.rendered`
    Rendered sources, and the built-in demo scene played as one.
:mod:`.spec`
    Specs: :func:`open_source`, :func:`default_name`.
"""

from __future__ import annotations

from core.live.sources.base import Frame, FrameSource, SourceOptions, SourceState, SourceStatus
from core.live.sources.capture import StreamSource, WebcamSource, redact_url
from core.live.sources.files import ImageFolderSource, VideoFileSource
from core.live.sources.rendered import RenderedSource
from core.live.sources.spec import default_name, open_source

__all__ = [
    "Frame",
    "FrameSource",
    "ImageFolderSource",
    "RenderedSource",
    "SourceOptions",
    "SourceState",
    "SourceStatus",
    "StreamSource",
    "VideoFileSource",
    "WebcamSource",
    "default_name",
    "open_source",
    "redact_url",
]
