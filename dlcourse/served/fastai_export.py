"""Read a fastai `learn.export()` file without fastai and without running anything it names.

The export is a pickle of the whole Learner. `safe_pickle` reads it into inert records; this module finds
in them what `learn.predict` uses: the model (vision_learner's Sequential(body, head)), the vocab, the loss
(softmax only), the item transforms (Resize) and batch transforms (IntToFloatTensor, Normalize), and says
it as a ModelInfo plus weights. Anything it cannot serve exactly is refused in one line naming what it found.

    python -m dlcourse.served.fastai_export convert EXPORT.pkl OUT.pkl   # once, into this project's own format
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from . import safe_pickle
from ..errors import BadInput, shown
from .fastai_layers import TORCHVISION_ARCHS
from .modelfile import ModelInfo, build_network, save_model_file
from .safe_pickle import Record, is_record

# Losses whose activation is a softmax over classes (what learn.predict reports) and the multi-label ones.
SOFTMAX_LOSSES = ("fastai.losses.CrossEntropyLossFlat", "fastai.losses.LabelSmoothingCrossEntropyFlat",
                  "fastai.losses.LabelSmoothingCrossEntropy", "fastai.losses.FocalLossFlat")
MULTI_LABEL_LOSSES = ("fastai.losses.BCEWithLogitsLossFlat", "fastai.losses.BCELossFlat",
                      "torch.nn.modules.loss.BCEWithLogitsLoss")
OTHER_APPLICATIONS = {"fastai.tabular": "a tabular learner", "fastai.text": "a text learner",
                      "fastai.collab": "a collaborative-filtering learner"}
RESAMPLES = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}  # PIL's numbers
# Item and batch transforms that do nothing at inference (split_idx 0: training only) or nothing we need.
INERT_TRANSFORMS = {f"fastai.vision.augment.{name}" for name in (
    "Brightness", "Contrast", "Saturation", "Hue", "LightingTfm", "RandomErasing", "FlipItem", "DihedralItem")} | {
    "fastai.data.transforms.ToTensor"}
# aug_transforms' resampling batch transforms: at inference an identity grid, resampled to `size` when one is given.
AFFINE_TRANSFORMS = {f"fastai.vision.augment.{name}" for name in (
    "AffineCoordTfm", "Flip", "Dihedral", "Rotate", "Zoom", "Warp", "RandomResizedCropGPU")}
HEAD_LAYERS = {
    "fastai.layers.AdaptiveConcatPool2d": "concat_pool", "torch.nn.modules.pooling.AdaptiveAvgPool2d": "avg_pool",
    "fastai.layers.Flatten": "flatten", "torch.nn.modules.flatten.Flatten": "flatten",
    "torch.nn.modules.batchnorm.BatchNorm1d": "batchnorm1d", "torch.nn.modules.dropout.Dropout": "dropout",
    "torch.nn.modules.linear.Linear": "linear", "torch.nn.modules.activation.ReLU": "relu",
}


def looks_like_export(path: str | Path) -> bool:
    """True for a torch zip whose pickle names fastai's Learner (a cheap look; nothing is unpickled)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = [name for name in archive.namelist() if name.endswith("/data.pkl") and name.count("/") == 1]
            return len(names) == 1 and b"fastai.learner" in archive.read(names[0])
    except (zipfile.BadZipFile, OSError):
        return False


