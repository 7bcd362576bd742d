"""The one format of model.pkl: weights plus a self-description (`ModelInfo`), safe to open.

A model file is one of the project's weights-only artifacts (`dlcourse.artifacts`): its meta is `ModelInfo`,
its tensors the network's state_dict; opening it can never run code. `train.py` writes it, the app reads it.
A fastai `learn.export()` file is read into the same description by `fastai_export`; `loading` picks the reader.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

from .. import artifacts
from ..errors import BadInput, shown

FORMAT = artifacts.Format("dlcourse-model", 1, called="a model file",
                          missing="No model file at {path}. Train one with `python train.py` (see README).")
PREPROCESSING_KINDS = ("mnist", "photo")
BODY_KINDS = ("timm", "torchvision", "timm-features")
HEAD_KINDS = ("timm", "fastai")
RESIZE_METHODS = ("resize-crop", "crop", "squish", "pad", "squish-crop")
RESAMPLES = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
PAD_MODES = ("reflection", "zeros", "border")
OUR_ORIGIN = "train.py"


@dataclass
class ModelInfo:
    """What a model file says about its network: how to build it, what it takes, what it answers, where it came from.

    The file holds `to_dict()` (plain values, loadable with weights_only=True); `from_dict` checks and parses it.
    """

    arch: str  # timm or torchvision architecture name
    classes: list[str]
    in_chans: int
    img_size: int  # square input, pixels
    mean: list[float]  # normalisation, one value per input channel
    std: list[float]
    preprocessing: str = "photo"  # "mnist": find the digit in the picture first; "photo": the picture as it is
    metrics: dict[str, float] = field(default_factory=dict)  # validation figures: accuracy, error_rate, valid_loss
    # The network: "timm" is timm.create_model(arch) whole, with its own classifier (head {"kind": "timm"}); a
    # fastai export's body, "torchvision" (the arch cut before pooling) or "timm-features" (fastai's TimmBody),
    # carries fastai's head: {"kind": "fastai", "layers": [{"layer": "concat_pool"}, {"layer": "linear", ...}...]}.
    body: str = "timm"
    head: dict[str, Any] = field(default_factory=lambda: {"kind": "timm"})
    # Resizing: "resize-crop" is train.py's (short side to img_size, centre crop, on tensors); fastai's Resize
    # at inference is "crop" (centre), "squish" or "pad" (pad_mode), on the PIL image with `resample`;
    # "squish-crop" is RandomResizedCrop's validation path: squish to img_size + resize_margin, centre crop.
    # `presize`: fastai's presizing (item Resize to presize, then aug_transforms(size=img_size) resamples the batch).
    resize: str = "resize-crop"
    pad_mode: str = "reflection"
    resample: str = "bilinear"
    resize_margin: int = 0
    presize: int = 0
    origin: str = OUR_ORIGIN  # where the model came from: "train.py", "fastai export: vision_learner, resnet34"
    examples: list[dict[str, Any]] = field(default_factory=list)  # a few validation images: {"image": uint8 tensor, "label"}
    # What train.py records about the run that made the model (None/empty when it did not make it).
    trained_on: str | None = None
    valid_split: str | None = None
    train_size: int | None = None
    valid_size: int | None = None
    skipped_files: int | None = None
    pretrained: bool | None = None
    weights: str | None = None
    recipe: dict[str, Any] = field(default_factory=dict)
    augment: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    kept_epoch: int | None = None  # the epoch of `history` whose weights these are, and whose figures `metrics` holds
    report: dict[str, Any] | None = None  # interpretation.summary(): confusion matrix, most confused, top losses
    train_seconds: float | None = None
    cpu_seconds: float | None = None
    created: str | None = None
    command: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, meta: dict[str, Any], source: str = "the model file") -> "ModelInfo":
        """Parse a file's description (format version 1 files included); BadInput, in one line, for a bad one."""
        known = {item.name: item for item in fields(cls)}
        values = {key: value for key, value in meta.items() if key in known}
        for key, kind in REQUIRED.items():
            if not isinstance(values.get(key), kind) or isinstance(values.get(key), bool):
                raise BadInput(f"{source}: the model's metadata lacks {key!r} (a {kind.__name__}).")
        info = cls(**values)
        info.check(source)
        return info

    def to_dict(self) -> dict[str, Any]:
        """The plain values a model file stores."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    def check(self, source: str = "the model file") -> None:
        """BadInput, in one line, for a description no network or preprocessing can follow."""
        choices = (("preprocessing", PREPROCESSING_KINDS), ("body", BODY_KINDS), ("resize", RESIZE_METHODS),
                   ("pad_mode", PAD_MODES), ("resample", RESAMPLES))
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise BadInput(f"{source}: unknown {name} {shown(getattr(self, name))}; expected one of {allowed}.")
        for name, kind in CONTAINERS.items():
            if not isinstance(getattr(self, name), kind):
                raise BadInput(f"{source}: the model's {name!r} is not a {kind.__name__}.")
        if self.report is not None and not isinstance(self.report, dict):
            raise BadInput(f"{source}: the model's 'report' is not a dict.")
        if self.head.get("kind") not in HEAD_KINDS or (self.head["kind"] == "timm") != (self.body == "timm"):
            raise BadInput(f"{source}: the head {shown(self.head)} does not go with the body {self.body!r}.")
        if len(self.classes) < 2:
            raise BadInput(f"{source}: a classifier needs at least two classes, not {shown(self.classes)}.")
        if self.in_chans < 1 or self.img_size < 1 or not all(isinstance(v, int) and v >= 0 for v in (
                self.resize_margin, self.presize)) or (self.presize and self.resize == "resize-crop"):
            raise BadInput(f"{source}: in_chans and img_size must be positive ({self.in_chans}, {self.img_size}).")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise BadInput(f"{source}: mean and std need one value per input channel ({self.in_chans}).")

    @property
    def accuracy(self) -> float | None:
        """The validation accuracy every view shows: metrics' accuracy, else 1 - error rate, else the report's."""
        candidates = [self.metrics.get("accuracy")]
        if isinstance(self.metrics.get("error_rate"), (int, float)):
            candidates.append(1 - self.metrics["error_rate"])
        candidates.append((self.report or {}).get("accuracy"))
        return next((float(value) for value in candidates
                     if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)), None)

    @property
    def n_valid(self) -> int | None:
        """How many validation images the accuracy was measured on, when recorded."""
        for value in ((self.report or {}).get("n_valid"), self.metrics.get("valid_size"), self.valid_size):
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    @property
    def kept(self) -> str | None:
        """Which epoch's weights the file holds, in words ("epoch 3 of 5 (best valid_loss)"); None unrecorded."""
        if self.kept_epoch is None:
            return None
        how = f"best {self.recipe.get('keep_metric')}" if self.recipe.get("keep") == "best" else "the last"
        return f"epoch {self.kept_epoch} of {len(self.history)} ({how})"

    @property
    def made_here(self) -> bool:
        """True when this project's train.py made the model (not an import such as a fastai export)."""
        return self.origin == OUR_ORIGIN



