"""What a model file says about how it was made: versions, the command line, the run in one line, and a few
validation images the app shows as its examples."""
from __future__ import annotations

import platform
import shlex
import sys
from typing import Callable

import numpy as np
import torch
from PIL import Image

from ..served.modelfile import ModelInfo
from .distributed import Processes


def versions() -> dict[str, str]:
    import timm
    import torchvision

    return {"torch": str(torch.__version__), "timm": str(timm.__version__),
            "torchvision": str(torchvision.__version__), "python": platform.python_version()}


def command_line(procs: Processes, argv: list[str] | None = None) -> str:
    """The command that ran, as one would type it again (under torchrun, the launcher's own form)."""
    argv = list(sys.argv if argv is None else argv)
    script, args = argv[0], argv[1:]
    if procs.distributed:
        nodes = procs.world_size // max(procs.local_world_size, 1)
        launcher = ["torchrun", f"--nproc_per_node={procs.local_world_size}"] + ([f"--nnodes={nodes}"] if nodes > 1 else [])
    else:
        launcher = ["python"]
    return shlex.join(launcher + [script] + args)


def describe(meta: ModelInfo, recipe, augment, pretrained: bool, procs: Processes, dtype) -> str:
    """One line about the run before it starts."""
    start = "pretrained" if pretrained else "from scratch"
    processes = f"{procs.world_size} processes" if procs.distributed else "1 process"
    precision = str(dtype).replace("torch.", "") + " autocast" if dtype else "float32"
    epochs = f"{recipe.epochs} epoch{'' if recipe.epochs == 1 else 's'}"
    phases = f"{recipe.freeze_epochs} frozen + {epochs}" if recipe.freeze_epochs else epochs
    return (
        f"model: {meta.arch} ({start}), {meta.in_chans} channel(s) at {meta.img_size} px, "
        f"{len(meta.classes)} classes\n"
        f"training: {phases}, batch {recipe.batch_size} x {processes}, lr {recipe.lr:g}, wd {recipe.weight_decay:g}, "
        f"label smoothing {recipe.label_smoothing:g}, on {procs.device.type} in {precision}, {recipe.workers} loader workers\n"
        f"augment: {', '.join(f'{k}={v}' for k, v in augment.as_dict().items())}"
    )


EXAMPLES_PER_CLASS = 2
MAX_EXAMPLES = 24  # the Classify tab shows them on one page
EXAMPLE_SIDE = 128  # pixels, the longest side of a stored example: a thumbnail, not the photo


def pick_examples(valid, info: ModelInfo, predict: Callable, per_class: int = EXAMPLES_PER_CLASS,
                  limit: int = MAX_EXAMPLES, side: int = EXAMPLE_SIDE) -> list[dict]:
    """A few validation images per class, made small, that the model gets right as the app will see them:
    [{"image": uint8 tensor (C, H, W), "label": class}], classes taking turns, at most `limit`.

    `valid` yields (uint8 image, class index) without a transform; `predict(dataset)` -> (logits, targets),
    as `Learner.predict`. Each thumbnail is classified through the app's own preprocessing."""
    from ..served.preprocess import create_transform, image_to_uint8_tensor

    raw = valid.with_transform(None)
    # Classes take turns, so classes past the first `limit` would never get one.
    by_class: dict[int, list[int]] = {c: [] for c in range(min(len(info.classes), limit))}
    for index, target in enumerate(raw.targets):
        if target in by_class and len(by_class[target]) < per_class * 4:  # spares, for the ones the model gets wrong
            by_class[target].append(index)
    candidates = [index for indices in by_class.values() for index in indices]
    pictures = [thumbnail(raw[index][0], side) for index in candidates]
    transform = create_transform(info)
    inputs = torch.stack([transform(image_to_uint8_tensor(picture.convert("RGB"), info)) for picture in pictures])
    targets = [raw.targets[index] for index in candidates]
    logits, _ = predict(torch.utils.data.TensorDataset(inputs, torch.tensor(targets)))
    kept: dict[int, list[Image.Image]] = {c: [] for c in by_class}
    for picture, target, predicted in zip(pictures, targets, logits.argmax(dim=1).tolist()):
        if predicted == target and len(kept[target]) < per_class:
            kept[target].append(picture)
    turns = [(c, chosen[n]) for n in range(per_class) for c, chosen in kept.items() if n < len(chosen)]
    return [{"image": as_tensor(picture), "label": info.classes[c]} for c, picture in turns[:limit]]


def thumbnail(image: torch.Tensor, side: int) -> Image.Image:
    """A uint8 (C, H, W) image as a PIL picture whose longest side is at most `side` (grey stays grey)."""
    array = image.permute(1, 2, 0).numpy()
    picture = Image.fromarray(array[:, :, 0] if array.shape[2] == 1 else array)
    picture.thumbnail((side, side), Image.Resampling.LANCZOS)
    return picture


def as_tensor(picture: Image.Image) -> torch.Tensor:
    """A grey ("L") or RGB picture as a uint8 (C, H, W) tensor."""
    array = np.array(picture)
    return torch.from_numpy(array[:, :, None] if array.ndim == 2 else array).permute(2, 0, 1).contiguous()
