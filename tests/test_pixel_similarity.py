"""The pixel-similarity baseline: its artifact, its arithmetic, and the tab's API on a served app."""
from __future__ import annotations

import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import EXAMPLES_DIR, ROOT
from dlcourse.artifacts import tensors_digest
from dlcourse.errors import BadInput, EmptyDrawing
from dlcourse.served.images import load_image, to_mnist_digit
from dlcourse.mnist import load_split
from dlcourse.pixels.baseline import (
    DEFAULT_PATH,
    MODES,
    PixelBaseline,
    data_digest,
    difference_picture,
    digit_picture,
    ideal_digits,
    l1_distance,
    l2_distance,
    main,
)


@pytest.fixture(scope="module")
def test_set(mnist_dir):
    return load_split(mnist_dir, "test")


# -- the artifact ---------------------------------------------------------------------------------------


def test_artifact_loads_without_running_code_and_describes_itself():
    record = torch.load(DEFAULT_PATH, map_location="cpu", weights_only=True)
    assert (record["format"], record["format_version"]) == ("dlcourse-ideal-digits", 2)
    ideals, info = record["state_dict"]["ideal_digits"], record["meta"]
    assert ideals.shape == (10, 28, 28) and ideals.dtype == torch.float32
    assert record["weights_sha256"] == tensors_digest({"ideal_digits": ideals})
    assert info["built_by"].startswith("python -m dlcourse.pixels.baseline --mnist-dir ")
    assert info["training_data"]["images"] == sum(info["training_data"]["per_digit"])
    assert info["test_data"]["images"] == 10_000
    assert set(info["accuracy"]) == set(MODES) and all(set(v) == {"L1", "L2"} for v in info["accuracy"].values())


def test_stored_ideal_digits_equal_the_mean_of_the_training_data(baseline, mnist_dir):
    training = baseline.training_data
    images, labels = load_split(mnist_dir, training["split"])  # the full 60k only if a user has them here
    if data_digest(images, labels) != training["sha256"]:
        pytest.skip(f"data/mnist's {training['split']!r} split is not the data the artifact was built from")
    assert torch.equal(baseline.ideals, ideal_digits(images, labels))
    # and "mean" means mean: the ideal 3 is the average of the training 3s, computed the obvious way
    threes = torch.from_numpy(images[labels == 3].astype(np.float32) / 255)
    assert torch.allclose(baseline.ideals[3], threes.mean(0), atol=1e-6)


