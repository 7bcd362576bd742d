"""Decode untrusted uploads, and turn any picture of a digit into an MNIST-style 28x28 image.

Everything here takes and returns PIL images or numpy arrays; nothing imports torch or gradio.
"""
from __future__ import annotations

import io
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageOps, UnidentifiedImageError
from scipy import ndimage

from ..errors import BadInput, EmptyDrawing

MAX_FILE_BYTES = 25 * 1024 * 1024
MAX_PIXELS = 50_000_000  # a 50-megapixel photo is fine; a decompression bomb is not
MIN_SIDE = 8
MIN_THIN = 2  # a 1 cropped tight to its ink can be 2 pixels wide
READABLE_FORMATS = "PNG, JPEG, GIF, WebP, BMP or TIFF"

MNIST_SIZE = 28
MNIST_BOX = 20  # MNIST digits were scaled to fit a 20x20 box, then centred by mass in 28x28
SMALL_PICTURE = MNIST_BOX  # a picture smaller than MNIST's digit box on its longer side is enlarged before its ink is found
INK_THRESHOLD = 0.25  # share of the full ink contrast above which a pixel counts as ink for cropping
MIN_CONTRAST = 24 / 255  # less difference than this between ink and paper is an empty picture
FLAT_PAPER = 0.02  # a border varying less than this is evenly lit paper (a drawing, a scan)
FLAT_BORDER_SHARE = 0.4  # ... or this share of the border at one exact level (within EXACT), ink crossing the rest (a tight crop)
EXACT = 2 / 255
PHOTO_SIDE = 512  # photos are searched for their digit at most at this size
DIGIT_DECODE_SIDE = 1000  # what to_mnist_digit needs of a photo (small digits get a closer look): 1/4 of 12 MP
SMALL_DIGIT = 48  # a digit found smaller than this (at PHOTO_SIDE) in a bigger photo is read again at full detail
BACKGROUND_WINDOW = 0.16  # share of the shorter side over which the paper's brightness is measured (wider than strokes)
DARK_PAPER = 0.5  # paper (or desk) darker than this share of the page's brightness counts as this bright
LIGHT_PAPER_LEVEL, LIGHT_PAPER_SHARE = 0.45, 0.3  # a photo is of light paper when this share is this bright
PHOTO_INK_THRESHOLD = 0.4  # in photos, higher: notebook lines can be a third as dark as the ink
NOISE_SIGMAS = 5  # ink is darker than the paper by more than this many times the paper's own variation
TWO_LEVELS = 0.85  # darkness split this cleanly in two (Otsu's share of the variance) is paper and ink, no texture
NEAR = 0.12  # pieces within this share of the digit's size from it belong to it (a digit in two strokes)
MNIST_STROKE, THICK_STROKE = 0.15, 0.2  # stroke width over digit size: thicker than THICK is thinned to MNIST's
EDGE_PIECE = 0.25  # a piece touching the picture's edge is the digit only when nothing clear of it has this share of its ink
GRAIN = 2  # pixels (at PHOTO_SIDE) between pieces of ink that still make one piece
MIN_PIECE = 0.01  # pieces with less ink than this share of the digit's are specks
SIGNIFICANT, TALL = 0.3, 0.5  # a piece with this share of the main piece's ink and of its height is a mark of its own
OVERLAP = 0.3  # ... unless it shares this share of its width with another mark's columns (a 5's bar, a 4 in two strokes)
MAX_DIGITS = 4  # more marks side by side than this is text or a texture, not a number
MAX_HOLES = 3  # a written digit encloses at most three holes (an 8 looped where it crosses); a grid, a chessboard more
HOLE = 4  # pixels of the 28x28 digit: a smaller gap inside the ink is grain, not a hole
TEXT_PIECES = 200  # a mark made of more separate pieces of ink than this is text (a grainy chalk digit: up to 130)
TEXT_LINES = 3  # a mark with this many lines (pieces WIDE times wider than tall, across half its width) is text
LINE_INK = 0.1  # ... lines with this share of the main piece's ink at least (a sheet's broken rulings: under 0.07)
BLOB = 0.4  # a mark whose stroke width is above this share of its size is a solid shape, not written strokes
WIDE = 2  # a mark more than this many times wider than tall is no digit (a rule, a horizon, a shelf's edge)
UNEVEN_STROKES = 0.5  # strokes whose widths spread more than this (`_stroke_unevenness`) are no pen's: fur, foliage
DIGIT_WINDOW = 0.45  # the paper is measured over at least this share of the digit's size (a marker's stroke is 0.3)
SHEET_BORDER = 0.25  # a bright region touching less than this share of the picture's border is a sheet in view
MIN_SHEET = 0.04  # ... when it covers at least this share of the picture
SOLID_SHEET = 0.8  # ... when its ink (its holes) covers less than the rest of this share of it
SHEET_ROOM = 0.25  # ... when the widest disc inside it spans this share of its size (a stroke's: under THICK_STROKE)
SHEET_DESK = 0.1  # ... on a desk whose colour differs from the sheet's by this much (RGB distance)
SHEET_INK = 0.25  # ... and with ink in it darker than the sheet by this much
SHEET_RIM = 2  # pixels (at a quarter size) of the sheet's edge not searched for ink


