"""The fine-tune loop in plain PyTorch + timm: fastai's recipe without fastai.

`create_model` makes any timm network (pretrained from the Hub, from a local checkpoint, or from
scratch); `Learner.fit` trains only the new head for `freeze_epochs` (norm layers too, as fastai does),
then everything for `epochs`, each phase with AdamW under a one-cycle schedule, printing a table line per
epoch. On CUDA it uses mixed precision (bf16 where the GPU supports it, else fp16 with loss scaling); on
CPU, plain float32. Images and weights use the channels_last memory layout on both; `Recipe.compile`
runs the training steps through torch.compile. Training JPEGs are decoded by the loader processes, or
with `Recipe.decode == "device"` by the training process on its device (nvJPEG on a GPU), augmented there.

Several processes (torchrun): each trains on its shard of the training set (DistributedSampler) with its
own `batch_size`, so the global batch is `batch_size * world_size`; the learning rate is used as given.
One process shuffles the same way (a DistributedSampler of one), so a global batch holds the same images
whatever the number of processes: N processes of batch B train the model one process of batch N x B
trains, exactly for networks without batch statistics (LayerNorm: ConvNeXt, ViT), while BatchNorm
normalises over each process's share. Validation covers the whole validation set exactly once, split
between processes, sums all-reduced.
"""
from __future__ import annotations

import difflib
import math
import random
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Subset

from ..errors import BadInput
from . import distributed
from .data import DecodedOnDevice, EncodedImages, ImageFiles, collate_encoded
from .distributed import Processes
from .evaluate import outputs
from .schedules import one_cycle

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


@dataclass(frozen=True)
class Recipe:
    """How to train; stored in the model file as it is."""

    epochs: int = 5
    freeze_epochs: int = 0
    lr: float = 2e-3
    batch_size: int = 64  # per process
    weight_decay: float = 0.01
    label_smoothing: float = 0.1
    workers: int = 2
    amp: bool = True  # mixed precision on CUDA; CPU always trains in float32
    seed: int = 42
    channels_last: bool = True  # faster convolutions on CUDA (tensor cores) and on CPU (oneDNN), about 1.7x here
    compile: bool = False  # torch.compile the training steps
    decode: str = "workers"  # where training JPEGs are decoded and augmented: "workers" (loader processes) or "device"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def create_model(arch: str, num_classes: int, in_chans: int, pretrained: bool, weights: str | None = None) -> nn.Module:
    """A timm network with a new head of `num_classes`. Pretrained weights come from the Hub, or from the
    local checkpoint `weights` (a timm/PyTorch state dict file) when given; timm adapts the first
    convolution to `in_chans` and drops the old head."""
    import timm

    check_arch(arch)
    kwargs: dict[str, Any] = dict(num_classes=num_classes, in_chans=in_chans)
    if weights:
        kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=str(weights)))
    else:
        kwargs.update(pretrained=pretrained)
    try:
        return timm.create_model(arch, **kwargs)
    except BadInput:
        raise
    except Exception as error:
        reason = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"
        if weights:
            raise BadInput(f"the weights in {weights} cannot be loaded into {arch} ({reason}).") from None
        if pretrained:
            raise BadInput(
                f"could not get pretrained weights for {arch} from the Hugging Face Hub ({reason}). "
                "Give a local checkpoint with --weights FILE, or train from scratch with --no-pretrained."
            ) from None
        raise BadInput(f"timm could not build {arch}: {reason}") from None


def check_arch(arch: str) -> None:
    """BadInput, with the nearest names, unless timm knows the architecture."""
    import timm

    if not timm.is_model(arch):
        close = difflib.get_close_matches(arch, timm.list_models(), n=3, cutoff=0.6)
        hint = f" Did you mean {', '.join(close)}?" if close else " See timm.list_models() for the names."
        raise BadInput(f"unknown architecture {arch!r}: timm has no such model.{hint}")


def input_config(model: nn.Module, in_chans: int, img_size: int | None = None) -> dict[str, Any]:
    """img_size, mean and std from the model's pretrained config (timm), `img_size` overriding."""
    import timm

    config = timm.data.resolve_model_data_config(model)
    mean, std = [float(v) for v in config["mean"]], [float(v) for v in config["std"]]
    if in_chans != len(mean):  # grayscale input to an RGB config: the channels' average
        mean, std = [sum(mean) / len(mean)] * in_chans, [sum(std) / len(std)] * in_chans
    return {"img_size": int(img_size or config["input_size"][-1]), "mean": mean, "std": std}


def freeze_body(model: nn.Module) -> None:
    """Train only the classifier head, plus the norm layers (fastai's train_bn)."""
    for param in model.parameters():
        param.requires_grad_(False)
    for module in model.modules():
        if isinstance(module, NORM_LAYERS):
            for param in module.parameters(recurse=False):
                param.requires_grad_(True)
    for param in model.get_classifier().parameters():
        param.requires_grad_(True)


