"""Drawing the demo scene: sprites (a photo's head and shoulders over a drawn torso), blending them
into a frame, and the plant-gate background."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core.errors import FaceError
from core.types import Box

# Face heights and layout are designed at 640×480 and scaled by min(w / 640, h / 480).
REFERENCE_SIZE = (640, 480)
# Head-and-shoulders crop around the detected face box, in face widths (sides) and heights (top/bottom).
CROP_SIDE, CROP_TOP, CROP_BOTTOM = 0.6, 0.6, 0.8
# The ellipse inscribed in the crop is opaque up to this normalised radius and fades out to 1.0; the
# face box corners sit at radius <= 0.68, so the fade never touches the face.
FEATHER_FROM = 0.78
# The drawn torso: neck base below the face top and half the shoulder width, in face heights / widths.
TORSO_TOP, TORSO_HALF = 1.12, 1.25
_TORSO_COLOURS = (
    (44, 52, 82),  # navy work jacket
    (58, 58, 62),  # charcoal
    (214, 204, 46),  # hi-vis yellow
    (232, 112, 34),  # hi-vis orange
    (42, 72, 54),  # dark green
    (92, 66, 46),  # brown
)
_HI_VIS = {2, 3}


@dataclass(frozen=True)
class _Sprite:
    """A pre-scaled head-and-shoulders cut-out, ready to blend."""

    rgb: np.ndarray  # (h, w, 3) uint8
    alpha: np.ndarray  # (h, w) float32 in [0, 1]
    inv_alpha: np.ndarray  # 1 - alpha, precomputed so a frame does no arithmetic on it
    face: tuple[float, float, float, float]  # detected face box in sprite pixels
    photo: str

    @property
    def face_center(self) -> tuple[float, float]:
        x, y, w, h = self.face
        return x + w / 2, y + h / 2


def _scale_of(size: tuple[int, int]) -> float:
    return min(size[0] / REFERENCE_SIZE[0], size[1] / REFERENCE_SIZE[1])


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    t = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def _make_sprite(
    name: str,
    image: np.ndarray,
    box: Box,
    face_h: float,
    face_y: float,
    frame_h: int,
    scale: float,
    colour: int,
) -> _Sprite:
    """Cut a head-and-shoulders sprite whose face is ``face_h`` pixels tall, with a torso below it.

    The torso reaches the bottom of the frame when the face centre is at ``face_y``.
    """
    import cv2

    x, y, w, h = (float(v) for v in box)
    ih, iw = image.shape[:2]
    if x >= iw or y >= ih or x + w <= 0 or y + h <= 0:
        raise FaceError(f"{name}: the face box {box} lies outside the {iw}×{ih} photo.")
    k = face_h / h
    resized = cv2.resize(
        image,
        (max(1, round(iw * k)), max(1, round(ih * k))),
        interpolation=cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC,
    )
    rh, rw = resized.shape[:2]
    kx, ky = rw / iw, rh / ih  # the exact factors after rounding the size
    fx, fy, fw, fh = x * kx, y * ky, w * kx, h * ky
    # The crop, in resized-photo pixels (integers so the face box maps exactly).
    cx0 = math.floor(fx - CROP_SIDE * fw)
    cy0 = math.floor(fy - CROP_TOP * fh)
    cx1 = math.ceil(fx + fw + CROP_SIDE * fw)
    cy1 = math.ceil(fy + fh + CROP_BOTTOM * fh)
    pad = max(0, -cx0, -cy0, cx1 - rw, cy1 - rh)
    padded = cv2.copyMakeBorder(resized, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else resized
    photo = padded[cy0 + pad: cy1 + pad, cx0 + pad: cx1 + pad].astype(np.float32)
    ph, pw = photo.shape[:2]
    # Face box relative to the crop.
    face_x, face_y0 = fx - cx0, fy - cy0

    # Photo alpha: a feathered ellipse inscribed in the crop, faded out where the crop left the photo.
    yy, xx = np.mgrid[0:ph, 0:pw].astype(np.float32)
    r = np.sqrt(((xx + 0.5 - pw / 2) / (pw / 2)) ** 2 + ((yy + 0.5 - ph / 2) / (ph / 2)) ** 2)
    a_photo = 1.0 - _smoothstep(FEATHER_FROM, 1.0, r)
    feather = max(2.0, 6.0 * scale)
    sx, sy = xx + cx0 + 0.5, yy + cy0 + 0.5  # pixel centres in resized-photo coordinates
    inside = np.minimum(np.minimum(sx, rw - sx), np.minimum(sy, rh - sy))
    a_photo *= _smoothstep(0.0, feather, inside)
    # Below the chin the photo's own clothes fade into the drawn jacket.
    chin = face_y0 + fh
    a_photo *= 1.0 - _smoothstep(chin + 0.25 * fh, chin + 0.75 * fh, yy + 0.5)

    # Canvas: wide enough for the torso, tall enough to reach the frame bottom (plus the walking bob).
    ref_w = 0.78 * face_h  # torso proportions follow the role's face size, not the photo's box
    torso_half = TORSO_HALF * 1.05 * ref_w
    centre_x = face_x + fw / 2
    left = math.floor(min(0.0, centre_x - torso_half - 2))
    right = math.ceil(max(float(pw), centre_x + torso_half + 2))
    face_centre_y = face_y0 + fh / 2
    bottom = math.ceil(max(float(ph), frame_h - face_y + face_centre_y + 8 * scale + 2))
    cw, ch = right - left, bottom
    ox = -left  # photo crop's x in the canvas
    centre_x += ox
    face_x += ox

    torso_rgb, torso_a = _torso(cw, ch, centre_x, face_y0, fh, ref_w, colour, image, box)
    under_a = torso_a
    a_full = np.zeros((ch, cw), np.float32)
    a_full[0:ph, ox: ox + pw] = a_photo
    photo_full = np.zeros((ch, cw, 3), np.float32)
    photo_full[0:ph, ox: ox + pw] = photo
    # "Photo over torso", un-premultiplied so the frame blend is a single weighted sum.
    alpha = a_full + under_a * (1.0 - a_full)
    premult = photo_full * a_full[..., None] + torso_rgb * (under_a * (1.0 - a_full))[..., None]
    rgb = np.where(alpha[..., None] > 1e-4, premult / np.maximum(alpha, 1e-4)[..., None], 0.0)
    rgb_u8 = np.clip(rgb + 0.5, 0, 255).astype(np.uint8)
    alpha = np.where(alpha < 1.0 / 512, 0.0, alpha).astype(np.float32)
    # Trim transparent margins so every frame blends as few pixels as possible.
    rows = np.flatnonzero(alpha.any(axis=1))
    cols = np.flatnonzero(alpha.any(axis=0))
    r0, c0 = int(rows[0]), int(cols[0])
    rgb_u8 = np.ascontiguousarray(rgb_u8[r0: rows[-1] + 1, c0: cols[-1] + 1])
    alpha = np.ascontiguousarray(alpha[r0: rows[-1] + 1, c0: cols[-1] + 1])
    return _Sprite(rgb_u8, alpha, np.ascontiguousarray(1.0 - alpha), (face_x - c0, face_y0 - r0, fw, fh), name)


def _torso(
    cw: int,
    ch: int,
    centre_x: float,
    face_top: float,
    face_h: float,
    ref_w: float,
    colour: int,
    image: np.ndarray,
    box: Box,
) -> tuple[np.ndarray, np.ndarray]:
    """A neck and a work jacket (or a hi-vis vest over one) below the face, as float RGB and alpha."""
    import cv2

    ss = 4  # supersampling for smooth edges
    cx = centre_x
    top = face_top + TORSO_TOP * face_h  # base of the neck
    half = TORSO_HALF * ref_w  # half the shoulder width
    neck_w = 0.42 * ref_w
    # Sloping shoulders, then slightly widening sides down to the bottom of the canvas.
    outline = np.array(
        [
            (cx - neck_w, top),
            (cx + neck_w, top),
            (cx + 0.85 * half, top + 0.12 * face_h),
            (cx + half, top + 0.35 * face_h),
            (cx + 1.05 * half, ch + 1.0),
            (cx - 1.05 * half, ch + 1.0),
            (cx - half, top + 0.35 * face_h),
            (cx - 0.85 * half, top + 0.12 * face_h),
        ]
    )
    mask = np.zeros((ch * ss, cw * ss), np.uint8)
    cv2.fillPoly(mask, [np.round(outline * ss).astype(np.int32)], 255, cv2.LINE_AA)
    neck = np.zeros_like(mask)
    cv2.rectangle(neck, (round((cx - 0.3 * ref_w) * ss), round((face_top + 0.75 * face_h) * ss)),
                  (round((cx + 0.3 * ref_w) * ss), round((top + 0.2 * face_h) * ss)), 255, -1)
    a_torso = cv2.resize(mask, (cw, ch), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    a_neck = cv2.resize(neck, (cw, ch), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    # Blurring and re-thresholding rounds the shoulders' corners.
    a_torso = np.clip((cv2.GaussianBlur(a_torso, (0, 0), 0.06 * face_h) - 0.375) * 8.0, 0.0, 1.0)

    # Skin tone for the neck: the median of the face's central part, a little shaded.
    x, y, w, h = box
    ih, iw = image.shape[:2]
    core = image[max(0, y + h // 3): min(ih, y + 2 * h // 3), max(0, x + w // 3): min(iw, x + 2 * w // 3)]
    skin = np.median(core.reshape(-1, 3), axis=0) * 0.75 if core.size else np.array([150.0, 115.0, 95.0])

    dx = (np.arange(cw, dtype=np.float32) + 0.5 - cx) / half
    shade_x = 0.65 + 0.35 * np.sqrt(np.clip(1.0 - 0.8 * dx * dx, 0.0, 1.0))  # a rounded body, lit from the front
    dy = (np.arange(ch, dtype=np.float32) + 0.5 - top) / max(face_h, 1.0)
    shade_y = np.clip(1.0 - 0.1 * dy, 0.7, 1.0)
    shade = shade_x[None, :, None] * shade_y[:, None, None]
    if colour in _HI_VIS:
        jacket = np.broadcast_to(np.asarray(_TORSO_COLOURS[1], np.float32), (ch, cw, 3)) * shade
        vest = np.abs(dx) < 0.62
        vest_rgb = np.asarray(_TORSO_COLOURS[colour], np.float32) * shade[:, vest]
        for band in (0.7, 1.15):  # reflective stripes
            rows = (dy >= band) & (dy < band + 0.12)
            vest_rgb[rows] = np.array([205.0, 208.0, 210.0], np.float32) * shade_x[vest][None, :, None]
        jacket[:, vest] = vest_rgb
    else:
        jacket = np.broadcast_to(np.asarray(_TORSO_COLOURS[colour], np.float32), (ch, cw, 3)) * shade
        jacket[:, np.abs(dx) < 0.02] *= 0.55  # the zip
    # A darker collar opening below the chin.
    collar = (np.abs(dx)[None, :] < 0.28 * np.clip(1.0 - dy[:, None] / 0.45, 0.0, 1.0)) & (dy[:, None] >= 0)
    jacket[collar] *= 0.55
    neck_rgb = np.broadcast_to(skin.astype(np.float32), (ch, cw, 3))
    # Jacket over neck.
    alpha = a_torso + a_neck * (1.0 - a_torso)
    premult = jacket * a_torso[..., None] + neck_rgb * (a_neck * (1.0 - a_torso))[..., None]
    rgb = np.where(alpha[..., None] > 1e-4, premult / np.maximum(alpha, 1e-4)[..., None], 0.0)
    return rgb.astype(np.float32), alpha


def _blend(frame: np.ndarray, sprite: _Sprite, x: int, y: int) -> None:
    """Alpha-blend ``sprite`` into ``frame`` with its top-left corner at ``(x, y)``, clipped."""
    import cv2

    fh, fw = frame.shape[:2]
    sh, sw = sprite.alpha.shape
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + sw, fw), min(y + sh, fh)
    if x0 >= x1 or y0 >= y1:
        return
    sl = (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    region = frame[y0:y1, x0:x1]
    region[...] = cv2.blendLinear(sprite.rgb[sl], region, sprite.alpha[sl], sprite.inv_alpha[sl])


# ------------------------------------------------------------------------------------------ background
def _draw_background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A plant gate seen from the guard's camera: wall, corridor opening, floor, gate frame, sign."""
    import cv2

    W, H = width, height
    s = _scale_of((W, H))
    img = np.zeros((H, W, 3), np.float32)
    ys = np.linspace(0.0, 1.0, H, dtype=np.float32)[:, None, None]
    horizon = 0.64
    wall = np.array([158, 163, 168], np.float32) * (1.0 - 0.18 * ys) + np.array([0, 2, 6], np.float32)
    img[:] = wall
    # Wall panels.
    for px in np.arange(0.06, 1.0, 0.11):
        c = round(px * W)
        img[: round(horizon * H), max(0, c - 1): c + 1] *= 0.88
    # Ceiling strip and lights.
    img[: round(0.05 * H)] = np.array([196, 198, 194], np.float32)
    for lx in (0.22, 0.5, 0.78):
        x0, x1 = round((lx - 0.07) * W), round((lx + 0.07) * W)
        img[round(0.012 * H): round(0.035 * H), x0:x1] = np.array([248, 248, 240], np.float32)
    # The corridor opening behind the gate: darker, with its own floor.
    ox0, ox1, oy0, oy1 = round(0.33 * W), round(0.67 * W), round(0.17 * H), round(horizon * H)
    depth = np.linspace(0.0, 1.0, oy1 - oy0, dtype=np.float32)[:, None, None]
    img[oy0:oy1, ox0:ox1] = np.array([92, 98, 106], np.float32) * (0.85 + 0.15 * depth)
    img[round(0.52 * H): oy1, ox0:ox1] = np.array([78, 76, 72], np.float32)
    cv2.rectangle(img, (ox0, oy0), (ox1, oy1), (70, 72, 76), max(1, round(3 * s)))
    # Floor with perspective joints towards a vanishing point.
    fy0 = round(horizon * H)
    fl = np.linspace(0.0, 1.0, H - fy0, dtype=np.float32)[:, None, None]
    img[fy0:] = np.array([112, 108, 102], np.float32) * (1.0 - 0.3 * fl)
    vx, vy = 0.5 * W, 0.40 * H
    for bx in np.linspace(-0.6, 1.6, 12):
        x_bottom = bx * W
        t = (fy0 - vy) / (H - vy)
        cv2.line(img, (round(vx + (x_bottom - vx) * t), fy0), (round(x_bottom), H), (88, 85, 80), max(1, round(s)),
                 cv2.LINE_AA)
    for fy in (0.70, 0.78, 0.89):
        cv2.line(img, (0, round(fy * H)), (W, round(fy * H)), (90, 87, 82), max(1, round(s)), cv2.LINE_AA)
    # Yellow/black safety stripe on the floor at the gate line.
    sy0, sy1 = round(0.80 * H), round(0.84 * H)
    xx = np.arange(W, dtype=np.float32)[None, :]
    yy = np.arange(sy0, sy1, dtype=np.float32)[:, None]
    stripes = ((xx + yy) // max(8.0, 16 * s)) % 2 == 0
    img[sy0:sy1][stripes] = np.array([222, 186, 30], np.float32)
    img[sy0:sy1][~stripes] = np.array([30, 30, 30], np.float32)
    # The gate frame: two steel posts and a beam with a sign.
    post = np.array([122, 128, 134], np.float32)
    for px0, px1 in ((0.07, 0.12), (0.88, 0.93)):
        x0, x1 = round(px0 * W), round(px1 * W)
        img[round(0.10 * H): round(0.92 * H), x0:x1] = post
        img[round(0.10 * H): round(0.92 * H), x0: x0 + max(1, round(2 * s))] = post * 1.25
        img[round(0.10 * H): round(0.92 * H), x1 - max(1, round(2 * s)): x1] = post * 0.7
    img[round(0.08 * H): round(0.13 * H), round(0.07 * W): round(0.93 * W)] = post * 0.95
    sx0, sx1, sy0, sy1 = round(0.36 * W), round(0.64 * W), round(0.085 * H), round(0.125 * H)
    img[sy0:sy1, sx0:sx1] = np.array([24, 96, 58], np.float32)
    # Badge reader on the right post.
    rx0, rx1 = round(0.895 * W), round(0.925 * W)
    img[round(0.50 * H): round(0.58 * H), rx0:rx1] = np.array([28, 30, 34], np.float32)
    led = (round(0.91 * W), round(0.515 * H))
    cv2.circle(img, led, max(1, round(2 * s)), (60, 230, 90), -1, cv2.LINE_AA)
    # Static sensor texture and a slight lens vignette.
    noise = rng.normal(0.0, 3.0, (H, W)).astype(np.float32)
    img += cv2.GaussianBlur(noise, (3, 3), 0)[..., None]
    yy2, xx2 = np.mgrid[0:H, 0:W].astype(np.float32)
    rr = ((xx2 - W / 2) / (W / 2)) ** 2 + ((yy2 - H / 2) / (H / 2)) ** 2
    img *= (1.0 - 0.12 * rr)[..., None]
    out = np.ascontiguousarray(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    font_scale = 0.42 * s
    text = "GATE 2  AUTHORISED STAFF"
    (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, 1)
    cv2.putText(out, text, ((sx0 + sx1 - tw) // 2, (sy0 + sy1 + th) // 2), cv2.FONT_HERSHEY_SIMPLEX,
                font_scale, (235, 240, 235), 1, cv2.LINE_AA)
    return out
