"""From a decoded image to the tensor a model file's network takes.

One definition serves the classifier and training's validation set, so the app sees every image
exactly as the validation metrics in the model file were measured.
"""
from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2

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


def eval_transform(info: ModelInfo) -> v2.Compose:
    """uint8 tensor (C, H, W) -> normalised float tensor (in_chans, img_size, img_size)."""
    size = info.img_size
    return v2.Compose(
        [
            v2.Resize(size, antialias=True),
            v2.CenterCrop(size),
            v2.ToDtype(torch.float32, scale=True),
            MatchChannels(info.in_chans),
            v2.Normalize(info.mean, info.std),
        ]
    )


def image_to_uint8_tensor(image: Image.Image, info: ModelInfo) -> torch.Tensor:
    """The model's view of a decoded RGB image before resizing: an MNIST-style digit or the photo."""
    if info.preprocessing == "mnist":
        return torch.from_numpy(to_mnist_digit(image)).unsqueeze(0)
    return torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1).contiguous()