def test_the_command_rebuilds_the_committed_artifact(baseline, mnist_dir, tmp_path, capsys):
    out = tmp_path / "ideal_digits.pt"
    assert main(["--mnist-dir", str(mnist_dir), "--split", baseline.training_data["split"], "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 or 7 (2,038 test images): L1 95." in printed
    rebuilt = PixelBaseline.load(out)
    assert torch.equal(rebuilt.ideals, baseline.ideals)
    assert rebuilt.training_data == baseline.training_data
    for mode, by_distance in baseline.accuracy.items():
        assert rebuilt.accuracy[mode] == pytest.approx(by_distance, abs=1.5 / 2038)


def test_stored_accuracies_match_a_recomputation_on_the_test_set(baseline, test_set):
    images, labels = test_set
    assert data_digest(images, labels) == baseline.info["test_data"]["sha256"]
    recomputed = baseline.accuracies(images, labels)
    for mode, count in (("3 or 7", 2038), ("all ten digits", 10_000)):
        for distance in ("L1", "L2"):
            # the same sums in another order (another CPU, thread count) may flip at most a near tie
            assert recomputed[mode][distance] == pytest.approx(baseline.accuracy[mode][distance], abs=1.5 / count)
    assert recomputed["3 or 7"]["L1"] >= 0.94  # the book's baseline: about 95%
    assert 0.78 <= recomputed["all ten digits"]["L2"] <= 0.84  # about 81%
    assert recomputed["all ten digits"]["L1"] < recomputed["all ten digits"]["L2"]


def test_the_command_takes_the_full_training_files_when_present(tmp_path, mnist_dir):
    train_images, train_labels = load_split(mnist_dir, "train-5k")
    test_images, test_labels = load_split(mnist_dir, "test")
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz", train_images[::5], train_labels[::5])
    write_idx(tmp_path / "t10k-images-idx3-ubyte", tmp_path / "t10k-labels-idx1-ubyte", test_images[:300], test_labels[:300])
    built = PixelBaseline.build(tmp_path)  # "auto": the full training split when it is there
    assert built.training_data["split"] == "train" and built.training_data["images"] == 1000
    assert built.info["test_data"]["images"] == 300
    assert torch.equal(built.ideals, ideal_digits(train_images[::5], train_labels[::5]))
    with pytest.raises(BadInput, match="no MNIST 'train-5k' files"):
        PixelBaseline.build(tmp_path, split="train-5k")


def write_idx(images_path: Path, labels_path: Path, images: np.ndarray, labels: np.ndarray) -> None:
    def write(path: Path, data: bytes) -> None:
        path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)

    write(images_path, struct.pack(">IIII", 2051, len(images), 28, 28) + images.tobytes())
    write(labels_path, struct.pack(">II", 2049, len(labels)) + labels.tobytes())


def test_missing_or_foreign_artifacts_are_refused_with_the_fix(tmp_path):
    with pytest.raises(BadInput, match="python -m dlcourse.pixels.baseline --mnist-dir"):
        PixelBaseline.load(tmp_path / "nothing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(BadInput, match="not an ideal-digits file"):
        PixelBaseline.load(foreign)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"format": "dlcourse-ideal-digits", "hook": Path("x")}, unsafe)  # a Python object: refused unread
    with pytest.raises(BadInput, match="refused unread.*Nothing in it was executed.*Rebuild it with `python -m"):
        PixelBaseline.load(unsafe)


def test_a_version_1_artifact_is_refused_with_the_command_that_rebuilds_it(tmp_path, baseline):
    old = tmp_path / "ideal_digits.pt"  # version 1's layout: the ideals and the info side by side, no checksum
    torch.save({"format": "dlcourse-ideal-digits", "format_version": 1, "ideal_digits": baseline.ideals, **baseline.info}, old)
    with pytest.raises(BadInput) as refused:
        PixelBaseline.load(old)
    assert str(refused.value) == (f"{old} has format version 1; this app reads 2. "
                                  "Rebuild it with `python -m dlcourse.pixels.baseline --mnist-dir data/mnist`.")


def test_changed_or_misshapen_ideals_are_refused(tmp_path, baseline):
    path = baseline.save(tmp_path / "ideal_digits.pt")
    record = torch.load(path, weights_only=True)
    record["state_dict"]["ideal_digits"][3, 14, 14] += 0.01  # one pixel of the ideal 3
    torch.save(record, path)
    with pytest.raises(BadInput, match="modified after it was written"):
        PixelBaseline.load(path)
    misshapen = PixelBaseline(baseline.ideals, baseline.info)
    misshapen.ideals = baseline.ideals[:, :20]  # a checksum is no proof of shape: the loader checks that too
    with pytest.raises(BadInput, match=r"damaged: its ideal digits are not \(10, 28, 28\) float32"):
        PixelBaseline.load(misshapen.save(path))


def test_logic_module_does_not_import_gradio_nor_work_at_import():
    code = "import sys, dlcourse.pixels.baseline; assert 'gradio' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr


# -- the arithmetic ----------------------------------------------------------------------------------------


def test_distances_are_mean_absolute_and_root_mean_squared_differences():
    blank, one_pixel = torch.zeros(28, 28), torch.zeros(28, 28)
    one_pixel[14, 14] = 1
    assert l1_distance(blank, one_pixel).item() == pytest.approx(1 / 784)
    assert l2_distance(blank, one_pixel).item() == pytest.approx(1 / 28)  # sqrt(1/784): a lone big error weighs more
    assert l1_distance(blank, torch.ones(28, 28)).item() == pytest.approx(1.0)
    assert l2_distance(blank, torch.full((28, 28), 0.5)).item() == pytest.approx(0.5)


