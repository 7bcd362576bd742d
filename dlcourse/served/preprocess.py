"""From a decoded image to the tensor a model file's network takes.

One builder, `create_transform`, serves the classifier, training's validation set and (with an `Augment`)
training's random variations, so the app sees every image exactly as the validation metrics in the model
file were measured, and training ends in the same sizing, dtype, channels and normalisation.
"""
from __future__ import annotations

import platform

import numpy as np
import torch
from PIL import Image

from .augment import Augment, random_steps
from .images import to_mnist_digit
from .modelfile import ModelInfo


class MatchChannels(torch.nn.Module):
    """Repeat a grayscale image to 3 channels, or average RGB to 1, as the network expects."""

    def __init__(self, in_chans: int):
        super().__init__()
        self.in_chans = in_chans

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        channels = image.shape[-3]
        if channels == self.in_chans:
            return image
        if self.in_chans == 1:
            return image.mean(dim=-3, keepdim=True)
        return image.expand(*image.shape[:-3], self.in_chans, *image.shape[-2:])


class FastaiBatchResize(torch.nn.Module):
    """aug_transforms(size=...) at inference (an identity affine grid, bilinear, align_corners) with fastai's
    _grid_sample, which first area-averages when shrinking by more than 2x."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        batch = image if image.dim() == 4 else image.unsqueeze(0)
        theta = torch.eye(3, dtype=batch.dtype)[:2].expand(batch.shape[0], 2, 3)
        grid = torch.nn.functional.affine_grid(theta, [batch.shape[0], batch.shape[1], self.size, self.size],
                                               align_corners=True)
        zoom = 1 / (grid.max() - grid.min()).item() * 2
        shrink = min(batch.shape[-2] / self.size, batch.shape[-1] / self.size) / 2
        if shrink > 1 and shrink > zoom:
            batch = torch.nn.functional.interpolate(batch, scale_factor=1 / shrink, mode="area",
                                                    recompute_scale_factor=True)
        out = torch.nn.functional.grid_sample(batch, grid, mode="bilinear", padding_mode="reflection",
                                              align_corners=True)
        return out if image.dim() == 4 else out[0]


class ResizeCrop(torch.nn.Module):
    """timm's evaluation sizing: the shorter side resized to `size` (bilinear, antialiased), then the centre
    `size` x `size` cut out. The same values as torchvision's v2.Resize then v2.CenterCrop, in plain torch:
    serving does not import torchvision (see `augment`)."""

    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        height, width = image.shape[-2:]
        short, long = sorted((height, width))
        scaled = (self.size, int(self.size * long / short))
        resized = _resize_bilinear(image, scaled if height <= width else scaled[::-1])
        top, left = (int(round((side - self.size) / 2.0)) for side in resized.shape[-2:])
        return resized[..., top:top + self.size, left:left + self.size]


def _resize_bilinear(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Antialiased bilinear resize of uint8 image(s) (..., C, H, W) to (height, width), as torchvision does it:
    on uint8 directly where the CPU has the vector kernel, else through float32, rounded."""
    if tuple(image.shape[-2:]) == size:
        return image
    batch = image.reshape(-1, *image.shape[-3:])
    native = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512") or platform.machine() in ("aarch64", "arm64")
    floats = batch if native else batch.float()
    resized = torch.nn.functional.interpolate(floats, size=list(size), mode="bilinear", align_corners=False,
                                              antialias=True)
    if not native:
        resized = resized.round_().to(torch.uint8)
    return resized.reshape(*image.shape[:-2], *size)