def unfreeze(model: nn.Module) -> None:
    for param in model.parameters():
        param.requires_grad_(True)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Trainable parameters; no weight decay on biases and norm weights (1-d tensors)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (no_decay if param.ndim <= 1 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def amp_dtype(device: torch.device, enabled: bool) -> torch.dtype | None:
    """bf16 on GPUs that support it, else fp16; None (float32) on CPU or when disabled."""
    if not enabled or device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class Learner:
    """A model, its data (datasets yielding (tensor, class index)), a recipe and the processes."""

    def __init__(self, model: nn.Module, train_ds, valid_ds, recipe: Recipe, procs: Processes,
                 log: Callable[[str], None] | None = None):
        self.recipe, self.procs = recipe, procs
        self.device = procs.device
        self.channels_last = recipe.channels_last
        self.model = model.to(self.device, memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        self.train_ds, self.valid_ds = train_ds, valid_ds
        self.dtype = amp_dtype(self.device, recipe.amp)
        self.criterion = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
        self.history: list[dict[str, Any]] = []
        self.log = log or procs.print
        self.train_loader = self._train_loader()
        self.valid_loader = self._eval_loader(
            valid_ds, distributed.shard(procs, len(valid_ds)) if procs.distributed else None, persistent=True
        )
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

    # ----- data -----
    def _train_loader(self) -> DataLoader | DecodedOnDevice:
        r, procs = self.recipe, self.procs
        generator = torch.Generator().manual_seed(r.seed + procs.rank)  # per-rank augmentation draws
        per_process = math.ceil(len(self.train_ds) / procs.world_size)
        if per_process < 2:
            raise BadInput(f"only {len(self.train_ds)} training images for {procs.world_size} process(es): "
                           "each process needs at least 2 (BatchNorm cannot learn from one).")
        # One shuffle for any number of processes, drawn from the seed and the epoch (set_epoch): rank r
        # takes every world_size-th image of it, so each step's global batch is the same set of images.
        sampler = DistributedSampler(self.train_ds, procs.world_size, procs.rank, shuffle=True, seed=r.seed)
        on_device = r.decode == "device"
        if on_device and not isinstance(self.train_ds, ImageFiles):
            raise BadInput("--decode device decodes image files; these images are already in memory.")
        loader = DataLoader(
            EncodedImages(self.train_ds) if on_device else self.train_ds,
            batch_size=r.batch_size,
            sampler=sampler,
            generator=generator,
            num_workers=r.workers,
            persistent_workers=r.workers > 0,
            pin_memory=self.device.type == "cuda",
            drop_last=per_process > r.batch_size,  # a last batch of 1 upsets BatchNorm
            collate_fn=collate_encoded if on_device else None,
        )
        return DecodedOnDevice(loader, self.train_ds.transform, self.device) if on_device else loader

    def _eval_loader(self, dataset, indices: list[int] | None = None, persistent: bool = False) -> DataLoader:
        return DataLoader(
            Subset(dataset, indices) if indices is not None else dataset,
            batch_size=self.recipe.batch_size * 2,
            num_workers=self.recipe.workers,
            persistent_workers=persistent and self.recipe.workers > 0,
            pin_memory=self.device.type == "cuda",
        )

    # ----- training -----
    def fit(self) -> list[dict[str, Any]]:
        """fastai's fine_tune: the head alone for freeze_epochs (at lr), then everything for epochs
        (at lr / 2 after a frozen phase, as fastai does; at lr when training from scratch)."""
        r = self.recipe
        self._print_header()
        if r.freeze_epochs > 0:
            freeze_body(self.model)
            self._fit_phase("head", r.freeze_epochs, r.lr)
        if r.epochs > 0:
            unfreeze(self.model)
            self._fit_phase("all", r.epochs, r.lr / 2 if r.freeze_epochs > 0 else r.lr)
        return self.history

    def training_network(self) -> nn.Module:
        """The module a training phase calls: the model, wrapped by DDP under torchrun (DDP registers the
        parameters that need gradients when it is built, so one wrapper per phase), compiled when asked."""
        net: nn.Module = self.model
        if self.procs.distributed:
            net = DistributedDataParallel(self.model, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        if self.recipe.compile:
            net = torch.compile(net)
        return net

    def optimizer(self, lr: float) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler]:
        """AdamW over the trainable parameters, and the loss scaler fp16 needs (a no-op otherwise)."""
        optimizer = torch.optim.AdamW(param_groups(self.model, self.recipe.weight_decay), lr=lr)
        return optimizer, torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def _fit_phase(self, phase: str, epochs: int, lr: float) -> None:
        net = self.training_network()
        optimizer, scaler = self.optimizer(lr)
        steps = epochs * len(self.train_loader)
        scheduler = one_cycle(optimizer, lr, steps)
        for _ in range(epochs):
            epoch = len(self.history) + 1
            self.train_loader.sampler.set_epoch(epoch)
            start = time.perf_counter()
            train_loss, seen = self._train_epoch(net, optimizer, scheduler, scaler, epoch)
            train_seconds = time.perf_counter() - start
            metrics = self.evaluate()
            row = {
                "epoch": epoch,
                "phase": phase,
                "train_loss": train_loss,
                **metrics,
                "seconds": round(time.perf_counter() - start, 2),
                "train_images_per_second": round(seen / train_seconds, 1),
            }
            self.history.append(row)
            self._print_row(row)

    def _train_epoch(self, net, optimizer, scheduler, scaler, epoch: int) -> tuple[float, int]:
        net.train()
        loss_sum, seen = 0.0, 0
        batches = self.train_loader
        bar = _progress(batches, f"epoch {epoch}", self.procs.is_main)
        for inputs, targets in bar:
            loss = self.train_step(net, optimizer, scaler, inputs, targets).item()
            if not math.isfinite(loss):
                raise BadInput(f"training diverged at epoch {epoch} (the loss became {loss}): lower --lr.")
            scheduler.step()
            loss_sum += loss * len(targets)
            seen += len(targets)
            if hasattr(bar, "set_postfix_str"):
                bar.set_postfix_str(f"loss {loss_sum / seen:.4f}")
        total, count = distributed.all_sum(self.procs, [loss_sum, seen])
        return total / max(count, 1), int(count)

    def train_step(self, net: nn.Module, optimizer, scaler, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """One optimiser step on a batch (moved to the device unless it is there already); the loss, on the device."""
        inputs = inputs.to(self.device, non_blocking=True)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        targets = targets.to(self.device, non_blocking=True)
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            loss = self.criterion(net(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        return loss.detach()

    # ----- evaluation -----
    @torch.inference_mode()
    def evaluate(self) -> dict[str, float]:
        """valid_loss (the training loss function), error_rate and accuracy over the whole validation
        set; each process takes its share, the sums are added up. Float32, no autocast, so the figures
        are those of the network as saved."""
        distributed.sync_buffers(self.procs, self.model)
        self.model.eval()
        loss_sum, correct, count = 0.0, 0, 0
        for inputs, targets in self.valid_loader:
            logits = self._forward(inputs)
            targets = targets.to(self.device)
            loss_sum += nn.functional.cross_entropy(
                logits.float(), targets, label_smoothing=self.recipe.label_smoothing, reduction="sum"
            ).item()
            correct += (logits.argmax(dim=1) == targets).sum().item()
            count += len(targets)
        loss_sum, correct, count = distributed.all_sum(self.procs, [loss_sum, correct, count])
        accuracy = correct / count
        return {"valid_loss": loss_sum / count, "error_rate": 1 - accuracy, "accuracy": accuracy,
                "valid_images": int(count)}

    def valid_batches(self) -> DataLoader:
        """The whole validation set in order, unsharded, as the evaluation transform prepares it: for reports made
        by one process after training (train.py makes them on rank 0)."""
        return self._eval_loader(self.valid_ds)

    def predict(self, dataset=None) -> tuple[torch.Tensor, torch.Tensor]:
        """`evaluate.outputs` for every item of `dataset` (default: the validation set), in order, in this
        process. For per-image reports (confusion matrix, top losses)."""
        batches = self.valid_batches() if dataset is None else self._eval_loader(dataset)
        return outputs(self.model, batches, device=self.device, channels_last=self.channels_last)

    def _forward(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = inputs.to(self.device, non_blocking=True)
        if self.channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.model(inputs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained weights, on the CPU, in the standard memory layout."""
        return {name: t.detach().cpu().contiguous() for name, t in self.model.state_dict().items()}

    # ----- the table -----
    COLUMNS = ("epoch", "phase", "train_loss", "valid_loss", "error_rate", "accuracy", "time")

    def _print_header(self) -> None:
        self.log("  ".join(f"{c:>10}" if c not in ("epoch", "phase") else f"{c:<5}" for c in self.COLUMNS))

    def _print_row(self, row: dict[str, Any]) -> None:
        minutes, seconds = divmod(int(round(row["seconds"])), 60)
        cells = [f"{row['epoch']:<5}", f"{row['phase']:<5}"]
        cells += [f"{row[k]:>10.4f}" for k in ("train_loss", "valid_loss", "error_rate", "accuracy")]
        cells.append(f"{minutes:>7}:{seconds:02d}")
        self.log("  ".join(cells))


def _progress(iterable, description: str, show: bool):
    """A progress bar on the terminal (rank 0, interactive sessions only); the iterable itself otherwise."""
    if not show or not sys.stderr.isatty():
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, desc=description, leave=False, file=sys.stderr, dynamic_ncols=True, disable=False)
