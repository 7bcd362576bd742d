"""The quadratic tab's API: /fit_quadratic, /quadratic_loss and /fit_relus, each a dict ready for JSON.

A function's docstring is what Gradio shows for its endpoint (*Use via API*, the MCP tool's description):
the text before `Returns:` describes it, and `documented` writes its `Args:` from PARAMETERS, where each
parameter shared by the endpoints is described once. Plain values in and out; no Gradio, no work at import.
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Literal

import numpy as np
import torch

from . import relu_fit as rf
from ..errors import BadInput
from ..training.schedules import ONE_CYCLE
from .fit import (
    LOSSES,
    LR_RANGE,
    MOMENTUM_RANGE,
    NOISE_RANGE,
    POINTS_RANGE,
    STEPS_RANGE,
    Standardiser,
    clean_params,
    least_squares,
    loss_name,
    loss_of,
    make_data,
    quadratic,
    run_message,
    scaling_advice,
    sgd,
    sgd_settings,
)

DataSetName = Literal["lesson", "roller_coaster"]  # the choices a client sees in the endpoint's schema
LossName = Literal["mae", "mse"]
ScheduleName = Literal["constant", "cosine", "one-cycle"]

PARAMETERS = {
    "dataset": "\"lesson\" (noisy 3x² + 2x + 1, x in [-2, 2]) or \"roller_coaster\" (chapter 4's speed, t = 0..19).",
    "noise": f"noise level, 1 = the book's ({NOISE_RANGE[0]:g} to {NOISE_RANGE[1]:g}).",
    "points": f"number of points ({POINTS_RANGE[0]} to {POINTS_RANGE[1]}).",
    "seed": "random seed of the noise (42 with noise 1 and 20 points gives the lesson's points).",
    "loss": "\"mae\" (mean absolute error) or \"mse\" (mean squared error).",
    "lr": f"learning rate ({LR_RANGE[0]:.0e} to {LR_RANGE[1]:g}; out-of-range values are clamped and noted)."
          .replace("e-0", "e-"),
    "momentum": f"0 for plain SGD, up to {MOMENTUM_RANGE[1]:g}.",
    "steps": f"number of steps ({STEPS_RANGE[0]} to {STEPS_RANGE[1]}).",
    "schedule": (f"how the learning rate changes over the steps: \"constant\" (lr throughout), \"cosine\" (from lr "
                 f"down to 0 along half a cosine, as torch's CosineAnnealingLR with T_max = steps) or \"one-cycle\" "
                 f"(train.py's: from lr/{ONE_CYCLE.div_factor:g} up to lr over the first {ONE_CYCLE.pct_start:.0%} of "
                 f"the steps, then down to almost 0, as torch's OneCycleLR; momentum, when on, dips to "
                 f"{ONE_CYCLE.base_momentum / ONE_CYCLE.max_momentum:.3g}× its value at the peak)."),
}


def documented(**own: str) -> Callable[[Callable], Callable]:
    """Write the function's `Args:` section before its `Returns:`: `own` descriptions, else PARAMETERS'."""
    def decorate(fn: Callable) -> Callable:
        about, returns = inspect.cleandoc(fn.__doc__).split("\nReturns:\n")
        args = "\n".join(f"    {name}: {own.get(name) or PARAMETERS[name]}"
                         for name in inspect.signature(fn).parameters)
        fn.__doc__ = f"{about.rstrip()}\n\nArgs:\n{args}\nReturns:\n{returns}"
        return fn
    return decorate


def _json_float(value: float) -> float | None:
    """A finite number as is; None for NaN and infinities, which JSON lacks."""
    value = float(value)
    return value if math.isfinite(value) else None


def _json_rows(array: np.ndarray) -> list:
    """An array as nested lists of floats, NaN and infinities as None (a whole 100-step run in ~10 us)."""
    array = np.asarray(array, dtype=np.float64)
    if np.isfinite(array).all():
        return array.tolist()
    return np.where(np.isfinite(array), array, None).tolist()


def _abc(params: np.ndarray, loss: float | None = None) -> dict:
    out = {k: _json_float(v) for k, v in zip("abc", np.asarray(params).tolist())}
    if loss is not None:
        out["loss"] = _json_float(loss)
    return out


@documented(a="coefficient of x².", b="coefficient of x.", c="constant.")
def evaluate_quadratic(dataset: DataSetName = "lesson", noise: float = 1.0, points: int = 20, seed: int = 42,
                       a: float = 1.1, b: float = 1.1, c: float = 1.1, loss: LossName = "mae") -> dict:
    """Score a guess: the loss of y = a x² + b x + c on one of the book's data sets,
    and how far (a, b, c) is from the least-squares best fit. Same data settings as /fit_quadratic.

    Returns:
        {"loss", "least_squares": {a, b, c, loss}, "distance" (Euclidean, in parameter space), "notes" (inputs
        that were clamped)}.
    """
    data = make_data(dataset, noise, points, seed)
    notes = list(data.notes)
    loss = loss_name(loss)
    params = clean_params(a, b, c, notes)
    best = least_squares(data)
    return {
        "loss": _json_float(loss_of(params, data, loss)),
        "least_squares": _abc(best, loss_of(best, data, loss)),
        "distance": _json_float(np.linalg.norm(params - best)),
        "notes": notes,
    }


@documented(a="start value of the coefficient of x².", b="start value of the coefficient of x.",
            c="start value of the constant.",
            standardise="fit on (x - mean) / std and report a, b, c back in the original units.")
def fit_quadratic(dataset: DataSetName = "lesson", noise: float = 1.0, points: int = 20, seed: int = 42,
                  a: float = 1.1, b: float = 1.1, c: float = 1.1, loss: LossName = "mse", lr: float = 0.01,
                  momentum: float = 0.0, steps: int = 100, standardise: bool = False,
                  schedule: ScheduleName = "constant") -> dict:
    """Fit y = a x² + b x + c to one of the book's data sets by SGD with torch autograd,
    starting from (a, b, c), and return every step.

    Returns:
        A dict: "trajectory" ({"params": [[a, b, c], ...] where each step evaluated the loss, "loss": [...],
        "grad": [[dL/da, dL/db, dL/dc], ...], "lr": [...] and "momentum": [...] each step used}; the gradient
        is with respect to the standardised fit's parameters when standardise is on), "final" ({a, b, c, loss}
        after the last step), "least_squares" ({a, b, c, loss}), "distance" (to least squares), "diverged",
        "message", "notes" (clamped inputs, advice), "settings" (the values used), "data" ({"x", "y"}).
    """
    data = make_data(dataset, noise, points, seed)
    settings = sgd_settings(loss, lr, momentum, steps, standardise, schedule)
    notes = list(data.notes) + list(settings.notes)
    start = clean_params(a, b, c, notes)
    if not math.isfinite(loss_of(start, data, settings.loss)):
        raise BadInput("The start parameters are too large: the loss is not a finite number.")
    run = sgd(data, start, settings)
    best = least_squares(data)
    advice = scaling_advice(data, settings.standardise)
    if advice:
        notes.append(advice)
    scaler = Standardiser.of(data.x) if settings.standardise else None
    return {
        "trajectory": {
            "params": _json_rows(run.params),
            "loss": _json_rows(run.losses),
            "grad": _json_rows(run.grads),
            "lr": _json_rows(run.lrs),
            "momentum": _json_rows(run.momentums),
        },
        "final": _abc(run.end, run.end_loss),
        "least_squares": _abc(best, loss_of(best, data, settings.loss)),
        "distance": _json_float(np.linalg.norm(run.end - best)) if np.all(np.isfinite(run.end)) else None,
        "diverged": run.diverged,
        "message": run_message(data, settings, run),
        "notes": notes,
        "settings": {
            "dataset": data.name, "noise": data.noise, "points": data.points, "seed": data.seed,
            "start": _abc(start), "loss": settings.loss, "lr": settings.lr, "momentum": settings.momentum,
            "steps": settings.steps, "standardise": settings.standardise, "schedule": settings.schedule,
            "standardiser": {"mean": scaler.mean, "std": scaler.std} if scaler else None,
        },
        "data": {"x": _json_rows(data.x), "y": _json_rows(data.y)},
    }


@documented(relus=f"how many rectified lines to add up ({rf.RELUS_RANGE[0]} to {rf.RELUS_RANGE[1]}).",
            seed="random seed of the data's noise and of the ReLUs' start (42 gives the lesson's points).")
def fit_relus(dataset: DataSetName = "lesson", relus: int = 8, loss: LossName = "mse", lr: float = 0.01,
              momentum: float = 0.9, steps: int = 2000, seed: int = 42, noise: float = 1.0,
              points: int = 20, schedule: ScheduleName = "constant") -> dict:
    """Fit y = sum of N ReLUs max(0, m x + k) plus a constant to one of the quadratic tab's data sets by SGD.

    The same data, losses, SGD (torch autograd, momentum, schedules) and limits as /fit_quadratic; x is standardised
    for the fit and the ReLUs are reported in x's own units.

    Returns:
        A dict: "final" ({"loss", "fresh_loss", "constant", "relus": [{"slope", "intercept", "kink"}]}),
        "trajectory" ({"loss": [...], "fresh_loss": [...], "lr": [...]} per step), "least_squares" (the best quadratic's
        {a, b, c, loss, fresh_loss}), "chasing_noise" (fresh-point loss rose while training loss fell), "diverged",
        "message", "notes" (clamped inputs), "settings", "data" and "fresh" ({"x", "y"}).
    """
    data = make_data(dataset, noise, points, seed)
    settings = sgd_settings(loss, lr, momentum, steps, schedule=schedule)
    notes = list(data.notes) + list(settings.notes)
    n = rf.relus_count(relus, notes)
    result = rf.fit(data, n, settings, data.seed)
    best = least_squares(data)
    fresh = rf.fresh_points(data)
    quad = {k: _json_float(v) for k, v in zip("abc", best)}
    quad["loss"] = _json_float(loss_of(best, data, settings.loss))
    quad["fresh_loss"] = _json_float(LOSSES[settings.loss](torch.from_numpy(quadratic(best, fresh.x)),
                                                           torch.from_numpy(fresh.y)))
    kinks = np.divide(-result.intercepts, result.slopes, out=np.full(n, np.nan), where=result.slopes != 0)
    return {
        "final": {
            "loss": _json_float(result.losses[-1] if result.diverged else result.end_loss),
            "fresh_loss": _json_float(result.fresh_losses[-1] if result.diverged else result.fresh_end_loss),
            "constant": _json_float(result.constant),
            "relus": [{"slope": _json_float(m), "intercept": _json_float(k), "kink": _json_float(t)}
                      for m, k, t in zip(result.slopes, result.intercepts, kinks)],
        },
        "trajectory": {"loss": _json_rows(result.losses), "fresh_loss": _json_rows(result.fresh_losses),
                       "lr": _json_rows(settings.rates()[0][:len(result.losses)])},
        "least_squares": quad,
        "chasing_noise": result.chasing_from is not None,
        "diverged": result.diverged,
        "message": rf.message(data, n, settings, result).replace("**", ""),
        "notes": notes,
        "settings": {"dataset": data.name, "noise": data.noise, "points": data.points, "seed": data.seed,
                     "relus": n, "loss": settings.loss, "lr": settings.lr, "momentum": settings.momentum,
                     "steps": settings.steps, "schedule": settings.schedule},
        "data": {"x": _json_rows(data.x), "y": _json_rows(data.y)},
        "fresh": {"x": _json_rows(fresh.x), "y": _json_rows(fresh.y)},
    }
