"""Read MNIST from its original IDX files (gzipped or not) with numpy alone."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from .errors import BadInput

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049
# Which files make up each split, as (images, labels) name patterns tried in order.
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "train-5k": ("train-5k-images-idx3-ubyte", "train-5k-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _read(path: Path) -> bytes:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        return f.read()


def read_idx_images(path: str | Path) -> np.ndarray:
    """uint8 array (n, rows, cols): white ink on black, 0..255."""
    data = _read(Path(path))
    magic, n, rows, cols = np.frombuffer(data, ">u4", count=4, offset=0)
    if magic != IMAGES_MAGIC:
        raise BadInput(f"{path} is not an IDX image file (magic {magic}, expected {IMAGES_MAGIC})")
    return np.frombuffer(data, np.uint8, offset=16).reshape(int(n), int(rows), int(cols))


def read_idx_labels(path: str | Path) -> np.ndarray:
    """uint8 array (n,) of digits."""
    data = _read(Path(path))
    magic, n = np.frombuffer(data, ">u4", count=2, offset=0)
    if magic != LABELS_MAGIC:
        raise BadInput(f"{path} is not an IDX label file (magic {magic}, expected {LABELS_MAGIC})")
    return np.frombuffer(data, np.uint8, offset=8)[: int(n)]


def find_split(mnist_dir: str | Path, split: str) -> tuple[Path, Path] | None:
    """The (images, labels) files of a split in `mnist_dir`, gzipped or not; None when absent."""
    images_name, labels_name = SPLITS[split]
    root = Path(mnist_dir)
    for suffix in (".gz", ""):
        images, labels = root / (images_name + suffix), root / (labels_name + suffix)
        if images.is_file() and labels.is_file():
            return images, labels
    return None


def load_split(mnist_dir: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images (n, 28, 28) uint8 and labels (n,) uint8 of one split ("train", "train-5k", "test")."""
    found = find_split(mnist_dir, split)
    if found is None:
        images_name, labels_name = SPLITS[split]
        raise BadInput(f"no MNIST {split!r} files ({images_name}[.gz], {labels_name}[.gz]) in {mnist_dir}")
    images, labels = read_idx_images(found[0]), read_idx_labels(found[1])
    if len(images) != len(labels):
        raise BadInput(f"MNIST {split!r} in {mnist_dir}: {len(images)} images but {len(labels)} labels")
    return images, labels


def load_training_split(mnist_dir: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The full 60k training set when present, else the 5k subset."""
    split = "train" if find_split(mnist_dir, "train") else "train-5k"
    return load_split(mnist_dir, split)
