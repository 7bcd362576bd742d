"""The quadratic tab's state between clicks, and the words it shows: plain values, no Gradio.

A session is one data set and loss, the current parameters, momentum carried between clicks, the
loss history and a trace of the latest steps. Moving a slider or pressing Reset starts a new one;
Step and Run advance it; changing the data or the loss starts over from the sliders.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .fit import (
    CLOSE,
    LOSS_NAMES,
    Data,
    SGDRun,
    SGDSettings,
    close_to,
    divergence_bound,
    least_squares,
    loss_of,
    scaling_advice,
    sgd,
)

TRACE_ROWS = 200  # newest steps kept for the trace table
HISTORY = 50_000  # losses kept for the loss curve


@dataclass
class Session:
    key: tuple  # the data's key
    loss: str
    params: np.ndarray  # current (a, b, c), original units
    bound: float  # loss past which a run counts as diverged
    velocity: np.ndarray | None = None  # momentum, in the units of the last run's fit
    velocity_standardised: bool = False
    losses: list[float] = field(default_factory=list)
    lrs: list[float] = field(default_factory=list)  # each step's learning rate, beside `losses`
    trace: list[list[float]] = field(default_factory=list)  # [step, a, b, c, loss, ga, gb, gc], oldest first
    path: list[list[float]] = field(default_factory=list)  # (a, b, c) where each step measured the loss; NaNs after a divergence
    steps: int = 0
    diverged_at: list[int] = field(default_factory=list)
    standardised_grads: bool = False  # the trace's gradients are for a', b', c'
    message: str = ""


def new_session(data: Data, params: Sequence[float], loss: str) -> Session:
    """A fresh start at `params`: no history, no momentum."""
    params = np.asarray(params, dtype=np.float64)
    start_loss = loss_of(params, data, loss)
    bound = divergence_bound(data, loss, start_loss) if math.isfinite(start_loss) else math.inf
    return Session(data.key, loss, params, bound)


def session_for(session: Session | None, data: Data, loss: str, sliders: Sequence[float]) -> Session:
    """`session` if it is about this data and loss, else a new one at the sliders' values."""
    if isinstance(session, Session) and session.key == data.key and session.loss == loss:
        return session
    return new_session(data, sliders, loss)


def advance(session: Session, data: Data, settings: SGDSettings, steps: int | None = None, done: int = 0,
            revert_to: Sequence[float] | None = None) -> tuple[Session, SGDRun]:
    """Run `steps` SGD steps of the run `settings` describe (all of them by default; `done` of them have
    already been run, so its schedule goes on from there) from the session's parameters; a new Session
    and the run.

    On divergence the parameters go back to `revert_to` (where the user's run started; by default
    where these steps started) and momentum is dropped, so the state stays usable.
    """
    stop = settings.steps if steps is None else done + int(steps)
    velocity = session.velocity if session.velocity_standardised == settings.standardise else None
    run = sgd(data, session.params, settings, velocity=velocity, loss_bound=session.bound,
              first_step=session.steps, part=(done, stop))
    first = session.steps
    rows = np.column_stack([np.arange(first, first + run.steps), run.params, run.losses, run.grads])
    new = dataclasses.replace(
        session,
        losses=(session.losses + run.losses.tolist())[-HISTORY:],
        lrs=(session.lrs + run.lrs.tolist())[-HISTORY:],
        trace=(session.trace + rows.tolist())[-TRACE_ROWS:],
        path=(session.path + run.params.tolist() + ([[math.nan] * 3] if run.diverged else []))[-HISTORY:],
        steps=first + run.steps,
        standardised_grads=settings.standardise,
    )
    if run.diverged:
        new.params = np.asarray(session.params if revert_to is None else revert_to, dtype=np.float64)
        new.velocity = None
        new.diverged_at = session.diverged_at + [first + run.steps - 1]
        new.message = (run.reason or "Diverged.") + " The parameters are back where this run started."
    else:
        new.params = run.end
        new.velocity = run.velocity
        new.velocity_standardised = settings.standardise
    return new, run


# ---------------------------------------------------------------- words and numbers for the tab


@dataclass(frozen=True)
class Readout:
    loss: float
    best: np.ndarray
    best_loss: float
    distance: float


def readout(data: Data, params: Sequence[float], loss: str) -> Readout:
    """The loss at `params`, the least-squares answer with its loss, and the distance between them."""
    params = np.asarray(params, dtype=np.float64)
    best = least_squares(data)
    return Readout(loss_of(params, data, loss), best, loss_of(best, data, loss), float(np.linalg.norm(params - best)))


def loss_line(params: Sequence[float], r: Readout, loss: str) -> str:
    """One line of Markdown: the loss now, the best, the distance."""
    a, b, c = r.best
    text = (f"**{LOSS_NAMES[loss]}: {r.loss:.4g}** · least squares (a = {a:.3g}, b = {b:.3g}, c = {c:.3g}) "
            f"scores {r.best_loss:.4g} · distance to it {r.distance:.3g}")
    if close_to(np.asarray(params, dtype=np.float64), r.best, CLOSE):
        text += " · within 2%!"
    return text


def status_text(data: Data, standardise: bool, notes: Sequence[str] = (), message: str = "") -> str:
    """Notes on clamped inputs, the latest run's message, and the scaling advice when it applies."""
    parts = [f"*Note:* {note}" for note in notes]
    if message:
        parts.append(message)
    advice = scaling_advice(data, standardise)
    if advice and advice not in message:
        parts.append(advice)
    return "\n\n".join(parts)


TRACE_COLUMNS = ["step", "a", "b", "c", "loss", "∂L/∂a", "∂L/∂b", "∂L/∂c"]


def trace_table(session: Session) -> tuple[list[str], list[list[float | None]]]:
    """Headers and rows (newest first, 4 significant digits) of the step trace."""
    headers = list(TRACE_COLUMNS)
    if session.standardised_grads:
        headers[5:] = ["∂L/∂a′ (std x)", "∂L/∂b′ (std x)", "∂L/∂c′ (std x)"]
    rows = [[int(row[0])] + [float(f"{v:.4g}") if math.isfinite(v) else None for v in row[1:]]
            for row in reversed(session.trace)]
    return headers, rows