def test_distances_broadcast_every_image_against_every_ideal(baseline, test_set):
    images = torch.from_numpy(test_set[0][:50].astype(np.float32) / 255)
    every = baseline.distances(images, "all ten digits", "L2")
    assert every.shape == (50, 10)
    one_by_one = torch.stack([torch.stack([l2_distance(image, ideal) for ideal in baseline.ideals]) for image in images])
    assert torch.allclose(every, one_by_one, atol=1e-6)
    assert baseline.distances(images, "3 or 7", "L1").shape == (50, 2)
    predicted = baseline.predict(images, "all ten digits", "L2")
    assert predicted.tolist() == [baseline.compare(image, "all ten digits", "L2").prediction for image in images]


def test_a_real_mnist_3_is_closer_to_the_ideal_3_than_to_the_ideal_7(baseline, test_set):
    images, labels = test_set
    first_three = images[np.flatnonzero(labels == 3)[0]]
    # as stored in MNIST, and as the app sees the example file after the Classify tab's preprocessing
    for digit in (first_three, to_mnist_digit(load_image(EXAMPLES_DIR / "mnist-test-3.png"))):
        for distance in ("L1", "L2"):
            result = baseline.compare(digit, "3 or 7", distance)
            assert result.prediction == 3 and list(result.distances) == [3, 7]
            assert result.distances[3] < result.distances[7]
            assert torch.equal(result.ideal, baseline.ideals[3])


def test_a_comparison_lists_every_candidate_closest_first(baseline):
    digit = to_mnist_digit(load_image(EXAMPLES_DIR / "mnist-test-7.png"))
    result = baseline.compare(digit, "all ten digits", "L2")
    values = list(result.distances.values())
    assert sorted(result.distances) == list(range(10)) and values == sorted(values)
    assert result.prediction == next(iter(result.distances)) == 7 and result.margin > 0
    assert torch.allclose(result.difference, result.digit - result.ideal)


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("mnist-baseline-says-*.png")), ids=lambda p: p.stem)
def test_examples_named_for_a_mistake_show_that_mistake(baseline, path):
    words = path.stem.split("-")
    says, truly = int(words[words.index("says") + 1]), int(words[words.index("truly") + 1])
    digit = to_mnist_digit(load_image(path))
    for distance in ("L1", "L2"):
        assert baseline.compare(digit, "all ten digits", distance).prediction == says != truly


def test_empty_drawings_and_unknown_choices_get_clear_messages(baseline):
    with pytest.raises(EmptyDrawing, match="empty"):
        baseline.compare_image(Image.new("RGB", (280, 280), "white"), "3 or 7", "L1")
    digit = np.zeros((28, 28), np.uint8)
    with pytest.raises(BadInput, match="Unknown mode 'five'.*'3 or 7', 'all ten digits'"):
        baseline.compare(digit, "five", "L1")
    with pytest.raises(BadInput, match="Unknown distance 'L3'"):
        baseline.compare(digit, "3 or 7", "L3")
    with pytest.raises(BadInput, match="28x28"):
        baseline.compare(np.zeros((14, 14), np.uint8), "3 or 7", "L1")
    assert baseline.compare(digit, "All ten", "l2").mode == "all ten digits"


def test_pictures_show_pixels_as_squares_and_differences_in_colour():
    digit = torch.zeros(28, 28)
    digit[0, 0] = 1
    picture = digit_picture(digit, 10)
    assert picture.size == (280, 280) and picture.getpixel((9, 9)) == 255 and picture.getpixel((10, 10)) == 0
    difference = torch.zeros(28, 28)
    difference[0, 0], difference[0, 1] = 1, -1
    heat = difference_picture(difference, 1)
    assert heat.getpixel((0, 0)) == (255, 0, 0)  # ink only in the input: red
    assert heat.getpixel((1, 0)) == (0, 0, 255)  # ink only in the ideal: blue
    assert heat.getpixel((5, 5)) == (255, 255, 255)  # no difference: white
