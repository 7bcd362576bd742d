"""Tiny generated data sets and a train.py runner for the training tests (CPU, seconds)."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
TRAIN_PY = ROOT / "train.py"
SHAPES = ("circle", "square", "triangle")
# Small and fast: timm's tiny test network at 32 px, one epoch, no loader processes, CPU.
FAST = ["--arch", "test_resnet", "--no-pretrained", "--img-size", "32", "--batch-size", "8",
        "--workers", "0", "--device", "cpu", "--epochs", "1"]


def shape_image(shape: str, rng: random.Random, size: int = 40) -> Image.Image:
    """A light circle, square or triangle on a dark background."""
    image = Image.new("RGB", (size, size), tuple(rng.randint(0, 80) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    x, y, s = rng.randint(4, 14), rng.randint(4, 14), rng.randint(14, 22)
    colour = tuple(rng.randint(150, 255) for _ in range(3))
    if shape == "circle":
        draw.ellipse([x, y, x + s, y + s], fill=colour)
    elif shape == "square":
        draw.rectangle([x, y, x + s, y + s], fill=colour)
    else:
        draw.polygon([(x, y + s), (x + s, y + s), (x + s // 2, y)], fill=colour)
    return image


def make_image_folder(root: Path, per_class: int = 12, classes=SHAPES, nested: bool = True) -> Path:
    """ImageFolder layout: root/<class>/[batch1/]<class>_<i>.png."""
    rng = random.Random(0)
    for shape in classes:
        for i in range(per_class):
            folder = root / shape / (f"batch{i % 2}" if nested else "")
            folder.mkdir(parents=True, exist_ok=True)
            shape_image(shape, rng).save(folder / f"{shape}_{i}.png")
    return root


def make_named_folder(root: Path, per_class: int = 12) -> Path:
    """One flat folder, labels in the names the way Oxford-IIIT Pets has them: Breed_Name_<n>.jpg."""
    rng = random.Random(1)
    root.mkdir(parents=True, exist_ok=True)
    for label, shape in (("Round_Thing", "circle"), ("square", "square"), ("Tri", "triangle")):
        for i in range(per_class):
            shape_image(shape, rng).save(root / f"{label}_{i + 1}.{'jpg' if i % 2 else 'png'}")
    return root


def run_train(args: list[str], cwd: Path, env: dict[str, str] | None = None, launcher: list[str] | None = None,
              script: Path = TRAIN_PY, timeout: int = 300) -> subprocess.CompletedProcess:
    """`python train.py ARGS` (or LAUNCHER SCRIPT ARGS) in a subprocess, text output captured."""
    command = (launcher or [sys.executable]) + [str(script), *args]
    environment = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=environment)


def one_line_error(run: subprocess.CompletedProcess) -> str:
    """The error a failed run printed, checked to be a single `error:` line and no traceback."""
    assert run.returncode == 1, (run.returncode, run.stdout[-2000:], run.stderr[-2000:])
    assert "Traceback" not in run.stderr, run.stderr
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, run.stderr
    return errors[0]
