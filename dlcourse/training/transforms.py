"""Training augmentations with torchvision.transforms.v2, on uint8 CHW tensors.

Validation and the app use `dlcourse.served.preprocess.eval_transform(info)` (resize + centre crop); training
sees random variations of the same images, ending in the same dtype, channels and normalisation.
Defaults differ for photos and digits: photos get fastai's random-resized-crop and flips; digits keep
their whole frame (a crop can cut a stroke off), are never flipped (a flipped 2 is not a 2), and get small
affine moves and elastic distortion instead, the augmentations that suit handwriting best.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torchvision.transforms import v2

from ..served.modelfile import ModelInfo
from ..served.preprocess import MatchChannels

# Elastic distortion strength is given for a 28-pixel image and scaled with the image size;
# Simard et al. (2003) used alpha 34 with sigma 4 on MNIST.
ELASTIC_REFERENCE_SIZE = 28
ELASTIC_SIGMA = 4.0
ELASTIC_P = 0.5


@dataclass(frozen=True)
class Augment:
    """What varies between epochs. All values plain, so they can be stored in the model file."""

    crop_scale: tuple[float, float] | None  # RandomResizedCrop area range; None: resize + centre crop
    flip: bool  # random horizontal flips
    rotate: float  # up to this many degrees either way
    translate: float  # up to this share of the size, each direction
    zoom: float  # scale by 1 +- zoom
    shear: float  # up to this many degrees
    elastic: float  # elastic distortion strength (alpha at 28 px); 0 = off

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["crop_scale"] = list(self.crop_scale) if self.crop_scale else None
        return values


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


def train_transform(meta: ModelInfo, augment: Augment) -> v2.Compose:
    """uint8 tensor (C, H, W) -> a randomly varied, normalised float tensor (in_chans, img_size, img_size)."""
    size = meta.img_size
    steps: list[torch.nn.Module] = []
    if augment.crop_scale:
        steps.append(v2.RandomResizedCrop(size, scale=tuple(augment.crop_scale), antialias=True))
    else:
        steps += [v2.Resize(size, antialias=True), v2.CenterCrop(size)]
    if augment.flip:
        steps.append(v2.RandomHorizontalFlip())
    if augment.rotate or augment.translate or augment.zoom or augment.shear:
        steps.append(
            v2.RandomAffine(
                degrees=augment.rotate,
                translate=(augment.translate, augment.translate) if augment.translate else None,
                scale=(1 - augment.zoom, 1 + augment.zoom) if augment.zoom else None,
                shear=augment.shear or None,
                interpolation=v2.InterpolationMode.BILINEAR,
            )
        )
    if augment.elastic:
        ratio = size / ELASTIC_REFERENCE_SIZE
        elastic = v2.ElasticTransform(alpha=augment.elastic * ratio, sigma=ELASTIC_SIGMA * ratio)
        steps.append(v2.RandomApply([elastic], p=ELASTIC_P))
    steps += [
        v2.ToDtype(torch.float32, scale=True),
        MatchChannels(meta.in_chans),
        v2.Normalize(meta.mean, meta.std),
    ]
    return v2.Compose(steps)
