"""Measure a saved model file on a data set, seeing images exactly as the app does.

    python -m dlcourse.training.evaluate model/model.pkl --data mnist

The network comes from the file alone (`dlcourse.served.modelfile`), the images go through the file's own
`create_transform(meta)`: the same path as validation during training and as the Classify tab.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Iterable, Sequence

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..errors import BadInput
from ..served.modelfile import ModelInfo, build_model
from ..served.loading import load_model_file
from ..served.preprocess import create_transform


@torch.inference_mode()
def outputs(model: nn.Module, batches: Iterable, *, device: torch.device | str = "cpu",
            channels_last: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (N, classes) float32 on the CPU, targets (N,)) over `batches` of (inputs, targets), in their
    order, in this process: the one place a model's outputs over a data loader are computed. The model runs
    in eval mode and gets its mode back."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    logits, labels = [], []
    try:
        for inputs, targets in batches:
            inputs = inputs.to(device, non_blocking=True)
            if channels_last and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            logits.append(model(inputs).float().cpu())
            labels.append(torch.as_tensor(targets).long().cpu())
    finally:
        model.train(was_training)
    return torch.cat(logits), torch.cat(labels)


def predict(model: nn.Module, meta: ModelInfo, dataset, batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """`outputs` for every item of `dataset` (uint8 CHW images with class indices, e.g. `Data.valid`),
    through the model file's evaluation transform, on the CPU."""
    return outputs(model, DataLoader(dataset.with_transform(create_transform(meta)), batch_size=batch_size))


def metrics(logits: torch.Tensor, targets: torch.Tensor, label_smoothing: float = 0.0) -> dict[str, float]:
    """valid_loss, error_rate and accuracy of logits against targets."""
    loss = nn.functional.cross_entropy(logits, targets, label_smoothing=label_smoothing).item()
    correct = int((logits.argmax(dim=1) == targets).sum())
    accuracy = correct / len(targets)
    return {"valid_loss": loss, "error_rate": 1 - accuracy, "accuracy": accuracy, "correct": correct, "count": len(targets)}


def evaluate_model_file(path: str | Path, dataset, classes: Sequence[str] | None = None, batch_size: int = 256) -> dict[str, float]:
    """Metrics of the model file at `path` on `dataset` (its class indices in the order of `classes`,
    which must be the model's own when given). The loss uses the label smoothing the model trained with,
    so `valid_loss` is comparable with the figure stored in the file."""
    meta, state_dict = load_model_file(path)
    if classes is not None and list(classes) != list(meta.classes):
        raise BadInput(f"the data's classes {list(classes)[:5]}... are not the model's {meta.classes[:5]}...")
    logits, targets = predict(build_model(meta, state_dict), meta, dataset, batch_size)
    smoothing = float(meta.recipe.get("label_smoothing", 0.0))
    return metrics(logits, targets, smoothing)


def main(argv: list[str] | None = None) -> int:
    from .data import load_data

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="the model file (model.pkl)")
    parser.add_argument("--data", required=True, help="'mnist' or a folder, as for train.py")
    parser.add_argument("--label-re", help="as for train.py")
    parser.add_argument("--mnist-dir", default="data/mnist", help="as for train.py (default %(default)s)")
    parser.add_argument("--valid-pct", type=float, default=0.2, help="as for train.py (default %(default)s)")
    parser.add_argument("--seed", type=int, default=42, help="as for train.py (default %(default)s)")
    args = parser.parse_args(argv)
    try:
        data = load_data(args.data, label_re=args.label_re, mnist_dir=args.mnist_dir, valid_pct=args.valid_pct, seed=args.seed)
        result = evaluate_model_file(args.model, data.valid, data.classes)
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.model} on {data.split}: accuracy {result['accuracy']:.4f} "
          f"({result['correct']}/{result['count']}), error_rate {result['error_rate']:.4f}, valid_loss {result['valid_loss']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
