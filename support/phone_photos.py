"""A second renderer of phone photos of handwritten digits, written apart from the project's own
(`dlcourse`'s photo renderer, which the served pipeline was tuned on): one kind of photo at a time, as people
take them, so that bench/digit_sources.py can measure the pipeline on pictures it was not designed around.

How a photo is made here: the digit's ink (an MNIST-style grey digit, white on black) becomes strokes of an
even width along its skeleton, as a pen, felt-tip, marker or chalk leaves them; they are drawn onto a surface
(a sheet, index card or sticky note with its own texture and rulings, a blackboard, a whiteboard); a sheet
is turned and put in perspective on a desk (wood or plain, darker or lighter) with the shadow it casts; then
the scene gets uneven light (a gradient, vignetting, a colour cast, sometimes the shadow of the phone or a
glare), the camera's blur and sensor noise, and JPEG. Every choice comes from the `rng` passed in, so a
seed makes the same photos again.

Each kind (KINDS) is a function (digits, rng) -> RGB uint8 array. Digit kinds take one or two digits;
the non-digit kinds (a cat, an outdoor scene, a page of printed text) take none and show real photos that
scikit-image ships, or printed text on a sheet.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage

SIZES = ((1280, 960), (960, 1280), (1440, 1080), (1080, 1440), (1024, 768), (768, 1024))  # phone photos, scaled
PAPER_WHITE = ((246, 244, 238), (240, 240, 236), (250, 248, 240), (236, 236, 232))
STICKY_COLOURS = {"yellow": (250, 236, 110), "pink": (250, 160, 190), "blue": (140, 200, 240),
                  "green": (170, 230, 140), "orange": (252, 180, 90)}
DARK_DESKS = ((70, 45, 30), (45, 45, 50), (95, 62, 40), (32, 32, 34), (60, 70, 80))
LIGHT_DESKS = ((205, 190, 165), (190, 190, 185), (222, 214, 200), (176, 152, 118), (200, 205, 210))
PEN_INKS = ((25, 25, 30), (30, 45, 130), (20, 35, 95), (45, 45, 60))
MARKER_INKS = ((20, 20, 25), (25, 50, 160), (170, 30, 35), (25, 120, 60))
ORIENTATION = 0x0112  # the EXIF tag
SKIN = ((232, 190, 160), (210, 160, 125), (170, 120, 90), (120, 80, 55), (240, 200, 175))


# ---------------------------------------------------------------- building blocks


def smooth_noise(shape: tuple[int, int], cells: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random field of about unit spread, `cells` bumps across the longer side."""
    h, w = shape
    ch, cw = max(2, round(cells * h / max(h, w))), max(2, round(cells * w / max(h, w)))
    small = rng.standard_normal((ch, cw)).astype(np.float32)
    return np.asarray(Image.fromarray(small, "F").resize((w, h), Image.BICUBIC))


def strokes(digit: np.ndarray, height: int, width: float, rng: np.random.Generator,
            wobble: float = 0.2) -> np.ndarray:
    """The digit's ink as strokes of about `width` px (varying by `wobble`) along its skeleton, `height` px
    tall: a float alpha (h, w) in 0..1, framed with a border of the stroke's width."""
    from skimage.morphology import skeletonize

    ys, xs = np.nonzero(digit > 0)
    crop = digit[ys.min():ys.max() + 1, xs.min():xs.max() + 1].astype(np.float32) / 255
    wide = max(1, round(crop.shape[1] * height / crop.shape[0]))
    big = np.asarray(Image.fromarray(crop, "F").resize((wide, height), Image.BICUBIC))
    big = np.pad(big, int(width) + 3)
    big = ndimage.gaussian_filter(big, 0.03 * height)  # MNIST's jagged outline would grow spurs on the skeleton
    skeleton = skeletonize(big > 0.45 * big.max())
    if not skeleton.any():
        skeleton = big == big.max()
    distance = ndimage.distance_transform_edt(~skeleton)
    local_width = width * (1 + wobble * smooth_noise(big.shape, 6, rng))
    return np.clip(local_width / 2 - distance + 0.5, 0, 1).astype(np.float32)


