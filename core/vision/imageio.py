"""Reading images from files and bytes into 8-bit RGB arrays.

Everything downstream works on ``uint8`` RGB ``(H, W, 3)`` arrays.  This module is the only place that
knows about file formats, EXIF orientation, bit depths and alpha channels.
"""

from __future__ import annotations

import io
import logging
import warnings
from pathlib import Path

import numpy as np

from core.errors import ImageError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".pgm", ".ppm"})
# Refuse decompression bombs early; a 100-megapixel gate photo is already absurd.
MAX_PIXELS = 120_000_000


def is_image_path(path: Path) -> bool:
    """Return True if ``path`` has a suffix we try to read as an image."""
    return path.suffix.lower() in IMAGE_SUFFIXES


def to_rgb8(array: np.ndarray) -> np.ndarray:
    """Convert grayscale, RGBA, 16-bit or float images to contiguous ``uint8`` RGB.

    Parameters
    ----------
    array
        ``(H, W)``, ``(H, W, 1)``, ``(H, W, 3)`` or ``(H, W, 4)`` array, RGB(A) channel order.
    """
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.dtype == np.uint16:
        array = (array >> 8).astype(np.uint8)
    elif array.dtype in (np.float32, np.float64):
        scale = 255.0 if float(np.nanmax(array, initial=0.0)) <= 1.0 else 1.0
        array = np.clip(np.nan_to_num(array) * scale, 0, 255).astype(np.uint8)
    elif array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    elif array.dtype != np.uint8:
        array = np.clip(array, 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    elif array.ndim == 3 and array.shape[2] == 4:
        # Composite on white: transparent PNG exports of ID photos have a transparent background.
        rgb = array[:, :, :3].astype(np.float32)
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = (rgb * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    elif array.ndim != 3 or array.shape[2] != 3:
        raise ImageError(f"Unsupported image shape {array.shape}; expected a colour or grayscale picture.")
    return np.ascontiguousarray(array)


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, WebP, TIFF…) into ``uint8`` RGB, EXIF-upright.

    Raises
    ------
    ImageError
        If the bytes are empty, not an image, truncated or corrupt.
    """
    from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageError(f"{name}: the file is empty.")
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                opened.load()
                img: Image.Image = ImageOps.exif_transpose(opened) or opened
                if img.mode in ("I;16", "I;16B", "I;16L", "I"):
                    arr = np.asarray(img, dtype=np.uint32)
                    peak = max(int(arr.max(initial=0)), 1)
                    shift = max(peak.bit_length() - 8, 0)
                    return to_rgb8((arr >> shift).clip(0, 255).astype(np.uint8))
                if img.mode not in ("RGB", "RGBA", "L"):
                    img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
                return to_rgb8(np.asarray(img))
    except UnidentifiedImageError as exc:
        raise ImageError(f"{name}: not a picture FaceGate can read (JPEG, PNG, BMP, WebP, TIFF).") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(f"{name}: the picture is too large (over {MAX_PIXELS // 1_000_000} megapixels).") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError(f"{name}: the picture is truncated or corrupt ({exc}).") from exc


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file into ``uint8`` RGB, honouring EXIF orientation; works with non-ASCII paths.

    Raises
    ------
    ImageError
        If the file is missing, unreadable, not an image, truncated or corrupt.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ImageError(f"{path.name}: file not found ({path}).") from exc
    except IsADirectoryError as exc:
        raise ImageError(f"{path.name}: is a folder, not a picture.") from exc
    except OSError as exc:
        raise ImageError(f"{path.name}: cannot be read ({exc.strerror or exc}).") from exc
    return decode_image(data, path.name)


def downscale_to(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink ``image`` so its longer side is at most ``max_side``; return it and the scale used."""
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale >= 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale
