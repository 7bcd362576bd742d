"""Checkpoints: what train.py writes at the end of every epoch so that an interrupted run can continue.

A checkpoint is one of the project's weights-only artifacts (`dlcourse.artifacts`: written atomically, read
with `torch.load(weights_only=True)`, its weights under a SHA-256). It holds the network, the optimiser,
the one-cycle schedule and the AMP loss scaler, where the run stands (epochs done, phase), the history,
the best epoch kept so far, every random state of every process (Python, NumPy, torch, CUDA, the data
loader's generator and its workers'), the settings and a fingerprint of the data. `--resume` refuses a
checkpoint whose settings or data differ from the run's, naming the first difference, so that a resumed
run ends with the model an uninterrupted one would have made.
"""
from __future__ import annotations

import copy
import random
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .. import artifacts
from ..errors import BadInput, shown

FORMAT = artifacts.Format(
    "dlcourse-checkpoint", 1, called="a training checkpoint",
    missing="No checkpoint at {path} to resume from: train without --resume first (it writes one every epoch).",
    remedy="Start afresh without --resume.",
)
SUFFIX = ".ckpt"
MODEL, BEST = "model.", "best."  # prefixes of the two sets of weights among the checkpoint's tensors

# The settings a checkpoint must share with the run that resumes it, and the option that sets each.
OPTIONS = {
    "arch": "--arch", "classes": "the classes", "in_chans": "--in-chans", "img_size": "--img-size",
    "pretrained": "--pretrained", "weights": "--weights", "world_size": "the number of processes",
    "augment": "the augmentation options", "keep": "--keep", "keep_metric": "--keep-metric",
    "epochs": "--epochs", "freeze_epochs": "--freeze-epochs", "lr": "--lr", "lr_mult": "--lr-mult",
    "batch_size": "--batch-size", "weight_decay": "--wd", "label_smoothing": "--label-smoothing",
    "seed": "--seed", "amp": "--amp", "channels_last": "the memory layout", "compile": "--compile",
    "decode": "--decode",
}


def path_for(out: str | Path, checkpoint_dir: str | Path | None = None) -> Path:
    """Where a run writing the model file `out` keeps its checkpoint: beside it (model/model.pkl ->
    model/model.ckpt), or in `checkpoint_dir` under the same name."""
    name = Path(out).with_suffix(SUFFIX).name
    return Path(checkpoint_dir) / name if checkpoint_dir else Path(out).with_suffix(SUFFIX)


def save(path: str | Path, meta: dict[str, Any], model: dict[str, torch.Tensor],
         best: dict[str, torch.Tensor] | None = None) -> Path:
    """Write a checkpoint: `meta` (plain values and small tensors), the weights, and the best epoch's."""
    tensors = {MODEL + name: tensor for name, tensor in model.items()}
    tensors |= {BEST + name: tensor for name, tensor in (best or {}).items()}
    return artifacts.save(path, FORMAT, meta, tensors)


def load(path: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor], dict[str, torch.Tensor] | None]:
    """(meta, weights, best epoch's weights or None) of a checkpoint; BadInput for anything else."""
    meta, tensors = artifacts.load(path, FORMAT)
    model = {name[len(MODEL):]: t for name, t in tensors.items() if name.startswith(MODEL)}
    best = {name[len(BEST):]: t for name, t in tensors.items() if name.startswith(BEST)}
    return meta, model, best or None


def settings(info, recipe, augment, weights: str | None, world_size: int) -> dict[str, Any]:
    """What a run must share with the one that wrote a checkpoint to resume it (`OPTIONS`): the model, its
    input, the augmentations and the recipe (the loader workers aside: `resume` warns when they differ)."""
    recipe = recipe.as_dict()
    return {"arch": info.arch, "classes": list(info.classes), "in_chans": info.in_chans, "img_size": info.img_size,
            "pretrained": recipe["pretrained"], "weights": weights, "world_size": world_size,
            "augment": augment.as_dict()} | {key: recipe[key] for key in OPTIONS if key in recipe and key != "pretrained"}


