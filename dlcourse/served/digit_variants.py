"""Real MNIST digits re-rendered the way visitors' pictures look: dark ink on paper, off-centre,
thick or thin strokes, a grey photo-like background (`render`), and as phone photos of a page
(`photograph`): ruled or squared notebook paper, a margin line, the sheet's edge on a desk, a shadow,
stray dots, a tilted camera, pencil, noise and blur, heavy JPEG, a small digit in a 12-megapixel photo,
coloured inks. Used to make examples/ and to measure that the MNIST preprocessing brings such pictures
back to what the model was trained on.

`python -m dlcourse.served.digit_variants` writes the example images into examples/.
"""
from __future__ import annotations

import argparse
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from ..mnist import load_split

VARIANTS = ("paper", "off-centre", "thick", "thin", "grey-photo", "rgb-blue-ink")


def render(digit: np.ndarray, variant: str, rng: np.random.Generator) -> Image.Image:
    """One 28x28 MNIST digit (white on black, uint8) as a larger picture of the given variant."""
    scale = int(rng.integers(6, 11))
    ink = Image.fromarray(digit).resize((28 * scale, 28 * scale), Image.Resampling.BICUBIC)
    if variant == "thick":
        ink = ink.filter(ImageFilter.MaxFilter(2 * (scale // 2) + 1))
    elif variant == "thin":
        ink = ink.filter(ImageFilter.MinFilter(3))
    canvas_size = 28 * scale
    if variant == "off-centre":
        canvas_size = int(28 * scale * 1.8)
        canvas = Image.new("L", (canvas_size, canvas_size), 0)
        corner = rng.integers(0, canvas_size - 28 * scale, size=2)
        canvas.paste(ink, tuple(int(c) for c in corner))
        ink = canvas
    ink_level = np.asarray(ink, dtype=np.float32) / 255
    if variant == "grey-photo":
        size = ink_level.shape[0]
        gradient = np.linspace(0.55, 0.8, size, dtype=np.float32)[None, :] * np.ones((size, 1), np.float32)
        paper = gradient + rng.normal(0, 0.03, ink_level.shape).astype(np.float32)
        pixels = paper * (1 - ink_level) + 0.12 * ink_level
        return Image.fromarray((np.clip(pixels, 0, 1) * 255).astype(np.uint8)).filter(ImageFilter.GaussianBlur(1))
    if variant == "rgb-blue-ink":
        paper = np.array([0.97, 0.95, 0.9], np.float32)
        pen = np.array([0.1, 0.15, 0.55], np.float32)
        pixels = paper * (1 - ink_level[..., None]) + pen * ink_level[..., None]
        return Image.fromarray((pixels * 255).astype(np.uint8), "RGB")
    return Image.fromarray((255 - ink_level * 255).astype(np.uint8)).convert("RGB")


# -- phone photos of a page ------------------------------------------------------------------------

PHOTO_CONDITIONS = (
    "ruled", "squared", "margin", "sheet-edge", "shadow", "stray-dots", "tilt", "pencil", "noise-blur", "jpeg",
    "12mp-small", "ink-colours",
)
PENS = ((0.08, 0.08, 0.1), (0.1, 0.17, 0.55), (0.06, 0.1, 0.32), (0.15, 0.15, 0.2))  # black, blue, dark blue
COLOURED_PENS = ((0.72, 0.1, 0.12), (0.08, 0.45, 0.22), (0.35, 0.12, 0.5), (0.38, 0.22, 0.1), (0.0, 0.35, 0.65))
DESKS = ((0.45, 0.3, 0.18), (0.22, 0.22, 0.24), (0.5, 0.5, 0.5), (0.1, 0.1, 0.1), (0.6, 0.45, 0.3))


def photograph(digit: np.ndarray, condition: str, rng: np.random.Generator) -> bytes:
    """One 28x28 MNIST digit (white on black, uint8) written on a page and photographed: JPEG bytes.

    Every photo varies at random (size, digit size and place, paper tint, lighting, pen, JPEG quality);
    the condition adds one difficulty, so accuracy can be measured one difficulty at a time.
    """
    if condition not in PHOTO_CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; one of {', '.join(PHOTO_CONDITIONS)}")
    if condition == "12mp-small":
        return _twelve_megapixel_photo(digit, rng)
    long_side = int(rng.integers(800, 1401))
    width, height = (long_side, long_side * 3 // 4) if rng.random() < 0.5 else (long_side * 3 // 4, long_side)
    digit_height = rng.uniform(0.22, 0.42) * min(width, height)  # the digit's 20-px MNIST box, in photo pixels
    ink, pen = _ink(digit, digit_height, condition, rng)
    size = ink.shape[0]
    left = int(rng.integers(int(0.08 * width), int(0.92 * width) - size))
    top = int(rng.integers(int(0.08 * height), int(0.92 * height) - size))
    box = (left + size * 4 / 28, top + size * 4 / 28, left + size * 24 / 28, top + size * 24 / 28)  # the digit's 20x20 box
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)

    paper = _paper(height, width, rng)
    if condition in ("ruled", "margin"):
        spacing = digit_height * rng.uniform(0.7, 1.4)
        paper = _lines(paper, xs, ys, spacing, _line_colour(rng), rng, vertical=False)
        if condition == "margin" or rng.random() < 0.3:
            paper = _margin(paper, xs, ys, box, digit_height, rng)
    elif condition == "squared":
        spacing = digit_height * rng.uniform(0.3, 0.7)
        colour = _line_colour(rng)
        paper = _lines(paper, xs, ys, spacing, colour, rng, vertical=False)
        paper = _lines(paper, xs, ys, spacing, colour, rng, vertical=True)

    alpha = np.zeros((height, width), np.float32)
    alpha[top : top + size, left : left + size] = ink
    if condition == "stray-dots":
        alpha = np.maximum(alpha, _dots(xs, ys, box, digit_height, rng))
    photo = paper * (1 - alpha[..., None]) + np.asarray(pen, np.float32) * alpha[..., None]

    if condition == "sheet-edge":
        photo = _on_desk(photo, xs, ys, box, rng)
    photo = photo * _lighting(xs / width, ys / height, rng)[..., None]
    if condition == "shadow":
        photo = photo * _shadow(xs / width, ys / height, box, (width, height), rng)[..., None]
    image = _to_image(photo)
    if condition == "tilt":
        image = _tilted(image, rng)
    if condition == "noise-blur":
        image = image.filter(ImageFilter.GaussianBlur(digit_height * rng.uniform(0.006, 0.02)))
    noise = rng.uniform(0.025, 0.06) if condition == "noise-blur" else rng.uniform(0.005, 0.015)
    image = _noisy(image, noise, rng)
    quality = int(rng.integers(80, 96))
    if condition == "jpeg":  # sent through a messaging app: small and heavily compressed
        image.thumbnail((int(rng.integers(480, 801)),) * 2, Image.Resampling.BILINEAR)
        quality = int(rng.integers(15, 41))
    return _jpeg(image, quality)


def _ink(digit: np.ndarray, digit_height: float, condition: str, rng: np.random.Generator) -> tuple[np.ndarray, tuple]:
    """The digit's ink coverage (0..1, square) at photo scale, and the pen's colour."""
    size = max(28, round(digit_height * 28 / 20))
    ink = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    change = rng.uniform(-0.015, 0.03) if condition != "ink-colours" else rng.choice([-0.02, 0.05]) * rng.uniform(0.4, 1)
    width = int(round(abs(change) * size))
    if width >= 1:
        ink = ink.filter((ImageFilter.MaxFilter if change > 0 else ImageFilter.MinFilter)(2 * width + 1))
    coverage = np.clip(np.asarray(ink, np.float32) / 255 * 1.15, 0, 1)
    pen = PENS[int(rng.integers(len(PENS)))]
    if condition == "ink-colours":
        pens = PENS + COLOURED_PENS
        pen = pens[int(rng.integers(len(pens)))]
    if condition == "pencil":  # graphite: grey, faint and grainy
        grey = rng.uniform(0.25, 0.45)
        pen = (grey, grey, grey * 1.05)
        grain = 1 - 0.4 * rng.random(coverage.shape, dtype=np.float32)
        coverage = coverage * rng.uniform(0.4, 0.7) * grain
    return coverage, pen


def _paper(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    white = rng.uniform(0.9, 0.99)
    tint = rng.uniform(-0.03, 0.03, 3) * [1, 0.5, -1]  # warm or cool paper
    return np.broadcast_to(np.clip(white + tint, 0, 1).astype(np.float32), (height, width, 3)).copy()


def _line_colour(rng: np.random.Generator) -> np.ndarray:
    """Printed notebook lines: light blue, sometimes greyish; how visible varies."""
    blue = np.array([rng.uniform(0.4, 0.7), rng.uniform(0.6, 0.8), rng.uniform(0.85, 0.97)], np.float32)
    grey = np.full(3, blue.mean(), np.float32)
    saturation = rng.uniform(0.3, 1)
    return saturation * blue + (1 - saturation) * grey


def _stripe(distance: np.ndarray, line_width: float) -> np.ndarray:
    """Anti-aliased coverage of a line of the given width at a distance from its middle."""
    return np.clip(line_width / 2 + 0.5 - np.abs(distance), 0, 1)


def _lines(paper, xs, ys, spacing, colour, rng, vertical: bool) -> np.ndarray:
    angle = math.radians(rng.uniform(-3, 3))
    across = (xs * math.cos(angle) + ys * math.sin(angle)) if vertical else (ys * math.cos(angle) - xs * math.sin(angle))
    offset = (across - rng.uniform(0, spacing)) % spacing
    distance = np.minimum(offset, spacing - offset)
    coverage = _stripe(distance, max(1.0, spacing * rng.uniform(0.03, 0.07))) * rng.uniform(0.5, 1)
    return paper * (1 - coverage[..., None]) + colour * coverage[..., None]


def _margin(paper, xs, ys, box, digit_height, rng) -> np.ndarray:
    """A red margin line (sometimes doubled) close beside the digit."""
    angle = math.radians(rng.uniform(-3, 3))
    gap = digit_height * rng.uniform(0.05, 0.6)
    at = box[0] - gap if rng.random() < 0.7 else box[2] + gap
    middle_y = (box[1] + box[3]) / 2
    across = (xs - at) * math.cos(angle) + (ys - middle_y) * math.sin(angle)
    line_width = max(1.0, digit_height * rng.uniform(0.02, 0.05))
    coverage = _stripe(across, line_width)
    if rng.random() < 0.3:
        coverage = np.maximum(coverage, _stripe(across + line_width * rng.uniform(2, 4) * np.sign(gap), line_width))
    colour = np.array([rng.uniform(0.8, 0.95), rng.uniform(0.2, 0.45), rng.uniform(0.25, 0.5)], np.float32)
    coverage *= rng.uniform(0.6, 1)
    return paper * (1 - coverage[..., None]) + colour * coverage[..., None]


def _dots(xs, ys, box, digit_height, rng) -> np.ndarray:
    """One to three pen dots on the page, clear of the digit."""
    height, width = xs.shape
    dots = np.zeros_like(xs)
    for _ in range(int(rng.integers(1, 4))):
        radius = digit_height * rng.uniform(0.03, 0.08)
        for _attempt in range(50):
            x, y = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
            clear = digit_height * 0.25
            if not (box[0] - clear < x < box[2] + clear and box[1] - clear < y < box[3] + clear):
                break
        dots = np.maximum(dots, _stripe(np.hypot(xs - x, ys - y), 2 * radius))
    return dots * rng.uniform(0.7, 1)


def _on_desk(photo, xs, ys, box, rng) -> np.ndarray:
    """The sheet ends on one to three sides (straight edges at a slight angle); a darker desk shows beyond."""
    height, width = xs.shape
    desk = np.asarray(DESKS[int(rng.integers(len(DESKS)))], np.float32) * rng.uniform(0.8, 1.2)
    texture = np.asarray(Image.fromarray(rng.normal(0, 1, (height // 16 + 1, width // 16 + 1)).astype(np.float32))
                         .resize((width, height), Image.Resampling.BILINEAR))
    desk_image = np.clip(desk[None, None, :] * (1 + 0.08 * texture[..., None]), 0, 1)
    on_paper = np.ones_like(xs)
    sides = rng.permutation(4)[: int(rng.integers(1, 4))]
    for side in sides:
        angle = math.radians(rng.uniform(-10, 10))
        if side in (0, 1):  # left or right edge
            limit = box[0] if side == 0 else width - box[2]
            at = rng.uniform(0.15, 0.85) * limit
            distance = (xs - at) * math.cos(angle) + (ys - height / 2) * math.sin(angle)
            distance = distance if side == 0 else -((xs - (width - at)) * math.cos(angle) + (ys - height / 2) * math.sin(angle))
        else:  # top or bottom edge
            limit = box[1] if side == 2 else height - box[3]
            at = rng.uniform(0.15, 0.85) * limit
            distance = (ys - at) * math.cos(angle) - (xs - width / 2) * math.sin(angle)
            distance = distance if side == 2 else -((ys - (height - at)) * math.cos(angle) - (xs - width / 2) * math.sin(angle))
        on_paper = np.minimum(on_paper, np.clip(distance + 0.5, 0, 1))
    return photo * on_paper[..., None] + desk_image * (1 - on_paper[..., None])


def _lighting(u: np.ndarray, v: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brighter on one side, darker towards the corners: a page lit by a lamp or a window."""
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (u - 0.5) * math.cos(angle) + (v - 0.5) * math.sin(angle)
    return (1 - rng.uniform(0, 0.35) * (ramp + 0.7)) * (1 - rng.uniform(0, 0.25) * ((u - 0.5) ** 2 + (v - 0.5) ** 2))


def _shadow(u, v, box, size, rng) -> np.ndarray:
    """The soft shadow of a hand or a phone across the page, often across the digit."""
    width, height = size
    depth = rng.uniform(0.35, 0.7)  # brightness left in the shadow
    softness = rng.uniform(0.005, 0.08)
    centre_u, centre_v = (box[0] + box[2]) / 2 / width, (box[1] + box[3]) / 2 / height
    if rng.random() < 0.5:  # a straight edge
        angle = rng.uniform(0, 2 * math.pi)
        offset = rng.uniform(-0.15, 0.25)
        distance = (u - centre_u) * math.cos(angle) + (v - centre_v) * math.sin(angle) - offset
    else:  # a round blob
        cu, cv = centre_u + rng.uniform(-0.4, 0.4), centre_v + rng.uniform(-0.4, 0.4)
        distance = rng.uniform(0.2, 0.5) - np.hypot((u - cu) / rng.uniform(0.6, 1.4), v - cv)
    inside = np.clip(0.5 + distance / (2 * softness), 0, 1)
    return 1 - (1 - depth) * inside


def _tilted(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The camera held at a slight angle: a perspective warp (each corner moved inwards by up to 12%)."""
    width, height = image.size
    inset = rng.uniform(0, 0.12, (4, 2)) * [width, height]
    source = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    source += inset * [[1, 1], [-1, 1], [-1, -1], [1, -1]]
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float64)
    rows = []
    for (x, y), (u, v) in zip(target, source):  # solve for the 8 coefficients mapping output to input
        rows.append(([x, y, 1, 0, 0, 0, -u * x, -u * y], u))
        rows.append(([0, 0, 0, x, y, 1, -v * x, -v * y], v))
    coefficients = np.linalg.solve(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]))
    return image.transform(image.size, Image.Transform.PERSPECTIVE, tuple(coefficients), Image.Resampling.BICUBIC)


def _to_image(photo: np.ndarray) -> Image.Image:
    return Image.fromarray((np.clip(photo, 0, 1) * 255).round().astype(np.uint8), "RGB")


def _noisy(image: Image.Image, sigma: float, rng: np.random.Generator) -> Image.Image:
    """Sensor noise: independent in each channel, from a tile repeated over the image (fast on 12 MP)."""
    tile = rng.normal(0, sigma * 255, (256, 256, 3)).astype(np.int16)
    height, width = image.height, image.width
    noise = np.tile(tile, (height // 256 + 1, width // 256 + 1, 1))[:height, :width]
    shift = rng.integers(0, 256, 2)
    noise = np.roll(noise, tuple(int(s) for s in shift), axis=(0, 1))
    return Image.fromarray(np.clip(np.asarray(image, np.int16) + noise, 0, 255).astype(np.uint8), "RGB")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def _twelve_megapixel_photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    """A small digit in a 4000x3000 phone photo; the page is made at 1/8 size and scaled up (it is smooth)."""
    width, height = (4000, 3000) if rng.random() < 0.5 else (3000, 4000)
    digit_height = rng.uniform(0.035, 0.08) * 3000
    ink, pen = _ink(digit, digit_height, "12mp-small", rng)
    size = ink.shape[0]
    small_h, small_w = height // 8, width // 8
    vs, us = np.mgrid[0:small_h, 0:small_w].astype(np.float32)
    page = _paper(small_h, small_w, rng) * _lighting(us / small_w, vs / small_h, rng)[..., None]
    image = _to_image(page).resize((width, height), Image.Resampling.BILINEAR)
    left = int(rng.integers(int(0.1 * width), int(0.9 * width) - size))
    top = int(rng.integers(int(0.1 * height), int(0.9 * height) - size))
    patch = np.asarray(image.crop((left, top, left + size, top + size)), np.float32) / 255
    patch = patch * (1 - ink[..., None]) + np.asarray(pen, np.float32) * ink[..., None] * patch.max()
    image.paste(_to_image(patch), (left, top))
    return _jpeg(_noisy(image, rng.uniform(0.005, 0.015), rng), int(rng.integers(85, 96)))


def write_examples(mnist_dir: Path, out_dir: Path, seed: int = 0) -> list[Path]:
    """One plain MNIST test digit per class, and one picture of each variant."""
    images, labels = load_split(mnist_dir, "test")
    rng = np.random.default_rng(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for digit in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9):
        index = int(np.flatnonzero(labels == digit)[0])
        path = out_dir / f"mnist-test-{digit}.png"
        Image.fromarray(images[index]).save(path)
        written.append(path)
    for offset, variant in enumerate(VARIANTS):
        index = 1000 + 37 * offset
        path = out_dir / f"photo-{variant}-{labels[index]}.png"
        render(images[index], variant, rng).save(path)
        written.append(path)
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mnist-dir", type=Path, default=Path("data/mnist"))
    parser.add_argument("--out", type=Path, default=Path("examples"))
    args = parser.parse_args()
    for path in write_examples(args.mnist_dir, args.out):
        print(path)
