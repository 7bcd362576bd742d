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
    # How often a digit's ink is varied as people's pens, scans and crops vary it (`INK_STEPS`), before the steps above:
    stroke_width: float = 0  # strokes dilated or eroded by a pixel (a thick marker, a thin pen)
    fade: float = 0  # the ink greyer (pencil, a faded scan)
    broken_strokes: float = 0  # small gaps in the strokes (grainy chalk or pencil)
    edge_clutter: float = 0  # a piece of a line or a blob at the picture's edge (clutter left in a crop)

    def as_dict(self) -> dict[str, Any]:
        """The values as plain types; the ink steps only when used, so runs without them store what they always did."""
        values = asdict(self)
        values["crop_scale"] = list(self.crop_scale) if self.crop_scale else None
        return {key: value for key, value in values.items() if key not in INK_STEPS or value}


def random_steps(augment: Augment, size: int, evaluation_sizing: list[torch.nn.Module]) -> list[torch.nn.Module]:
    """The steps on uint8 images before the network's input: the ink steps a digit's pixels may take (at their own
    28 px, before sizing), a random resized crop in place of the evaluation sizing when `augment` crops at random,
    then flips, affine moves and elastic distortion."""
    from torchvision.transforms import v2

    steps = [step(getattr(augment, name)) for name, step in INK_STEPS.items() if getattr(augment, name)]
    steps += ([v2.RandomResizedCrop(size, scale=tuple(augment.crop_scale), antialias=True)] if augment.crop_scale
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


class InkStep(torch.nn.Module):
    """A random change to white ink on black (uint8, (C, H, W)), made with probability `p`; its draws come from
    torch's random generator, as torchvision's steps do, so a seed (and a resumed checkpoint) repeats them."""

    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return image
        return self.vary(image.float()).round().clamp(0, 255).to(image.dtype)

    def vary(self, ink: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


class StrokeWidth(InkStep):
    """Strokes a pixel wider (a 2x2 dilation: a marker) or narrower (a 2x2 erosion: a fine pen), either half the time;
    an erosion that would leave under a quarter of the ink (strokes a pixel wide) dilates instead. Not more: the
    pipeline thins strokes thicker than a fifth of the digit to MNIST's width (`images._thinned`)."""

    def vary(self, ink: torch.Tensor) -> torch.Tensor:
        padded = torch.nn.functional.pad(ink, (0, 1, 0, 1))
        wider = torch.nn.functional.max_pool2d(padded, 2, stride=1)
        if torch.rand(()) < 0.5:
            return wider
        narrower = -torch.nn.functional.max_pool2d(-padded, 2, stride=1)
        return narrower if narrower.sum() >= 0.25 * ink.sum() else wider


class Fade(InkStep):
    """The ink 35-75% as bright (grey pencil, a faded scan, a low-contrast photo)."""

    def vary(self, ink: torch.Tensor) -> torch.Tensor:
        return ink * _uniform(0.35, 0.75)


class BrokenStrokes(InkStep):
    """10-30% of the ink's 2x2 grains gone, as chalk or pencil leaves gaps on grainy paper."""

    def vary(self, ink: torch.Tensor) -> torch.Tensor:
        height, width = ink.shape[-2:]
        grains = torch.rand(((height + 1) // 2, (width + 1) // 2)) >= _uniform(0.1, 0.3)
        kept = grains.repeat_interleave(2, 0).repeat_interleave(2, 1)[:height, :width]
        return ink * kept


class EdgeClutter(InkStep):
    """A piece of something else touching the picture's edge, as a crop leaves of a line or a neighbour's ink: a
    stretch of line along the edge (1-3 px thick), or a blob cut by the edge (radius 2-5 px)."""

    def vary(self, ink: torch.Tensor) -> torch.Tensor:
        height, width = ink.shape[-2:]
        rows = torch.arange(height, dtype=torch.float32).view(-1, 1).expand(height, width)
        cols = torch.arange(width, dtype=torch.float32).view(1, -1).expand(height, width)
        side = int(torch.randint(4, ()))  # top, bottom, left, right: measured as distance from that edge
        inward, along = [(rows, cols), (height - 1 - rows, cols), (cols, rows), (width - 1 - cols, rows)][side]
        length = width if side < 2 else height
        if torch.rand(()) < 0.5:
            start = _uniform(-0.3, 0.7) * length
            shape = (inward < _uniform(1, 3)) & (along >= start) & (along < start + _uniform(0.3, 1) * length)
        else:
            radius = _uniform(2, 5)
            centre = _uniform(0.1, 0.9) * length
            shape = inward ** 2 + (along - centre) ** 2 <= radius ** 2
        return torch.maximum(ink, shape.float() * 255 * _uniform(0.5, 1))


INK_STEPS = {"stroke_width": StrokeWidth, "fade": Fade, "broken_strokes": BrokenStrokes, "edge_clutter": EdgeClutter}
