"""What a model file says about how it was made: versions, the command line, the run in one line."""
from __future__ import annotations

import platform
import shlex
import sys
import torch

from ..modelfile import ModelInfo
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