def read_export(path: str | Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    """(description, state_dict) of a fastai image classifier export; BadInput, in one line, for anything else."""
    path = Path(path)
    learner = safe_pickle.load(path)
    if not (is_record(learner) and type(learner).module.startswith("fastai.") and
            type(learner).qualname.endswith("Learner")):
        raise BadInput(f"{path} is not a fastai Learner export (it holds a {_name(learner)}).")
    try:
        return _describe(learner, path)
    except BadInput as error:
        raise BadInput(f"{path} cannot be served: {error}") from None
    except RecursionError:  # modules nested in a cycle or thousands deep: no network vision_learner makes
        raise BadInput(f"{path} cannot be served: its modules nest without end.") from None


def _describe(learner: Record, path: Path) -> tuple[ModelInfo, dict[str, torch.Tensor]]:
    attrs = learner.attrs()
    model, dls = attrs.get("model"), attrs.get("dls")
    for record in [learner, model, *_records(learner)]:  # the learner or model says it first; else the data...
        for prefix, kind in OTHER_APPLICATIONS.items():
            if is_record(record) and type(record).module.startswith(prefix):
                raise BadInput(f"it is {kind} ({type(record).name()}); only image classifiers are served.")
    _check_loss(attrs.get("loss_func"))
    if not (is_record(model, "torch.nn.modules.container.Sequential") and list(_children(model)) == ["0", "1"]):
        raise BadInput(f"its model is a {_name(model)}, not vision_learner's Sequential(body, head).")
    body, head = _children(model)["0"], _children(model)["1"]
    body_kind, arch = _body(attrs.get("arch"), body)
    state_dict = _state_dict(model)
    first_conv = next((t for t in state_dict.values() if t.dim() == 4), None)
    if first_conv is None:
        raise BadInput("its body has no convolution weights.")
    classes = _vocab(dls)
    layers = _head_layers(head)
    if layers[-1].get("layer") != "linear" or layers[-1]["out"] != len(classes):
        raise BadInput(f"its head does not end in a Linear layer of {len(classes)} outputs (one per class).")
    loader = _valid_loader(dls)
    resize = _resize(_transforms(loader, "after_item"))
    mean, std, batch_size = _batch_transforms(_transforms(loader, "after_batch"), first_conv.shape[1])
    if batch_size:  # presizing: the item transform's size first, then the batch transform's for the network
        resize |= {"presize": resize["img_size"], "img_size": batch_size}
    info = ModelInfo(
        arch=arch, classes=classes, in_chans=int(first_conv.shape[1]), mean=mean, std=std, preprocessing="photo",
        metrics=_metrics(attrs), body=body_kind, head={"kind": "fastai", "layers": layers},
        origin=f"fastai export: vision_learner, {arch}", pretrained=attrs.get("pretrained")
        if isinstance(attrs.get("pretrained"), bool) else None, **resize,
    )
    info.check(str(path))
    _check_fit(info, state_dict)
    return info, state_dict


def _check_fit(info: ModelInfo, state_dict: dict[str, torch.Tensor]) -> None:
    """The weights fit the network rebuilt here, name for name and shape for shape (built on the meta device:
    no memory, no initialisation), or a one-line refusal naming the first difference."""
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in build_network(info).state_dict().items()}
    found = {name: tuple(t.shape) for name, t in state_dict.items()}
    if expected != found:
        missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
        differ = [name for name in expected if name in found and expected[name] != found[name]]
        detail = (f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}" if unexpected else
                  f"{differ[0]} is {found[differ[0]]}, not {expected[differ[0]]}")
        raise BadInput(f"its weights do not fit {info.body} {info.arch!r} with fastai's head ({detail}; "
                       f"{len(missing)} missing, {len(unexpected)} unexpected, {len(differ)} of another shape): "
                       "an unknown custom body or head.")


def _records(root: Any) -> Iterator[Record]:
    """Every record reachable from `root`, each once."""
    seen, stack = set(), [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, Record):
            yield item
            stack += [item.args, item.kwargs, item.state, item.items, item.listitems]
        elif isinstance(item, dict):
            stack += [*item.keys(), *item.values()]
        elif isinstance(item, (list, tuple, set, frozenset)):
            stack += list(item)


def _name(value: Any) -> str:
    if isinstance(value, Record):
        return type(value).name()
    if isinstance(value, type) and issubclass(value, Record):
        return value.name()
    return type(value).__name__


