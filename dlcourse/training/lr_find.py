"""The learning-rate range test (Leslie Smith's, as fastai's `lr_find`), in plain PyTorch.

Train a *copy* of the model for a bounded number of mini-batches while the learning rate grows
exponentially from `start_lr` to `end_lr`; record the smoothed loss; stop once it explodes. The
suggestions are read from the loss curve: the point of steepest descent, and fastai's "valley".
The caller's model, its optimiser and the random-number state are left exactly as they were.
"""
from __future__ import annotations

import contextlib
import copy
import inspect
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Iterable

import torch

from ..errors import BadInput

DEFAULT_START_LR = 1e-7
DEFAULT_END_LR = 10.0
DEFAULT_NUM_IT = 100
SMOOTH_BETA = 0.98  # fastai's exponential moving average of the loss
DIVERGE_FACTOR = 4.0  # stop when the smoothed loss exceeds this many times its best
MIN_POINTS = 5  # fewer recorded points than this give no meaningful suggestion


@dataclass
class LRFindResult:
    """What the range test saw: one learning rate and loss per mini-batch, and the suggestions."""

    lrs: list[float]
    losses: list[float]  # raw mini-batch losses
    smoothed: list[float]  # debiased exponential moving average: the curve that is plotted and read
    steep: float  # lr at the steepest descent of the smoothed loss
    valley: float  # fastai's "valley": a point a little into the longest descending stretch
    start_lr: float
    end_lr: float
    num_it: int  # mini-batches asked for
    stopped_early: bool  # the loss exploded before num_it mini-batches
    suggestions: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.suggestions = {"valley": self.valley, "steep": self.steep}

    def to_dict(self) -> dict[str, Any]:
        """Plain values only (JSON, or a weights-only model file)."""
        return asdict(self)


def lr_find(
    model: torch.nn.Module,
    batches: Iterable,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    *,
    optimizer: torch.optim.Optimizer | None = None,
    start_lr: float = DEFAULT_START_LR,
    end_lr: float = DEFAULT_END_LR,
    num_it: int = DEFAULT_NUM_IT,
    device: torch.device | str | None = None,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    diverge: float = DIVERGE_FACTOR,
) -> LRFindResult:
    """Run the range test on a deep copy of `model` and return what it recorded.

    `batches` is re-iterated (a DataLoader: the training loader, augmentation included) until
    `num_it` mini-batches have been seen. `optimizer`, when given, is only read: a fresh optimiser
    of the same class and hyperparameters (no state) is made for the copy; without it, AdamW.
    `amp_dtype` (e.g. torch.bfloat16) runs the forward pass under autocast on `device`.
    """
    if not (0 < start_lr < end_lr) or not math.isfinite(end_lr):
        raise BadInput(f"The learning-rate range must satisfy 0 < start < end; got {start_lr:g} .. {end_lr:g}.")
    if num_it < MIN_POINTS + 1:
        raise BadInput(f"The learning-rate finder needs at least {MIN_POINTS + 1} mini-batches, not {num_it}.")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    device = torch.device(device)

    probe = copy.deepcopy(model).to(device).train()
    if channels_last:
        probe = probe.to(memory_format=torch.channels_last)
    opt = _fresh_optimizer(optimizer, model, probe, start_lr)
    ratio = end_lr / start_lr
    lrs: list[float] = []
    losses: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    stopped_early = False
    autocast = (
        (lambda: torch.autocast(device.type, dtype=amp_dtype)) if amp_dtype is not None else contextlib.nullcontext
    )
    # The test consumes random numbers (shuffling, augmentation, dropout); put them back afterwards
    # so that training after it is the same as training without it.
    with preserved_rng(batches, device):
        for i, (inputs, targets) in enumerate(_cycle(batches, num_it)):
            lr = start_lr * ratio ** (i / (num_it - 1))
            for group in opt.param_groups:
                group["lr"] = lr
            inputs = inputs.to(device, non_blocking=True)
            if channels_last and inputs.dim() == 4:
                inputs = inputs.contiguous(memory_format=torch.channels_last)
            targets = targets.to(device, non_blocking=True)
            with autocast():
                loss = loss_fn(probe(inputs), targets)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            value = float(loss.detach().float())
            avg = SMOOTH_BETA * avg + (1 - SMOOTH_BETA) * value
            smooth = avg / (1 - SMOOTH_BETA ** (i + 1))
            lrs.append(lr)
            losses.append(value)
            smoothed.append(smooth)
            if not math.isfinite(smooth) or smooth > diverge * best:
                stopped_early = i < num_it - 1
                break
            best = min(best, smooth)
    del probe, opt
    if len(lrs) < MIN_POINTS:
        raise BadInput(
            f"The loss exploded after {len(lrs)} mini-batches, too few to suggest a learning rate: "
            f"start lower than {start_lr:g} (--lr-find-start)."
        )
    steep, valley = suggest(lrs, smoothed)
    return LRFindResult(lrs, losses, smoothed, steep, valley, start_lr, end_lr, num_it, stopped_early)


