"""The evaluation's pictures are what they say (bench/digit_sources.py measures accuracy; this does not):
shapes, labels, polarities, crops to the ink, seeds that make the same pictures again, and a held-out part
disjoint from the development part."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from support import digit_sources, phone_photos
from support.digit_sources import (DEVELOPMENT, HELD_OUT, crop_to_ink, mnist_cropped, photo_cases, shipped_photos,
                                   sklearn_cases, sklearn_digits, with_mnist_margin)
from support.serving import MNIST_DIR

from dlcourse.mnist import load_split


@pytest.fixture(scope="module")
def mnist():
    return load_split(MNIST_DIR, "test")


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_sklearn_digits_come_as_the_package_ships_them():
    images, labels = sklearn_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8
    assert images.max() == 255 and images.min() == 0
    assert sorted(set(labels.tolist())) == list(range(10))


def test_mnist_margin_puts_the_ink_in_a_20_px_box_at_the_centre_of_28(mnist):
    images, _ = sklearn_digits()
    for digit in list(images[:20]) + list(mnist[0][:20]):
        framed = with_mnist_margin(digit)
        assert framed.shape == (28, 28)
        ink = crop_to_ink(np.where(framed > 8, framed, 0))  # Lanczos leaves a faint ring of 1-8 levels
        assert 18 <= max(ink.shape) <= 21
        ys, xs = np.mgrid[0:28, 0:28]
        weight = framed.astype(float)
        assert abs((ys * weight).sum() / weight.sum() - 14) < 1.5
        assert abs((xs * weight).sum() / weight.sum() - 14) < 1.5


def test_mnist_crops_touch_every_edge_in_both_polarities_and_enlargements(mnist):
    images, labels = mnist
    cases = mnist_cropped(images, labels, 5, seed=3, held_out=False)
    kinds = {case.kind for case in cases}
    assert kinds == {f"{p}, x{f}" for p in ("white on black", "dark on white") for f in (1, 4, 10)}
    for case in cases:
        assert case.label == labels[case.index] and case.index in DEVELOPMENT["mnist"]
        picture, margin = pixels(case.picture), pixels(case.margin)
        factor = int(case.kind.rsplit("x", 1)[1])
        digit = images[case.index]
        ink = crop_to_ink(digit)
        assert picture.shape == (ink.shape[0] * factor, ink.shape[1] * factor)
        assert margin.shape == (28 * factor, 28 * factor)
        dark_ink = case.kind.startswith("dark")
        if factor == 1:
            assert np.array_equal(picture, 255 - ink if dark_ink else ink)
            assert np.array_equal(margin, 255 - digit if dark_ink else digit)
            inked = picture < 255 if dark_ink else picture > 0
            assert inked[0].any() and inked[-1].any() and inked[:, 0].any() and inked[:, -1].any()


def test_sklearn_cases_in_both_polarities_as_they_come_and_enlarged():
    images, labels = sklearn_digits()
    cases = sklearn_cases(4, seed=1, held_out=True)
    assert len(cases) == 4 * 4
    for case in cases:
        assert case.index in HELD_OUT["sklearn"] and case.label == labels[case.index]
        picture = pixels(case.picture)
        as_given = images[case.index] if case.kind.startswith("white") else 255 - images[case.index]
        if "as it comes" in case.kind:
            assert np.array_equal(picture, as_given)
        else:
            assert picture.shape == (32, 32)
        margin = pixels(case.margin)
        assert margin.shape == (28, 28)
        # the margin counterpart keeps the polarity: its border is the background colour
        assert (margin[0].mean() > 200) == case.kind.startswith("dark")


def test_every_photo_kind_renders_a_labelled_jpeg(mnist):
    images, labels = mnist
    cases = photo_cases(images, labels, 1, seed=5, held_out=False)
    assert [case.kind for case in cases] == list(phone_photos.KINDS)
    for case in cases:
        photo = Image.open(io.BytesIO(case.picture))
        assert photo.format == "JPEG" and photo.mode == "RGB" and min(photo.size) >= 32
        if phone_photos.KINDS[case.kind].digits:
            assert case.source == "phone photos" and case.label == labels[case.index]
            margin = pixels(case.margin)
            border = np.concatenate([margin[0], margin[-1], margin[:, 0], margin[:, -1]])
            assert margin.shape == (28, 28) and border.max() <= 8 and margin.max() > 200  # ink in a margin
        else:
            assert case.source == "no digit" and case.label is None and case.margin is None


def test_a_tight_crop_photo_has_ink_at_every_edge(mnist):
    images, _ = mnist
    rng = np.random.default_rng(0)
    for index in (5000, 5001, 5002):
        photo = phone_photos.tight_crop(images[index], rng, every_edge=True).mean(axis=2)
        paper = np.median(photo)
        inked = photo < paper - 25  # pencil is faint
        assert inked[0].any() and inked[-1].any() and inked[:, 0].any() and inked[:, -1].any()


def test_the_same_seed_makes_the_same_pictures_and_another_seed_others(mnist):
    images, labels = mnist
    kinds = ["sticky note on a desk", "chalk on a blackboard"]
    first = photo_cases(images, labels, 1, seed=11, held_out=False, kinds=kinds)
    again = photo_cases(images, labels, 1, seed=11, held_out=False, kinds=kinds)
    other = photo_cases(images, labels, 1, seed=12, held_out=False, kinds=kinds)
    assert [case.picture for case in first] == [case.picture for case in again]
    assert not {case.picture for case in first} & {case.picture for case in other}
    assert sklearn_cases(3, 11, False) == sklearn_cases(3, 11, False)


def test_the_held_out_part_shares_no_digit_with_the_development_part(mnist):
    images, labels = mnist
    for source in ("mnist", "sklearn"):
        assert not set(DEVELOPMENT[source]) & set(HELD_OUT[source])
    assert min(DEVELOPMENT["mnist"]) >= 5000  # test digits 0-4999 tuned the project's own renderer
    kinds = ["finger or pen at the edge"]
    development = photo_cases(images, labels, 3, seed=0, held_out=False, kinds=kinds)
    held_out = photo_cases(images, labels, 3, seed=0, held_out=True, kinds=kinds)
    assert all(case.index in HELD_OUT["mnist"] for case in held_out)
    assert all(case.index in DEVELOPMENT["mnist"] for case in development)
    assert digit_sources.stream(0, True, "x").random() != digit_sources.stream(0, False, "x").random()


def test_a_quarter_of_the_photos_are_stored_turned_with_the_exif_orientation_that_shows_them_upright():
    photo = np.zeros((60, 40, 3), np.uint8)
    photo[:20] = 255  # bright at the top, as it should show
    turned = 0
    for seed in range(40):
        data = phone_photos.jpeg(photo, np.random.default_rng(seed))
        stored = Image.open(io.BytesIO(data))
        if stored.getexif().get(phone_photos.ORIENTATION) == 6:
            turned += 1
            assert stored.size == (60, 40)
        shown = np.asarray(ImageOps.exif_transpose(stored))
        assert shown.shape == photo.shape and np.abs(shown.astype(int) - photo).mean() < 8
    assert 4 <= turned <= 20


def test_the_photos_packages_ship_are_pictures_with_no_digit_and_the_parts_share_none():
    development, held_out = shipped_photos(False), shipped_photos(True)
    assert len(development) >= 30 and len(held_out) >= 10
    assert all(case.source == "no digit" and case.label is None and case.margin is None for case in development + held_out)
    assert not {case.picture for case in development} & {case.picture for case in held_out}
    sizes = [Image.open(io.BytesIO(case.picture)).size for case in development if case.suffix in (".jpg", ".png")]
    assert len(sizes) >= 25 and max(min(size) for size in sizes) >= 400  # real photos, as the packages ship them
