"""What a trained classifier gets wrong on the validation set: fastai's ClassificationInterpretation.

Everything is computed from two tensors, the validation logits and targets, so it needs no data
set once they are known: the confusion matrix, the most confused pairs, the top losses. `summary`
packs it into plain values and small uint8 tensors for the model file (weights-only loadable), so the
app can show how good its model is without the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F

SUMMARY_VERSION = 1
DEFAULT_TOP_LOSSES = 16
THUMBNAIL_PX = 64  # top-loss thumbnails in the model file are at most this many pixels a side
MAX_MOST_CONFUSED = 50  # pairs kept in the model file
HISTORY_KEYS = ("epoch", "train_loss", "valid_loss", "error_rate", "accuracy", "seconds")


@dataclass
class Interpretation:
    """The validation set as the model saw it: logits and targets, in validation-set order."""

    classes: list[str]
    logits: torch.Tensor  # (N, C) float
    targets: torch.Tensor  # (N,) int64

    def __post_init__(self) -> None:
        self.logits = self.logits.detach().float().cpu()
        self.targets = self.targets.detach().long().cpu()
        n, c = self.logits.shape
        if self.targets.shape != (n,) or c != len(self.classes):
            raise ValueError(f"logits {tuple(self.logits.shape)} do not fit targets {tuple(self.targets.shape)} "
                             f"and {len(self.classes)} classes")

    @property
    def preds(self) -> torch.Tensor:
        return self.logits.argmax(dim=1)

    @property
    def probs(self) -> torch.Tensor:
        return self.logits.softmax(dim=1)

    @property
    def losses(self) -> torch.Tensor:
        """Per-image cross-entropy, -log p(actual class) (no label smoothing: a loss a reader can read)."""
        return F.cross_entropy(self.logits, self.targets, reduction="none")

    @property
    def accuracy(self) -> float:
        return float((self.preds == self.targets).float().mean()) if len(self.targets) else float("nan")

    def confusion_matrix(self) -> torch.Tensor:
        return confusion_matrix(self.targets, self.preds, len(self.classes))

    def most_confused(self, min_val: int = 1) -> list[tuple[str, str, int]]:
        return most_confused(self.confusion_matrix(), self.classes, min_val)

    def top_losses(self, k: int | None = DEFAULT_TOP_LOSSES) -> list[dict[str, Any]]:
        return top_losses(self.logits, self.targets, self.classes, k)


def confusion_matrix(targets: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(num_classes, num_classes) int64 counts; row = actual class, column = predicted class."""
    targets, preds = targets.long().flatten().cpu(), preds.long().flatten().cpu()
    if targets.shape != preds.shape:
        raise ValueError(f"{targets.numel()} targets but {preds.numel()} predictions")
    flat = torch.bincount(targets * num_classes + preds, minlength=num_classes * num_classes)
    return flat.view(num_classes, num_classes)


def most_confused(cm: torch.Tensor | Sequence[Sequence[int]], classes: Sequence[str], min_val: int = 1
                  ) -> list[tuple[str, str, int]]:
    """(actual, predicted, count) for every off-diagonal cell with count >= min_val, most first.

    As fastai: ties keep row-major order (actual class, then predicted class).
    """
    cm = torch.as_tensor(cm)
    rows, cols = torch.nonzero(cm >= min_val, as_tuple=True)
    pairs = [(classes[i], classes[j], int(cm[i, j])) for i, j in zip(rows.tolist(), cols.tolist()) if i != j]
    return sorted(pairs, key=lambda pair: pair[2], reverse=True)


