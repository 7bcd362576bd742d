"""The committed default model, model/model.pkl: what it says about itself, and what it does on MNIST's test set."""
from __future__ import annotations

import torch

from dlcourse.hub.model_repo import DEFAULT_MODEL_PATH
from dlcourse.mnist import load_split

MAX_MB = 50


def test_default_model_file_describes_itself(classifier):
    meta = classifier.meta
    assert DEFAULT_MODEL_PATH.stat().st_size <= MAX_MB * 2**20
    assert meta.preprocessing == "mnist" and meta.in_chans == 1
    assert meta.classes == [str(d) for d in range(10)]
    assert meta.pretrained is False and meta.trained_on == "MNIST 5,000 training digits"
    assert meta.valid_size == 10_000 and "test set" in meta.valid_split
    assert meta.command.startswith("python train.py --data mnist ") and "--no-pretrained" in meta.command
    assert len(meta.history) == meta.recipe["epochs"] + meta.recipe["freeze_epochs"]
    assert meta.metrics["accuracy"] >= 0.99


def test_default_model_is_99_percent_right_on_the_mnist_test_set(classifier, mnist_dir):
    """All 10,000 test digits (never seen in training) through the app's own transform and network, batched."""
    images, labels = load_split(mnist_dir, "test")
    digits = torch.from_numpy(images.copy()).unsqueeze(1)  # uint8 (N, 1, 28, 28), as images.to_mnist_digit gives
    correct = 0
    for start in range(0, len(digits), 1000):
        inputs = classifier.transform(digits[start : start + 1000])
        predicted = classifier.probabilities(inputs).argmax(dim=1)
        correct += int((predicted == torch.from_numpy(labels[start : start + 1000].astype("int64"))).sum())
    accuracy = correct / len(digits)
    assert accuracy >= 0.99
    # What the file claims is what it does (up to a near-tie or two between float layouts).
    assert abs(accuracy - classifier.meta.metrics["accuracy"]) <= 2 / len(digits)
