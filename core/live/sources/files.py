"""Video files and folders of pictures, played at their own pace and ``ended`` at the end unless looping."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.errors import ImageError
from core.live.sources.base import SourceOptions
from core.live.sources.capture import _CaptureReader
from core.live.sources.threaded import _Reader, _SourceFailure, _ThreadedSource
from core.vision.imageio import is_image_path, read_image

DEFAULT_FOLDER_FPS = 5.0


class VideoFileSource(_ThreadedSource):
    """A video file, played at its own rate (or ``options.fps``); ``ended`` at the end unless looping.

    Damaged stretches are skipped where FFmpeg can resynchronise; otherwise the file ends early.
    A file that cannot be opened at all fails for good (no retries).
    """

    _reconnect_on_loss = False
    _retry_open = False

    def __init__(self, name: str, path: str | Path, options: SourceOptions | None = None) -> None:
        self.path = Path(path)
        super().__init__(name, str(path), options)

    @property
    def _what(self) -> str:
        return self.path.name

    def _make_reader(self) -> _Reader:
        import cv2

        path = self.path

        def fail(_elapsed: float) -> str:
            if not path.exists():
                return f"video file {path} no longer exists"
            return f"{path.name} could not be opened as a video (unsupported format, or a damaged file)"

        return _CaptureReader(str(path), [(cv2.CAP_FFMPEG, []), (cv2.CAP_ANY, [])], fail,
                              rate=self.options.fps, file_rate=True, resync=True)


class _FolderReader(_Reader):
    def __init__(self, folder: Path, rate: float, note: Callable[[str], None]) -> None:
        self.folder = folder
        self.rate = rate
        self.note = note
        self.files: list[Path] = []
        self.position = 0
        self.good = 0

    def open(self) -> None:
        try:
            files = sorted((p for p in self.folder.iterdir() if p.is_file() and is_image_path(p)),
                           key=lambda p: p.name.casefold())
        except OSError as exc:
            raise _SourceFailure(f"folder {self.folder} cannot be read ({exc.strerror or exc})") from exc
        if not files:
            raise _SourceFailure(f"folder {self.folder} holds no pictures (JPEG, PNG, BMP, WebP, TIFF)")
        self.files, self.position, self.good = files, 0, 0

    def read(self) -> np.ndarray | None:
        while self.position < len(self.files):
            path = self.files[self.position]
            self.position += 1
            try:
                image = read_image(path)
            except ImageError as exc:
                self.note(f"skipped {exc}")
                continue
            self.good += 1
            return image
        return None

    def end_note(self) -> str | None:
        if self.files and not self.good:
            return f"none of the {len(self.files)} pictures in {self.folder.name} could be read"
        return None


class ImageFolderSource(_ThreadedSource):
    """The pictures in a folder, in name order, at ``options.fps`` (default 5 per second).

    Unreadable pictures are skipped and reported in ``last_error``; the source ends after the last
    picture unless ``options.loop`` is set (the folder is listed again on each pass).
    """

    _reconnect_on_loss = False
    _retry_open = False

    def __init__(self, name: str, folder: str | Path, options: SourceOptions | None = None) -> None:
        self.folder = Path(folder)
        super().__init__(name, str(folder), options)

    @property
    def _what(self) -> str:
        return f"folder {self.folder.name}"

    def _make_reader(self) -> _Reader:
        return _FolderReader(self.folder, self.options.fps or DEFAULT_FOLDER_FPS, self._note)