def top_losses(logits: torch.Tensor, targets: torch.Tensor, classes: Sequence[str], k: int | None = None
               ) -> list[dict[str, Any]]:
    """The k images with the largest cross-entropy, largest first.

    Each: index (into the validation set), actual, predicted, loss, prob_actual, prob_predicted.
    """
    logits, targets = logits.detach().float().cpu(), targets.detach().long().cpu()
    losses = F.cross_entropy(logits, targets, reduction="none")
    probs = logits.softmax(dim=1)
    preds = logits.argmax(dim=1)
    order = losses.argsort(descending=True, stable=True)[: k if k is not None else len(losses)]
    return [
        {
            "index": i,
            "actual": classes[targets[i]],
            "predicted": classes[preds[i]],
            "loss": float(losses[i]),
            "prob_actual": float(probs[i, targets[i]]),
            "prob_predicted": float(probs[i, preds[i]]),
        }
        for i in order.tolist()
    ]


def denormalize(inputs: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Normalised network inputs (..., C, H, W) back to uint8 images, as the network saw them."""
    inputs = inputs.detach().float().cpu()
    shape = (-1, 1, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32).view(shape)
    std_t = torch.tensor(std, dtype=torch.float32).view(shape)
    return (inputs * std_t + mean_t).clamp(0, 1).mul(255).round().to(torch.uint8)


def thumbnails(images: torch.Tensor, max_px: int = THUMBNAIL_PX) -> torch.Tensor:
    """uint8 images (N, C, H, W) shrunk (never enlarged) so their longer side is at most max_px."""
    if images.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) images, got shape {tuple(images.shape)}")
    h, w = images.shape[-2:]
    scale = max_px / max(h, w)
    if scale >= 1:
        return images.to(torch.uint8).contiguous()
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    small = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return small.clamp(0, 255).round().to(torch.uint8).contiguous()


def curves(history: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    """Per-epoch history rows -> columns ({"epoch": [...], "train_loss": [...], ...}); known keys only."""
    keys = [key for key in HISTORY_KEYS if any(key in row for row in history)]
    return {key: [_plain(row.get(key)) for row in history] for key in keys}


def summary(
    interp: Interpretation,
    *,
    history: Sequence[dict[str, Any]] = (),
    images: torch.Tensor | None = None,
    k: int = DEFAULT_TOP_LOSSES,
    thumbnail_px: int = THUMBNAIL_PX,
    lr_find: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The compact report for the model file's `report`: plain values and one small uint8 tensor.

    `images`: uint8 (k, C, H, W), the top-k loss images in top-loss order (see `denormalize`);
    stored as thumbnails at most `thumbnail_px` a side. Loads with torch.load(weights_only=True).
    """
    cm = interp.confusion_matrix()
    top = interp.top_losses(k)
    report: dict[str, Any] = {
        "version": SUMMARY_VERSION,
        "n_valid": len(interp.targets),
        "accuracy": interp.accuracy,
        "error_rate": 1 - interp.accuracy,
        "valid_ce_loss": float(interp.losses.mean()) if len(interp.targets) else float("nan"),
        "confusion_matrix": cm.tolist(),
        "most_confused": [list(pair) for pair in most_confused(cm, interp.classes)[:MAX_MOST_CONFUSED]],
        "curves": curves(history),
        "top_losses": top,
    }
    if images is not None:
        if len(images) != len(top):
            raise ValueError(f"{len(images)} images for {len(top)} top losses")
        report["top_loss_images"] = thumbnails(images, thumbnail_px)
    if lr_find:
        report["lr_find"] = {key: lr_find[key] for key in ("suggestions", "start_lr", "end_lr") if key in lr_find}
    return report


def per_class(cm: torch.Tensor | Sequence[Sequence[int]], classes: Sequence[str]) -> list[dict[str, Any]]:
    """Per class: validation images, correct ones, recall (accuracy within the class) and precision."""
    cm = torch.as_tensor(cm)
    actual, predicted, correct = cm.sum(1), cm.sum(0), cm.diagonal()
    return [
        {
            "class": name,
            "n": int(actual[i]),
            "correct": int(correct[i]),
            "recall": float(correct[i] / actual[i]) if actual[i] else None,
            "precision": float(correct[i] / predicted[i]) if predicted[i] else None,
        }
        for i, name in enumerate(classes)
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.item()
    return value
