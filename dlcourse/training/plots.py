"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

No pyplot: each call builds its own `Figure`, so figures drawn from several threads (the app's
start-up, a request) never share state. Every function returns a Figure; `to_png` and `to_array`
turn one into a file's bytes or an RGB array for the UI.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

DPI = 100


def to_png(fig: Figure, path: str | Path | None = None) -> bytes:
    """The figure as PNG bytes; also written to `path` (folders made) when given."""
    buffer = io.BytesIO()
    FigureCanvasAgg(fig)
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    data = buffer.getvalue()
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data


def to_array(fig: Figure) -> np.ndarray:
    """The figure rendered to an (H, W, 3) uint8 array."""
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def lr_find_figure(lrs: Sequence[float], losses: Sequence[float], suggestions: dict[str, float] | None = None
                   ) -> Figure:
    """Smoothed loss against learning rate (log scale), with the suggested points marked."""
    fig = Figure(figsize=(6, 4))
    ax = fig.add_subplot()
    ax.plot(lrs, losses, color="C0")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    ax.set_title("Learning-rate finder")
    finite = [loss for loss in losses if math.isfinite(loss)]
    if finite:  # clip the explosion so that it does not squash the descent, the part worth reading
        lowest = finite.index(min(finite))
        low, high = finite[lowest], max(finite[: lowest + 1]) if lowest else max(finite)
        pad = 0.05 * (high - low or 1)
        ax.set_ylim(low - pad, high + 4 * pad)
    for (name, lr), (color, marker) in zip((suggestions or {}).items(), (("C1", "o"), ("C2", "s"), ("C3", "^"))):
        loss = np.interp(math.log(lr), np.log(lrs), losses)
        ax.plot([lr], [loss], marker=marker, color=color, linestyle="none", markersize=8, label=f"{name}: {lr:.2e}")
    if suggestions:
        ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    return fig


def confusion_matrix_figure(cm: Sequence[Sequence[int]] | torch.Tensor, classes: Sequence[str],
                            title: str = "Confusion matrix") -> Figure:
    """Counts, actual classes down, predicted across; numbers written in the cells when they fit."""
    cm = np.asarray(torch.as_tensor(cm))
    n = len(classes)
    side = min(max(4.0, 0.45 * n + 2), 18.0)
    fig = Figure(figsize=(side, side))
    ax = fig.add_subplot()
    ax.imshow(cm, interpolation="nearest", cmap="Blues")
    ax.set_title(title)
    ticks = np.arange(n)
    fontsize = 10 if n <= 12 else max(5, int(120 / n))
    ax.set_xticks(ticks, labels=list(classes), rotation=90 if n > 6 or max(map(len, classes)) > 3 else 0,
                  fontsize=fontsize)
    ax.set_yticks(ticks, labels=list(classes), fontsize=fontsize)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("Actual")
    if n <= 40:
        threshold = cm.max() / 2 if cm.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=fontsize,
                        color="white" if cm[i, j] > threshold else "black")
    fig.tight_layout()
    return fig


def image_grid_figure(images: torch.Tensor | Sequence[np.ndarray], captions: Sequence[str], ncols: int | None = None,
                      title: str | None = None, cell_inches: float = 1.8) -> Figure:
    """Images (uint8 tensor (N, C, H, W) or HxW[x3] arrays) in a grid, each with its caption above it."""
    arrays = [as_hwc(image) for image in images]
    n = len(arrays)
    ncols = ncols or max(1, min(n, math.ceil(math.sqrt(n))))
    nrows = max(1, math.ceil(n / ncols))
    caption_lines = max((caption.count("\n") + 1 for caption in captions), default=1)
    fig = Figure(figsize=(ncols * cell_inches, nrows * (cell_inches + 0.18 * caption_lines)))
    for k in range(nrows * ncols):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        ax.axis("off")
        if k < n:
            image = arrays[k]
            ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=255, interpolation="nearest")
            ax.set_title(captions[k], fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def curves_figure(curves: dict[str, Sequence[Any]]) -> Figure:
    """Per-epoch losses (left) and error rate / accuracy (right) from `interpretation.curves` columns."""
    epochs = list(curves.get("epoch") or range(1, 1 + max((len(v) for v in curves.values()), default=0)))
    fig = Figure(figsize=(10, 3.6))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for key, ax in (("train_loss", left), ("valid_loss", left), ("error_rate", right), ("accuracy", right)):
        values = curves.get(key)
        if values and any(v is not None for v in values):
            ax.plot(epochs[: len(values)], [np.nan if v is None else v for v in values], marker="o", markersize=3,
                    label=key)
    for ax, title in ((left, "Loss"), (right, "Metrics")):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title(title)
        ax.grid(True, alpha=0.3)
        if ax.lines:
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no per-epoch history", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    return fig


def as_hwc(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """A (C, H, W) tensor or (H, W[, C]) array as an (H, W) or (H, W, 3) uint8 array for imshow."""
    if isinstance(image, torch.Tensor):
        array = image.detach().cpu().numpy()
        if array.ndim == 3:
            array = array.transpose(1, 2, 0)
    else:
        array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    return array.astype(np.uint8, copy=False)
