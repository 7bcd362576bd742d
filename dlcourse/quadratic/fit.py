"""Fit a quadratic by hand and by SGD: the whole of chapter 4 on three numbers.

The data sets of the book, the two losses, gradient descent with torch autograd done exactly as the
book does it (`requires_grad_`, `loss.backward()`, step, clear the grad), the closed-form least-squares
answer to compare with, and the checks that turn a bad learning rate or badly scaled inputs into a
lesson rather than a crash. Plain values in and out; no Gradio here, no work at import.

Parameters (a, b, c) always mean y = a x^2 + b x + c in the data's own units. With `standardise`
SGD fits a', b', c' on x' = (x - mean) / std instead and the results are converted back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import BadInput, shown
from ..training.schedules import ONE_CYCLE, SCHEDULES, step_rates

# ---- limits: values outside are clamped (with a note) so nothing can hang or blow up the server ----
POINTS_RANGE = (3, 1000)  # a quadratic has 3 parameters: fewer points do not pin it down
NOISE_RANGE = (0.0, 10.0)  # a multiple of the book's noise
SEED_RANGE = (0, 2**32 - 1)  # numpy's RandomState seeds
PARAM_LIMIT = 1e6  # |a|, |b|, |c| at the start
LR_RANGE = (1e-6, 10.0)
MOMENTUM_RANGE = (0.0, 0.99)  # 1 would never forget a gradient
STEPS_RANGE = (1, 10_000)  # one request's autograd steps: bench/bench_quadratic.py times 1000
# A run diverged when its loss passes this many times the larger of its start loss and the loss of
# the flat line y = mean(y), or stops being a finite number.
DIVERGE_FACTOR = 100.0
# Inputs are badly scaled when the curvature of the MSE along one direction of (a, b, c) is this many
# times that along another (the condition number of the features' Gram matrix).
BAD_SCALING = 1e3
# A fit is "close" to least squares when every parameter is within this share of its value
# (or within this much in absolute terms for a parameter near 0).
CLOSE = 0.02

# the book's mean((preds - targets).abs()) and mean((preds - targets) ** 2), as torch's fused functions: one
# autograd node each instead of three
LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mae": torch.nn.functional.l1_loss,
    "mse": torch.nn.functional.mse_loss,
}
LOSS_NAMES = {"mae": "mean absolute error (MAE)", "mse": "mean squared error (MSE)"}


@dataclass(frozen=True)
class DataSet:
    """One of the book's data sets: how it is made, and the settings that show it off."""

    label: str
    formula: str
    make: Callable[[np.ndarray, float, np.random.RandomState], tuple[np.ndarray, np.ndarray]]
    x_range: tuple[float, float]
    x_name: str
    y_name: str
    start: tuple[float, float, float]
    loss: str
    lr: float
    # slider ranges for a, b and c that hold the answer and room to play around it
    param_ranges: tuple[tuple[float, float], tuple[float, float], tuple[float, float]]


def _lesson(x: np.ndarray, noise: float, rng: np.random.RandomState) -> np.ndarray:
    # The lesson's add_noise(f(x), 0.15, 1.5): multiplicative noise, then additive, drawn in that order,
    # so seed 42 with noise 1 gives the lesson's very points.
    f = 3 * x**2 + 2 * x + 1
    return f * (1 + rng.normal(scale=0.15 * noise, size=x.shape)) + rng.normal(scale=1.5 * noise, size=x.shape)


def _roller_coaster(t: np.ndarray, noise: float, rng: np.random.RandomState) -> np.ndarray:
    # Chapter 4: speed = torch.randn(20)*3 + 0.75*(time-9.5)**2 + 1
    return rng.normal(scale=3.0 * noise, size=t.shape) + 0.75 * (t - 9.5) ** 2 + 1


