"""Training's random variations of an image (`Augment`): what changes between epochs, between the evaluation
sizing and the network's input that training shares with the app (`preprocess.create_transform`).

torchvision is imported only when these steps are built, which serving never does: with the torch._dynamo it
pulls in, torchvision is ~170 MB and ~1.5 s of a server's start-up (docs/serving-speed.md).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

# Elastic distortion strength is given for a 28-pixel image and scaled with the image size;
# Simard et al. (2003) used alpha 34 with sigma 4 on MNIST.
ELASTIC_REFERENCE_SIZE = 28
ELASTIC_SIGMA = 4.0
ELASTIC_P = 0.5


@dataclass(frozen=True)
class Augment:
    """What varies between epochs in training. All values plain, so they can be stored in the model file."""

    crop_scale: tuple[float, float] | None  # RandomResizedCrop area range; None: the evaluation sizing
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


def random_steps(augment: Augment, size: int, evaluation_sizing: list[torch.nn.Module]) -> list[torch.nn.Module]:
    """The steps on uint8 images before the network's input: a random resized crop in place of the evaluation
    sizing when `augment` crops at random, then flips, affine moves and elastic distortion."""
    from torchvision.transforms import v2

    steps = ([v2.RandomResizedCrop(size, scale=tuple(augment.crop_scale), antialias=True)] if augment.crop_scale
             else list(evaluation_sizing))
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
    return steps
