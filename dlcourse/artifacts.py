"""The project's weights-only artifacts (model.pkl, ideal_digits.pt): one way to write them and one to read them.

An artifact is a `torch.save`d dict, {"format", "format_version", "meta", "state_dict", "weights_sha256"}:
a named format at a version, plain-value metadata, named tensors and a SHA-256 over the tensors. It is
written atomically and read with `torch.load(weights_only=True)`, so opening one can never run code.
Each caller names its artifact with a `Format`, so the messages say what the file is and how to make one.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .errors import BadInput, shown

PLAIN_TYPES = (str, int, float, bool, type(None))


@dataclass(frozen=True)
class Format:
    """One kind of artifact: its marker and version, and what messages call it and tell a user to do."""

    marker: str  # the record's "format", e.g. "dlcourse-model"
    version: int  # the "format_version" written, and the only one read
    called: str  # with its article, as in "{path} is not a model file that can be read"
    missing: str  # the message when there is no file, with {path}: "No model file at {path}. Train one with ..."
    remedy: str = ""  # a sentence added where a file is refused or outdated: "Rebuild it with `...`."


class RefusedPickle(BadInput):
    """The file pickles Python objects, so torch's weights-only reader refused it before running any of it.

    A caller that knows another safe reader for such files (model.pkl: a fastai export) catches this one.
    """

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason  # what torch refused, e.g. "Unsupported global: GLOBAL exec"


def tensors_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over names, shapes, dtypes and bytes of every tensor, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tuple(tensor.shape)}|{tensor.dtype}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy() if tensor.numel() else b"")  # hashed in place, no copy
    return digest.hexdigest()


def save(path: str | Path, kind: Format, meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> Path:
    """Write `meta` (plain values and tensors) and named `tensors` as a `kind` artifact; the old file stays
    whole until the new one is complete."""
    _check_plain(meta, "meta", kind)
    tensors = {name: tensor.detach().cpu().clone() for name, tensor in tensors.items()}
    record = {
        "format": kind.marker,
        "format_version": kind.version,
        "meta": meta,
        "state_dict": tensors,
        "weights_sha256": tensors_digest(tensors),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    try:
        torch.save(record, partial)
        with open(partial, "rb+") as written:  # on disk before it takes the name: no empty file after a crash
            os.fsync(written.fileno())
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return path


def load(path: str | Path, kind: Format) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(meta, tensors) of a `kind` artifact, intact; BadInput, in one line, for anything else. Runs no code from it."""
    path = Path(path)
    if not path.is_file():
        raise BadInput(kind.missing.format(path=path))
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        reason = _unpickling_reason(error)
        raise RefusedPickle(f"{path} was refused unread: it holds Python objects, not just tensors and plain values, "
                            f"and loading it could run code. Nothing in it was executed. ({reason}) {kind.remedy}".strip(),
                            reason) from None
    except Exception as error:  # torch.load on arbitrary bytes raises many kinds (RuntimeError, KeyError, EOFError...)
        reason = " ".join(str(error).split()[:30]) or type(error).__name__
        raise BadInput(f"{path} is not {kind.called} that can be read ({reason}).") from None
    if not isinstance(record, dict) or record.get("format") != kind.marker:
        raise BadInput(f"{path} is not {kind.called} of this project (no '{kind.marker}' marker).")
    if record.get("format_version") != kind.version:
        raise BadInput(f"{path} has format version {shown(record.get('format_version'))}; this app reads {kind.version}. "
                       f"{kind.remedy}".strip())
    meta, tensors = record.get("meta"), record.get("state_dict")
    if not isinstance(meta, dict) or not isinstance(tensors, dict):
        raise BadInput(f"{path} is damaged: its metadata or weights are missing.")
    if not all(isinstance(name, str) and isinstance(tensor, torch.Tensor) for name, tensor in tensors.items()):
        raise BadInput(f"{path} is damaged: its weights are not all named tensors.")
    if tensors_digest(tensors) != record.get("weights_sha256"):
        raise BadInput(f"{path} was modified after it was written: its weights do not match their checksum.")
    return meta, tensors


def _check_plain(value: Any, where: str, kind: Format) -> None:
    """Refuse to write what `torch.load(weights_only=True)` would refuse to read (e.g. a str subclass)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if type(key) not in PLAIN_TYPES:
                raise BadInput(f"{where}: the key {key!r} is a {type(key).__name__}, not a plain value.")
            _check_plain(item, f"{where}[{key!r}]", kind)
    elif isinstance(value, (list, tuple)) and type(value) in (list, tuple):
        for i, item in enumerate(value):
            _check_plain(item, f"{where}[{i}]", kind)
    elif type(value) is not torch.Tensor and type(value) not in PLAIN_TYPES:
        raise BadInput(f"{where} is a {type(value).__name__}; {kind.called} holds plain values and tensors only.")


def _unpickling_reason(error: Exception) -> str:
    """What torch's long weights_only message says was refused (e.g. "Unsupported global: GLOBAL exec")."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(error))
    found = (re.search(r"WeightsUnpickler error:\s*(.+?)(?:\.\s|\n|$)", text, re.S)
             or re.search(r"(unsupported GLOBAL \S+ whose module \S+ is blocked)", text))  # os.system, eval...
    return (found.group(1) if found else text.strip().splitlines()[0] if text.strip() else type(error).__name__)[:200]
