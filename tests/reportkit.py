"""A small real model file with a validation report, for the report and interpretation tests."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from torch.utils.data import DataLoader, TensorDataset

from dlcourse.training import interpretation, report
from dlcourse.training.evaluate import outputs
from dlcourse.served.modelfile import ModelInfo, save_model_file

CLASSES = ["cat", "dog", "horse", "zebra"]
IMG_SIZE = 24
MEAN, STD = [0.5], [0.25]
HISTORY = [
    {"epoch": 1, "train_loss": 1.2, "valid_loss": 1.1, "error_rate": 0.5, "accuracy": 0.5, "seconds": 1.5},
    {"epoch": 2, "train_loss": 0.9, "valid_loss": 1.0, "error_rate": 0.45, "accuracy": 0.55, "seconds": 1.4},
]


@dataclass
class TinyModel:
    path: Path
    meta: ModelInfo
    valid: TensorDataset  # normalised inputs and targets, in validation order
    logits: torch.Tensor


def tiny_model_file(path: Path, *, with_report: bool = True, n_valid: int = 60, k: int = 12) -> TinyModel:
    """A timm `test_resnet` (random weights) over 4 classes, validated on n_valid random images."""
    torch.manual_seed(0)
    model = timm.create_model("test_resnet", num_classes=len(CLASSES), in_chans=1).eval()
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(n_valid, 1, IMG_SIZE, IMG_SIZE, generator=generator)
    targets = torch.arange(n_valid) % len(CLASSES)
    valid = TensorDataset((images - MEAN[0]) / STD[0], targets)
    logits, seen_targets = outputs(model, DataLoader(valid, batch_size=16))
    interp = interpretation.Interpretation(CLASSES, logits, seen_targets)
    meta = {
        "arch": "test_resnet", "classes": CLASSES, "in_chans": 1, "img_size": IMG_SIZE, "mean": MEAN, "std": STD,
        "preprocessing": "photo", "history": HISTORY,
        "metrics": {"accuracy": interp.accuracy, "error_rate": 1 - interp.accuracy, "valid_loss": 1.0},
    }
    if with_report:
        top = interp.top_losses(k)
        meta["report"] = interpretation.summary(
            interp, history=HISTORY, images=report.top_loss_images(valid, top, MEAN, STD), k=k,
            lr_find={"suggestions": {"valley": 1e-3, "steep": 3e-3}, "start_lr": 1e-7, "end_lr": 10.0},
        )
    info = ModelInfo.from_dict(meta)
    save_model_file(path, model.state_dict(), info)
    return TinyModel(path, info, valid, logits)