def paste(canvas: np.ndarray, alpha: np.ndarray, top: int, left: int) -> None:
    """Add `alpha` into the float canvas at (top, left), clipped to the canvas (in place)."""
    h, w = alpha.shape
    t, l = max(top, 0), max(left, 0)
    b, r = min(top + h, canvas.shape[0]), min(left + w, canvas.shape[1])
    if b > t and r > l:
        canvas[t:b, l:r] = np.maximum(canvas[t:b, l:r], alpha[t - top:b - top, l - left:r - left])


def lay(surface: np.ndarray, alpha: np.ndarray, colour) -> np.ndarray:
    """Ink of `colour` at `alpha` over a float RGB surface."""
    a = alpha[..., None]
    return surface * (1 - a) + np.asarray(colour, np.float32) * a


def textured(shape: tuple[int, int], colour, rng: np.random.Generator, grain: float = 3.0,
             blotch: float = 0.02) -> np.ndarray:
    """A float RGB surface of `colour` with low-frequency unevenness and fine grain."""
    h, w = shape
    shade = 1 + blotch * smooth_noise(shape, 5, rng)
    surface = np.asarray(colour, np.float32)[None, None, :] * shade[..., None]
    return surface + grain * rng.standard_normal((h, w, 1), dtype=np.float32)


def wood(shape: tuple[int, int], colour, rng: np.random.Generator) -> np.ndarray:
    """A desk top: wood grain (streaks along one direction, bent by a smooth field) or a plain laminate."""
    h, w = shape
    surface = textured(shape, colour, rng, grain=2.5, blotch=0.06)
    if rng.random() < 0.6:  # grain: an irregular profile across the boards, bent a little along them
        angle = rng.uniform(0, np.pi)
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        across = x * np.cos(angle) + y * np.sin(angle)
        across += rng.uniform(0.005, 0.02) * max(h, w) * smooth_noise(shape, 3, rng)
        span = int(np.abs(across).max()) + 2
        profile = ndimage.gaussian_filter1d(rng.standard_normal(2 * span), rng.uniform(1.5, 4))
        profile /= profile.std()
        grain = np.interp(across, np.arange(-span, span), profile)
        surface *= (1 + rng.uniform(0.03, 0.07) * grain)[..., None]
    return surface


def perspective_coefficients(source: np.ndarray, target: np.ndarray) -> list[float]:
    """PIL's PERSPECTIVE coefficients mapping each `target` corner (where it lands) back to its `source` one."""
    rows = []
    for (u, v), (x, y) in zip(source, target):
        rows.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        rows.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    return list(np.linalg.solve(np.asarray(rows, float), source.reshape(-1).astype(float)))