class NetworkInput(torch.nn.Module):
    """uint8 image(s) at the model's size -> what the network takes: floats in [0, 1], fastai's batch resize for
    presized models, the network's channels, normalised. The same values as torchvision's v2.ToDtype and
    v2.Normalize, without their per-call dispatch, which cost more than the work on one served digit."""

    def __init__(self, info: ModelInfo):
        super().__init__()
        self.presize = FastaiBatchResize(info.img_size) if info.presize else None
        self.channels = MatchChannels(info.in_chans)
        self.mean = torch.tensor(info.mean, dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(info.std, dtype=torch.float32).view(-1, 1, 1)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image = image.to(torch.float32).mul_(1.0 / 255)
        if self.presize is not None:
            image = self.presize(image)
        return self.channels(image).sub(self.mean).div(self.std)


def create_transform(info: ModelInfo, augment: Augment | None = None) -> torch.nn.Sequential:
    """uint8 tensor (C, H, W) -> normalised float tensor (in_chans, img_size, img_size), as timm's create_transform.

    augment None: evaluation (the app, validation, reports). With an Augment: training, its random steps
    between the shared sizing (unless it crops at random) and the shared dtype, channels and normalisation.
    train.py's models resize here; fastai's resize methods already ran on the PIL image (`fastai_resize`)."""
    sizing = [ResizeCrop(info.img_size)] if info.resize == "resize-crop" else []
    steps = random_steps(augment, info.img_size, sizing) if augment is not None else sizing
    return torch.nn.Sequential(*steps, NetworkInput(info))


def image_to_uint8_tensor(image: Image.Image, info: ModelInfo) -> torch.Tensor:
    """The model's view of a decoded RGB image: an MNIST-style digit or the photo (fastai's: resized already)."""
    if info.preprocessing == "mnist":
        return torch.from_numpy(to_mnist_digit(image)).unsqueeze(0)
    image = image if image.mode == "RGB" else image.convert("RGB")  # convert copies even an RGB image
    if info.resize != "resize-crop":
        image = fastai_resize(image, info)
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).contiguous()


PIL_RESAMPLES = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
                 "bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS,
                 "box": Image.Resampling.BOX, "hamming": Image.Resampling.HAMMING}
NUMPY_PAD_MODES = {"zeros": "constant", "border": "edge", "reflection": "reflect"}  # fastai's _pad_modes


def fastai_resize(image: Image.Image, info: ModelInfo) -> Image.Image:
    """fastai's Resize (crop, squish, pad) or RandomResizedCrop as they run in learn.predict (split_idx 1)."""
    size, resample = info.presize or info.img_size, PIL_RESAMPLES[info.resample]
    width, height = image.size
    if info.resize == "squish-crop":  # squish to size + margin, then a centre crop of size
        bigger = size + info.resize_margin
        image = _crop_pad(image, (width, height), (0, 0), "zeros", (bigger, bigger), resample)
        corner = (bigger - size) // 2
        return _crop_pad(image, (size, size), (corner, corner), "zeros", None, resample)
    if info.resize == "squish":
        box, corner = (width, height), (0, 0)
    else:  # the largest centred box of the target's shape inside the image (crop) or around it (pad)
        across, down = width / size, height / size
        scale = across if ((across > down) if info.resize == "pad" else (across < down)) else down
        box = (int(scale * size), int(scale * size))
        corner = (int(0.5 * (width - box[0])), int(0.5 * (height - box[1])))
    return _crop_pad(image, box, corner, info.pad_mode, (size, size), resample)


def _crop_pad(image: Image.Image, box: tuple[int, int], corner: tuple[int, int], pad_mode: str,
              resize_to: tuple[int, int] | None, resample: int) -> Image.Image:
    """fastai's Image._do_crop_pad: crop to `box` at `corner`, pad what lies outside, then resize."""
    size = image.size
    ends = (corner[0] + box[0], corner[1] + box[1])
    whole = corner == (0, 0) and ends == size  # cropping it would copy the same pixels
    if not whole and (any(c >= 0 for c in corner) or any(e <= s for e, s in zip(ends, size))):
        image = image.crop((max(corner[0], 0), max(corner[1], 0), min(ends[0], size[0]), min(ends[1], size[1])))
    before = [max(-c, 0) for c in corner]
    after = [max(e - s, 0) for e, s in zip(ends, size)]
    if any(before) or any(after):  # fastai also pads by nothing when the box meets an edge: the same pixels
        pixels = np.asarray(image)
        widths = ((before[1], after[1]), (before[0], after[0])) + ((0, 0),) * (pixels.ndim - 2)
        image = Image.fromarray(np.pad(pixels, widths, mode=NUMPY_PAD_MODES[pad_mode]))
    return image.resize(resize_to, resample) if resize_to is not None else image
