"""The fine-tune loop in plain PyTorch + timm: fastai's recipe without fastai.

`create_model` makes any timm network (pretrained from the Hub, from a local checkpoint, or from
scratch); `Learner.fit` trains as fastai's `fine_tune` does (`phases`): only the new head for
`freeze_epochs` (norm layers too), then everything for `epochs` with discriminative learning rates (the
body at lr / lr_mult, the head at lr), each phase with AdamW under a one-cycle schedule; from scratch,
one one-cycle over the whole network, as fastai's `fit_one_cycle`. It prints a table line per epoch, can
keep the best epoch's weights, and hands its whole state to a checkpoint after each epoch (`restore`
continues from one). On CUDA it uses mixed precision (bf16 where the GPU supports it, else fp16 with loss scaling); on
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
import operator
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
from .data import DecodedOnDevice, EncodedImages, ImageFiles, ResumableLoader, collate_encoded
from .distributed import Processes
from .evaluate import outputs
from .schedules import FROZEN_ONE_CYCLE, ONE_CYCLE, UNFROZEN_ONE_CYCLE, OneCycle, one_cycle

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
# What --keep best can follow, and when a value improves on the best (fastai's SaveModelCallback: np.less for
# losses, np.greater for metrics, strictly: the first of equal epochs stays).
KEEP_METRICS = {"valid_loss": operator.lt, "error_rate": operator.lt, "accuracy": operator.gt}


@dataclass(frozen=True)
class Phase:
    """One one-cycle fit: what trains ("head": the body frozen, or "all"), for how many epochs, the peak
    learning rate of each layer group (`layer_groups`: the whole network, or body and head), and the cycle's
    shape (warm-up share, first rate's divisor)."""

    name: str
    epochs: int
    lrs: tuple[float, ...]
    cycle: OneCycle = ONE_CYCLE


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
    pretrained: bool = False  # starting from trained weights: fit as fastai's fine_tune (`phases`)
    lr_mult: float = 100.0  # fine-tuning everything, the body's rate is the head's / lr_mult (fastai's default)
    keep: str = "last"  # the weights kept at the end: the "last" epoch's, or the "best" by keep_metric
    keep_metric: str = "valid_loss"  # a key of KEEP_METRICS

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def phases(recipe: Recipe) -> list[Phase]:
    """fastai's `fine_tune(epochs, base_lr=lr, freeze_epochs, lr_mult)` when starting from trained weights (or
    after a frozen phase): the head alone at `slice(lr)` (the body's norm layers at lr / 10) with a 99% warm-up,
    then everything at half that, `slice(lr / 2 / lr_mult, lr / 2)`, warm-up 30%, starting at a fifth of the
    peak. From scratch, fastai's `fit_one_cycle(epochs, lr)`: one rate for the whole network."""
    lr, plan = recipe.lr, []
    if recipe.freeze_epochs > 0:
        plan.append(Phase("head", recipe.freeze_epochs, (lr / 10, lr), FROZEN_ONE_CYCLE))
    if recipe.epochs > 0 and (recipe.pretrained or recipe.freeze_epochs > 0):
        plan.append(Phase("all", recipe.epochs, (lr / 2 / recipe.lr_mult, lr / 2), UNFROZEN_ONE_CYCLE))
    elif recipe.epochs > 0:
        plan.append(Phase("all", recipe.epochs, (lr,)))
    return plan


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


def layer_groups(model: nn.Module, count: int) -> list[list[nn.Parameter]]:
    """The parameters in fastai's groups for a timm network (vision_learner's `default_split`): [all] for one
    group, [body, head] for two, the head being the classifier timm replaces."""
    if count == 1:
        return [list(model.parameters())]
    head = {id(param) for param in model.get_classifier().parameters()}
    return [[p for p in model.parameters() if id(p) not in head], [p for p in model.parameters() if id(p) in head]]


def param_groups(model: nn.Module, weight_decay: float, lrs: tuple[float, ...] | None = None) -> list[dict[str, Any]]:
    """Trainable parameters, two optimiser groups per layer group (each at its learning rate `lrs[i]`, tagged
    "layer_group": i): no weight decay on biases and norm weights (1-d tensors). Without `lrs`, one layer
    group at the optimiser's own rate."""
    groups = []
    for index, params in enumerate(layer_groups(model, len(lrs) if lrs else 1)):
        decay, no_decay = [], []
        for param in params:
            if param.requires_grad:
                (no_decay if param.ndim <= 1 else decay).append(param)
        rate = {"lr": lrs[index], "layer_group": index} if lrs else {}
        groups += [{"params": decay, "weight_decay": weight_decay, **rate}, {"params": no_decay, "weight_decay": 0.0, **rate}]
    return groups


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
        self.best: dict[str, Any] | None = None  # {"epoch", "metric", "value"} of the best epoch so far (keep "best")
        self.best_weights: dict[str, torch.Tensor] | None = None
        self.stepping: dict[str, Any] = {}  # the current phase's optimizer, scheduler and scaler
        self.resumed: dict[str, Any] = {}  # the checkpoint state `restore` continues from
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
    def _train_loader(self) -> ResumableLoader | DecodedOnDevice:
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
        loader = ResumableLoader(
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
        self.resumable_loader = loader
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
    def fit(self, after_epoch: Callable[[], None] | None = None) -> list[dict[str, Any]]:
        """Train through `phases(recipe)`, from where `restore` left off; `after_epoch()` is called at the end
        of every epoch (train.py writes its checkpoint there)."""
        self._print_header()
        for row in self.history:  # epochs done before a resume
            self._print_row(row)
        done = len(self.history)
        for phase in phases(self.recipe):
            if done >= phase.epochs:
                done -= phase.epochs
                continue
            (freeze_body if phase.name == "head" else unfreeze)(self.model)
            self._fit_phase(phase, done, after_epoch)
            done = 0
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

    def optimizer(self, lrs: tuple[float, ...]) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler]:
        """AdamW over the trainable parameters, each layer group at its rate, and the loss scaler fp16 needs
        (a no-op otherwise)."""
        optimizer = torch.optim.AdamW(param_groups(self.model, self.recipe.weight_decay, lrs), lr=lrs[-1])
        return optimizer, torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def _fit_phase(self, phase: Phase, done: int, after_epoch: Callable[[], None] | None) -> None:
        """`phase`'s epochs after the first `done` of them (those a restored checkpoint had finished)."""
        net = self.training_network()
        optimizer, scaler = self.optimizer(phase.lrs)
        peaks = [phase.lrs[group["layer_group"]] for group in optimizer.param_groups]
        scheduler = one_cycle(optimizer, peaks, phase.epochs * len(self.train_loader), cycle=phase.cycle)
        if done:  # resumed in this phase: its optimiser, schedule and scaler where they stood
            optimizer.load_state_dict(self.resumed["optimizer"])
            scheduler.load_state_dict(self.resumed["scheduler"])
            if self.resumed["scaler"] and scaler.is_enabled():
                scaler.load_state_dict(self.resumed["scaler"])
        self.stepping = {"optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
        for _ in range(phase.epochs - done):
            epoch = len(self.history) + 1
            self.train_loader.sampler.set_epoch(epoch)
            start = time.perf_counter()
            train_loss, seen = self._train_epoch(net, optimizer, scheduler, scaler, epoch)
            train_seconds = time.perf_counter() - start
            metrics = self.evaluate()
            row = {
                "epoch": epoch,
                "phase": phase.name,
                "train_loss": train_loss,
                **metrics,
                "seconds": round(time.perf_counter() - start, 2),
                "train_images_per_second": round(seen / train_seconds, 1),
            }
            self.history.append(row)
            self._keep_if_best(row)
            self._print_row(row)
            if after_epoch is not None:
                after_epoch()

    # ----- the best epoch (fastai's SaveModelCallback) -----
    def _keep_if_best(self, row: dict[str, Any]) -> None:
        """With keep "best": a copy of the weights of the epoch whose keep_metric is the best so far (the
        first of equals, as fastai's SaveModelCallback)."""
        if self.recipe.keep != "best":
            return
        metric = self.recipe.keep_metric
        if self.best is None or KEEP_METRICS[metric](row[metric], self.best["value"]):
            self.best = {"epoch": row["epoch"], "metric": metric, "value": row[metric]}
            self.best_weights = {name: t.clone() for name, t in self.state_dict().items()}

    def use_kept_epoch(self) -> dict[str, Any]:
        """The history row of the epoch whose weights to keep, those weights put into the model: the best
        epoch with keep "best" (fastai's SaveModelCallback also loads it at the end), else the last."""
        if self.recipe.keep == "best" and self.best is not None:
            self.model.load_state_dict(self.best_weights)
            return self.history[self.best["epoch"] - 1]
        return self.history[-1]

    # ----- checkpoints -----
    def checkpoint_state(self) -> dict[str, Any]:
        """Where training stands, for a checkpoint: epochs done, phase, history, best epoch, optimiser,
        schedule and scaler, and every process's random states (a collective call under torchrun; the
        states of all processes in rank order)."""
        from . import checkpoint

        mine = checkpoint.random_states(self.resumable_loader.generator, self.resumable_loader.worker_states)
        return {
            "epoch": len(self.history),
            "phase": self.history[-1]["phase"] if self.history else None,
            "history": self.history,
            "best": self.best,
            "optimizer": self.stepping["optimizer"].state_dict(),
            "scheduler": self.stepping["scheduler"].state_dict(),
            "scaler": self.stepping["scaler"].state_dict(),
            "random": distributed.all_gather(self.procs, mine),
            "workers": self.recipe.workers,
        }

    def restore(self, state: dict[str, Any], weights: dict[str, torch.Tensor], best: dict[str, torch.Tensor] | None) -> None:
        """Continue from a checkpoint's `checkpoint_state`: weights, history, best epoch, random states; the
        optimiser, schedule and scaler are put back when `fit` reaches the phase they belong to."""
        from . import checkpoint

        self.model.load_state_dict(weights)
        self.history, self.best, self.best_weights = list(state["history"]), state["best"], best
        self.resumed = state
        mine = state["random"][self.procs.rank]
        checkpoint.set_random_states(mine, self.resumable_loader.generator)
        if state["workers"] == self.recipe.workers:
            self.resumable_loader.start_states = mine["workers"]

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
