"""Image reading: formats, bit depths, EXIF orientation, non-ASCII paths, and bad files."""

from __future__ import annotations

import io
import shutil

import numpy as np
import pytest
from PIL import Image

from core.errors import ImageError
from core.vision.imageio import decode_image, downscale_to, read_image, to_rgb8


def _photo(seed):
    return sorted((seed.dataset / "val" / "madonna").iterdir())[0]


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "WEBP", "TIFF", "JPEG"])
def test_common_formats_read_as_rgb8(tmp_path, seed, fmt):
    src = Image.open(_photo(seed)).convert("RGB")
    path = tmp_path / f"face.{fmt.lower()}"
    src.save(path, format=fmt)
    image = read_image(path)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    assert image.shape[:2] == (src.height, src.width)


def test_grayscale_rgba_and_16bit_are_converted(tmp_path, seed):
    src = Image.open(_photo(seed)).convert("RGB")
    src.convert("L").save(tmp_path / "gray.png")
    rgba = src.convert("RGBA")
    rgba.putalpha(128)
    rgba.save(tmp_path / "rgba.png")
    arr16 = (np.asarray(src.convert("L"), dtype=np.uint16) * 257).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "deep.png")
    for name in ("gray.png", "rgba.png", "deep.png"):
        image = read_image(tmp_path / name)
        assert image.dtype == np.uint8 and image.shape == (src.height, src.width, 3), name
    deep = read_image(tmp_path / "deep.png")
    assert abs(int(deep.mean()) - int(np.asarray(src.convert("L")).mean())) <= 2
    assert to_rgb8(np.ones((4, 4), np.float32)).max() == 255


def test_exif_orientation_is_honoured(tmp_path, seed):
    src = Image.open(_photo(seed)).convert("RGB")
    # Store the pixels rotated and tell viewers (EXIF 6 = rotate 90° clockwise to display) to undo it.
    stored = src.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    image = read_image(tmp_path / "rotated.jpg")
    assert image.shape[:2] == (src.height, src.width)
    diff = np.abs(image.astype(int) - np.asarray(src, dtype=int)).mean()
    assert diff < 8


def test_non_ascii_path(tmp_path, seed):
    folder = tmp_path / "Ångström_Ελλάδα"
    folder.mkdir()
    target = folder / "张伟_José.jpg"
    shutil.copy(_photo(seed), target)
    assert read_image(target).shape[2] == 3


@pytest.mark.parametrize(
    "content,needle",
    [
        (b"", "empty"),
        (b"this is not a picture at all", "not a picture"),
        (bytes(range(256)) * 40, "not a picture"),
    ],
)
def test_bad_bytes_give_clear_errors(tmp_path, content, needle):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=needle):
        read_image(path)


def test_truncated_jpeg(tmp_path, seed):
    data = _photo(seed).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="truncated or corrupt"):
        read_image(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="not found"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="folder"):
        read_image(tmp_path)


def test_decompression_bomb_is_refused():
    buf = io.BytesIO()
    Image.new("L", (12000, 11000)).save(buf, format="PNG")
    with pytest.raises(ImageError, match="too large"):
        decode_image(buf.getvalue(), "huge.png")


def test_downscale_keeps_aspect():
    image = np.zeros((3000, 4000, 3), np.uint8)
    small, scale = downscale_to(image, 1000)
    assert small.shape == (750, 1000, 3) and scale == pytest.approx(0.25)
    same, one = downscale_to(small, 2000)
    assert same is small and one == 1.0
