"""The default training augmentations for photos and for digits.

`dlcourse.served.preprocess.create_transform(info, augment)` builds the pipeline from these, with the
evaluation steps the app and validation use. Defaults differ for photos and digits: photos get fastai's
random-resized-crop and flips; digits keep their whole frame (a crop can cut a stroke off), are never
flipped (a flipped 2 is not a 2), and get small affine moves and elastic distortion instead, the
augmentations that suit handwriting best. The ink steps of `augment.INK_STEPS` (thicker or thinner strokes,
greyer ink, gaps, clutter at the edge of a crop) are off here: docs/training.md says why.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..served.augment import Augment

PHOTO_AUGMENT = Augment(crop_scale=(0.35, 1.0), flip=True, rotate=10, translate=0, zoom=0, shear=0, elastic=0)
DIGIT_AUGMENT = Augment(crop_scale=None, flip=False, rotate=10, translate=0.1, zoom=0.1, shear=10, elastic=34)


def default_augment(preprocessing: str, **overrides: Any) -> Augment:
    """The defaults for "photo" or "mnist" data, with any non-None override applied
    (crop_scale=False: no random cropping)."""
    base = DIGIT_AUGMENT if preprocessing == "mnist" else PHOTO_AUGMENT
    values = {key: value for key, value in overrides.items() if value is not None}
    if values.get("crop_scale") is False:
        values["crop_scale"] = None
    return replace(base, **values)
