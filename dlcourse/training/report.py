"""Training-time reporting: the report folder and the show-batch grid, written by train.py.

train.py calls these around its training loop; `write_report` also works from a model file's
compact summary alone (`python -m dlcourse.training.report model/model.pkl reports/model`).
"""
from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from . import interpretation, plots
from .lr_find import preserved_rng
from ..served.modelfile import ModelInfo

TOP_LOSSES_CAPTION = "predicted / actual\nloss / probability of actual"
FILES = {
    "confusion_matrix": "confusion_matrix.png",
    "top_losses": "top_losses.png",
    "curves": "curves.png",
    "lr_find": "lr_find.png",
    "show_batch": "show_batch.png",
    "json": "report.json",
}


def gather_inputs(dataset: Any, indices: Sequence[int]) -> torch.Tensor:
    """The (eval-transformed) input tensors of dataset items `indices`, stacked."""
    return torch.stack([torch.as_tensor(dataset[i][0]) for i in indices]) if len(indices) else torch.empty(0)


def top_loss_images(dataset: Any, top: Sequence[dict[str, Any]], mean: Sequence[float], std: Sequence[float]
                    ) -> torch.Tensor:
    """uint8 images (k, C, H, W) of the top losses as the network saw them (de-normalised)."""
    return interpretation.denormalize(gather_inputs(dataset, [item["index"] for item in top]), mean, std)


def top_loss_captions(top: Sequence[dict[str, Any]]) -> list[str]:
    return [f"{t['predicted']} / {t['actual']}\n{t['loss']:.2f} / {t['prob_actual']:.2f}" for t in top]


def show_batch(batches: Iterable, classes: Sequence[str], mean: Sequence[float], std: Sequence[float],
               path: str | Path, n: int = 16) -> Path:
    """Save up to n training images from the loader's first batch, augmented and labelled, as a PNG.

    The images are what the network receives (after augmentation), de-normalised for display. The
    random-number state is restored afterwards, so showing a batch does not change the training run.
    """
    with preserved_rng(batches):
        inputs, targets = next(iter(batches))[:2]
    images = interpretation.denormalize(inputs[:n], mean, std)
    labels = [str(classes[int(t)]) for t in torch.as_tensor(targets)[:n]]
    fig = plots.image_grid_figure(images, labels, title="A training batch, as the model receives it")
    path = Path(path)
    plots.to_png(fig, path)
    return path


def report_json(meta: ModelInfo, summary: dict[str, Any], lr_find: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """Every figure of the report as plain JSON values."""
    classes = list(meta.classes)
    data = {key: value for key, value in summary.items() if not isinstance(value, torch.Tensor)}
    data["classes"] = classes
    data["arch"] = meta.arch
    data["origin"] = meta.origin
    data["metrics"] = meta.metrics
    data["kept_epoch"] = meta.kept_epoch  # the epoch whose weights the report measured
    data["per_class"] = interpretation.per_class(summary["confusion_matrix"], classes)
    data["most_confused"] = [
        {"actual": a, "predicted": p, "count": c} for a, p, c in summary.get("most_confused", [])
    ]
    if lr_find is not None:
        data["lr_find"] = lr_find
    return _json_safe(data)


def write_report(out_dir: str | Path, meta: ModelInfo, summary: dict[str, Any], *,
                 images: torch.Tensor | None = None, lr_find: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write confusion_matrix.png, top_losses.png, curves.png and report.json into out_dir.

    `images`: full-size uint8 top-loss images; without them, the summary's thumbnails are drawn.
    Returns {name: path} of what was written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    classes = list(meta.classes)
    figures = {}
    title = f"Confusion matrix\n{summary['n_valid']:,} validation images, accuracy {summary['accuracy']:.2%}"
    figures["confusion_matrix"] = plots.confusion_matrix_figure(summary["confusion_matrix"], classes, title)
    top = summary.get("top_losses") or []
    if images is None:
        images = summary.get("top_loss_images")
    if top and images is not None and len(images):
        figures["top_losses"] = plots.image_grid_figure(images[: len(top)], top_loss_captions(top),
                                                        title=TOP_LOSSES_CAPTION)
    curves = summary.get("curves") or interpretation.curves(meta.history)
    if curves:
        figures["curves"] = plots.curves_figure(curves)
    written = {name: out / FILES[name] for name in figures}
    for name, fig in figures.items():
        plots.to_png(fig, written[name])
    written["json"] = out / FILES["json"]
    written["json"].write_text(json.dumps(report_json(meta, summary, lr_find), indent=2, allow_nan=False) + "\n")
    return written


def lr_find_plot(result: Any, path: str | Path) -> Path:
    """Save an `LRFindResult`'s loss-vs-lr plot with its suggestions as a PNG."""
    path = Path(path)
    plots.to_png(plots.lr_find_figure(result.lrs, result.smoothed, result.suggestions), path)
    return path


def format_most_confused(pairs: Sequence[Sequence[Any]], limit: int = 10) -> str:
    """The most confused pairs as lines for the terminal (fastai's most_confused, printed)."""
    if not pairs:
        return "most confused: none (no validation image was misclassified)"
    lines = ["most confused (actual -> predicted: count):"]
    lines += [f"  {actual} -> {predicted}: {count}" for actual, predicted, count in pairs[:limit]]
    if len(pairs) > limit:
        lines.append(f"  ... and {len(pairs) - limit} more pairs (see report.json)")
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """Tensors to lists, non-finite floats to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, torch.Tensor):
        return _json_safe(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m dlcourse.training.report MODEL_FILE OUT_DIR`: the report folder from a model file's summary."""
    from ..errors import BadInput
    from ..served.loading import load_model_file

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m dlcourse.training.report MODEL_FILE OUT_DIR", file=sys.stderr)
        return 2
    try:
        meta, _ = load_model_file(args[0])
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if not meta.report:
        print(f"error: {args[0]} has no report (it was written before reports existed); retrain with train.py",
              file=sys.stderr)
        return 1
    for name, path in write_report(args[1], meta, meta.report).items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
