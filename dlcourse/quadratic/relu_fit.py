"""Fit the quadratic tab's data with a sum of ReLUs: y = sum_i max(0, m_i x + k_i) + c.

The lesson's notebook goes on from the quadratic to rectified lines: each is flat, then straight, and
enough of them added up bend into any shape. Fitted by the same SGD as the quadratic (torch autograd,
momentum, the same settings and checks), on x standardised so that every kink starts somewhere in the
data. Points drawn afresh from the same curve show when more ReLUs only chase the noise.

Plain values in and out; no Gradio, no work at import.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .fit import (
    LOSSES,
    Data,
    SGDSettings,
    Standardiser,
    checked_number,
    divergence_bound,
    least_squares,
    loss_of,
    quadratic,
)

RELUS_RANGE = (1, 32)
FRESH_POINTS = 200  # new points from the same curve, never fitted, to see the noise being chased
# More ReLUs "chase the noise" when the loss on fresh points ends this share above its lowest, reached
# at a step after which the training loss still fell.
CHASE = 0.05


def relu_parts(slopes, intercepts, x):
    """Each ReLU's part, max(0, m_i x + k_i): shape (relus, len(x)); numpy arrays or torch tensors."""
    lines = slopes[:, None] * x[None, :] + intercepts[:, None]
    return lines.clamp(min=0) if isinstance(lines, torch.Tensor) else np.maximum(lines, 0)


def relu_sum(slopes, intercepts, constant, x):
    """sum_i max(0, m_i x + k_i) + c."""
    return relu_parts(slopes, intercepts, x).sum(0) + constant


@dataclass(frozen=True)
class Fresh:
    """Points from the same curve and noise as the data, at new places: a check, never fitted."""

    x: np.ndarray
    y: np.ndarray


def fresh_points(data: Data) -> Fresh:
    """FRESH_POINTS points over the data's x range, with the next seed's noise."""
    rng = np.random.RandomState((data.seed + 1) % 2**32)
    x = np.sort(rng.uniform(*data.spec.x_range, FRESH_POINTS))
    return Fresh(x, data.spec.make(x, data.noise, rng))


@dataclass
class ReluFit:
    """Where SGD left the ReLUs (in x's own units) and the losses along the way."""

    slopes: np.ndarray
    intercepts: np.ndarray
    constant: float
    losses: np.ndarray  # training loss at each step
    fresh_losses: np.ndarray  # loss on the fresh points at each step
    end_loss: float
    fresh_end_loss: float
    diverged: bool = False
    chasing_from: int | None = None  # step after which fresh loss rose while training loss fell

    def parts(self, x: np.ndarray) -> np.ndarray:
        return relu_parts(self.slopes, self.intercepts, x)

    def predict(self, x: np.ndarray) -> np.ndarray:
        return relu_sum(self.slopes, self.intercepts, self.constant, x)


def relus_count(relus: Any, notes: list[str]) -> int:
    return int(checked_number("ReLUs", relus, *RELUS_RANGE, notes, integer=True))


