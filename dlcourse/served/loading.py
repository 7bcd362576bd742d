"""Open any model file the app serves: this project's own format (`modelfile`) or a fastai `learn.export()`
file (`fastai_export`), which is read without unpickling its code. The one place that picks the reader, so
neither reader needs the other."""
from __future__ import annotations

from pathlib import Path

import torch

from .. import artifacts
from ..errors import BadInput
from . import fastai_export
from .modelfile import ModelInfo, read_model_file


def load_model_file(path: str | Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """(description, state_dict) of a model file; BadInput for anything that is neither ours, intact, nor a
    fastai export."""
    try:
        return read_model_file(path)
    except artifacts.RefusedPickle as refused:
        if fastai_export.looks_like_export(path):
            return fastai_export.read_export(path)
        raise BadInput(
            f"{path} was refused: it holds Python objects, not just weights, and is neither a model file of "
            "train.py nor a fastai Learner export; loading it could run code. Nothing in it was executed. "
            f"({refused.reason})"
        ) from None