def warp(layer: np.ndarray, corners: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A flat layer (h, w) or (h, w, 3) put on the scene (size = (W, H)) with its corners at `corners`
    (top-left, top-right, bottom-right, bottom-left, as x, y)."""
    h, w = layer.shape[:2]
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], float)
    coefficients = perspective_coefficients(source, corners)
    if layer.ndim == 2:
        image = Image.fromarray(layer.astype(np.float32), "F")
        return np.asarray(image.transform(size, Image.PERSPECTIVE, coefficients, Image.BILINEAR))
    return np.stack([warp(layer[..., c], corners, size) for c in range(3)], axis=-1)


def turned_corners(centre: tuple[float, float], wide: float, high: float, angle: float, skew: float,
                   rng: np.random.Generator) -> np.ndarray:
    """Corners of a wide x high rectangle turned by `angle` degrees about `centre`, each nudged by up to
    `skew` of its size (the camera not quite square to it)."""
    half = np.array([[-wide, -high], [wide, -high], [wide, high], [-wide, high]], float) / 2
    turn = np.deg2rad(angle)
    rotation = np.array([[np.cos(turn), -np.sin(turn)], [np.sin(turn), np.cos(turn)]])
    nudge = rng.uniform(-skew, skew, (4, 2)) * [wide, high]
    return (half + nudge) @ rotation.T + np.asarray(centre)


def in_view(corners: np.ndarray, W: int, H: int, border: float = 0.03) -> np.ndarray:
    """The corners shrunk about their centre, where needed, so the whole shape is in the W x H frame with a
    `border` (a share of the frame) all round."""
    centre = corners.mean(axis=0)
    low, high = np.array([W, H]) * border, np.array([W, H]) * (1 - border)
    reach = np.abs(corners - centre).max(axis=0)
    room = np.minimum(centre - low, high - centre)
    return centre + (corners - centre) * min(1.0, *(room / reach))


def cast_shadow(scene: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Darken the scene where an object above it (its `mask`) blocks a light to one side."""
    side = min(mask.shape)
    offset = rng.uniform(0.004, 0.02, 2) * side * rng.choice([-1, 1], 2)
    shadow = ndimage.shift(mask, offset[::-1], order=1)
    shadow = ndimage.gaussian_filter(shadow, rng.uniform(0.004, 0.015) * side)
    return scene * (1 - rng.uniform(0.3, 0.55) * shadow)[..., None]


def light(scene: np.ndarray, rng: np.random.Generator, phone_shadow: float = 0.25) -> np.ndarray:
    """Uneven light over the scene: a gradient, vignetting, a colour cast, an exposure, and sometimes the
    soft shadow of the phone and hand holding it."""
    h, w = scene.shape[:2]
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    y, x = y / h - 0.5, x / w - 0.5
    gradient = 1 + rng.uniform(-0.35, 0.35) * x + rng.uniform(-0.35, 0.35) * y
    vignette = 1 - rng.uniform(0.05, 0.3) * (x ** 2 + y ** 2) * 2
    field = gradient * vignette * rng.uniform(0.8, 1.08)
    if rng.random() < phone_shadow:
        cy, cx = rng.uniform(-0.6, 0.6, 2)
        blob = np.exp(-(((x - cx) / rng.uniform(0.2, 0.4)) ** 2 + ((y - cy) / rng.uniform(0.2, 0.4)) ** 2))
        field *= 1 - rng.uniform(0.15, 0.35) * blob
    cast = np.array([1, 1, 1], np.float32) + rng.uniform(-0.035, 0.035, 3).astype(np.float32)
    return scene * field[..., None] * cast


def camera(scene: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The phone's optics and sensor: a little defocus, noise that grows in the dark, the phone's
    sharpening, then 8 bits."""
    side = min(scene.shape[:2])
    blur = rng.uniform(0.3, 1.0) * side / 1000
    scene = ndimage.gaussian_filter(scene, (blur, blur, 0))
    noise = rng.standard_normal(scene.shape[:2] + (1,), dtype=np.float32)
    colour_noise = 0.5 * rng.standard_normal(scene.shape, dtype=np.float32)
    level = rng.uniform(1.5, 5.0) * (1.6 - np.clip(scene, 0, 255) / 255)
    scene = scene + level * (noise + colour_noise)
    halo = rng.uniform(1.0, 2.0) * side / 1000  # phones sharpen what they save: halos along every edge
    scene = scene + rng.uniform(0.3, 0.8) * (scene - ndimage.gaussian_filter(scene, (halo, halo, 0)))
    return np.clip(scene, 0, 255).astype(np.uint8)


def full_size(photo: np.ndarray, rng: np.random.Generator, share: float = 0.25) -> np.ndarray:
    """A `share` of photos as a phone saves them, 4032x3024 (12 MP) either way up; the others as rendered
    (rendering every scene at 12 MP would take seconds a photo)."""
    if rng.random() >= share:
        return photo
    size = (4032, 3024) if photo.shape[1] > photo.shape[0] else (3024, 4032)
    return np.asarray(Image.fromarray(photo).resize(size, Image.BICUBIC))


def jpeg(photo: np.ndarray, rng: np.random.Generator) -> bytes:
    """The file a phone would send: JPEG of quality 70-94; a quarter of them stored as the sensor saw them,
    turned a quarter, with the EXIF orientation that turns them back (6: turn 90° clockwise to show)."""
    buffer = io.BytesIO()
    quality = int(rng.integers(70, 95))
    if rng.random() < 0.25:
        exif = Image.Exif()
        exif[ORIENTATION] = 6
        Image.fromarray(np.rot90(photo).copy()).save(buffer, format="JPEG", quality=quality, exif=exif)
    else:
        Image.fromarray(photo).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def pen(rng: np.random.Generator, height: float) -> tuple[float, tuple, bool]:
    """A writing tool: (stroke width in px for a digit `height` px tall, ink colour, grainy): a ballpoint,
    a felt-tip or a pencil."""
    tool = rng.choice(3, p=[0.5, 0.35, 0.15])
    if tool == 0:
        return rng.uniform(0.03, 0.06) * height, PEN_INKS[rng.integers(len(PEN_INKS))], False
    if tool == 1:
        return rng.uniform(0.07, 0.12) * height, MARKER_INKS[rng.integers(len(MARKER_INKS))], False
    return rng.uniform(0.03, 0.05) * height, (70, 70, 78), True


# ---------------------------------------------------------------- surfaces with digits


def write(surface: np.ndarray, digits: list[np.ndarray], heights: list[int], centre: tuple[float, float],
          rng: np.random.Generator, tool: tuple[float, tuple, bool] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Write the digits side by side, centred at `centre` (x, y) of the surface, each `heights[i]` px tall
    and with the same tool, smaller where they would not fit in 80% of the surface's width; returns the
    surface and where the strokes lie (their alpha before pressure and grain)."""
    width, colour, grainy = tool or pen(rng, max(heights))
    for _ in range(2):
        marks = [strokes(digit, height, width, rng) for digit, height in zip(digits, heights)]
        gap = int(0.15 * max(heights))
        total = sum(mark.shape[1] for mark in marks) + gap * (len(marks) - 1)
        fit = 0.8 * surface.shape[1] / total
        if fit >= 1:
            break
        heights, width = [int(height * fit) for height in heights], width * fit
    ink = np.zeros(surface.shape[:2], np.float32)
    left = int(centre[0] - total / 2)
    for mark in marks:
        top = int(centre[1] - mark.shape[0] / 2 + rng.uniform(-0.05, 0.05) * mark.shape[0])
        paste(ink, mark, top, left)
        left += mark.shape[1] + gap
    alpha = ink * np.clip(0.85 + 0.15 * smooth_noise(ink.shape, 8, rng), 0.6, 1)  # pressure
    if grainy:  # graphite: fainter, and it catches on the paper's fibres
        grain = ndimage.gaussian_filter(rng.random(ink.shape, dtype=np.float32), 0.7)
        alpha *= np.clip((grain - 0.2) * 3, 0.5, 1) * rng.uniform(0.7, 0.9)
    return lay(surface, alpha, colour), ink


def rulings(surface: np.ndarray, rng: np.random.Generator, card: bool) -> np.ndarray:
    """Faint blue lines across the surface, or squares on a third of the sheets (an index card adds its
    red heading line)."""
    h, w = surface.shape[:2]
    lines = np.zeros((h, w), np.float32)
    spacing = rng.uniform(0.07, 0.1) * h if card else rng.uniform(0.025, 0.04) * h
    start = 0.22 * h if card else rng.uniform(0.05, 0.1) * h
    thickness = max(1, round(h / 400))
    for y in np.arange(start, h, spacing):
        lines[int(y):int(y) + thickness] = rng.uniform(0.35, 0.6)
    if not card and rng.random() < 0.33:
        spacing = rng.uniform(0.015, 0.03) * h
        lines[:] = 0
        for at in np.arange(rng.uniform(0, spacing), max(h, w), spacing):
            lines[int(at):int(at) + thickness] = lines[:, int(at):int(at) + thickness] = rng.uniform(0.3, 0.5)
    surface = lay(surface, lines, (120, 160, 215))
    if card:
        heading = np.zeros((h, w), np.float32)
        y = int(start - spacing)
        heading[y:y + thickness + 1] = 0.6
        surface = lay(surface, heading, (220, 90, 100))
    return surface


def paper_on_desk(digits: list[np.ndarray], rng: np.random.Generator, paper: str, desk: str) -> np.ndarray:
    """A sheet, an index card or a sticky note with the digits on it, wholly in view and a little turned,
    on a desk, with its shadow, lit unevenly; RGB uint8. For two digits the first is written larger."""
    W, H = SIZES[rng.integers(len(SIZES))]
    side = min(W, H)
    if paper == "sheet":
        high = rng.uniform(0.6, 0.88) * H
        wide, colour = high / 1.414, PAPER_WHITE[rng.integers(len(PAPER_WHITE))]
        digit_share = rng.uniform(0.12, 0.4)
    elif paper == "card":
        wide = rng.uniform(0.55, 0.85) * side * 1.2
        high, colour = wide * 0.6, PAPER_WHITE[rng.integers(len(PAPER_WHITE))]
        digit_share = rng.uniform(0.35, 0.6)
    else:
        wide = high = rng.uniform(0.38, 0.72) * side
        colour = tuple(STICKY_COLOURS.values())[rng.integers(len(STICKY_COLOURS))]
        digit_share = rng.uniform(0.4, 0.7)
    surface = textured((int(high), int(wide)), colour, rng, grain=2.0, blotch=0.015)
    if paper == "card" or (paper == "sheet" and rng.random() < 0.4):
        surface = rulings(surface, rng, card=paper == "card")
    height = int(digit_share * high)
    heights = [height] + [int(height * rng.uniform(0.5, 0.7)) for _ in digits[1:]]
    order = list(range(len(digits)))
    if rng.random() < 0.5:
        order.reverse()  # the prominent digit written first or last
    centre = (wide / 2 + rng.uniform(-0.06, 0.06) * wide, high / 2 + rng.uniform(-0.06, 0.06) * high)
    if digits:
        surface, _ = write(surface, [digits[i] for i in order], [heights[i] for i in order], centre, rng)

    desk_colour = (DARK_DESKS if desk == "dark" else LIGHT_DESKS)
    scene = wood((H, W), desk_colour[rng.integers(len(desk_colour))], rng)
    centre_scene = (W / 2 + rng.uniform(-0.05, 0.05) * W, H / 2 + rng.uniform(-0.05, 0.05) * H)
    corners = in_view(turned_corners(centre_scene, wide, high, rng.uniform(-12, 12), 0.03, rng), W, H)
    mask = warp(np.ones((int(high), int(wide)), np.float32), corners, (W, H))
    scene = cast_shadow(scene, mask, rng)
    flat = warp(surface, corners, (W, H))
    scene = scene * (1 - mask[..., None]) + flat * mask[..., None]
    if paper == "sticky":  # the glued strip at the top sits flat, the rest curls up: darker towards the bottom
        curl = warp(np.repeat(np.linspace(0, 1, int(high), dtype=np.float32)[:, None] ** 2, int(wide), 1),
                    corners, (W, H))
        scene *= (1 - rng.uniform(0.03, 0.12) * curl * mask)[..., None]
    return full_size(camera(light(scene, rng), rng), rng)


def close_up(digit: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A sheet filling the frame with one digit on it, lit and photographed: (RGB uint8, ink alpha)."""
    W, H = SIZES[rng.integers(len(SIZES))]
    W, H = W // 2, H // 2  # a close-up, cropped afterwards: smaller frames keep rendering quick
    surface = textured((H, W), PAPER_WHITE[rng.integers(len(PAPER_WHITE))], rng)
    if rng.random() < 0.3:
        surface = rulings(surface, rng, card=False)
    height = int(rng.uniform(0.45, 0.7) * H)
    centre = (W / 2 + rng.uniform(-0.1, 0.1) * W, H / 2 + rng.uniform(-0.1, 0.1) * H)
    surface, ink = write(surface, [digit], [height], centre, rng)
    return camera(light(surface, rng, phone_shadow=0.15), rng), ink


def tight_crop(digit: np.ndarray, rng: np.random.Generator, every_edge: bool) -> np.ndarray:
    """A close-up cropped to the ink: touching every edge, or touching one edge with margin elsewhere."""
    photo, ink = close_up(digit, rng)
    ys, xs = np.nonzero(ink > 0.5)
    top, bottom, left, right = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    if not every_edge:
        size = max(bottom - top, right - left)
        margins = [int(rng.uniform(0.1, 0.4) * size) for _ in range(4)]
        margins[rng.integers(4)] = 0  # the edge the ink touches
        top, left = max(0, top - margins[0]), max(0, left - margins[1])
        bottom, right = min(photo.shape[0], bottom + margins[2]), min(photo.shape[1], right + margins[3])
    return photo[top:bottom, left:right]


def chalkboard(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Chalk on a green or black board: grainy, broken strokes, smudges of old chalk, sometimes its frame."""
    W, H = SIZES[rng.integers(len(SIZES))]
    board = ((40, 62, 50), (34, 38, 40), (30, 50, 45), (50, 55, 52))[rng.integers(4)]
    scene = textured((H, W), board, rng, grain=3.0, blotch=0.05)
    haze = np.clip(smooth_noise((H, W), 7, rng), 0, None) * rng.uniform(0.05, 0.15)
    scene = lay(scene, haze, (200, 205, 200))  # chalk dust left by the eraser
    height = int(rng.uniform(0.3, 0.6) * H)
    width = rng.uniform(0.06, 0.1) * height
    mark = strokes(digit, height, width, rng, wobble=0.3)
    ink = np.zeros((H, W), np.float32)
    paste(ink, mark, int(H / 2 - mark.shape[0] / 2 + rng.uniform(-0.1, 0.1) * H),
          int(W / 2 - mark.shape[1] / 2 + rng.uniform(-0.1, 0.1) * W))
    grain = ndimage.gaussian_filter(rng.random((H, W), dtype=np.float32), 0.8)
    grain = np.clip((grain - 0.35) * 6, 0, 1)  # chalk catches on the board's bumps and skips the hollows
    chalk = ((238, 238, 228), (240, 236, 200), (235, 215, 220))[rng.choice(3, p=[0.8, 0.1, 0.1])]
    scene = lay(scene, ink * grain * rng.uniform(0.7, 0.95), chalk)
    if rng.random() < 0.5:  # the board's wooden or aluminium frame along one edge
        band = int(rng.uniform(0.03, 0.08) * min(W, H))
        frame = ((120, 85, 50), (170, 170, 175))[rng.integers(2)]
        edge = rng.integers(4)
        region = (slice(0, band), slice(None)) if edge == 0 else (slice(H - band, H), slice(None)) if edge == 1 \
            else (slice(None), slice(0, band)) if edge == 2 else (slice(None), slice(W - band, W))
        scene[region] = textured(scene[region].shape[:2], frame, rng, grain=4, blotch=0.08)
    return camera(light(scene, rng, phone_shadow=0.1), rng)


def whiteboard(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Marker on a whiteboard: ghosts of wiped writing, an aluminium frame sometimes, and the glare of a
    ceiling light or window (a bright washed-out patch, often near or over the digit)."""
    W, H = SIZES[rng.integers(len(SIZES))]
    scene = textured((H, W), (232, 236, 238), rng, grain=2.0, blotch=0.02)
    ghosts = np.clip(smooth_noise((H, W), 12, rng) - 0.8, 0, None) * 0.15
    scene = lay(scene, ghosts, (150, 155, 165))
    height = int(rng.uniform(0.3, 0.6) * H)
    centre = (W / 2 + rng.uniform(-0.12, 0.12) * W, H / 2 + rng.uniform(-0.12, 0.12) * H)
    tool = (rng.uniform(0.07, 0.12) * height, MARKER_INKS[rng.integers(len(MARKER_INKS))], False)
    scene, ink = write(scene, [digit], [height], centre, rng, tool)
    if rng.random() < 0.5:  # the board's aluminium frame and the wall beyond it, at the left or right
        band = int(rng.uniform(0.02, 0.05) * min(W, H))
        wall, frame = (slice(0, band), slice(band, 2 * band)) if rng.random() < 0.5 else \
            (slice(W - band, W), slice(W - 2 * band, W - band))
        scene[:, wall] = textured((H, band), (120, 110, 100), rng)
        scene[:, frame] = textured((H, band), (175, 178, 182), rng, grain=3)
    scene = light(scene, rng, phone_shadow=0.15)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    for _ in range(rng.integers(1, 3)):
        gx, gy = centre[0] + rng.normal(0, 0.2) * W, centre[1] + rng.normal(0, 0.2) * H
        rx, ry = rng.uniform(0.06, 0.22) * W, rng.uniform(0.04, 0.15) * H
        glare = np.exp(-(((x - gx) / rx) ** 2 + ((y - gy) / ry) ** 2) ** rng.uniform(0.8, 1.5))
        # the glossy board mirrors the light; the matte marker on it much less, so it fades but stays
        gloss = rng.uniform(0.5, 0.9) * (1 - rng.uniform(0.5, 0.7) * ink)
        scene = scene + (glare * gloss)[..., None] * (280 - scene)
    return camera(scene, rng)


def finger_at_edge(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A sheet with a digit, and a finger (or a pen) coming in from the picture's edge, out of focus."""
    W, H = SIZES[rng.integers(len(SIZES))]
    W, H = W // 2, H // 2
    scene = textured((H, W), PAPER_WHITE[rng.integers(len(PAPER_WHITE))], rng)
    height = int(rng.uniform(0.35, 0.55) * H)
    scene, ink = write(scene, [digit], [height], (W / 2, H / 2), rng)
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    edge = rng.integers(4)  # the object comes in from the top, bottom, left or right
    along = rng.uniform(0.1, 0.9)
    finger = rng.random() < 0.7
    radius = (rng.uniform(0.08, 0.13) if finger else rng.uniform(0.015, 0.03)) * min(W, H)
    ys, xs = np.nonzero(ink > 0.05)
    free = (ys.min(), H - ys.max(), xs.min(), W - xs.max())[edge]  # between that edge and the digit
    reach = max(rng.uniform(0.4, 0.85) * free - radius, 0.5 * radius)  # it holds the page, not over the digit
    tip = {0: (along * W, reach), 1: (along * W, H - reach), 2: (reach, along * H), 3: (W - reach, along * H)}[edge]
    out = {0: (0, -1), 1: (0, 1), 2: (-1, 0), 3: (1, 0)}[edge]
    lean = rng.uniform(-0.5, 0.5)
    direction = np.array([out[0] + (lean if out[0] == 0 else 0), out[1] + (lean if out[1] == 0 else 0)])
    direction /= np.linalg.norm(direction)
    dx, dy = x - tip[0], y - tip[1]
    t = np.clip(dx * direction[0] + dy * direction[1], 0, None)  # distance along the object, outwards
    across = np.abs(dx * direction[1] - dy * direction[0])
    distance = np.hypot(np.clip(dx * direction[0] + dy * direction[1], None, 0), across)
    shape = np.clip(radius - np.where(t > 0, across, distance) + 0.5, 0, 1)
    shadow_shift = rng.uniform(0.02, 0.05) * min(W, H)
    scene *= (1 - 0.4 * ndimage.gaussian_filter(ndimage.shift(shape, (shadow_shift, shadow_shift), order=1),
                                                shadow_shift / 2))[..., None]
    if finger:
        colour = np.array(SKIN[rng.integers(len(SKIN))], np.float32)
        roundness = np.sqrt(np.clip(1 - (across / radius) ** 2, 0, 1))
        body = colour * (0.6 + 0.45 * roundness)[..., None]
        nail = np.clip(1 - np.hypot((t - 0.6 * radius) / (0.7 * radius), across / (0.6 * radius)), 0, 1)
        body = lay(body, np.clip(nail * 3, 0, 0.6), np.minimum(colour + 30, 255))
    else:
        colour = np.array(((30, 60, 150), (25, 25, 30), (180, 40, 40), (40, 130, 70))[rng.integers(4)], np.float32)
        body = colour * (0.7 + 0.5 * np.clip(1 - across / radius, 0, 1))[..., None]
    shape = ndimage.gaussian_filter(shape, rng.uniform(1.5, 4))  # nearer than the page: out of focus
    scene = scene * (1 - shape[..., None]) + ndimage.gaussian_filter(body, (2, 2, 0)) * shape[..., None]
    return camera(light(scene, rng, phone_shadow=0.1), rng)


# ---------------------------------------------------------------- pictures without a digit


def real_photo(name: str, rng: np.random.Generator) -> np.ndarray:
    """A real photo that scikit-image ships, re-taken as a phone would: a crop, a small turn, other light."""
    import skimage.data

    image = np.asarray(getattr(skimage.data, name)())
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    h, w = image.shape[:2]
    share = rng.uniform(0.7, 1.0)
    ch, cw = int(h * share), int(w * share)
    top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    picture = Image.fromarray(image[top:top + ch, left:left + cw]).rotate(rng.uniform(-4, 4), Image.BILINEAR,
                                                                         expand=False, fillcolor=(0, 0, 0))
    scale = rng.uniform(1.5, 2.5)
    picture = picture.resize((int(cw * scale), int(ch * scale)), Image.BICUBIC)
    edge = int(0.03 * min(picture.size))  # the black corners a turn leaves are cropped away
    picture = picture.crop((edge, edge, picture.size[0] - edge, picture.size[1] - edge))
    return camera(light(np.asarray(picture, np.float32), rng, phone_shadow=0.1), rng)


WORDS = ("the of and a to in is you that it he was for on are as with his they at be this have from or one "
         "had by word but not what all were we when your can said there use an each which she do how their if "
         "will up other about out many then them these so some her would make like him into time has look two "
         "more write go see way could people my than first water been call who oil its now find long down day").split()


def printed_page(rng: np.random.Generator) -> np.ndarray:
    """A sheet of printed text on a desk: lines of words in a plain font, paragraphs, a margin."""
    W, H = SIZES[rng.integers(len(SIZES))]
    high = rng.uniform(0.75, 0.92) * H
    wide = high / 1.414
    page = Image.new("L", (int(wide), int(high)), 255)
    draw = ImageDraw.Draw(page)
    size = int(rng.uniform(0.018, 0.03) * high)
    font = ImageFont.load_default(size=size)
    margin = int(0.1 * wide)
    y = margin
    while y < high - margin - size:
        line, x = [], margin
        while True:
            word = WORDS[rng.integers(len(WORDS))]
            width = draw.textlength(word + " ", font=font)
            if x + width > wide - margin:
                break
            line.append(word)
            x += width
        if rng.random() < 0.12:
            line = line[: rng.integers(1, max(2, len(line)))]  # a paragraph's last line
        draw.text((margin, y), " ".join(line), fill=20, font=font)
        y += int(size * (1.6 if rng.random() > 0.12 else 2.8))
    ink = 1 - np.asarray(page, np.float32) / 255
    surface = lay(textured(ink.shape, PAPER_WHITE[rng.integers(len(PAPER_WHITE))], rng), ink, (25, 25, 30))
    desk = (DARK_DESKS + LIGHT_DESKS)[rng.integers(len(DARK_DESKS) + len(LIGHT_DESKS))]
    scene = wood((H, W), desk, rng)
    corners = in_view(turned_corners((W / 2, H / 2), wide, high, rng.uniform(-6, 6), 0.02, rng), W, H)
    mask = warp(np.ones(ink.shape, np.float32), corners, (W, H))
    scene = cast_shadow(scene, mask, rng)
    scene = scene * (1 - mask[..., None]) + warp(surface, corners, (W, H)) * mask[..., None]
    return full_size(camera(light(scene, rng), rng), rng)


# ---------------------------------------------------------------- the kinds


@dataclass(frozen=True)
class Kind:
    """One kind of photo: how many digits it shows (0 for none; of two, the first is the answer) and how
    to render it from those digits. docs/digits.md says what each looks like."""
    digits: int
    render: Callable[[list[np.ndarray], np.random.Generator], np.ndarray]


def on_desk(paper: str) -> Callable[[list[np.ndarray], np.random.Generator], np.ndarray]:
    """A paper of that kind on a dark or light desk, at random."""
    return lambda digits, rng: paper_on_desk(digits, rng, paper, str(rng.choice(["dark", "light"])))


KINDS: dict[str, Kind] = {
    "crop to the ink, every edge": Kind(1, lambda d, rng: tight_crop(d[0], rng, every_edge=True)),
    "crop to the ink, one edge": Kind(1, lambda d, rng: tight_crop(d[0], rng, every_edge=False)),
    "sheet on a dark desk": Kind(1, lambda d, rng: paper_on_desk(d, rng, "sheet", "dark")),
    "sheet on a light desk": Kind(1, lambda d, rng: paper_on_desk(d, rng, "sheet", "light")),
    "index card on a desk": Kind(1, on_desk("card")),
    "sticky note on a desk": Kind(1, on_desk("sticky")),
    "chalk on a blackboard": Kind(1, lambda d, rng: chalkboard(d[0], rng)),
    "marker on a whiteboard, glare": Kind(1, lambda d, rng: whiteboard(d[0], rng)),
    "finger or pen at the edge": Kind(1, lambda d, rng: finger_at_edge(d[0], rng)),
    "two digits on a sticky note": Kind(2, on_desk("sticky")),
    "cat photo": Kind(0, lambda d, rng: real_photo("chelsea", rng)),
    "outdoor photo": Kind(0, lambda d, rng: real_photo(str(rng.choice(["rocket", "camera"])), rng)),
    "cup of coffee photo": Kind(0, lambda d, rng: real_photo("coffee", rng)),
    "page of printed text": Kind(0, lambda d, rng: printed_page(rng)),
    "blank sticky note": Kind(0, on_desk("sticky")),
}