def load_image(source: str | os.PathLike | bytes | Image.Image | np.ndarray, at_least: int | None = None) -> Image.Image:
    """Decode an upload into an RGB image, or raise BadInput saying what is wrong with it.

    Checks size before decoding pixels (decompression bombs), refuses animations (which frame would
    be meant?), honours EXIF orientation, flattens transparency onto white and maps any mode to RGB.
    `at_least`: only this many pixels are needed on the longer side, so a bigger JPEG is decoded at
    1/2 to 1/8 of its size (scaled in the DCT domain, a fraction of a full decode's time).
    """
    if isinstance(source, Image.Image):
        image = source
    elif isinstance(source, np.ndarray):
        image = _from_array(source)
    else:
        image = _open(source)
    _check_size(image.size)
    if at_least and image.format == "JPEG" and max(image.size) > 2 * at_least:
        scale = at_least / max(image.size)
        image.draft(image.mode, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as error:
        raise BadInput(f"The image is damaged or truncated and cannot be read ({error}).") from None
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise BadInput(f"This is an animation of {frames} frames; please upload a single still image.")
    if image is source:  # the caller's own picture stays as it was
        image = ImageOps.exif_transpose(image)
    else:  # in place: otherwise it copies even an upright picture (a 2 MP photo: ~4 ms)
        ImageOps.exif_transpose(image, in_place=True)
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
    if max(width, height) < MIN_SIDE or min(width, height) < MIN_THIN:
        raise BadInput(f"The image is {width}x{height} pixels; it needs at least {MIN_SIDE} on its longer side "
                       f"and {MIN_THIN} on its shorter.")


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
    return image if image.mode == "RGB" else image.convert("RGB")  # convert copies even an RGB image


def _border(gray: np.ndarray) -> np.ndarray:
    return np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])


@dataclass(frozen=True)
class FoundDigit:
    """What `find_digit` saw: the digit it read, as MNIST's 28x28, and how many digit-like marks there were."""

    pixels: np.ndarray  # uint8 (28, 28), white ink on black, scaled into 20x20, centred by mass
    marks: int  # digit-like marks found: 1; several (the most prominent is in `pixels`); 0: nothing digit-like
    unevenness: float = 0.0  # how much the digit's stroke widths vary (`_stroke_unevenness`)

    @property
    def note(self) -> str | None:
        """A sentence for the visitor when the picture is not one digit, else None."""
        if self.marks == 0:
            return NO_DIGIT_NOTE
        if self.marks > MAX_DIGITS:
            return f"No single digit found: the picture holds {self.marks} separate marks (text or a texture?)."
        if self.marks > 1:
            return f"{self.marks} digits found; the most prominent one is read."
        return None

    @property
    def uneven_strokes(self) -> bool:
        """Whether the strokes vary in width more than a pen's do (a cat's fur, a landscape): a reading needs more
        certainty then."""
        return self.unevenness > UNEVEN_STROKES

    @property
    def is_digit(self) -> bool:
        """Whether the picture shows something to read as a digit (one digit, or a few side by side)."""
        return 1 <= self.marks <= MAX_DIGITS


NO_DIGIT = "no digit found"  # what both tabs answer, as the label, for a picture with nothing digit-like in it
NO_DIGIT_NOTE = "No digit found: the ink in this picture is not shaped like a handwritten digit."


def to_mnist_digit(image: Image.Image) -> np.ndarray:
    """An MNIST-style digit: uint8 (28, 28), white ink on black, scaled into 20x20, centred by mass
    (`find_digit`'s pixels). Raises EmptyDrawing when there is no ink."""
    return find_digit(image).pixels