DATASETS: dict[str, DataSet] = {
    "lesson": DataSet(
        label="Lesson: noisy 3x² + 2x + 1",
        formula="3x² + 2x + 1, times (1 + noise), plus noise; x in [-2, 2]",
        make=_lesson,
        x_range=(-2.0, 2.0),
        x_name="x",
        y_name="y",
        start=(1.1, 1.1, 1.1),
        loss="mae",
        lr=0.01,
        param_ranges=((-10.0, 10.0), (-10.0, 10.0), (-10.0, 10.0)),
    ),
    "roller_coaster": DataSet(
        label="Chapter 4: roller-coaster speed",
        formula="0.75 (t - 9.5)² + 1 + noise; t = 0..19",
        make=_roller_coaster,
        x_range=(0.0, 19.0),
        x_name="time t",
        y_name="speed",
        start=(1.0, 1.0, 1.0),
        loss="mse",
        lr=1e-5,
        param_ranges=((-3.0, 3.0), (-40.0, 40.0), (-100.0, 200.0)),
    ),
}


@dataclass(frozen=True)
class Data:
    """Points to fit, made from a seed; `notes` says which settings were clamped on the way."""

    name: str
    noise: float
    points: int
    seed: int
    x: np.ndarray
    y: np.ndarray
    notes: tuple[str, ...] = ()

    @property
    def key(self) -> tuple:
        """What identifies these points: equal keys, equal data."""
        return (self.name, self.noise, self.points, self.seed)

    @property
    def spec(self) -> DataSet:
        return DATASETS[self.name]


# ---------------------------------------------------------------- input checks


def checked_number(name: str, value: Any, lo: float, hi: float, notes: list[str], *, integer: bool = False) -> float:
    """`value` as a finite number clamped to [lo, hi]; a note for each clamp, BadInput for nonsense."""
    if value is None or isinstance(value, str) and not value.strip():
        raise BadInput(f"{name} is missing: give a number.")
    try:
        if isinstance(value, bool):
            raise TypeError
        number = float(value)
    except (TypeError, ValueError):
        raise BadInput(f"{name} must be a number, not {shown(value)}.") from None
    if not math.isfinite(number):
        raise BadInput(f"{name} must be a finite number, not {number}.")
    if integer:
        number = float(round(number))
    clamped = min(max(number, lo), hi)
    if clamped != number:
        show = (lambda v: f"{int(v):,}") if integer else _fmt
        notes.append(f"{name} {show(number)} is outside [{show(lo)}, {show(hi)}]: using {show(clamped)}.")
    return int(clamped) if integer else clamped


def _flag(name: str, value: Any) -> bool:
    """A yes/no setting: a bool, 0 or 1, or "true"/"false" as a non-Python client may send it."""
    if isinstance(value, bool) or value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise BadInput(f"{name} must be true or false, not {shown(value)}.")


def _fmt(value: float) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def dataset_name(name: Any) -> str:
    """The key of a data set, from its key or its label."""
    for key, spec in DATASETS.items():
        if name == key or name == spec.label:
            return key
    raise BadInput(f"Unknown data set {shown(name)}: choose one of {', '.join(map(repr, DATASETS))}.")


def loss_name(name: Any) -> str:
    """'mae' or 'mse', from any capitalisation."""
    key = str(name).strip().lower() if name is not None else ""
    if key not in LOSSES:
        raise BadInput(f"Unknown loss {shown(name)}: choose 'mae' (mean absolute error) or 'mse' (mean squared error).")
    return key


def schedule_name(name: Any) -> str:
    """'constant', 'cosine' or 'one-cycle', from any capitalisation."""
    key = name.strip().lower() if isinstance(name, str) else None
    if key not in SCHEDULES:
        raise BadInput(f"Unknown schedule {shown(name)}: choose 'constant', 'cosine' (from lr down to 0) "
                       f"or 'one-cycle' (warm up to lr, then down, as train.py trains).")
    return key


def clean_params(a: Any, b: Any, c: Any, notes: list[str]) -> np.ndarray:
    """Start parameters as a float64 array, each clamped to +-PARAM_LIMIT."""
    return np.array([checked_number(n, v, -PARAM_LIMIT, PARAM_LIMIT, notes) for n, v in zip("abc", (a, b, c))])