def _check_loss(loss: Any) -> None:
    name = _name(loss)
    if name in MULTI_LABEL_LOSSES:
        threshold = loss.attrs().get("thresh", 0.5) if isinstance(loss, Record) else 0.5
        raise BadInput(f"it is a multi-label learner ({name.rsplit('.', 1)[-1]}: sigmoid and threshold "
                       f"{shown(threshold)}); only single-label classifiers (softmax) are served.")
    if name not in SOFTMAX_LOSSES:
        raise BadInput(f"its loss is {name}, not a single-label classification loss (CrossEntropyLossFlat).")


def _children(module: Record) -> dict[str, Any]:
    children = module.attrs().get("_modules")
    return dict(children) if isinstance(children, dict) else {}


def _body(arch: Any, body: Record) -> tuple[str, str]:
    """("torchvision", "resnet34") or ("timm-features", "convnext_tiny"), from learn.arch and the body."""
    if isinstance(arch, str):
        if not is_record(body, "fastai.vision.learner.TimmBody"):
            raise BadInput(f"its body is a {_name(body)}, not fastai's TimmBody for the timm arch {arch!r}.")
        if body.attrs().get("needs_pool") is not True:
            raise BadInput(f"its timm body {arch!r} pools by itself (no pool_size); only pooled-by-head bodies are served.")
        return "timm-features", arch
    if isinstance(arch, type) and issubclass(arch, Record) and arch.module.startswith("torchvision.models"):
        if arch.qualname not in TORCHVISION_ARCHS:
            raise BadInput(f"its body is torchvision's {arch.qualname}; served: {', '.join(TORCHVISION_ARCHS)}.")
        return "torchvision", arch.qualname
    raise BadInput(f"its body comes from an unknown arch ({_name(arch)}); served: torchvision "
                   f"{', '.join(TORCHVISION_ARCHS)} and timm archs by name.")


def _state_dict(module: Record, prefix: str = "") -> dict[str, torch.Tensor]:
    """Parameters and persistent buffers of a module record and its children, named as nn.Module does."""
    attrs = module.attrs()
    found: dict[str, torch.Tensor] = {}
    skip = attrs.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, tensor in (attrs.get(group) or {}).items():
            if isinstance(tensor, torch.Tensor) and name not in skip:
                found[prefix + name] = tensor
    for name, child in _children(module).items():
        if isinstance(child, Record):
            found.update(_state_dict(child, f"{prefix}{name}."))
    return found


def _head_layers(head: Any) -> list[dict[str, Any]]:
    if not is_record(head, "torch.nn.modules.container.Sequential"):
        raise BadInput(f"its head is a {_name(head)}, not fastai's create_head (custom heads are not served).")
    layers = []
    for child in _children(head).values():
        kind = HEAD_LAYERS.get(_name(child))
        if kind is None:
            raise BadInput(f"its head has a {_name(child)} layer, not one of fastai's create_head (unknown custom head).")
        attrs, params = child.attrs(), child.attrs().get("_parameters") or {}
        if kind in ("concat_pool", "avg_pool"):
            size = attrs.get("size", attrs.get("output_size", 1))
            if size not in (1, (1, 1)):
                raise BadInput(f"its head pools to {shown(size)}, not 1.")
            layers.append({"layer": kind, "size": 1})
        elif kind == "flatten":
            if attrs.get("full"):
                raise BadInput("its head flattens the whole batch (Flatten(full=True)).")
            layers.append({"layer": kind})
        elif kind == "batchnorm1d":
            layers.append({"layer": kind, "features": int(attrs["num_features"]), "eps": float(attrs.get("eps", 1e-5)),
                           "momentum": float(attrs.get("momentum") or 0.1), "affine": bool(attrs.get("affine", True))})
        elif kind == "dropout":
            layers.append({"layer": kind, "p": float(attrs.get("p", 0.5))})
        elif kind == "linear":
            layers.append({"layer": kind, "in": int(attrs["in_features"]), "out": int(attrs["out_features"]),
                           "bias": isinstance(params.get("bias"), torch.Tensor)})
        else:
            layers.append({"layer": kind})
    if not layers:
        raise BadInput("its head is empty.")
    return layers