def find_digit(image: Image.Image) -> FoundDigit:
    """The digit in any picture, as MNIST's 28x28, and how many digit-like marks the picture holds.

    Works on drawings and photos alike. An evenly lit picture (a drawing, a scan, MNIST itself, a crop
    of one) is taken as it is; a photo of a page goes through `_photo_ink`, which finds the digit rather
    than the paper. Raises EmptyDrawing when there is no ink.
    """
    working, scale = _reduced(image, PHOTO_SIDE)
    working = _enlarged(working)
    gray = np.asarray(working.convert("L"), dtype=np.float32) / 255
    paper = _flat_paper(_border(gray))
    if paper is not None:
        value = _ink_channel(working, light_paper=paper > 0.5)
        paper = _flat_paper(_border(value))
    if paper is not None:
        ink, marks = _flat_ink(value, paper)
        return _found(_centred(ink), marks, _stroke_unevenness(ink > INK_THRESHOLD))
    ink, box, marks, unevenness = _photo_ink(working, gray)
    if scale > 1.5 and max(box[2] - box[0], box[3] - box[1]) < SMALL_DIGIT and marks == 1:
        ink = _closer_look(image, box, scale)  # a small digit in a big photo: read it at full detail
    return _found(_centred(ink), marks, unevenness)


def _found(digit: np.ndarray, marks: int, unevenness: float) -> FoundDigit:
    """What `find_digit` saw, with no digit (0 marks) when the ink read as one is not a digit's shape: no ink left of
    it once the pieces that are no digit were dropped, or more holes in it than a digit has (`_holes`)."""
    if 1 <= marks <= MAX_DIGITS and (not digit.any() or _holes(digit) > MAX_HOLES):
        marks = 0
    return FoundDigit(digit, marks, unevenness)


def _holes(digit: np.ndarray) -> int:
    """How many holes (of HOLE pixels or more) the ink of a 28x28 digit encloses: none in a 1, one in a 0, two in an 8."""
    labels, count = ndimage.label(digit <= INK_THRESHOLD * 255)  # the paper, in pieces (4-connected)
    sizes = np.bincount(labels.ravel(), minlength=count + 1)
    sizes[_border(labels)] = 0  # the paper around the digit, and the gaps between its pieces
    return int((sizes[1:] >= HOLE).sum())


def _reduced(image: Image.Image, side: int) -> tuple[Image.Image, float]:
    """The image at most `side` pixels on its longer side (RGB or L), and how much it was reduced.

    Reduced by a whole factor (the mean of each block of pixels), much faster than resampling."""
    if image.mode not in ("RGB", "L"):
        image = image.convert("RGB")
    factor = math.ceil(max(image.size) / side)
    if factor <= 1:
        return image, 1.0
    reduced = image.reduce(factor)
    return reduced, image.width / reduced.width


def _enlarged(image: Image.Image) -> Image.Image:
    """A picture smaller than MNIST's 20 px digit box (SMALL_PICTURE) enlarged by a whole factor to at least that size,
    bicubic as an image editor enlarges. At 8 px (scikit-learn's digits) a pixel is an eighth of the digit: too coarse
    to crop the ink at its threshold and to tell strokes from a solid shape, so a digit was read otherwise than the
    same digit enlarged. An MNIST digit cropped to its ink (20 px) is not enlarged: at 28 px, the bicubic ringing
    around a thin 1 two or three pixels wide lost some of them."""
    if max(image.size) >= SMALL_PICTURE:
        return image
    factor = math.ceil(SMALL_PICTURE / max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.BICUBIC)


def _flat_paper(border: np.ndarray) -> float | None:
    """The paper's level when the picture is evenly lit (a drawing, a scan, a crop of one), else None.

    Evenly lit paper is one level along the border, less where ink crosses it: a digit cropped tight to
    its ink touches every edge. The paper is then the border's darkest or lightest level, whichever
    holds more of the border (ink holds the other); a photo's paper varies more than FLAT_PAPER."""
    if np.ptp(border) <= FLAT_PAPER:
        return float(np.median(border))
    dark, light = float(border.min()), float(border.max())
    shares = {dark: float(np.mean(border <= dark + EXACT)), light: float(np.mean(border >= light - EXACT))}
    level = max(shares, key=shares.get)
    return level if shares[level] >= FLAT_BORDER_SHARE else None