def start_params(relus: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Slopes ~ N(0, 1) and kinks spread at random over the standardised x range ([-1.7, 1.7]); c = 0."""
    generator = torch.Generator().manual_seed(seed)
    slopes = torch.randn(relus, generator=generator, dtype=torch.float64)
    kinks = (torch.rand(relus, generator=generator, dtype=torch.float64) * 2 - 1) * math.sqrt(3)
    return slopes, -slopes * kinks, torch.zeros((), dtype=torch.float64)


def fit(data: Data, relus: int, settings: SGDSettings, seed: int) -> ReluFit:
    """`settings.steps` steps of full-batch SGD with momentum on the ReLUs, the quadratic's way (and schedule)."""
    scaler = Standardiser.of(data.x)
    xt, yt = torch.from_numpy(scaler.apply(data.x)), torch.from_numpy(data.y)
    fresh = fresh_points(data)
    fresh_x, fresh_y = torch.from_numpy(scaler.apply(fresh.x)), torch.from_numpy(fresh.y)
    loss_fn = LOSSES[settings.loss]
    params = [p.requires_grad_() for p in start_params(relus, seed)]
    velocity = [torch.zeros_like(p) for p in params]
    lrs, momentums = (rates.tolist() for rates in settings.rates())
    losses = np.full(settings.steps, np.nan)
    fresh_losses = np.full(settings.steps, np.nan)
    bound = math.inf
    diverged = False
    for i in range(settings.steps):
        loss = loss_fn(relu_sum(*params, xt), yt)
        losses[i] = value = loss.item()
        with torch.no_grad():
            fresh_losses[i] = loss_fn(relu_sum(*params, fresh_x), fresh_y).item()
        if i == 0 and math.isfinite(value):
            bound = divergence_bound(data, settings.loss, value)
        if not math.isfinite(value) or value > bound:
            diverged = True
            losses, fresh_losses = losses[:i + 1], fresh_losses[:i + 1]
            break
        loss.backward()
        with torch.no_grad():
            for p, v in zip(params, velocity):
                v.mul_(momentums[i]).add_(p.grad)
                p -= lrs[i] * v
                p.grad = None
    slopes, intercepts, constant = (p.detach().numpy() for p in params)
    # back to x's units: m' (x - mean) / std + k' = (m' / std) x + (k' - m' mean / std)
    slopes, intercepts = slopes / scaler.std, intercepts - slopes * scaler.mean / scaler.std
    result = ReluFit(slopes, intercepts, float(constant), losses, fresh_losses, math.nan, math.nan, diverged)
    if not diverged:
        result.end_loss = loss_of_fit(result, data.x, data.y, settings.loss)
        result.fresh_end_loss = loss_of_fit(result, fresh.x, fresh.y, settings.loss)
        diverged = not math.isfinite(result.end_loss) or result.end_loss > bound
        result.diverged = diverged
    if not diverged:
        result.chasing_from = chasing_from(losses, fresh_losses, result.fresh_end_loss)
    return result


def loss_of_fit(fit_: ReluFit, x: np.ndarray, y: np.ndarray, loss: str) -> float:
    with torch.no_grad():
        return float(LOSSES[loss](torch.from_numpy(fit_.predict(x)), torch.from_numpy(y)))


def chasing_from(losses: np.ndarray, fresh_losses: np.ndarray, fresh_end: float) -> int | None:
    """The step where the fresh loss was lowest, when it has since risen by more than CHASE while the
    training loss kept falling; else None."""
    best = int(np.nanargmin(fresh_losses))
    if fresh_end > (1 + CHASE) * fresh_losses[best] and losses[-1] < losses[best]:
        return best
    return None


def message(data: Data, relus: int, settings: SGDSettings, result: ReluFit) -> str:
    """What the fit did, against the least-squares quadratic, and whether it chased the noise."""
    name = settings.loss.upper()
    if result.diverged:
        return (f"Diverged: the {name} grew from {result.losses[0]:.4g} to {result.losses[-1]:.4g}. The learning "
                f"rate {settings.lr:g} is too high for these ReLUs: try one about 10× smaller.")
    best = least_squares(data)
    fresh = fresh_points(data)
    quad_fresh = float(LOSSES[settings.loss](torch.from_numpy(quadratic(best, fresh.x)), torch.from_numpy(fresh.y)))
    text = (f"{relus} ReLU{'s' if relus != 1 else ''}, {settings.steps} steps: {name} {result.losses[0]:.4g} → "
            f"{result.end_loss:.4g} (the least-squares quadratic: {loss_of(best, data, settings.loss):.4g}). "
            f"On {FRESH_POINTS} fresh points from the same curve: {result.fresh_end_loss:.4g} "
            f"(quadratic: {quad_fresh:.4g}).")
    if result.chasing_from is not None:
        i = result.chasing_from
        text += (f" **Chasing the noise:** after step {i} the loss on fresh points rose from "
                 f"{result.fresh_losses[i]:.4g} to {result.fresh_end_loss:.4g} while the training loss kept "
                 f"falling ({result.losses[i]:.4g} → {result.end_loss:.4g}): the extra bends fit this sample's "
                 f"noise, not the curve. Fewer ReLUs, or fewer steps, would generalise better.")
    return text