# What every model file must say about itself, and the type each value has.
REQUIRED = {"arch": str, "classes": list, "in_chans": int, "img_size": int, "mean": list, "std": list,
            "preprocessing": str, "metrics": dict}
CONTAINERS = {"classes": list, "mean": list, "std": list, "metrics": dict, "head": dict, "examples": list,
              "recipe": dict, "augment": dict, "history": list, "versions": dict}


def save_model_file(path: str | Path, state_dict: dict[str, torch.Tensor], info: ModelInfo) -> Path:
    """Write weights and their description (plain values: str, int, float, bool, None, lists, dicts, tensors)."""
    info.check(source=str(path))
    return artifacts.save(path, FORMAT, info.to_dict(), state_dict)


def read_model_file(path: str | Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """(description, state_dict) of a model file of this project's format; `artifacts.RefusedPickle` for a
    file that holds Python objects (`loading.load_model_file` tells a fastai export from the rest)."""
    meta, state_dict = artifacts.load(path, FORMAT)
    return ModelInfo.from_dict(meta, source=str(path)), state_dict


def build_network(info: ModelInfo) -> torch.nn.Module:
    """The network the file describes, with fresh weights. Downloads nothing."""
    if info.body != "timm":
        from . import fastai_layers

        return fastai_layers.build(info.body, info.arch, info.in_chans, info.head.get("layers", []))
    import timm  # imported here: reading metadata alone should not pay for timm

    try:
        return timm.create_model(info.arch, pretrained=False, num_classes=len(info.classes), in_chans=info.in_chans)
    except RuntimeError as error:  # timm's "Unknown model"
        raise BadInput(f"The model file names an architecture timm does not know: {error}") from None


def build_model(info: ModelInfo, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The network the file describes, with its weights (`state_dict`'s own tensors), in eval mode. Downloads nothing.

    It is laid out on the meta device and takes the file's tensors as they are: making random weights only to
    copy the file's over them took 0.1-0.3 s for resnet18 and held them twice. A network that makes tensors
    of its own the file does not hold (non-persistent buffers), or of other dtypes, is built with real weights
    and loaded by copy."""
    with torch.device("meta"):
        model = build_network(info)
    dtypes = {name: tensor.dtype for name, tensor in _tensors(model)}
    try:
        model.load_state_dict(state_dict, assign=True)
        if any(tensor.is_meta or tensor.dtype != dtypes[name] for name, tensor in _tensors(model)):
            model = build_network(info)
            model.load_state_dict(state_dict)
    except RuntimeError as error:
        detail = " ".join(str(error).split())[:300]
        raise BadInput(f"The weights do not fit the architecture {info.arch!r}: {detail}") from None
    return model.eval()


def _tensors(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [*model.named_parameters(), *model.named_buffers()]