def _flat_ink(gray: np.ndarray, paper: float) -> tuple[np.ndarray, int]:
    """Ink of an evenly lit picture, cropped to the most prominent digit-like mark (inverted when the
    paper is light, paper level removed), and how many digit-like marks there are (`_marks`). What runs off
    the picture is dropped as in a photo (`_main_piece`): paper a phone overexposes to white is evenly lit too."""
    if paper > 0.5:
        gray, paper = 1 - gray, 1 - paper
    contrast = float(gray.max()) - paper
    if contrast < MIN_CONTRAST:
        raise EmptyDrawing("The image is empty: draw or upload a digit first.")
    ink = np.clip((gray - paper) / contrast, 0, 1)
    labels, count = ndimage.label(ink > INK_THRESHOLD, structure=np.ones((3, 3), bool))
    pieces = ndimage.find_objects(labels)
    mass = ndimage.sum_labels(ink, labels, np.arange(1, count + 1))
    main, inside = _main_piece(pieces, mass, ink.shape)
    candidates = [index for index in range(count) if inside[index] or not inside[main]]
    marks, mine = _marks(pieces, mass, main, candidates, ink > INK_THRESHOLD)
    kept = mine if marks > 1 else candidates  # only the most prominent digit's pieces; none running off the picture
    if len(kept) < count:  # each faint pixel (a stroke's soft edge) goes with the piece of ink nearest to it
        nearest = ndimage.distance_transform_edt(labels == 0, return_distances=False, return_indices=True)
        ink = ink * np.isin(labels[tuple(nearest)], [index + 1 for index in kept])
    rows = np.flatnonzero((ink > INK_THRESHOLD).any(axis=1))
    cols = np.flatnonzero((ink > INK_THRESHOLD).any(axis=0))
    ink = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    ink[ink < INK_THRESHOLD / 2] = 0  # paper texture and sensor noise, not ink
    return ink, marks


def _main_piece(pieces: list, mass: np.ndarray, shape: tuple[int, int],
                off_page: np.ndarray | None = None) -> tuple[int, np.ndarray]:
    """The digit's main piece of ink, and which pieces lie clear of the picture's edge (and of the edge of the
    sheet in view, where `off_page` says which pieces touch it).

    Pieces touching the edge (a desk, lines running off the page, a finger or a pen held over it, the edge of a
    shadow) are not the digit: the main piece is the heaviest one clear of the edge, unless the digit itself
    touches the edge (a tight crop), which is when no piece clear of it has EDGE_PIECE of the heaviest one's ink."""
    height, width = shape
    inside = np.array([s[0].start > 0 and s[1].start > 0 and s[0].stop < height and s[1].stop < width for s in pieces])
    if off_page is not None:
        inside &= ~off_page
    heaviest_inside = int(np.argmax(np.where(inside, mass, -1)))
    if inside[heaviest_inside] and mass[heaviest_inside] >= EDGE_PIECE * mass.max():
        return heaviest_inside, inside
    return int(np.argmax(mass)), inside


def _marks(pieces: list, mass: np.ndarray, main: int, candidates: list[int], solid: np.ndarray) -> tuple[int, list[int]]:
    """How many digit-like marks the pieces of ink make, and which pieces belong to the most prominent mark.

    A mark is a piece with at least SIGNIFICANT of the main (heaviest) piece's ink and at least TALL of its height,
    with the other such pieces above or below it (a 5's bar, a 4 in two strokes): marks side by side are
    separate digits. The most prominent is the tallest, the one written largest (a 1 or a 7 holds less ink than
    an 8 or a 0 written smaller beside it), the heavier of two as tall. 0 when that mark is no digit's shape: a
    solid blob (stroke width over size above BLOB: a face, a hill) rather than strokes, more than WIDE times
    wider than tall, or made of TEXT_LINES lines (a page of text too far away for its letters to part); the count
    of its pieces when it is made of more than TEXT_PIECES (printed text)."""
    def height(index: int) -> int:
        return pieces[index][0].stop - pieces[index][0].start

    tall = TALL * height(main)
    big = [i for i in candidates if mass[i] >= SIGNIFICANT * mass[main] and height(i) >= tall]
    if main not in big:
        big.append(main)
    spans = sorted((pieces[i][1].start, pieces[i][1].stop, i) for i in big)
    groups: list[list[int]] = []
    reach = -1
    for start, stop, index in spans:  # pieces whose columns overlap make one mark
        if groups and start < reach - OVERLAP * (stop - start):
            groups[-1].append(index)
            reach = max(reach, stop)
        else:
            groups.append([index])
            reach = stop
    def prominence(group: list[int]) -> tuple[int, float]:
        return max(pieces[i][0].stop for i in group) - min(pieces[i][0].start for i in group), sum(mass[i] for i in group)

    mine = max(groups, key=prominence)
    rows = slice(min(pieces[i][0].start for i in mine), max(pieces[i][0].stop for i in mine))
    cols = slice(min(pieces[i][1].start for i in mine), max(pieces[i][1].stop for i in mine))
    if _stroke_width(solid[rows, cols]) > BLOB * max(rows.stop - rows.start, cols.stop - cols.start):
        return 0, mine
    small_marks = _pieces_of(solid[rows, cols])
    if small_marks > TEXT_PIECES:  # a page of text: hundreds of letters
        return small_marks, mine
    others = {i for group in groups if group is not mine for i in group}
    small = [i for i in candidates if i not in big and i not in others
             and pieces[i][1].start < cols.stop and pieces[i][1].stop > cols.start]
    mark_height = max(pieces[i][0].stop for i in mine + small) - min(pieces[i][0].start for i in mine + small)
    width = cols.stop - cols.start
    if width > WIDE * mark_height:  # with the dots and dashes over or under it (a broken 6)
        return 0, mine + small
    lines = [i for i in mine + small if pieces[i][1].stop - pieces[i][1].start > max(WIDE * height(i), width / 2)
             and mass[i] >= LINE_INK * mass[main]
             and 0 < pieces[i][1].start and pieces[i][1].stop < solid.shape[1]]  # a ruling runs off a tight crop
    if len(lines) >= TEXT_LINES:  # a 5's or a 7's bar is one such piece: a page too far away to tell its letters
        return 0, mine + small
    return len(groups), mine + small