class Writer:
    """Writes a run's checkpoints in a background thread, so that training goes on while the file is written.

    `write` takes the snapshot in the training thread (every process gives its part; rank 0 copies what the
    next epoch would change) and returns; one file is written at a time, and each is complete and renamed
    before the next starts and before `wait` returns. A kill meanwhile leaves the previous checkpoint whole."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    def write(self, learner, settings: dict[str, Any], data: dict[str, Any]) -> None:
        state = learner.checkpoint_state()
        if not learner.procs.is_main:
            return
        self.wait()
        meta = copy.deepcopy(state | {"settings": settings, "data": data})  # the optimiser's tensors change in place
        model = {name: tensor.clone() for name, tensor in learner.state_dict().items()}
        self._thread = threading.Thread(target=self._save, args=(meta, model, learner.best_weights),
                                        name="checkpoint-writer")
        self._thread.start()

    def wait(self) -> None:
        """Until the checkpoint being written is on disk; its error, if writing it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise BadInput(f"could not write the checkpoint {self.path}: {error}") from None

    def _save(self, meta: dict[str, Any], model: dict[str, torch.Tensor], best: dict[str, torch.Tensor] | None) -> None:
        try:
            save(self.path, meta, model, best)
        except Exception as error:  # raised in the training thread by the next write or wait
            self._error = error


def resume(path: str | Path, learner, settings: dict[str, Any], data: dict[str, Any]) -> None:
    """Continue `learner` from the checkpoint at `path`, after checking it was written by this run's settings
    on this data (BadInput, naming the difference, if not)."""
    meta, weights, best = load(path)
    check_same_run(path, meta, settings, data)
    learner.restore(meta, weights, best)
    total = settings["epochs"] + settings["freeze_epochs"]
    learner.procs.print(f"resuming from {path}: {meta['epoch']} of {total} epochs done")
    if meta["workers"] != learner.recipe.workers:
        learner.procs.print(f"warning: the checkpoint was written with {meta['workers']} loader workers, this run has "
                            f"{learner.recipe.workers}: training continues, but its augmentations are drawn afresh "
                            f"(give --workers {meta['workers']} to continue exactly as an uninterrupted run)")


def check_same_run(path: str | Path, meta: dict[str, Any], settings: dict[str, Any], data: dict[str, Any]) -> None:
    """BadInput naming the first difference unless the checkpoint was written by a run with these settings
    on this data."""
    theirs, ours = meta.get("data", {}), data
    if theirs != ours:
        raise BadInput(
            f"{path} was written for other data ({_data_words(theirs)}; this run has {_data_words(ours)}): "
            f"give the same --data, or start afresh without --resume.")
    saved = meta.get("settings", {})
    for key in sorted(set(saved) | set(settings), key=lambda k: list(OPTIONS).index(k) if k in OPTIONS else 99):
        if saved.get(key) != settings.get(key):
            raise BadInput(
                f"{path} was written with other settings: {OPTIONS.get(key, key)} was {shown(saved.get(key))}, "
                f"this run has {shown(settings.get(key))}. Give the same settings to resume, or start afresh "
                "without --resume.")


def _data_words(fingerprint: dict[str, Any]) -> str:
    return (f"{fingerprint.get('train', '?')} training and {fingerprint.get('valid', '?')} validation images, "
            f"digest {str(fingerprint.get('sha256', '?'))[:12]}")


def random_states(loader_generator: torch.Generator | None, workers: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """This process's random states as plain values and tensors: Python, NumPy, torch (CPU, CUDA), the data
    loader's generator, and the last states its worker processes reported (`WorkerRandomStates`)."""
    return {
        "process": generator_states(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "loader": loader_generator.get_state() if loader_generator is not None else None,
        "workers": dict(workers),
    }


def set_random_states(states: dict[str, Any], loader_generator: torch.Generator | None) -> None:
    """Put back what `random_states` took (the workers' states are `WorkerRandomStates`'s to give)."""
    set_generator_states(states["process"])
    if states["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if loader_generator is not None and states["loader"] is not None:
        loader_generator.set_state(states["loader"])


def generator_states() -> dict[str, Any]:
    """Python's, NumPy's and torch's global random states, storable in a weights-only file."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(), "torch": torch.get_rng_state(),
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(position), int(has_gauss), float(gauss)]}


def set_generator_states(states: dict[str, Any]) -> None:
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(states["torch"])
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
