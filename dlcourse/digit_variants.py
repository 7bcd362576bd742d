"""Real MNIST digits re-rendered the way visitors' pictures look: dark ink on paper, off-centre,
thick or thin strokes, a grey photo-like background. Used to make examples/ and to test that the
MNIST preprocessing brings such pictures back to what the model was trained on.

`python -m dlcourse.digit_variants` writes the example images into examples/.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from .mnist import load_split

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
