"""fastai's `vision_learner` network, Sequential(body, head), rebuilt in plain torch (no fastai needed).

The body is a torchvision arch cut before its pooling (fastai's `create_body`) or a timm arch without its
classifier (fastai's `TimmBody`); the head is the list of layers `create_head` made, as a model file
describes them. Module names match fastai's, so the export's weights load as they are.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..errors import BadInput

TORCHVISION_ARCHS = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


class AdaptiveConcatPool2d(nn.Module):
    """fastai's concat pooling: max and average pooling side by side (max first)."""

    def __init__(self, size: int = 1):
        super().__init__()
        self.mp, self.ap = nn.AdaptiveMaxPool2d(size), nn.AdaptiveAvgPool2d(size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.mp(x), self.ap(x)], 1)


class TimmBody(nn.Module):
    """A timm network without its classifier, giving its feature map (fastai's TimmBody with needs_pool)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_features(x)


def build_body(body: str, arch: str, in_chans: int) -> nn.Module:
    """The body with random weights; downloads nothing."""
    if body == "torchvision":
        import torchvision

        if arch not in TORCHVISION_ARCHS:
            raise BadInput(f"the body {arch!r} is not one of the torchvision archs served: {', '.join(TORCHVISION_ARCHS)}.")
        model = getattr(torchvision.models, arch)(weights=None)
        if in_chans != 3:  # fastai's _update_first_layer
            first = model.conv1
            model.conv1 = nn.Conv2d(in_chans, first.out_channels, first.kernel_size, first.stride, first.padding,
                                    bias=first.bias is not None)
        return nn.Sequential(*list(model.children())[:-2])
    import timm

    try:
        return TimmBody(timm.create_model(arch, pretrained=False, num_classes=0, in_chans=in_chans))
    except RuntimeError as error:  # timm's "Unknown model"
        raise BadInput(f"the timm installed here does not know the arch {arch!r} ({error}).") from None


def build_head(layers: list[dict[str, Any]]) -> nn.Sequential:
    """fastai's create_head from the model file's list of layers."""
    modules: list[nn.Module] = []
    for spec in layers:
        kind = spec.get("layer")
        if kind == "concat_pool":
            modules.append(AdaptiveConcatPool2d(spec.get("size", 1)))
        elif kind == "avg_pool":
            modules.append(nn.AdaptiveAvgPool2d(spec.get("size", 1)))
        elif kind == "flatten":
            modules.append(nn.Flatten())
        elif kind == "batchnorm1d":
            modules.append(nn.BatchNorm1d(spec["features"], eps=spec.get("eps", 1e-5), momentum=spec.get("momentum", 0.1),
                                          affine=spec.get("affine", True)))
        elif kind == "dropout":
            modules.append(nn.Dropout(spec.get("p", 0.0)))
        elif kind == "linear":
            modules.append(nn.Linear(spec["in"], spec["out"], bias=spec.get("bias", True)))
        elif kind == "relu":
            modules.append(nn.ReLU())
        else:
            raise BadInput(f"the head has a layer this app does not know: {kind!r}.")
    return nn.Sequential(*modules)


def build(body: str, arch: str, in_chans: int, head_layers: list[dict[str, Any]]) -> nn.Module:
    """Sequential(body, head), as vision_learner makes it."""
    return nn.Sequential(build_body(body, arch, in_chans), build_head(head_layers))
