"""Decode untrusted uploads, and turn any picture of a digit into an MNIST-style 28x28 image.

Everything here takes and returns PIL images or numpy arrays; nothing imports torch or gradio.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import BadInput, EmptyDrawing

MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a 50-megapixel photo is fine; a decompression bomb is not
MIN_SIDE = 8
READABLE_FORMATS = "PNG, JPEG, GIF, WebP, BMP or TIFF"

MNIST_SIZE = 28
MNIST_BOX = 20  # MNIST digits were scaled to fit a 20x20 box, then centred by mass in 28x28
INK_THRESHOLD = 0.25  # share of the full ink contrast above which a pixel counts as ink for cropping
MIN_CONTRAST = 24 / 255  # less difference than this between ink and paper is an empty picture
WORKING_SIDE = 320  # digits are found and cropped at most at this size
FLAT_PAPER = 0.02  # a border varying less than this is evenly lit paper (a drawing, a scan)


def load_image(source: str | os.PathLike | bytes | Image.Image | np.ndarray) -> Image.Image:
    """Decode an upload into an RGB image, or raise BadInput saying what is wrong with it.

    Checks size before decoding pixels (decompression bombs), refuses animations (which frame would
    be meant?), honours EXIF orientation, flattens transparency onto white and maps any mode to RGB.
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    else:
        image = _open(source)
    _check_size(image.size)
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as error:
        raise BadInput(f"The image is damaged or truncated and cannot be read ({error}).") from None
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise BadInput(f"This is an animation of {frames} frames; please upload a single still image.")
    image = ImageOps.exif_transpose(image)
    return _to_rgb(image)


def _open(source: str | os.PathLike | bytes) -> Image.Image:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        if not path.is_file():
            raise BadInput("No image was given.") if str(source) in ("", ".") else BadInput(f"No such file: {path.name}")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise BadInput(f"The file is {size / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB.")
        data = path.read_bytes()
    if not data:
        raise BadInput("The file is empty (0 bytes).")
    if len(data) > MAX_FILE_BYTES:
        raise BadInput(f"The file is {len(data) / 2**20:.0f} MB; the limit is {MAX_FILE_BYTES // 2**20} MB.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise BadInput(f"The image has too many pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels.") from None
    except UnidentifiedImageError:
        raise BadInput(f"This file is not an image that can be read. Please upload a {READABLE_FORMATS} file.") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise BadInput(f"The image is damaged and cannot be read ({error}).") from None


def _from_array(array: np.ndarray) -> Image.Image:
    if array.ndim not in (2, 3) or array.size == 0:
        raise BadInput(f"An image array must be HxW or HxWxC, not of shape {array.shape}.")
    if array.dtype != np.uint8:
        array = _stretch_to_uint8(array.astype(np.float64))
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    return Image.fromarray(array)


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise BadInput(
            f"The image is {width}x{height} pixels; the limit is {MAX_PIXELS // 1_000_000} megapixels."
        )
    if min(width, height) < MIN_SIDE:
        raise BadInput(f"The image is {width}x{height} pixels; it needs at least {MIN_SIDE} on each side.")


def _stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map any numeric range onto 0..255 (16-bit scans, float arrays)."""
    values = np.nan_to_num(values)
    low, high = float(values.min()), float(values.max())
    if high <= 255 and low >= 0 and high > 1:
        return values.astype(np.uint8)
    if high == low:
        return np.zeros(values.shape, np.uint8)
    return ((values - low) * (255 / (high - low))).round().astype(np.uint8)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        image = Image.fromarray(_stretch_to_uint8(np.asarray(image, dtype=np.float64)))
    if image.mode == "P":
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
        paper = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, image)
    return image.convert("RGB")


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


def _paper_plane(gray: np.ndarray) -> np.ndarray:
    """The paper's brightness as a plane a + b*x + c*y, fitted to the border pixels."""
    height, width = gray.shape
    ys, xs = np.indices(gray.shape, dtype=np.float32)
    border = np.zeros(gray.shape, bool)
    border[[0, -1], :] = border[:, [0, -1]] = True
    design = np.stack([np.ones(border.sum(), np.float32), xs[border] / width, ys[border] / height], axis=1)
    (a, b, c), *_ = np.linalg.lstsq(design, gray[border], rcond=None)
    return (a + b * xs / width + c * ys / height).astype(np.float32)


def to_mnist_digit(image: Image.Image) -> np.ndarray:
    """An MNIST-style digit: uint8 (28, 28), white ink on black, scaled into 20x20, centred by mass.

    Works on drawings and photos alike: grayscale, invert when the paper is light, remove the paper's
    grey level, crop to the ink, scale keeping proportions, then centre by centre of mass as MNIST did.
    Raises EmptyDrawing when there is no ink.
    """
    gray_image = image.convert("L")
    gray_image.thumbnail((WORKING_SIDE, WORKING_SIDE), Image.Resampling.BOX)  # speed on big photos
    gray = np.asarray(gray_image, dtype=np.float32) / 255
    border = _border(gray)
    paper = float(np.median(border))
    if paper > 0.5:
        gray, border, paper = 1 - gray, 1 - border, 1 - paper
    if np.ptp(border) > FLAT_PAPER:  # uneven lighting of a photographed page
        gray = gray - _paper_plane(gray)
        paper = float(np.median(_border(gray)))
    contrast = float(gray.max()) - paper
    if contrast < MIN_CONTRAST:
        raise EmptyDrawing("The image is empty: draw or upload a digit first.")
    ink = np.clip((gray - paper) / contrast, 0, 1)
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ink[ink < INK_THRESHOLD / 2] = 0  # paper texture and sensor noise, not ink

    height, width = ink.shape
    scale = MNIST_BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(ink).resize(new_size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR))
    box = np.clip(box, 0, None)
    if box.max() > 0:
        box = box / box.max()

    digit = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    total = box.sum()
    centre_y = box.sum(axis=1) @ np.arange(box.shape[0]) / total
    centre_x = box.sum(axis=0) @ np.arange(box.shape[1]) / total
    top = int(round(MNIST_SIZE / 2 - centre_y))
    left = int(round(MNIST_SIZE / 2 - centre_x))
    top = min(max(top, 0), MNIST_SIZE - box.shape[0])
    left = min(max(left, 0), MNIST_SIZE - box.shape[1])
    digit[top : top + box.shape[0], left : left + box.shape[1]] = box
    return (digit * 255).round().astype(np.uint8)
