"""Digits from sources the served pipeline was not made around, as pictures a visitor would upload, each
with the same digit as MNIST frames it (a 20 px box centred by its centre of mass in 28x28: the model's own
ceiling on that digit). Used by bench/digit_sources.py.

Three sources:
- "MNIST cropped to its ink": MNIST test digits cropped to their ink (pixels > 0), white on black and dark
  on white, enlarged x1, x4 and x10; their margin counterpart is the same digit uncropped, same polarity
  and enlargement.
- "scikit-learn digits": the 1,797 handwritten digits scikit-learn ships (`load_digits`: the test set of
  UCI optdigits, 32x32 bitmaps by 13 writers reduced to 8x8 counts, 0..16), as they come (8 px) and
  enlarged x4, in both polarities; their margin counterpart is the same digit with MNIST's margin.
- "phone photos": support/phone_photos.py's kinds rendered from MNIST test digits; their margin
  counterpart is the digit redrawn as the renderer draws its strokes, with MNIST's margin. Its kinds
  without a digit go in as "no digit".
- "no digit", "photos packages ship": real pictures with no digit in them, as installed packages ship them
  (`shipped_photos`): scikit-image's, scikit-learn's and matplotlib's in the development part, gradio's own
  demo and test pictures in the held-out part; all of them, whatever --per-kind says.

The development and the held-out part draw from disjoint digits (DEVELOPMENT / HELD_OUT index ranges) with
disjoint random streams (the part is one of the seed's words): tune on the development part only; the
held-out part is measured once, at the end. (scikit-learn does not say who wrote which digit: its two parts
may share writers.)
"""
from __future__ import annotations

import importlib.util
import io
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from support import phone_photos

# Index ranges of each source's digits for the development and held-out parts. MNIST test digits 0-4999
# are left out: the project's own photo renderer was tuned on photos of them.
DEVELOPMENT = {"mnist": range(5000, 7500), "sklearn": range(0, 900)}
HELD_OUT = {"mnist": range(7500, 10000), "sklearn": range(900, 1797)}
# Packages whose sample pictures (none shows a digit) make each part's "photos packages ship", and where they keep them.
SHIPPED_PHOTOS = {False: {"skimage": "data", "sklearn": "datasets/images", "matplotlib": "mpl-data/sample_data"},
                  True: {"gradio": ("media_assets/images", "test_data")}}
PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".tif", ".tiff", ".bmp", ".webp")
POLARITIES = ("white on black", "dark on white")
MNIST_ENLARGEMENTS = (1, 4, 10)
SKLEARN_ENLARGEMENTS = (1, 4)


@dataclass(frozen=True)
class Case:
    """One picture to classify: `label` is the digit to read (None for a picture with no digit); `margin`
    the same digit with MNIST's margin as a PNG (None where that does not apply); `index` the digit's
    index in its data set (the first digit's, for a picture with two)."""
    source: str
    kind: str
    picture: bytes
    suffix: str
    label: int | None
    margin: bytes | None
    index: int | None