@dataclass(frozen=True)
class SGDSettings:
    loss: str
    lr: float
    momentum: float
    steps: int
    standardise: bool
    schedule: str = "constant"
    notes: tuple[str, ...] = ()

    def rates(self) -> tuple[np.ndarray, np.ndarray]:
        """The learning rate and momentum of each of the run's steps, as the schedule sets them."""
        return step_rates(self.schedule, self.lr, self.momentum, self.steps)


def sgd_settings(loss: Any = "mse", lr: Any = 0.01, momentum: Any = 0.0, steps: Any = 100,
                 standardise: Any = False, schedule: Any = "constant") -> SGDSettings:
    """Checked and clamped SGD settings; each clamp leaves a note."""
    notes: list[str] = []
    loss = loss_name(loss)
    schedule = schedule_name(schedule)
    lr_value = checked_number("learning rate", lr, -math.inf, math.inf, notes)
    if lr_value <= 0:
        notes.append(f"learning rate {_fmt(lr_value)} cannot move the parameters downhill: "
                     f"using {_fmt(LR_RANGE[0])}.")
        lr_value = LR_RANGE[0]
    lr_value = checked_number("learning rate", lr_value, *LR_RANGE, notes)
    momentum = checked_number("momentum", momentum, *MOMENTUM_RANGE, notes)
    steps = int(checked_number("steps", steps, *STEPS_RANGE, notes, integer=True))
    if schedule == "one-cycle" and not ONE_CYCLE.fits(steps):
        notes.append(f"one-cycle warms up over the first {ONE_CYCLE.pct_start:.0%} of the steps, so it needs at "
                     f"least {math.floor(1 / ONE_CYCLE.pct_start) + 1} steps; a run of {steps} keeps the learning "
                     f"rate constant.")
    return SGDSettings(loss, lr_value, momentum, steps, _flag("standardise", standardise), schedule, tuple(notes))


# ---------------------------------------------------------------- data


def make_data(dataset: Any = "lesson", noise: Any = 1.0, points: Any = 20, seed: Any = 42) -> Data:
    """The data set's points for this noise level (1 = the book's), number of points and seed."""
    notes: list[str] = []
    name = dataset_name(dataset)
    noise = checked_number("noise", noise, *NOISE_RANGE, notes)
    n_raw = checked_number("points", points, -math.inf, math.inf, notes, integer=True)
    if n_raw < POINTS_RANGE[0]:
        raise BadInput(f"A quadratic has three parameters, so it needs at least {POINTS_RANGE[0]} points; "
                       f"got {int(n_raw)}.")
    n = int(checked_number("points", n_raw, *POINTS_RANGE, notes, integer=True))
    seed = int(checked_number("seed", seed, *SEED_RANGE, notes, integer=True))
    spec = DATASETS[name]
    x = np.linspace(*spec.x_range, n)
    y = spec.make(x, noise, np.random.RandomState(seed))
    return Data(name, noise, n, seed, x, y, tuple(notes))


def features(x: np.ndarray) -> np.ndarray:
    """The inputs each parameter multiplies: columns x^2, x, 1."""
    x = np.asarray(x, dtype=np.float64)
    return np.stack([x**2, x, np.ones_like(x)], axis=-1)


def quadratic(params: Sequence[float] | np.ndarray | torch.Tensor, x):
    """a x^2 + b x + c, for numpy arrays or torch tensors (the book's `f`)."""
    a, b, c = params
    return a * x**2 + b * x + c


def loss_of(params: Sequence[float], data: Data, loss: str) -> float:
    """The loss of the curve with these parameters on the data."""
    with torch.no_grad():
        preds = quadratic(torch.as_tensor(np.asarray(params, dtype=np.float64)), torch.from_numpy(data.x))
        return float(LOSSES[loss](preds, torch.from_numpy(data.y)))