def _photo_ink(picture: Image.Image, gray: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int], int, float]:
    """The digit's ink in a photo of a page (and its grey levels, 0..1), cropped to it, where it was (x0, y0, x1, y1),
    how many digit-like marks the photo holds (`_marks`) and how much its stroke widths vary (`_stroke_unevenness`).

    1. Where the paper is: a sheet, card or sticky note wholly in view on a desk is found as a region
       (`_sheet`), and what lies around it counts as paper, not ink; the ink is read in the colour channel
       where it stands out most on that paper. Ink found on the rim of a blank one is its edge or shadow: no digit.
    2. Ink darkness against the paper around it: the paper's brightness is a grey closing (strokes
       thinner than the window vanish, shadows and the sheet's edge stay), so lighting and shadows
       divide out. The window is wider than the strokes found: a first look with a window of
       BACKGROUND_WINDOW of the picture, again with a wider one when the strokes found are wide for it
       (a marker, a digit filling the picture); when that wider look finds nothing (a thin 1 filling the picture,
       whose paper the wide closing no longer tells from its ink), the first look stands. The ink channel is used
       (`_ink_channel`).
    3. Threshold, then connected pieces of ink (`_digit_pieces`).
    """
    sheet = _sheet(picture)
    mask, best = sheet if sheet is not None else (None, None)
    if best is not None:
        value = np.asarray(picture.getchannel(best), dtype=np.float32) / 255
        value = np.where(mask, value, float(np.median(value[mask])))
    else:
        light_paper = _light_paper(gray)
        channel = _ink_channel(picture, light_paper)
        value = channel if light_paper else 1 - channel
    page_edge = ndimage.binary_dilation(~mask) if best is not None else None  # rulings run off the sheet, not the photo
    window = BACKGROUND_WINDOW * min(value.shape)
    found = _digit_pieces(value, window, page_edge)
    digit_size = max(found[1][2] - found[1][0], found[1][3] - found[1][1])
    if DIGIT_WINDOW * digit_size > window:
        try:
            found = _digit_pieces(value, DIGIT_WINDOW * digit_size, page_edge)
        except EmptyDrawing:
            pass
    ink, box, marks, unevenness = found
    if best is None and mask is not None and _on_rim(ink, box, mask):
        marks = 0  # the edge of a blank note and its shadow
    return _thinned(ink), box, marks, unevenness


def _on_rim(ink: np.ndarray, box: tuple[int, int, int, int], rim: np.ndarray) -> bool:
    """Whether most of the ink (cropped to `box`) lies on a rim of the picture (a mask)."""
    solid = ink > 0.5
    return bool(solid.any() and rim[box[1] : box[3], box[0] : box[2]][solid].mean() > 0.5)