def png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def crop_to_ink(grey: np.ndarray) -> np.ndarray:
    """The smallest box holding every pixel above 0 (white ink on black)."""
    ys, xs = np.nonzero(grey > 0)
    return grey[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def enlarge(grey: np.ndarray, factor: int) -> np.ndarray:
    """Enlarged as an image editor would (bicubic); factor 1 leaves it as it is."""
    if factor == 1:
        return grey
    h, w = grey.shape
    return np.asarray(Image.fromarray(grey).resize((w * factor, h * factor), Image.BICUBIC))


def in_polarity(grey: np.ndarray, polarity: str) -> np.ndarray:
    """White ink on black as it is, or turned into dark ink on white."""
    return grey if polarity == "white on black" else 255 - grey


def with_mnist_margin(grey: np.ndarray) -> np.ndarray:
    """The digit framed as MNIST frames its digits: its ink box scaled (aspect kept, anti-aliased) so the
    longer side is 20 px, then put in 28x28 with its centre of mass at the centre."""
    ink = crop_to_ink(grey).astype(np.float32)
    scale = 20 / max(ink.shape)
    h, w = max(1, round(ink.shape[0] * scale)), max(1, round(ink.shape[1] * scale))
    box = np.asarray(Image.fromarray(ink, "F").resize((w, h), Image.LANCZOS)).clip(0, 255)
    ys, xs = np.mgrid[0:h, 0:w]
    cy, cx = (ys * box).sum() / box.sum(), (xs * box).sum() / box.sum()
    top, left = int(round(14 - cy)), int(round(14 - cx))
    top, left = min(max(top, 0), 28 - h), min(max(left, 0), 28 - w)
    framed = np.zeros((28, 28), np.float32)
    framed[top:top + h, left:left + w] = box
    return framed.round().astype(np.uint8)


def sklearn_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's handwritten digits as uint8 (1797, 8, 8) white on black 0..255, and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    return (digits.images * (255 / 16)).round().astype(np.uint8), digits.target.astype(np.uint8)


def stream(seed: int, held_out: bool, name: str) -> np.random.Generator:
    """The random stream of one kind: the seed, the part and the kind's name as seed words."""
    return np.random.default_rng([seed, int(held_out), zlib.crc32(name.encode())])


def pick(indices: range, count: int, rng: np.random.Generator) -> list[int]:
    return [int(i) for i in rng.choice(np.asarray(indices), min(count, len(indices)), replace=False)]


def mnist_cropped(images: np.ndarray, labels: np.ndarray, per_kind: int, seed: int, held_out: bool) -> list[Case]:
    """The same `per_kind` MNIST test digits cropped to their ink, in each polarity and enlargement."""
    chosen = pick((HELD_OUT if held_out else DEVELOPMENT)["mnist"], per_kind, stream(seed, held_out, "mnist crop"))
    cases = []
    for polarity in POLARITIES:
        for factor in MNIST_ENLARGEMENTS:
            kind = f"{polarity}, x{factor}"
            for i in chosen:
                picture = enlarge(in_polarity(crop_to_ink(images[i]), polarity), factor)
                margin = enlarge(in_polarity(images[i], polarity), factor)
                cases.append(Case("MNIST cropped to its ink", kind, png(picture), ".png", int(labels[i]),
                                  png(margin), i))
    return cases


def sklearn_cases(per_kind: int, seed: int, held_out: bool) -> list[Case]:
    """The same `per_kind` scikit-learn digits as they come (8 px) and enlarged x4, in each polarity."""
    images, labels = sklearn_digits()
    chosen = pick((HELD_OUT if held_out else DEVELOPMENT)["sklearn"], per_kind, stream(seed, held_out, "sklearn"))
    cases = []
    for polarity in POLARITIES:
        for factor in SKLEARN_ENLARGEMENTS:
            kind = f"{polarity}, {8 * factor} px" + (" (as it comes)" if factor == 1 else f" (x{factor})")
            for i in chosen:
                picture = enlarge(in_polarity(images[i], polarity), factor)
                margin = in_polarity(with_mnist_margin(images[i]), polarity)
                cases.append(Case("scikit-learn digits", kind, png(picture), ".png", int(labels[i]), png(margin), i))
    return cases


def shipped_photos(held_out: bool) -> list[Case]:
    """Every picture the part's packages ship (SHIPPED_PHOTOS), as it comes: photos, scans, textures, logos,
    animations; a picture with no digit in it, for "no digit"."""
    cases = []
    for package, folders in SHIPPED_PHOTOS[held_out].items():
        root = Path(importlib.util.find_spec(package).origin).parent  # found, not imported (gradio takes seconds)
        for folder in [folders] if isinstance(folders, str) else folders:
            for path in sorted((root / folder).rglob("*")):
                if path.suffix.lower() in PICTURE_SUFFIXES:
                    cases.append(Case("no digit", f"photos packages ship ({', '.join(SHIPPED_PHOTOS[held_out])})",
                                      path.read_bytes(), path.suffix.lower(), None, None, None))
    return cases


def redrawn(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit as the photo renderer draws it (strokes of even width along its skeleton, here 8% of its
    height) with MNIST's margin: the margin counterpart of a photo, the same strokes the photo shows."""
    alpha = phone_photos.strokes(digit, 100, 8, rng)
    return with_mnist_margin((alpha * 255).round().astype(np.uint8))


def photo_source(kind: phone_photos.Kind) -> str:
    return "phone photos" if kind.digits else "no digit"


def photo_cases(images: np.ndarray, labels: np.ndarray, per_kind: int, seed: int, held_out: bool,
                kinds: list[str] | None = None) -> list[Case]:
    """`per_kind` JPEG photos of each phone_photos kind (or of `kinds`), from MNIST test digits."""
    indices = (HELD_OUT if held_out else DEVELOPMENT)["mnist"]
    cases = []
    for name in kinds or list(phone_photos.KINDS):
        kind = phone_photos.KINDS[name]
        rng, margin_rng = stream(seed, held_out, name), stream(seed, held_out, f"{name} margin")
        for _ in range(per_kind):
            chosen = pick(indices, kind.digits, rng)
            photo = kind.render([images[i] for i in chosen], rng)
            source = photo_source(kind)
            label = int(labels[chosen[0]]) if chosen else None
            margin = png(redrawn(images[chosen[0]], margin_rng)) if chosen else None
            cases.append(Case(source, name, phone_photos.jpeg(photo, rng), ".jpg", label, margin,
                              chosen[0] if chosen else None))
    return cases
