"""Specs: which source a spec (``"demo"``, ``"0"``, a URL, a file, a folder) opens, and its default name."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from core.errors import CameraError
from core.live.sources.base import FrameSource, SourceOptions
from core.live.sources.capture import StreamSource, WebcamSource, redact_url
from core.live.sources.files import ImageFolderSource, VideoFileSource
from core.live.sources.rendered import demo_source

URL_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "rtp", "srt", "tcp"})


def default_name(spec: str) -> str:
    """The name a source gets from its spec: ``demo``, ``cam0``, the URL's host, file stem, folder name."""
    spec = spec.strip()
    if spec.lower() == "demo":
        return "demo"
    if spec.isdigit():
        return f"cam{int(spec)}"
    if "://" in spec:
        try:
            host = urlsplit(spec).hostname
        except ValueError:
            host = None
        if spec.lower().startswith("file://"):
            return Path(unquote(urlsplit(spec).path)).stem or "file"
        return host or "stream"
    path = Path(spec).expanduser()
    if path.name.startswith("video") and path.parent == Path("/dev"):
        return f"cam{path.name[5:]}" if path.name[5:].isdigit() else path.name
    if path.is_dir():
        return path.resolve().name or str(path)
    return path.stem or path.name or str(path)


def open_source(spec: str, *, name: str | None = None, options: SourceOptions | None = None) -> FrameSource:
    """Create (but do not start) the frame source a spec describes.

    Parameters
    ----------
    spec
        ``"demo"`` (the built-in rendered scene); a webcam index (``"0"``) or ``/dev/videoN``;
        a stream URL (``rtsp://``, ``http(s)://`` MJPEG, ``rtmp://``, …); a video file path; a folder
        of pictures (``file://`` URLs work for files and folders).
    name
        Name for frames and status lines; by default derived from the spec (:func:`default_name`).
    options
        Timeouts, backoff and playback options.

    Raises
    ------
    CameraError
        If the spec is empty, uses an unknown URL scheme, or names a file or folder that does not exist.
    """
    raw = spec
    spec = (spec or "").strip()
    if not spec:
        raise CameraError("No camera given: use a camera number (0), a stream URL, a video file or a folder.")
    options = options or SourceOptions()
    label = name or default_name(spec)
    if spec.lower() == "demo":
        return demo_source(label, options)
    if spec.isdigit():
        return WebcamSource(label, int(spec), options)
    if "://" in spec:
        scheme = spec.split("://", 1)[0].lower()
        if scheme == "file":
            spec = unquote(urlsplit(spec).path)
        elif scheme in URL_SCHEMES:
            try:
                host = urlsplit(spec).hostname
            except ValueError as exc:
                raise CameraError(f"The stream address {redact_url(spec)!r} is not a valid URL ({exc}).") from exc
            if not host:
                raise CameraError(f"The stream address {redact_url(spec)!r} names no host.")
            return StreamSource(label, spec, options)
        else:
            raise CameraError(f"Unknown kind of camera address {redact_url(spec)!r}: FaceGate reads "
                              f"{', '.join(sorted(s + '://' for s in URL_SCHEMES))} streams.")
    path = Path(spec).expanduser()
    if path.parent == Path("/dev") and path.name.startswith("video") and path.name[5:].isdigit():
        if not path.exists():
            raise CameraError(f"There is no camera device {path}.")
        return WebcamSource(label, int(path.name[5:]), options, spec=spec)
    if not path.exists():
        raise CameraError(f"No camera, stream, video file or folder called {raw.strip()!r}: "
                          f"{path} does not exist.")
    if path.is_dir():
        return ImageFolderSource(label, path, options)
    if path.is_file():
        return VideoFileSource(label, path, options)
    raise CameraError(f"{path} is neither a video file nor a folder of pictures.")