def _digit_pieces(value: np.ndarray, window: float,
                  page_edge: np.ndarray | None = None) -> tuple[np.ndarray, tuple[int, int, int, int], int, float]:
    """Ink darkness against a paper brightness measured with a closing `window` pixels wide, thresholded
    into connected pieces: pieces touching the picture's edge (the desk, lines running off the page, the
    edge of a shadow) are not the digit; the heaviest other piece is, with the pieces close to it (a digit
    written in two strokes); far-away dots and specks are dropped. The digit may touch the edge itself
    (a tight crop): then so may its other pieces. Several digits side by side: the most prominent one.
    Also how much the kept strokes' widths vary (`_stroke_unevenness`)."""
    paper = _paper_brightness(value, window)
    # relative to the paper nearby, but not to a dark desk's texture: at most DARK_PAPER times the page
    page = float(np.percentile(paper[::4, ::4], 90))
    darkness = np.clip((paper - value) / np.maximum(paper, DARK_PAPER * page), 0, 1)

    typical, spread = _paper_noise(darkness[::4, ::4])
    level = float(np.asarray(Image.fromarray(darkness).reduce(2)).max())  # of 2x2 means: a noisy pixel is not ink
    if level - typical < MIN_CONTRAST:
        raise EmptyDrawing("The image is empty: draw or upload a digit first.")
    threshold = max(typical + NOISE_SIGMAS * spread, typical + PHOTO_INK_THRESHOLD * (level - typical))
    ink = darkness > threshold
    # pieces a grain apart are one (grainy chalk, pencil): labelled on the ink grown by GRAIN pixels
    grown, count = ndimage.label(ndimage.binary_dilation(ink, iterations=GRAIN), structure=np.ones((3, 3), bool))
    labels = grown * ink
    if count == 0:
        raise EmptyDrawing("No digit stands out from the paper: draw or upload a digit first.")
    pieces = ndimage.find_objects(labels)
    mass = ndimage.sum_labels(darkness, labels, np.arange(1, count + 1))
    height, width = darkness.shape
    off_page = None if page_edge is None else ndimage.maximum(page_edge, labels, np.arange(1, count + 1)).astype(bool)
    main, inside = _main_piece(pieces, mass, darkness.shape, off_page)
    rows, cols = pieces[main]
    reach = NEAR * max(rows.stop - rows.start, cols.stop - cols.start)
    y0, y1, x0, x1 = rows.start - reach, rows.stop + reach, cols.start - reach, cols.stop + reach
    candidates = [index for index in range(count) if (inside[index] or not inside[main]) and mass[index] >= MIN_PIECE * mass[main]]
    marks, mine = _marks(pieces, mass, main, candidates, darkness > threshold)
    if marks > 1:  # the most prominent digit's heaviest piece sets its ink's full darkness
        main = max(mine, key=mass.__getitem__)
    kept = [
        index + 1 for index in candidates
        if (index in mine if marks > 1 else
            index == main or (pieces[index][0].start < y1 and pieces[index][0].stop > y0
                              and pieces[index][1].start < x1 and pieces[index][1].stop > x0))
    ]
    if main + 1 not in kept:
        kept.append(main + 1)
    is_kept = np.zeros(count + 1, bool)
    is_kept[kept] = True
    box = (  # the kept pieces and a pixel around them (x0, y0, x1, y1)
        max(0, min(pieces[i - 1][1].start for i in kept) - 1), max(0, min(pieces[i - 1][0].start for i in kept) - 1),
        min(width, max(pieces[i - 1][1].stop for i in kept) + 1), min(height, max(pieces[i - 1][0].stop for i in kept) + 1),
    )
    crop = (slice(box[1], box[3]), slice(box[0], box[2]))
    digit = ndimage.binary_dilation(is_kept[labels[crop]])  # with the soft edges of its strokes
    low = typical + (threshold - typical) / 2
    full = float(np.percentile(darkness[pieces[main]][labels[pieces[main]] == main + 1], 90))
    ink = np.clip((darkness[crop] - low) / max(full - low, 1e-3), 0, 1) * digit
    unevenness = _stroke_unevenness(is_kept[labels[crop]] & (darkness[crop] > threshold))
    return ink.astype(np.float32), box, marks, unevenness


def _paper_noise(darkness: np.ndarray) -> tuple[float, float]:
    """The paper's typical darkness and its own variation (a robust standard deviation).

    Measured on the paper alone when the picture holds two clear levels, paper and ink (Otsu's split of them
    explains TWO_LEVELS of their variance, and the upper level is MIN_CONTRAST darker): a thick marker in a tight
    crop can cover half the picture, and then the median and its spread are the ink's. Otherwise (a texture, a
    photo of things, blank paper in uneven light) over all of it."""
    values = darkness.ravel()
    split = _otsu(values)
    paper, ink = values[values <= split], values[values > split]
    if len(paper) and len(ink):
        share = len(paper) / len(values)
        step = float(ink.mean()) - float(paper.mean())
        if step >= MIN_CONTRAST and share * (1 - share) * step ** 2 >= TWO_LEVELS * float(values.var()):
            values = paper
    typical = float(np.median(values))
    return typical, float(np.median(np.abs(values - typical))) * 1.4826