def least_squares(data: Data) -> np.ndarray:
    """The closed-form best (a, b, c) under MSE: the least-squares solution of [x^2 x 1] p = y."""
    solution, *_ = np.linalg.lstsq(features(data.x), data.y, rcond=None)
    return solution


def baseline_loss(data: Data, loss: str) -> float:
    """The loss of the flat line y = mean(y): a yardstick that knows the data's scale."""
    return loss_of((0.0, 0.0, float(np.mean(data.y))), data, loss)


# ---------------------------------------------------------------- standardising x


@dataclass(frozen=True)
class Standardiser:
    """x' = (x - mean) / std, and the linear maps between (a, b, c) and (a', b', c').

    a x^2 + b x + c with x = mean + std x' expands to a' x'^2 + b' x' + c' where
    a' = a std^2, b' = std (b + 2 a mean), c' = a mean^2 + b mean + c.
    """

    mean: float
    std: float

    @classmethod
    def of(cls, x: np.ndarray) -> "Standardiser":
        std = float(np.std(x))
        return cls(float(np.mean(x)), std if std > 0 else 1.0)

    def apply(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / self.std

    def to_fit(self, params: np.ndarray) -> np.ndarray:
        """(a, b, c) -> (a', b', c') (works row-wise on an (n, 3) array)."""
        m, s = self.mean, self.std
        matrix = np.array([[s * s, 0, 0], [2 * m * s, s, 0], [m * m, m, 1]])
        return np.asarray(params, dtype=np.float64) @ matrix.T

    def to_original(self, params: np.ndarray) -> np.ndarray:
        """(a', b', c') -> (a, b, c) (row-wise on an (n, 3) array)."""
        m, s = self.mean, self.std
        matrix = np.array([[1 / (s * s), 0, 0], [-2 * m / (s * s), 1 / s, 0], [m * m / (s * s), -m / s, 1]])
        return np.asarray(params, dtype=np.float64) @ matrix.T


def fit_inputs(data: Data, standardise: bool) -> tuple[np.ndarray, Standardiser | None]:
    """The x that SGD sees, and the standardiser that made it (None when x is used as is)."""
    if not standardise:
        return data.x, None
    scaler = Standardiser.of(data.x)
    return scaler.apply(data.x), scaler


# ---------------------------------------------------------------- how hard the problem is for SGD


@dataclass(frozen=True)
class Scaling:
    """The curvature of the MSE on these inputs: how far apart its steepest and flattest directions are.

    The MSE's Hessian is H = 2/n F^T F (F: the features x^2, x, 1). Plain gradient descent is stable
    only for lr < 2 / largest eigenvalue (2 (1 + momentum) / largest with momentum), and along the
    flattest direction it then moves a share of only about smallest / largest of the way per step.
    """

    condition: float
    largest: float
    smallest: float
    biggest_feature: float

    @classmethod
    def of(cls, x: np.ndarray) -> "Scaling":
        feats = features(x)
        eig = np.linalg.eigvalsh(2 * feats.T @ feats / len(x))
        smallest = max(float(eig[0]), 1e-300)
        return cls(float(eig[-1] / smallest), float(eig[-1]), smallest, float(np.abs(feats).max()))

    def stable_lr(self, momentum: float = 0.0) -> float:
        """The largest learning rate at which SGD on the MSE does not blow up."""
        return 2 * (1 + momentum) / self.largest

    @property
    def bad(self) -> bool:
        return self.condition > BAD_SCALING


def scaling_advice(data: Data, standardise: bool) -> str | None:
    """Why SGD crawls on badly scaled inputs, and what to do, or None when scaling is fine."""
    if standardise:
        return None
    scaling = Scaling.of(data.x)
    if not scaling.bad:
        return None
    x_name = data.spec.x_name.split()[-1]
    # at half the stable rate the error along the flattest direction shrinks by about 1/condition a step
    steps_needed = float(f"{scaling.condition * math.log(100):.1g}")
    return (
        f"Badly scaled inputs: {x_name}² reaches {scaling.biggest_feature:.4g} here while c multiplies 1, so "
        f"the loss is a long, narrow valley whose steepest direction is about {scaling.condition:,.0f}× steeper "
        f"than its flattest. A learning rate small enough to keep a from blowing up (below about "
        f"{scaling.stable_lr():.2g} for MSE without momentum) moves c only a little each step: plain SGD would "
        f"need roughly {steps_needed:,.0f} steps to get close. Tick **standardise x** to fit on "
        f"({x_name} − mean) / std instead, where the three inputs are of similar size: then a few dozen "
        f"steps are enough."
    )


# ---------------------------------------------------------------- SGD


@dataclass
class SGDRun:
    """What a run of SGD did, step by step.

    Row i holds the parameters (original units) at which step i evaluated the loss, that loss, its
    gradient (with respect to the parameters SGD updates: a', b', c' when standardised; NaN on the row
    where the run stopped as diverged), and the learning rate and momentum the schedule gave step i.
    `end` is where the parameters are after the last update; `velocity` carries momentum into a
    following run.
    """

    params: np.ndarray  # (n, 3)
    losses: np.ndarray  # (n,)
    grads: np.ndarray  # (n, 3)
    lrs: np.ndarray  # (n,)
    momentums: np.ndarray  # (n,)
    end: np.ndarray  # (3,)
    end_loss: float
    velocity: np.ndarray  # (3,), in fit units
    standardised: bool
    diverged: bool = False
    reason: str | None = None

    @property
    def steps(self) -> int:
        return len(self.losses)


def divergence_bound(data: Data, loss: str, start_loss: float) -> float:
    """The loss past which a run counts as diverged."""
    return DIVERGE_FACTOR * max(start_loss, baseline_loss(data, loss), 1e-12)


def sgd(data: Data, start: Sequence[float], settings: SGDSettings, *, velocity: Sequence[float] | None = None,
        loss_bound: float | None = None, first_step: int = 0, part: tuple[int, int] | None = None) -> SGDRun:
    """Run `settings.steps` steps of (full-batch) SGD from `start`, the book's way, with torch autograd.

    Each step, as chapter 4 writes it: loss = loss_fn(f(x, params), y); loss.backward(); velocity =
    momentum velocity + grad; params.data -= lr velocity; params.grad = None, with step i's lr and
    momentum from the settings' schedule (the same update as torch.optim.SGD under that scheduler).
    Stops early, as diverged, when the loss stops being a finite number or passes `loss_bound` (by default
    DIVERGE_FACTOR times the start or flat-line loss).
    `part` = (first, stop) runs only those steps of the run's schedule (a run shown a few steps at a time);
    `first_step` numbers the steps in messages (a run that continues an earlier one).
    """
    x_fit, scaler = fit_inputs(data, settings.standardise)
    # f(x) = a x^2 + b x + c as [x^2, x, 1] @ (a, b, c): with a fused loss each step's graph is two autograd
    # nodes instead of eight, which halves a step; what is left is mostly autograd's own cost per backward()
    inputs, targets = torch.from_numpy(features(x_fit)), torch.from_numpy(data.y)
    loss_fn = LOSSES[settings.loss]
    start = np.asarray(start, dtype=np.float64)
    params = torch.tensor(scaler.to_fit(start) if scaler else start, dtype=torch.float64).requires_grad_()
    v = torch.zeros(3, dtype=torch.float64) if velocity is None else torch.tensor(velocity, dtype=torch.float64)
    first, stop = part or (0, settings.steps)
    lrs, momentums = (rates[first:stop] for rates in settings.rates())
    lr_list, momentum_list = lrs.tolist(), momentums.tolist()
    steps = stop - first

    seen_p = np.empty((steps, 3))
    seen_l = np.empty(steps)
    seen_grads: list[torch.Tensor] = []
    params_now = params.detach().numpy()  # shares params' memory: recording a step is a numpy copy
    # The book's `params.data -= ...` and `params.grad = None` (each backward() then leaves a new tensor, so
    # the gradients are recorded as they are), and no velocity arithmetic without momentum: 100 steps cost
    # 14-18% less than under torch.no_grad() with zero_(); most of what is left is backward()'s own ~15 us.
    bound = loss_bound
    diverged_at = None
    for i in range(steps):
        loss = loss_fn(inputs @ params, targets)
        value = loss.item()
        seen_p[i] = params_now
        seen_l[i] = value
        if bound is None:
            bound = divergence_bound(data, settings.loss, value) if math.isfinite(value) else math.inf
        if not math.isfinite(value) or value > bound:
            diverged_at = i
            break
        loss.backward()
        grad = params.grad
        seen_grads.append(grad)
        momentum = momentum_list[i]
        params.data.sub_(v.mul_(momentum).add_(grad) if momentum else grad, alpha=lr_list[i])
        params.grad = None
    if not settings.momentum and seen_grads:
        v = seen_grads[-1].clone()  # the velocity of plain SGD: its last step (a later run may add momentum)

    n = steps if diverged_at is None else diverged_at + 1
    fit_rows = seen_p[:n]
    rows = scaler.to_original(fit_rows) if scaler else fit_rows
    losses = seen_l[:n]
    grads = np.full((n, 3), math.nan)  # NaN on the row where the run stopped as diverged: no step taken there
    if seen_grads:
        grads[:len(seen_grads)] = torch.stack(seen_grads).numpy()
    if diverged_at is None:
        end_fit = params.detach().numpy()
        end = scaler.to_original(end_fit) if scaler else end_fit.copy()
        end_loss = loss_of(end, data, settings.loss)
        if not math.isfinite(end_loss) or end_loss > bound:  # the very last update blew up
            diverged_at = n
    else:
        end, end_loss = rows[-1], float(losses[-1])
    run = SGDRun(rows, losses, grads, lrs[:n], momentums[:n], end, end_loss, v.numpy().copy(), settings.standardise)
    if diverged_at is not None:
        run.diverged = True
        run.reason = divergence_reason(data, settings, run, diverged_at, first_step)
    return run


def divergence_reason(data: Data, settings: SGDSettings, run: SGDRun, step: int, first_step: int = 0) -> str:
    """Why the run blew up, in words, and what to change."""
    first = float(run.losses[0])
    last = run.end_loss if step >= run.steps else float(run.losses[step])
    if math.isfinite(last):
        what = f"the loss grew from {first:.4g} to {last:.4g}"
    else:
        what = f"the loss went from {first:.4g} to {last} (too big for a number)"
    x_fit, _ = fit_inputs(data, settings.standardise)
    scaling = Scaling.of(x_fit)
    text = (
        f"Diverged at step {first_step + step}: {what}. The learning rate {settings.lr:g} is too high for this "
        f"data: each step jumps past the bottom of the loss valley and lands higher up the other side, where "
        f"the slope is steeper, so the next jump is bigger still."
    )
    if settings.loss == "mse":
        stable = scaling.stable_lr(settings.momentum)
        text += f" For MSE on these inputs, SGD stays stable only below lr ≈ {stable:.2g}."
    text += " Try a learning rate about 10× smaller"
    if scaling.bad and not settings.standardise:
        text += ", or tick standardise x"
    return text + "."


def close_to(params: np.ndarray, target: np.ndarray, tolerance: float = CLOSE) -> bool:
    """Every parameter within `tolerance` of the target's value (relative, absolute for values near 0)."""
    return bool(np.all(np.abs(params - target) <= tolerance * np.maximum(np.abs(target), 1.0)))


def summary(data: Data, settings: SGDSettings, *, steps: int, start_loss: float, end: np.ndarray,
            end_loss: float) -> str:
    """One paragraph on how a run that did not diverge went: how close it got, and what to change."""
    best = least_squares(data)
    end = np.asarray(end, dtype=np.float64)
    distance = float(np.linalg.norm(end - best))
    text = (f"{steps} step{'s' if steps != 1 else ''}: {settings.loss.upper()} "
            f"{start_loss:.4g} → {end_loss:.4g}; distance to least squares {distance:.3g}.")
    if close_to(end, best):
        text += " Every parameter is within 2% of the least-squares answer."
    elif end_loss > start_loss:
        text += (f" The loss went up, not down: the learning rate {settings.lr:g} is too high, so each step "
                 f"overshoots the bottom.")
        if settings.loss == "mae":
            text += (" With MAE the slope has the same size however close you are, so the steps never shrink "
                     "and SGD bounces around instead of settling. Try a smaller learning rate.")
    elif settings.loss == "mae" and close_to(end, best, 0.15):
        text += " (MAE's best fit differs a little from least squares, which is the best for MSE.)"
    advice = scaling_advice(data, settings.standardise)
    if advice and not close_to(end, best, 0.1):
        text += " " + advice
    return text


def run_message(data: Data, settings: SGDSettings, run: SGDRun) -> str:
    """The summary of a run, or why it diverged."""
    if run.diverged:
        return run.reason or "Diverged."
    return summary(data, settings, steps=run.steps, start_loss=float(run.losses[0]), end=run.end,
                   end_loss=run.end_loss)


# ---------------------------------------------------------------- the loss over two parameters

PAIRS = {"a and b": (0, 1), "a and c": (0, 2), "b and c": (1, 2)}
SURFACE_SIZE = 90  # grid points along each axis of a loss surface


@dataclass(frozen=True)
class LossSurface:
    """The loss on a grid over two of a, b, c (the third held at `fixed`); rows follow `ys`, columns `xs`."""

    pair: tuple[int, int]
    xs: np.ndarray
    ys: np.ndarray
    losses: np.ndarray
    fixed: float

    @property
    def names(self) -> tuple[str, str, str]:
        """The two parameters on the axes, then the one held fixed."""
        i, j = self.pair
        return "abc"[i], "abc"[j], "abc"[3 - i - j]


def pair_indices(pair: Any) -> tuple[int, int]:
    """(0, 1) for "a and b", and so on."""
    if pair not in PAIRS:
        raise BadInput(f"Unknown pair {shown(pair)}: choose one of {', '.join(map(repr, PAIRS))}.")
    return PAIRS[pair]


def loss_surface(data: Data, loss: str, params: Sequence[float], pair: tuple[int, int],
                 path: Sequence[Sequence[float]] = (), size: int = SURFACE_SIZE) -> LossSurface:
    """The loss over the two parameters of `pair` around the least-squares answer, `params` and the
    path (a path that ran off to huge values is not followed all the way); the third stays at its value
    in `params`."""
    i, j = pair
    params = np.asarray(params, dtype=np.float64)
    best = least_squares(data)
    anchors = np.array([best[[i, j]], params[[i, j]]])
    reach = 20 * max(float(np.abs(anchors[1] - anchors[0]).max()), 1.0)
    points = np.asarray(path, dtype=np.float64).reshape(-1, 3)[:, [i, j]] if len(path) else np.empty((0, 2))
    points = points[np.all(np.isfinite(points), axis=1) & np.all(np.abs(points - best[[i, j]]) <= reach, axis=1)]
    every = np.vstack([anchors[np.all(np.isfinite(anchors), axis=1)], points])
    lo, hi = every.min(0), every.max(0)
    half = np.maximum((hi - lo) * 0.6, 0.5)
    mid = (lo + hi) / 2
    xs = np.linspace(mid[0] - half[0], mid[0] + half[0], size)
    ys = np.linspace(mid[1] - half[1], mid[1] + half[1], size)
    grid = np.tile(params if np.all(np.isfinite(params)) else best, (size * size, 1))
    gx, gy = np.meshgrid(xs, ys)
    grid[:, i], grid[:, j] = gx.ravel(), gy.ravel()
    errors = features(data.x) @ grid.T - data.y[:, None]
    values = np.abs(errors).mean(0) if loss == "mae" else (errors**2).mean(0)
    k = 3 - i - j
    return LossSurface((i, j), xs, ys, values.reshape(size, size), float(grid[0, k]))
