"""The one format of model.pkl: weights plus a self-description, safe to open.

A model file is a `torch.save`d dict of plain values and tensors only, so it loads with
`torch.load(weights_only=True)`: opening it can never run code. `train.py` writes it, the app reads it.
"""
from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from .errors import BadInput

FORMAT = "dlcourse-model"
FORMAT_VERSION = 1
PREPROCESSING_KINDS = ("mnist", "photo")
# What every model file must say about itself, and the type each value has.
REQUIRED_META = {
    "arch": str,
    "classes": list,
    "in_chans": int,
    "img_size": int,
    "mean": list,
    "std": list,
    "preprocessing": str,
    "metrics": dict,
}


def weights_digest(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, shapes, dtypes and bytes of every tensor, in name order."""
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def save_model_file(path: str | Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write weights and metadata (plain values: str, int, float, bool, None, lists, dicts, tensors)."""
    _check_meta(meta, source=str(path))
    _check_plain(meta, "meta")
    weights = {name: tensor.detach().cpu().clone() for name, tensor in state_dict.items()}
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "meta": meta,
        "state_dict": weights,
        "weights_sha256": weights_digest(weights),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    torch.save(record, partial)
    partial.replace(path)  # never leave a half-written model file behind
    return path


def load_model_file(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(meta, state_dict) of a model file; BadInput for anything that is not one of ours, intact."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(f"No model file at {path}. Train one with `python train.py` (see README).")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise BadInput(
            f"{path} was refused: it holds Python objects, not just weights, and loading it could run code "
            "(a fastai Learner from learn.export() is such a file). Nothing in it was executed. "
            f"Export the model with this project's train.py instead. ({_unpickling_reason(error)})"
        ) from None
    except Exception as error:  # torch.load on arbitrary bytes raises many kinds (RuntimeError, KeyError, EOFError...)
        reason = " ".join(str(error).split()[:30]) or type(error).__name__
        raise BadInput(f"{path} is not a model file that can be read ({reason}).") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise BadInput(f"{path} is not a model file of this project (no '{FORMAT}' marker).")
    if record.get("format_version") != FORMAT_VERSION:
        raise BadInput(f"{path} has format version {record.get('format_version')}; this app reads {FORMAT_VERSION}.")
    meta, state_dict = record.get("meta"), record.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(state_dict, dict):
        raise BadInput(f"{path} is damaged: its metadata or weights are missing.")
    _check_meta(meta, source=str(path))
    if weights_digest(state_dict) != record.get("weights_sha256"):
        raise BadInput(f"{path} was modified after it was written: its weights do not match their checksum.")
    return meta, state_dict


def build_model(meta: dict[str, Any], state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The timm network the file describes, with its weights, in eval mode. Downloads nothing."""
    import timm  # imported here: reading metadata alone should not pay for timm

    try:
        model = timm.create_model(
            meta["arch"], pretrained=False, num_classes=len(meta["classes"]), in_chans=meta["in_chans"]
        )
    except RuntimeError as error:  # timm's "Unknown model"
        raise BadInput(f"The model file names an architecture timm does not know: {error}") from None
    try:
        model.load_state_dict(state_dict)
    except RuntimeError as error:
        raise BadInput(f"The weights do not fit the architecture {meta['arch']!r}: {error}") from None
    return model.eval()


PLAIN_TYPES = (str, int, float, bool, type(None))


def _check_plain(value: Any, where: str) -> None:
    """Refuse to write what `torch.load(weights_only=True)` would refuse to read (e.g. a str subclass)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) not in PLAIN_TYPES:
                raise BadInput(f"{where}: the key {key!r} is a {type(key).__name__}, not a plain value.")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]")
    elif type(value) is not torch.Tensor and type(value) not in PLAIN_TYPES:
        raise BadInput(f"{where} is a {type(value).__name__}; a model file holds plain values and tensors only.")


def _unpickling_reason(error: Exception) -> str:
    """What torch's long weights_only message says was refused (e.g. "Unsupported global: GLOBAL os.system")."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    found = re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n|$)", text, re.S)
    return (found.group(1) if found else text.strip().splitlines()[0] if text.strip() else type(error).__name__)[:200]


def _check_meta(meta: dict[str, Any], source: str) -> None:
    for key, kind in REQUIRED_META.items():
        if not isinstance(meta.get(key), kind):
            raise BadInput(f"{source}: the model's metadata lacks {key!r} (a {kind.__name__}).")
    if meta["preprocessing"] not in PREPROCESSING_KINDS:
        raise BadInput(f"{source}: unknown preprocessing {meta['preprocessing']!r}; expected one of {PREPROCESSING_KINDS}.")
    if len(meta["classes"]) < 2:
        raise BadInput(f"{source}: a classifier needs at least two classes, not {meta['classes']}.")
    if len(meta["mean"]) != meta["in_chans"] or len(meta["std"]) != meta["in_chans"]:
        raise BadInput(f"{source}: mean and std need one value per input channel ({meta['in_chans']}).")