def _sheet(picture: Image.Image) -> tuple[np.ndarray, int | None] | None:
    """Where the sheet, card or sticky note is (a mask of the picture) when one lies wholly in view on a desk, and
    the colour channel in which its ink stands out most (a red pen on an orange note: green), else None. A sheet
    with no ink in it (a blank note, or the glare of a light): its rim instead (within SHEET_RIM of its edge, where
    its edge and its shadow show), and None for the channel.

    Measured at a quarter of the size, by colour: how far each pixel's colour is from the desk's (the median
    of the picture's border), split in two by Otsu's threshold. The largest region unlike the desk, its holes
    (the ink) filled, is the sheet when it touches less than SHEET_BORDER of the picture's border, is solid,
    is wide (`_room`: not the strokes of a chalk digit, lighter than its board, wherever the board's edge lies),
    is lighter than the desk in its lightest channel, differs from it by SHEET_DESK and has ink darker than itself in it (by SHEET_INK, in some channel)."""
    small, _ = _reduced(picture.convert("RGB"), PHOTO_SIDE // 4)
    colours = np.asarray(small, dtype=np.float32) / 255
    desk = np.median(np.concatenate([colours[0], colours[-1], colours[:, 0], colours[:, -1]]), axis=0)
    unlike = np.clip(np.sqrt(((colours - desk) ** 2).sum(axis=2)), 0, 1)
    region = unlike > _otsu(unlike)
    lightest = colours.max(axis=2)
    labels, count = ndimage.label(region)
    if count == 0:
        return None
    largest = labels == 1 + int(np.argmax(ndimage.sum_labels(region, labels, np.arange(1, count + 1))))
    sheet = ndimage.binary_fill_holes(largest)
    if (_border(sheet).mean() >= SHEET_BORDER or sheet.mean() < MIN_SHEET or sheet.all()
            or largest.sum() < SOLID_SHEET * sheet.sum()  # a chalk 0 on a board is no sheet
            or _room(sheet) < SHEET_ROOM  # nor a chalk 5: strokes, however thick, are narrow for their size
            or np.median(unlike[largest]) - np.median(unlike[~sheet]) < SHEET_DESK  # nor paper between two rules
            or np.median(lightest[largest]) <= np.median(lightest[~sheet])):  # nor the ink of a close-up: paper is light
        return None
    inner = ndimage.binary_erosion(sheet, iterations=SHEET_RIM)  # the sheet's own edge and its shadow are no ink
    mask = np.asarray(Image.fromarray(inner).resize(picture.size, Image.Resampling.NEAREST))
    if not mask.any():
        return None
    inside = np.asarray(picture.convert("RGB"), dtype=np.float32)[mask] / 255
    contrast = np.median(inside, axis=0) - np.percentile(inside, 0.1, axis=0)  # the ink, in each colour channel
    if contrast.max() < SHEET_INK:  # a blank note, or glare: a bright patch with no ink in it
        rim = ndimage.binary_dilation(sheet, iterations=SHEET_RIM) & ~inner
        return np.asarray(Image.fromarray(rim).resize(picture.size, Image.Resampling.NEAREST)), None
    return mask, int(np.argmax(contrast))


def _room(region: np.ndarray) -> float:
    """The diameter of the widest disc that fits in a region, over the region's size (the longer side of its box):
    half or more for a sheet, a card or a note, even turned or joined by a glare; a stroke's width for a written mark."""
    rows, cols = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    size = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    return 2 * float(ndimage.distance_transform_edt(np.pad(region, 1)).max()) / size


def _otsu(values: np.ndarray) -> float:
    """Otsu's threshold of values in 0..1: the level that best splits them into two classes; 1 when they are all
    one level (the darkness of blank paper once the light divides out), which nothing lies above."""
    counts, edges = np.histogram(values, bins=64, range=(0, 1))
    centres = (edges[:-1] + edges[1:]) / 2
    below = np.cumsum(counts)
    above = below[-1] - below
    below_sum = np.cumsum(counts * centres)
    with np.errstate(divide="ignore", invalid="ignore"):
        between = np.nan_to_num(below * above * (below_sum / below - (below_sum[-1] - below_sum) / above) ** 2)
    best = int(np.argmax(between[:-1]))
    return float(edges[1 + best]) if between[best] > 0 else 1.0


def _pieces_of(solid: np.ndarray) -> int:
    """How many separate pieces of at least 4 pixels a mask of ink holds."""
    labels, count = ndimage.label(solid, structure=np.ones((3, 3), bool))
    return int((np.bincount(labels.ravel(), minlength=count + 1)[1:] >= 4).sum())


def _stroke_width(solid: np.ndarray) -> float:
    """Stroke width of a mask of ink: twice its area over its outline."""
    outline = int(solid.sum() - ndimage.binary_erosion(solid).sum())
    return 2 * float(solid.sum()) / max(outline, 1)


def _stroke_unevenness(solid: np.ndarray) -> float:
    """How much the stroke widths of a mask of ink vary: the spread (standard deviation over mean) of the widths
    along the strokes' middles (twice the distance to the paper where it peaks across a stroke). A pen's strokes
    are even: well under UNEVEN_STROKES; the dark blotches of fur or foliage are not."""
    distance = ndimage.distance_transform_edt(solid)
    middles = distance[(distance > 0) & (distance >= ndimage.maximum_filter(distance, size=3))]
    return float(middles.std() / middles.mean()) if middles.size else 0.0


def _ink_channel(picture: Image.Image, light_paper: bool) -> np.ndarray:
    """The picture's brightest channel on light paper (its darkest on dark), 0..1: light coloured lines
    (blue rules, a red margin) barely differ from the paper there, while ink of any colour does."""
    if picture.mode != "RGB":
        return np.asarray(picture.convert("L"), dtype=np.float32) / 255
    red, green, blue = picture.split()
    pick = ImageChops.lighter if light_paper else ImageChops.darker
    return np.asarray(pick(pick(red, green), blue), dtype=np.float32) / 255


def _thinned(ink: np.ndarray) -> np.ndarray:
    """Strokes of a marker or a felt pen eroded to a pen's width, as MNIST's writers used.

    Stroke width is twice the inked area over its outline; MNIST's is about an eighth of the digit's
    size (95% of digits under a fifth)."""
    width = _stroke_width(ink > 0.5)
    excess = int((width - MNIST_STROKE * max(ink.shape)) / 2)
    if width <= THICK_STROKE * max(ink.shape) or excess < 1:
        return ink
    return ndimage.grey_erosion(ink, size=(2 * excess + 1, 2 * excess + 1))


def _paper_brightness(value: np.ndarray, window: float) -> np.ndarray:
    """The paper's brightness under the ink: a grey closing `window` pixels wide (wider than a stroke), computed at half size."""
    half = Image.fromarray(value).reduce(2)
    window = max(3, round(window / 2))
    closed = ndimage.grey_closing(np.asarray(half), size=(window, window))
    height, width = value.shape
    doubled = closed.repeat(2, axis=0).repeat(2, axis=1)  # back to full size (PIL's reduce rounds up odd sides)
    return np.pad(doubled, ((0, max(0, height - doubled.shape[0])), (0, max(0, width - doubled.shape[1]))), mode="edge")[:height, :width]


def _light_paper(gray: np.ndarray) -> bool:
    """Dark ink on light paper, unless nearly all the picture is dark (chalk on a board, a lit screen).

    Not judged by the picture's edge or its median: a dark desk around the sheet or a shadow across it
    can cover either."""
    sample = gray[::4, ::4]
    return float(np.mean(sample > LIGHT_PAPER_LEVEL * np.percentile(sample, 99))) > LIGHT_PAPER_SHARE


def _fit(shape: tuple[int, int], side: int) -> tuple[int, int]:
    """(width, height) of an array of `shape` reduced to at most `side` on its longer side."""
    height, width = shape
    scale = min(1.0, side / max(height, width))
    return max(1, round(width * scale)), max(1, round(height * scale))


def _closer_look(image: Image.Image, box: tuple[int, int, int, int], scale: float) -> np.ndarray:
    """The ink of a digit found small in a reduced photo, read again from the photo around it."""
    side = max(box[2] - box[0], box[3] - box[1])
    left, top, right, bottom = ((box[0] - side) * scale, (box[1] - side) * scale, (box[2] + side) * scale, (box[3] + side) * scale)
    region = image.crop((max(0, round(left)), max(0, round(top)), min(image.width, round(right)), min(image.height, round(bottom))))
    working, _ = _reduced(region, PHOTO_SIDE // 2)
    return _photo_ink(working, np.asarray(working.convert("L"), dtype=np.float32) / 255)[0]


def _centred(ink: np.ndarray) -> np.ndarray:
    """Cropped ink (float, 0..1) scaled to fit MNIST's 20x20 box and centred by mass in 28x28, as uint8."""
    height, width = ink.shape
    scale = MNIST_BOX / max(height, width)
    new_size = (max(1, round(width * scale)), max(1, round(height * scale)))
    box = np.asarray(Image.fromarray(ink).resize(new_size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BILINEAR))
    box = np.clip(box, 0, None)
    if box.max() > 0:
        box = box / box.max()

    digit = np.zeros((MNIST_SIZE, MNIST_SIZE), np.float32)
    total = box.sum()
    if total == 0:  # no ink left to centre (a photo in which nothing digit-like was found): an empty digit
        return digit.astype(np.uint8)
    centre_y = box.sum(axis=1) @ np.arange(box.shape[0]) / total
    centre_x = box.sum(axis=0) @ np.arange(box.shape[1]) / total
    top = int(round(MNIST_SIZE / 2 - centre_y))
    left = int(round(MNIST_SIZE / 2 - centre_x))
    top = min(max(top, 0), MNIST_SIZE - box.shape[0])
    left = min(max(left, 0), MNIST_SIZE - box.shape[1])
    digit[top : top + box.shape[0], left : left + box.shape[1]] = box
    return (digit * 255).round().astype(np.uint8)
