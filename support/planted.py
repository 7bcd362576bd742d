"""A folder of MNIST digits as PNG files in class folders, with mistakes planted on purpose: a share of the
digits put in the wrong class folder, a few photos that are no digit at all, and a few files that are not
images. For the data cleaner's tests and benchmark (what it must find, and where)."""
from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path

import numpy as np
from PIL import Image

from dlcourse import mnist

ANSWERS = "planted.json"  # beside the folder, not in it: {file: true label or "photo" or "unreadable"}


def sample_photos() -> list[Path]:
    """Real photos that installed packages ship (scikit-image's and Gradio's samples, matplotlib's Grace Hopper)."""
    found = []
    for package, folder, names in (
        ("skimage", "data", ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png",
                             "hubble_deep_field.jpg", "retina.jpg", "camera.png", "moon.png", "brick.png")),
        ("gradio", "media_assets/images", ("cheetah.jpg", "lion.jpg", "tower.jpg")),
        ("matplotlib", "mpl-data/sample_data", ("grace_hopper.jpg",)),
    ):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        base = Path(spec.origin).parent / folder
        found += [base / name for name in names if (base / name).is_file()]
    return found


def make_planted_mnist(root: Path, mnist_dir: Path, split: str = "train-5k", count: int | None = None,
                       wrong_share: float = 0.1, photos: int = 10, unreadable: int = 2, seed: int = 0) -> dict[str, str]:
    """Write `count` digits of an MNIST split (at random; all by default) to root/<label>/<n>.png, `wrong_share` of them in a wrong
    class folder, `photos` photos spread over the classes, and `unreadable` broken files. Returns (and
    writes beside `root` as planted.json) {planted file relative to root: its truth}: the true digit of a
    misplaced one, "photo", or "unreadable"."""
    images, labels = mnist.load_split(mnist_dir, split)
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(images)), min(count or len(images), len(images))))  # the 5k split is sorted by digit
    wrong = set(rng.sample(chosen, round(len(chosen) * wrong_share)))
    planted: dict[str, str] = {}
    for digit in range(10):
        (root / str(digit)).mkdir(parents=True, exist_ok=True)
    for n in chosen:
        truth = int(labels[n])
        folder = rng.choice([d for d in range(10) if d != truth]) if n in wrong else truth
        file = f"{folder}/{split}-{n:05d}.png"
        Image.fromarray(np.asarray(images[n])).save(root / file)
        if n in wrong:
            planted[file] = str(truth)
    pictures = sample_photos()
    for n, photo in enumerate(pictures[:photos]):
        file = f"{n % 10}/photo-{photo.stem}{photo.suffix}"
        (root / file).write_bytes(photo.read_bytes())
        planted[file] = "photo"
    for n in range(unreadable):
        file = f"{(n * 3) % 10}/broken-{n}.png"
        (root / file).write_bytes(b"\x89PNG\r\n\x1a\n" + b"cut off" * n)  # a PNG signature, then nothing usable
        planted[file] = "unreadable"
    (root.parent / ANSWERS).write_text(json.dumps(planted, indent=0))
    return planted