def suggest(lrs: list[float], losses: list[float]) -> tuple[float, float]:
    """(steep, valley) learning rates from a loss-vs-lr curve, as fastai reads it.

    Like fastai, the first tenth of the points (still flat) and the last few (the explosion) are
    left out when enough points remain; non-finite losses are always left out.
    """
    points = [(lr, loss) for lr, loss in zip(lrs, losses) if math.isfinite(loss)]
    n = len(points)
    skip_start, skip_end = n // 10, 5
    if n - skip_start - skip_end >= MIN_POINTS:
        points = points[skip_start : n - skip_end]
    if len(points) < 2:
        raise BadInput("Too few finite losses to suggest a learning rate.")
    return steepest(*zip(*points)), valley(*zip(*points))


def steepest(lrs: tuple[float, ...], losses: tuple[float, ...]) -> float:
    """The lr where the loss falls fastest per unit of log(lr)."""
    slopes = [
        (losses[i + 1] - losses[i]) / (math.log(lrs[i + 1]) - math.log(lrs[i])) for i in range(len(lrs) - 1)
    ]
    return float(lrs[min(range(len(slopes)), key=slopes.__getitem__)])


def valley(lrs: tuple[float, ...], losses: tuple[float, ...]) -> float:
    """fastai's valley: find the longest decreasing subsequence of the loss, go about half way down it.

    The same O(n^2) dynamic programme as fastai's, over at most a few hundred points.
    """
    n = len(losses)
    lengths = [1] * n
    max_start = max_end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lengths[i] < lengths[j] + 1:
                lengths[i] = lengths[j] + 1
            if lengths[max_end] < lengths[i]:
                max_end = i
                max_start = max_end - lengths[max_end]
    sections = (max_end - max_start) / 3
    index = max_start + int(sections) + int(sections / 2)
    return float(lrs[min(max(index, 0), n - 1)])


@contextlib.contextmanager
def preserved_rng(batches: Iterable, device: torch.device | str = "cpu"):
    """Put back, on exit, torch's global random state (CPU, and `device` if a GPU) and that of the
    DataLoader's own generators (loader, sampler): reading batches then leaves no trace."""
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), _kept_generators(batches):
        yield


@contextlib.contextmanager
def _kept_generators(batches: Iterable):
    """Restore the state of a DataLoader's own torch.Generators (loader, sampler) on exit."""
    generators = {
        id(g): g
        for g in (getattr(batches, "generator", None), getattr(getattr(batches, "sampler", None), "generator", None))
        if isinstance(g, torch.Generator)
    }
    states = [(g, g.get_state()) for g in generators.values()]
    try:
        yield
    finally:
        for generator, state in states:
            generator.set_state(state)


def _cycle(batches: Iterable, count: int):
    """The first `count` items of `batches`, starting it again whenever it runs out."""
    seen = 0
    while seen < count:
        empty = True
        for batch in batches:
            empty = False
            yield batch[0], batch[1]
            seen += 1
            if seen >= count:
                return
        if empty:
            raise BadInput("The learning-rate finder got no training batches.")


def _fresh_optimizer(
    template: torch.optim.Optimizer | None,
    model: torch.nn.Module,
    probe: torch.nn.Module,
    lr: float,
) -> torch.optim.Optimizer:
    """An optimiser over `probe` like `template` (class, param groups, hyperparameters), with no state."""
    if template is None:
        return torch.optim.AdamW([p for p in probe.parameters() if p.requires_grad], lr=lr)
    # The copy's parameters, matched to the original's by position in parameters().
    twin = {id(p): q for p, q in zip(model.parameters(), probe.parameters())}
    groups = []
    for group in template.param_groups:
        params = [twin[id(p)] for p in group["params"] if id(p) in twin]
        if params:
            groups.append({**{k: v for k, v in group.items() if k != "params"}, "params": params, "lr": lr})
    if not groups:
        raise BadInput("The optimiser given to the learning-rate finder holds none of the model's parameters.")
    accepted = inspect.signature(type(template)).parameters
    defaults = {k: v for k, v in template.defaults.items() if k in accepted}
    return type(template)(groups, **defaults)