def _items(value: Any) -> list[Any]:
    """The items of a fastcore L (or a plain list/tuple)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if is_record(value):
        items = value.attrs().get("items")
        if isinstance(items, (list, tuple)):
            return list(items)
        return list(value.listitems)
    return []


def _vocab(dls: Any) -> list[str]:
    maps = [record for record in _records(dls) if is_record(record, "fastai.data.transforms.CategoryMap")]
    multi = [record for record in _records(dls) if is_record(record, "fastai.data.transforms.MultiCategorize")]
    if multi:
        raise BadInput("it is a multi-label learner (MultiCategorize); only single-label classifiers are served.")
    if not maps:
        raise BadInput("no vocab (fastai CategoryMap) was found: it is not a classifier over categories.")
    classes = [str(item) for item in _items(maps[0].attrs().get("items"))]
    if len(classes) < 2:
        raise BadInput(f"its vocab has {len(classes)} class(es); a classifier needs two or more.")
    return classes


def _valid_loader(dls: Any) -> Record:
    """The validation DataLoader: learn.predict uses its transforms (split_idx 1)."""
    loaders = [loader for loader in _items((dls.attrs() if is_record(dls) else {}).get("loaders"))
               if is_record(loader)]
    if not loaders:
        raise BadInput("no DataLoader was found in it, so its transforms are unknown.")
    return loaders[1] if len(loaders) > 1 else loaders[0]


def _transforms(loader: Record, stage: str) -> list[Record]:
    pipeline = loader.attrs().get(stage)
    return [tfm for tfm in _items(pipeline.attrs().get("fs")) if is_record(tfm)] if is_record(pipeline) else []


def _square_size(size: Any) -> int:
    values = size.args[0] if is_record(size) and len(size.args) == 1 and isinstance(size.args[0], tuple) else \
        size.args if is_record(size) else size
    values = tuple(values) if isinstance(values, (tuple, list)) else (values, values)
    if len(values) != 2 or not all(isinstance(v, int) and v > 0 for v in values):
        raise BadInput(f"its Resize size {shown(values)} cannot be read.")
    if values[0] != values[1]:
        raise BadInput(f"it resizes to {values[1]}x{values[0]} (not square); only square inputs are served.")
    return values[0]


def _resample(mode: Any) -> str:
    number = mode.args[0] if is_record(mode) and mode.args else mode
    if number not in RESAMPLES:
        raise BadInput(f"its Resize uses an unknown resample mode {shown(number)}.")
    return RESAMPLES[number]


def _resize(item_tfms: list[Record]) -> dict[str, Any]:
    found: dict[str, Any] | None = None
    for tfm in item_tfms:
        name, attrs = _name(tfm), tfm.attrs()
        if name in INERT_TRANSFORMS:
            continue
        if found is not None:
            raise BadInput(f"it has two resizing item transforms (the second a {name.rsplit('.', 1)[-1]}).")
        if name == "fastai.vision.augment.Resize":
            method = str(attrs.get("method"))
            if method not in ("crop", "squish", "pad"):
                raise BadInput(f"its Resize method {method!r} is not crop, squish or pad.")
            pad_mode = str(attrs.get("pad_mode", "reflection"))
            found = {"img_size": _square_size(attrs.get("size")), "resize": method, "pad_mode": pad_mode,
                     "resample": _resample(attrs.get("mode", 2))}
        elif name == "fastai.vision.augment.RandomResizedCrop":
            size = _square_size(attrs.get("size"))
            xtra = attrs.get("val_xtra", 0.14)
            if not isinstance(xtra, (int, float)) or xtra < 0:
                raise BadInput(f"its RandomResizedCrop val_xtra {shown(xtra)} cannot be used.")
            margin = int(-(-size * xtra // 8) * 8)  # fastai: math.ceil(size * val_xtra / 8) * 8
            found = {"img_size": size, "resize": "squish-crop", "resize_margin": margin,
                     "resample": _resample(attrs.get("mode", 2))}
        else:
            raise BadInput(f"it has an item transform this app does not know: {name}.")
    if found is None:
        raise BadInput("it has no Resize item transform, so the input size is unknown.")
    return found


def _batch_transforms(batch_tfms: list[Record], in_chans: int) -> tuple[list[float], list[float], int | None]:
    """Normalisation (mean, std) and, with aug_transforms(size=...), the size the batch is resampled to."""
    mean, std = [0.0] * in_chans, [1.0] * in_chans
    scaled, batch_size = False, None
    for tfm in batch_tfms:
        name, attrs = _name(tfm), tfm.attrs()
        if name in INERT_TRANSFORMS:
            continue
        if name == "fastai.data.transforms.IntToFloatTensor":
            if attrs.get("div", 255.0) != 255.0:
                raise BadInput(f"its IntToFloatTensor divides by {shown(attrs.get('div'))}, not 255.")
            scaled = True
        elif name == "fastai.data.transforms.Normalize":
            values = [attrs.get("mean"), attrs.get("std")]
            if not all(isinstance(v, torch.Tensor) and v.numel() == in_chans for v in values):
                raise BadInput(f"its Normalize stats do not have one value per input channel ({in_chans}).")
            mean, std = ([float(x) for x in v.flatten()] for v in values)
        elif name in AFFINE_TRANSFORMS:
            if attrs.get("size") is None:
                continue  # at inference an identity resampling: nothing to do
            if str(attrs.get("mode", "bilinear")) != "bilinear" or attrs.get("valid_scale", 1.0) != 1.0:
                raise BadInput(f"its {name.rsplit('.', 1)[-1]} resamples by {shown(attrs.get('mode'))} or crops "
                               f"{shown(attrs.get('valid_scale'))} at inference; only bilinear, uncropped is served.")
            batch_size = _square_size(attrs["size"])
        else:
            raise BadInput(f"it has a batch transform this app does not know: {name}.")
    if not scaled:
        raise BadInput("its batch transforms do not scale pixels to 0-1 (no IntToFloatTensor).")
    return mean, std, batch_size


def _metrics(learner_attrs: dict[str, Any]) -> dict[str, float]:
    """The last epoch's validation figures (valid_loss, error_rate, accuracy) the export kept, if it trained."""
    recorder = learner_attrs.get("recorder")
    if not is_record(recorder):
        return {}
    names = [str(name) for name in _items(recorder.attrs().get("metric_names")) if str(name) not in ("epoch", "time")]
    row = dict(zip(names, _items(learner_attrs.get("final_record"))))  # [train_loss, valid_loss, *metrics]
    metrics = {name: float(row[name]) for name in ("valid_loss", "error_rate", "accuracy")
               if isinstance(row.get(name), (int, float)) and not isinstance(row.get(name), bool)}
    if "error_rate" in metrics and "accuracy" not in metrics:
        metrics["accuracy"] = 1 - metrics["error_rate"]
    return metrics


def convert(export: str | Path, out: str | Path) -> tuple[ModelInfo, Path]:
    """Write a fastai export as this project's model file (weights only, the format train.py writes)."""
    info, state_dict = read_export(export)
    return info, save_model_file(out, state_dict, info)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "convert":
        print("usage: python -m dlcourse.served.fastai_export convert EXPORT.pkl OUT.pkl", file=sys.stderr)
        return 2
    try:
        info, path = convert(args[1], args[2])
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    classes = ", ".join(info.classes[:6]) + (" ..." if len(info.classes) > 6 else "")
    print(f"wrote {path}: {info.origin}, {len(info.classes)} classes ({classes}), {info.img_size} px "
          f"({info.resize}), serve it with MODEL_PATH={path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
