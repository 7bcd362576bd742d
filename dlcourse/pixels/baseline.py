"""The pixel-similarity baseline of chapter 4: ideal digits, distances, accuracy over a whole set.

An "ideal" digit is the mean image of every training image of that digit. A new image is called
whichever ideal it is closest to, pixel by pixel. Nothing is learned: there are no parameters to
adjust, only averages. That makes it the baseline a model that does learn (SGD, a CNN) must beat.

Build the artifact the app loads (model/ideal_digits.pt) with:

    python -m dlcourse.pixels.baseline --mnist-dir data/mnist

Plain values in and out (numpy arrays, tensors, PIL images, dicts); no gradio, no work at import.
"""
from __future__ import annotations

import argparse
import hashlib
import shlex
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from .. import artifacts
from ..errors import BadInput, shown
from ..served.images import MNIST_SIZE, FoundDigit, find_digit
from ..mnist import SPLITS, find_split, load_split

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "model" / "ideal_digits.pt"
COMMAND = "python -m dlcourse.pixels.baseline"
BUILD = f"{COMMAND} --mnist-dir data/mnist"
# Version 2: the artifacts' common layout, with a checksum (version 1 kept the ideals and info side by side).
FORMAT = artifacts.Format("dlcourse-ideal-digits", 2, called="an ideal-digits file",
                          missing=f"No ideal digits at {{path}}. Build them with `{BUILD}`.",
                          remedy=f"Rebuild it with `{BUILD}`.")
TENSOR = "ideal_digits"  # the artifact's one tensor
DIGITS = tuple(range(10))

# The candidates each mode chooses between. "3 or 7" is the book's baseline exactly.
MODES: dict[str, tuple[int, ...]] = {"3 or 7": (3, 7), "all ten digits": DIGITS}
MODE_ALIASES = {"3 or 7": "3 or 7", "3v7": "3 or 7", "3 vs 7": "3 or 7", "all ten digits": "all ten digits",
                "all ten": "all ten digits", "all": "all ten digits"}


def l1_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over the last two axes (the pixels); broadcasts over all others.

    (N, 1, 28, 28) against (10, 28, 28) gives (N, 10): every image against every ideal, no loop.
    """
    return (a - b).abs_().mean((-1, -2))  # a - b is a new tensor: abs_ in place saves a second copy


def l2_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Root mean squared difference over the last two axes; broadcasts like `l1_distance`."""
    return (a - b).square_().mean((-1, -2)).sqrt_()


DISTANCES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {"L1": l1_distance, "L2": l2_distance}
DISTANCE_NAMES = {"L1": "mean absolute difference", "L2": "root mean squared error"}


def check_mode(mode: str) -> str:
    """The canonical name of a mode ("3 or 7", "all ten digits"); BadInput for anything else."""
    canonical = MODE_ALIASES.get(str(mode).strip().lower())
    if canonical is None:
        raise BadInput(f"Unknown mode {shown(mode)}: choose one of {', '.join(map(repr, MODES))}.")
    return canonical


def check_distance(distance: str) -> str:
    """The canonical name of a distance ("L1", "L2"); BadInput for anything else."""
    canonical = str(distance).strip().upper()
    if canonical not in DISTANCES:
        raise BadInput(f"Unknown distance {shown(distance)}: choose 'L1' ({DISTANCE_NAMES['L1']}) or 'L2' ({DISTANCE_NAMES['L2']}).")
    return canonical


def as_float_images(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 images (..., 28, 28) in 0..255 -> float32 in [0, 1]; float input is taken as already scaled."""
    tensor = images if isinstance(images, torch.Tensor) else torch.tensor(np.asarray(images))
    if tensor.shape[-2:] != (MNIST_SIZE, MNIST_SIZE):
        raise BadInput(f"Expected {MNIST_SIZE}x{MNIST_SIZE} images, not shape {tuple(tensor.shape)}.")
    if tensor.dtype == torch.uint8:
        return tensor.float().div_(255)
    return tensor.float()


def ideal_digits(images: np.ndarray, labels: np.ndarray) -> torch.Tensor:
    """The mean image of each digit: float32 (10, 28, 28) in [0, 1].

    Summed exactly in integers, divided once in float64: the same data always gives the same bits.
    """
    images, labels = np.asarray(images), np.asarray(labels)
    if images.dtype != np.uint8 or images.shape[1:] != (MNIST_SIZE, MNIST_SIZE) or len(images) != len(labels):
        raise BadInput(f"Expected uint8 images (n, 28, 28) with n labels, not {images.shape} and {labels.shape}.")
    counts = np.bincount(labels, minlength=10)[:10]
    missing = [d for d in DIGITS if counts[d] == 0]
    if missing:
        raise BadInput(f"The training images have no example of digit(s) {missing}: no ideal can be computed.")
    sums = np.zeros((10, MNIST_SIZE * MNIST_SIZE), np.int64)
    np.add.at(sums, labels, images.reshape(len(images), -1))
    means = sums / (counts[:, None] * 255.0)
    return torch.from_numpy(means.reshape(10, MNIST_SIZE, MNIST_SIZE).astype(np.float32))


def data_digest(images: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the decoded pixels and labels: the same data however it is compressed."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(images, np.uint8).tobytes())
    digest.update(np.ascontiguousarray(labels, np.uint8).tobytes())
    return digest.hexdigest()


def describe_data(mnist_dir: str | Path, split: str, images: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """What a set of MNIST images is, in plain values: split, files, size, count per digit, digest."""
    found = find_split(mnist_dir, split)
    return {
        "split": split,
        "files": [path.name for path in found] if found else list(SPLITS[split]),
        "images": int(len(images)),
        "per_digit": np.bincount(labels, minlength=10)[:10].tolist(),
        "sha256": data_digest(images, labels),
    }


@dataclass(frozen=True)
class Comparison:
    """One image against the ideals of a mode: what was decided and why."""

    mode: str
    distance: str
    digit: torch.Tensor  # (28, 28) in [0, 1]: the input as the baseline sees it
    distances: dict[int, float]  # candidate digit -> distance, closest first
    prediction: int
    ideal: torch.Tensor  # (28, 28): the ideal of the predicted digit
    difference: torch.Tensor  # (28, 28) in [-1, 1]: input minus ideal, pixel by pixel
    found: FoundDigit | None = None  # for a picture, what find_digit saw in it (several digits, none)

    @property
    def margin(self) -> float:
        """How much farther the runner-up is than the winner (0 when it is a tie)."""
        values = list(self.distances.values())
        return values[1] - values[0]


class PixelBaseline:
    """Ten ideal digits and what is known about them (how they were built, their test accuracy)."""

    def __init__(self, ideals: torch.Tensor, info: dict[str, Any] | None = None):
        ideals = torch.as_tensor(ideals, dtype=torch.float32)
        if ideals.shape != (10, MNIST_SIZE, MNIST_SIZE):
            raise BadInput(f"Ideal digits must be a (10, 28, 28) tensor, not {tuple(ideals.shape)}.")
        self.ideals = ideals
        self.info: dict[str, Any] = dict(info or {})

    # -- building, saving, loading -------------------------------------------------------------------

    @classmethod
    def from_mnist(cls, images: np.ndarray, labels: np.ndarray, **info: Any) -> "PixelBaseline":
        """Ideal digits from uint8 MNIST images (n, 28, 28) and their labels."""
        return cls(ideal_digits(images, labels), info)

    @classmethod
    def build(cls, mnist_dir: str | Path, split: str = "auto", built_by: str = COMMAND) -> "PixelBaseline":
        """Ideals from a training split of `mnist_dir` ("auto": the full 60k when present, else train-5k),
        with their accuracies on the official 10k test set."""
        if split == "auto":
            split = "train" if find_split(mnist_dir, "train") else "train-5k"
        if split not in ("train", "train-5k"):
            raise BadInput(f"Unknown training split {split!r}: 'train' (60k), 'train-5k' or 'auto'.")
        train_images, train_labels = load_split(mnist_dir, split)
        baseline = cls.from_mnist(train_images, train_labels, built_by=built_by,
                                  training_data=describe_data(mnist_dir, split, train_images, train_labels))
        test_images, test_labels = load_split(mnist_dir, "test")
        baseline.info["test_data"] = describe_data(mnist_dir, "test", test_images, test_labels)
        baseline.info["accuracy"] = baseline.accuracies(test_images, test_labels)
        baseline.info["versions"] = {"torch": str(torch.__version__), "numpy": str(np.__version__)}
        return baseline

    def save(self, path: str | Path = DEFAULT_PATH) -> Path:
        """Write the ideals and their description; loads with torch.load(weights_only=True)."""
        return artifacts.save(path, FORMAT, self.info, {TENSOR: self.ideals})

    @classmethod
    def load(cls, path: str | Path = DEFAULT_PATH) -> "PixelBaseline":
        """The ideal digits saved by `save`; BadInput for a missing, foreign or damaged file. Runs no code from it."""
        info, tensors = artifacts.load(path, FORMAT)
        ideals = tensors.get(TENSOR)
        if (ideals is None or ideals.dtype != torch.float32 or ideals.shape != (10, MNIST_SIZE, MNIST_SIZE)
                or not torch.all((ideals >= 0) & (ideals <= 1))):
            raise BadInput(f"{path} is damaged: its ideal digits are not (10, 28, 28) float32 values in [0, 1].")
        return cls(ideals, info)

    # -- what the artifact says about itself ---------------------------------------------------------

    @property
    def built_by(self) -> str | None:
        return self.info.get("built_by")

    @property
    def training_data(self) -> dict[str, Any]:
        return self.info.get("training_data", {})

    @property
    def accuracy(self) -> dict[str, dict[str, float]]:
        """Stored test accuracies: {mode: {distance: fraction correct}}."""
        return self.info.get("accuracy", {})

    # -- deciding --------------------------------------------------------------------------------------

    def distances(self, images: torch.Tensor, mode: str, distance: str) -> torch.Tensor:
        """Distance of every image (..., 28, 28) to every candidate ideal of the mode: (..., candidates).

        One broadcast: images gain a candidates axis of size 1, the ideals stretch along the images.
        """
        candidates = self.ideals[list(MODES[check_mode(mode)])]
        return DISTANCES[check_distance(distance)](as_float_images(images).unsqueeze(-3), candidates)

    def predict(self, images: torch.Tensor, mode: str, distance: str) -> torch.Tensor:
        """The digit each image (..., 28, 28) is closest to, among the mode's candidates."""
        candidates = torch.tensor(MODES[check_mode(mode)])
        return candidates[self.distances(images, mode, distance).argmin(dim=-1)]

    def accuracy_on(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, mode: str, distance: str) -> float:
        """Share of a labelled set predicted right, over the whole set at once (no loop over images).

        "3 or 7" is scored on the 3s and 7s of the set only, as in the book.
        """
        images = as_float_images(images)
        labels = labels.long() if isinstance(labels, torch.Tensor) else torch.tensor(np.asarray(labels), dtype=torch.long)
        candidates = MODES[check_mode(mode)]
        if candidates != DIGITS:
            keep = torch.isin(labels, torch.tensor(candidates))
            images, labels = images[keep], labels[keep]
        if len(labels) == 0:
            raise BadInput(f"The set has no images of {candidates}: no accuracy to compute.")
        return int((self.predict(images, mode, distance) == labels).sum()) / len(labels)

    def accuracies(self, images: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor) -> dict[str, dict[str, float]]:
        """Accuracy of every mode with every distance: {mode: {distance: fraction correct}}."""
        images = as_float_images(images)  # convert once for all four
        return {mode: {name: self.accuracy_on(images, labels, mode, name) for name in DISTANCES} for mode in MODES}

    def compare(self, digit: np.ndarray | torch.Tensor, mode: str, distance: str) -> Comparison:
        """One MNIST-style digit (28, 28; uint8 or [0, 1] floats) against the ideals of the mode."""
        mode, distance = check_mode(mode), check_distance(distance)
        digit = as_float_images(digit)
        if digit.shape != (MNIST_SIZE, MNIST_SIZE):
            raise BadInput(f"Expected one {MNIST_SIZE}x{MNIST_SIZE} image, not shape {tuple(digit.shape)}.")
        values = self.distances(digit, mode, distance).tolist()
        ranked = sorted(zip(MODES[mode], values), key=lambda pair: pair[1])  # stable: ties keep digit order
        prediction = ranked[0][0]
        ideal = self.ideals[prediction]
        return Comparison(mode, distance, digit, dict(ranked), prediction, ideal, digit - ideal)

    def compare_image(self, image: Image.Image, mode: str, distance: str) -> Comparison:
        """A decoded picture of a digit (drawing or photo), preprocessed exactly as the Classify tab does."""
        found = find_digit(image)
        return replace(self.compare(found.pixels, mode, distance), found=found)


# -- pictures for people ---------------------------------------------------------------------------------


def digit_picture(digit: torch.Tensor, scale: int = 10) -> Image.Image:
    """A (28, 28) image in [0, 1] as a grayscale picture, each pixel a scale x scale square."""
    pixels = (digit.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return Image.fromarray(pixels, "L").resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.Resampling.NEAREST)


def difference_picture(difference: torch.Tensor, scale: int = 10) -> Image.Image:
    """Per-pixel difference in [-1, 1] as a heat map on white: red where the input has ink the ideal
    lacks, blue where the ideal has ink the input lacks, the stronger the larger the difference."""
    more = difference.clamp(0, 1).numpy()  # ink only in the input
    less = (-difference).clamp(0, 1).numpy()  # ink only in the ideal
    rgb = np.stack([1 - less, 1 - more - less, 1 - more], axis=-1)
    pixels = (np.clip(rgb, 0, 1) * 255).round().astype(np.uint8)
    return Image.fromarray(pixels, "RGB").resize((pixels.shape[1] * scale, pixels.shape[0] * scale), Image.Resampling.NEAREST)


# -- the command that builds the artifact ------------------------------------------------------------------


def format_accuracies(accuracy: dict[str, dict[str, float]], test_data: dict[str, Any] | None = None) -> str:
    lines = []
    per_digit = (test_data or {}).get("per_digit")
    for mode, by_distance in accuracy.items():
        count = sum(per_digit[d] for d in MODES[mode]) if per_digit else None
        on = f" ({count:,} test images)" if count else ""
        lines.append(f"{mode}{on}: " + ", ".join(f"{name} {value:.2%}" for name, value in by_distance.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog=COMMAND,
        description="Compute the ideal (mean) digit of each class from MNIST training images, measure the "
        "pixel-similarity baseline on the official 10k test set, and save both for the app.",
    )
    parser.add_argument("--mnist-dir", type=Path, required=True,
                        help="folder with MNIST IDX files (gzipped or not): t10k-* and train-* (60k) or train-5k-*")
    parser.add_argument("--split", choices=("auto", "train", "train-5k"), default="auto",
                        help="training images to average: auto = the full 60k when present, else train-5k")
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH, help=f"artifact to write (default {DEFAULT_PATH.parent.name}/{DEFAULT_PATH.name})")
    args = parser.parse_args(argv)
    try:
        baseline = PixelBaseline.build(args.mnist_dir, args.split, built_by=" ".join([COMMAND, shlex.join(argv)]).strip())
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    path = baseline.save(args.out)
    if path.resolve().is_relative_to(Path.cwd()):
        path = path.resolve().relative_to(Path.cwd())
    training = baseline.training_data
    print(f"ideal digits from {training['images']:,} MNIST {training['split']!r} images "
          f"({', '.join(map(str, training['per_digit']))} per digit) -> {path}")
    print(f"accuracy on the {baseline.info['test_data']['images']:,}-image MNIST test set:")
    print(format_accuracies(baseline.accuracy, baseline.info["test_data"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
