"""Pictures for the quadratic tab: the data with the current and the least-squares curves, the loss curve and
the learning rate per step under it.

Speed matters here: the curve is redrawn on every slider move, and a full matplotlib draw is slow on a
small CPU, so the curve plot is blitted: for a given data set the axes, points and dashed least-squares
curve are drawn once and kept as pixels; each frame restores them and draws only the current curve and
its residuals, then encodes a fast PNG (bench/bench_quadratic.py times both ways; docs/serving-speed.md has
the figures).
Numbers are left to the page's text: drawing glyphs costs as much as the rest of a frame.
Figures are matplotlib's object API on the Agg canvas (no pyplot); a small pool of them serves
concurrent requests, each used by one thread at a time.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import io
import math
import threading
from typing import Callable, Generic, Iterator, Sequence, TypeVar

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from PIL import Image

from .fit import Data, LossSurface, quadratic

CURVE_SIZE = (6.4, 3.8)  # inches at DPI: 640 x 380 px
LOSS_SIZE = (6.4, 2.2)
LR_SIZE = (6.4, 1.4)
DPI = 100
CURVE_SAMPLES = 200
POOL_SIZE = 4  # figures kept per kind; more concurrent requests wait for one
COLOURS = {"data": "#1f77b4", "current": "#d62728", "best": "#2ca02c", "residual": "#d62728", "loss": "#9467bd",
           "lr": "#ff7f0e"}

T = TypeVar("T")


class _Pool(Generic[T]):
    """At most `size` reusable objects, each lent to one thread at a time; prefers one already set up for `key`."""

    def __init__(self, factory: Callable[[], T], size: int):
        self._factory, self._size = factory, size
        self._free: list[T] = []
        self._count = 0
        self._ready = threading.Condition()

    @contextlib.contextmanager
    def take(self, key: object = None) -> Iterator[T]:
        with self._ready:
            while not self._free and self._count >= self._size:
                self._ready.wait()
            if self._free:
                item = next((i for i in self._free if getattr(i, "key", None) == key), self._free[-1])
                self._free.remove(item)
            else:
                self._count += 1
                item = None
        if item is None:
            try:
                item = self._factory()
            except BaseException:
                with self._ready:
                    self._count -= 1
                    self._ready.notify()
                raise
        try:
            yield item
        finally:
            with self._ready:
                self._free.append(item)
                self._ready.notify()


def _encode_png(canvas: FigureCanvasAgg) -> bytes:
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
    out = io.BytesIO()
    image.save(out, format="png", compress_level=1)
    return out.getvalue()


def data_url(png: bytes) -> str:
    """PNG bytes as a data: URL, what an <img> (and gr.Plot's matplotlib view) shows."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


class CurvePlot:
    """One figure for the data and curves, set up for one data set at a time (`key`)."""

    def __init__(self) -> None:
        self.fig = Figure(figsize=CURVE_SIZE, dpi=DPI)
        self.fig.subplots_adjust(left=0.1, right=0.985, top=0.975, bottom=0.125)  # fixed: same layout every time
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot()
        self.key: object = None
        self.background = None

    def prepare(self, data: Data, best: np.ndarray, key: object) -> None:
        """Draw what stays put for this data set (axes, points, least-squares curve) and keep its pixels."""
        ax = self.ax
        ax.clear()
        spec = data.spec
        lo, hi = spec.x_range
        pad = 0.03 * (hi - lo)
        self.xs = np.linspace(lo - pad, hi + pad, CURVE_SAMPLES)
        best_ys = quadratic(best, self.xs)
        y_lo = min(float(np.min(data.y)), float(np.min(best_ys)))
        y_hi = max(float(np.max(data.y)), float(np.max(best_ys)))
        margin = 0.12 * max(y_hi - y_lo, 1e-6)
        self.ylim = (y_lo - margin, y_hi + 1.5 * margin)  # room at the top for the legend
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_ylim(*self.ylim)
        ax.set_xlabel(spec.x_name)
        ax.set_ylabel(spec.y_name)
        ax.grid(alpha=0.3)
        ax.plot(self.xs, best_ys, "--", color=COLOURS["best"], lw=1.8, label="least squares (best MSE)")
        ax.scatter(data.x, data.y, s=18, color=COLOURS["data"], zorder=3, label="data")
        self.current = Line2D([], [], color=COLOURS["current"], lw=2.2, animated=True, label="your curve")
        ax.add_line(self.current)
        self.residuals = LineCollection([], colors=COLOURS["residual"], linewidths=0.8, alpha=0.45, animated=True)
        ax.add_collection(self.residuals, autolim=False)
        ax.legend(loc="upper center", fontsize=8.5, framealpha=0.9, ncols=3)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)
        self.data_x, self.data_y = data.x, data.y
        self.key = key

    def frame(self, params: Sequence[float]) -> bytes:
        """PNG of the prepared plot with the curve for `params` and its residuals."""
        self.canvas.restore_region(self.background)
        span = self.ylim[1] - self.ylim[0]
        clip = (self.ylim[0] - 50 * span, self.ylim[1] + 50 * span)  # far off-screen values stay drawable
        params = np.asarray(params, dtype=np.float64)
        if np.all(np.isfinite(params)):
            self.current.set_data(self.xs, np.clip(quadratic(params, self.xs), *clip))
            fitted = np.clip(quadratic(params, self.data_x), *clip)
            self.residuals.set_segments(np.stack([np.stack([self.data_x, self.data_y], 1),
                                                  np.stack([self.data_x, fitted], 1)], 1))
        else:
            self.current.set_data([], [])
            self.residuals.set_segments([])
        for artist in (self.residuals, self.current):
            self.ax.draw_artist(artist)
        return _encode_png(self.canvas)


_curve_plots: _Pool[CurvePlot] = _Pool(CurvePlot, POOL_SIZE)


def curve_png(data: Data, best: np.ndarray, params: Sequence[float]) -> bytes:
    """The data, the least-squares curve (dashed) and the curve for `params`, as PNG bytes."""
    key = (data.key, tuple(np.asarray(best).round(12)))
    with _curve_plots.take(key) as plot:
        if plot.key != key:
            plot.prepare(data, best, key)
        return plot.frame(params)


class LossPlot:
    """The loss per step. While a run goes on only its new steps are drawn over kept pixels; the axes are
    drawn again only when the loss leaves them (a divergence) or the history is not the one drawn."""

    def __init__(self) -> None:
        self.fig = Figure(figsize=LOSS_SIZE, dpi=DPI)
        self.fig.subplots_adjust(left=0.11, right=0.98, top=0.96, bottom=0.2)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot()
        self.key: object = None
        self.drawn: np.ndarray = np.empty(0)

    def prepare(self, losses: np.ndarray, best_loss: float | None, label: str, diverged_at: Sequence[int],
                x_max: int, key: object) -> None:
        ax = self.ax
        ax.clear()
        finite = losses[np.isfinite(losses)]
        refs = np.append(finite, best_loss) if best_loss is not None and math.isfinite(best_loss) else finite
        lo, hi = (float(refs.min()), float(refs.max())) if len(refs) else (0.0, 1.0)
        self.log = lo > 0 and hi / lo > 30
        if self.log:
            self.ylim = (lo / 1.6, hi * 1.6)
            ax.set_yscale("log")
        else:
            pad = 0.08 * max(hi - lo, abs(hi) * 0.05, 1e-9)
            self.ylim = (min(lo, 0.0) if lo >= 0 and lo < 0.3 * hi else lo - pad, hi + pad)
        ax.set_ylim(*self.ylim)
        ax.set_xlim(-0.02 * max(x_max, 1), max(x_max, 1) * 1.02)
        if best_loss is not None and math.isfinite(best_loss):
            ax.axhline(best_loss, ls=":", color=COLOURS["best"], lw=1.4, label=f"least squares: {best_loss:.4g}")
            ax.legend(loc="upper right", fontsize=8)
        for step in diverged_at:
            ax.axvline(step, color=COLOURS["current"], lw=1, alpha=0.6)
        ax.set_xlabel("step", labelpad=1)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        self.marker = "o" if x_max <= 30 else None
        ax.plot(*_thin(losses), color=COLOURS["loss"], lw=1.6, marker=self.marker, ms=3)
        self.tail = Line2D([], [], color=COLOURS["loss"], lw=1.6, marker=self.marker, ms=3, animated=True)
        ax.add_line(self.tail)
        self.canvas.draw()
        self.background = self.canvas.copy_from_bbox(self.fig.bbox)
        self.drawn = losses.copy()
        self.key = key

    def fits(self, losses: np.ndarray, key: object) -> bool:
        """Whether `losses` extends what is drawn and stays inside the axes."""
        n = len(self.drawn)
        if key != self.key or len(losses) < n or not np.array_equal(losses[:n], self.drawn, equal_nan=True):
            return False
        new = losses[n:]
        return bool(np.all(np.isfinite(new)) and np.all((new >= self.ylim[0]) & (new <= self.ylim[1])))

    def frame(self, losses: np.ndarray) -> bytes:
        self.canvas.restore_region(self.background)
        start = max(len(self.drawn) - 1, 0)
        steps, values = _thin(losses[start:], offset=start)
        self.tail.set_data(steps, values)
        self.ax.draw_artist(self.tail)
        return _encode_png(self.canvas)


def _thin(losses: np.ndarray, offset: int = 0, max_points: int = 1500) -> tuple[np.ndarray, np.ndarray]:
    """(steps, losses) with at most `max_points` points, keeping the shape; inf/NaN left out."""
    steps = np.arange(offset, offset + len(losses))
    if len(losses) > max_points:
        keep = np.unique(np.linspace(0, len(losses) - 1, max_points).astype(int))
        steps, losses = steps[keep], losses[keep]
    return steps, np.where(np.isfinite(losses), losses, np.nan)


_loss_plots: _Pool[LossPlot] = _Pool(LossPlot, POOL_SIZE)


def loss_png(losses: Sequence[float], best_loss: float | None = None, label: str = "loss",
             diverged_at: Sequence[int] = (), x_max: int | None = None) -> bytes:
    """Loss per step (log scale when it spans more than 30x), the least-squares loss dotted, divergences
    marked; `x_max` fixes the step axis (the end of a run in progress) so that frames only add to it."""
    losses = np.asarray(losses, dtype=np.float64)
    x_max = max(int(x_max or 0), len(losses) - 1, 1)
    key = (None if best_loss is None else round(best_loss, 12), label, tuple(diverged_at), x_max)
    with _loss_plots.take(key) as plot:
        if not plot.fits(losses, key):
            plot.prepare(losses, best_loss, label, diverged_at, x_max, key)
        return plot.frame(losses)


class LrPlot:
    """The learning rate per step, under the loss curve: the same step axis and margins. The figure is kept
    and only its line and limits change (a new figure each time costs about 1.7x as much)."""

    def __init__(self) -> None:
        self.fig = Figure(figsize=LR_SIZE, dpi=DPI)
        self.fig.subplots_adjust(left=0.11, right=0.98, top=0.94, bottom=0.3)
        self.canvas = FigureCanvasAgg(self.fig)
        self.ax = self.fig.add_subplot()
        self.ax.set_xlabel("step", labelpad=1)
        self.ax.set_ylabel("learning rate")
        self.ax.grid(alpha=0.3)
        (self.line,) = self.ax.plot([], [], color=COLOURS["lr"], lw=1.6, ms=3)

    def draw(self, lrs: np.ndarray, x_max: int) -> bytes:
        self.line.set_data(*_thin(lrs))
        self.line.set_marker("o" if x_max <= 30 else "")
        self.ax.set_xlim(-0.02 * x_max, x_max * 1.02)
        self.ax.set_ylim(0, 1.1 * float(np.max(lrs)) if len(lrs) else 1.0)
        self.canvas.draw()
        return _encode_png(self.canvas)


_lr_plots: _Pool[LrPlot] = _Pool(LrPlot, POOL_SIZE)


def lr_png(lrs: Sequence[float], x_max: int | None = None) -> bytes:
    """The learning rate per step, `x_max` as for `loss_png`. A run's whole schedule is known when it starts,
    so its frames share one picture: drawn once, then reused."""
    lrs = np.asarray(lrs, dtype=np.float64)
    return _lr_png(lrs.tobytes(), max(int(x_max or 0), len(lrs) - 1, 1))


@functools.lru_cache(maxsize=POOL_SIZE)
def _lr_png(lrs_bytes: bytes, x_max: int) -> bytes:
    with _lr_plots.take() as plot:
        return plot.draw(np.frombuffer(lrs_bytes), x_max)


# ---------------------------------------------------------------- drawn once per request: no blitting needed


def _figure(size: tuple[float, float]) -> tuple[Figure, FigureCanvasAgg]:
    fig = Figure(figsize=size, dpi=DPI)
    return fig, FigureCanvasAgg(fig)


def relu_png(data: Data, best: np.ndarray, xs: np.ndarray, parts: np.ndarray, constant: float,
             fresh: tuple[np.ndarray, np.ndarray] | None = None) -> bytes:
    """The data, the sum of ReLUs (solid), each ReLU's part faintly beneath it, the least-squares quadratic
    (dashed) and, small and grey, the fresh points the fit never saw."""
    fig, canvas = _figure(CURVE_SIZE)
    fig.subplots_adjust(left=0.1, right=0.985, top=0.975, bottom=0.125)
    ax = fig.add_subplot()
    total = parts.sum(0) + constant
    best_ys = quadratic(best, xs)
    ys = np.concatenate([data.y, best_ys] + ([total] if np.all(np.isfinite(total)) else []))
    lo, hi = float(ys.min()), float(ys.max())
    margin = 0.12 * max(hi - lo, 1e-6)
    ax.set_ylim(lo - margin, hi + 1.5 * margin)
    ax.set_xlim(xs[0], xs[-1])
    ax.set_xlabel(data.spec.x_name)
    ax.set_ylabel(data.spec.y_name)
    ax.grid(alpha=0.3)
    if fresh is not None:
        ax.scatter(*fresh, s=5, color="#999999", alpha=0.5, label="fresh points (not fitted)")
    for k, part in enumerate(parts):
        ax.plot(xs, part, color=COLOURS["loss"], lw=1, alpha=0.35, label="each ReLU" if k == 0 else None)
    ax.plot(xs, best_ys, "--", color=COLOURS["best"], lw=1.6, label="least-squares quadratic")
    ax.scatter(data.x, data.y, s=18, color=COLOURS["data"], zorder=3, label="data")
    if np.all(np.isfinite(total)):
        ax.plot(xs, total, color=COLOURS["current"], lw=2.2, label="sum of ReLUs + c")
    ax.legend(loc="upper center", fontsize=8, framealpha=0.9, ncols=3)
    canvas.draw()
    return _encode_png(canvas)


def fit_losses_png(losses: np.ndarray, fresh_losses: np.ndarray, label: str, chasing_from: int | None = None) -> bytes:
    """Training loss and loss on fresh points per step (log scale), where chasing the noise began marked."""
    fig, canvas = _figure(LOSS_SIZE)
    fig.subplots_adjust(left=0.11, right=0.98, top=0.96, bottom=0.2)
    ax = fig.add_subplot()
    for values, colour, name in ((losses, COLOURS["loss"], "training points"),
                                 (fresh_losses, "#7f7f7f", "fresh points")):
        ax.plot(*_thin(np.where(np.asarray(values) > 0, values, np.nan)), color=colour, lw=1.6, label=name)
    if chasing_from is not None:
        ax.axvline(chasing_from, color=COLOURS["current"], lw=1, ls=":", label="fresh loss lowest")
    ax.set_yscale("log")
    ax.set_xlabel("step", labelpad=1)
    ax.set_ylabel(label)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=8)
    canvas.draw()
    return _encode_png(canvas)


def contour_png(surface: LossSurface, path: np.ndarray, best: np.ndarray, label: str) -> bytes:
    """Contours of the loss over two parameters, the least-squares answer, and SGD's path (start to now)."""
    fig, canvas = _figure((5.2, 4.4))
    fig.subplots_adjust(left=0.13, right=0.97, top=0.93, bottom=0.12)
    ax = fig.add_subplot()
    losses = surface.losses
    lo, hi = float(losses.min()), float(losses.max())
    levels = np.geomspace(max(lo, hi * 1e-9, 1e-12), hi, 18) if hi > 0 else 10
    ax.contourf(surface.xs, surface.ys, losses, levels=levels, cmap="viridis_r", alpha=0.55)
    ax.contour(surface.xs, surface.ys, losses, levels=levels, colors="#444444", linewidths=0.4)
    x_name, y_name, fixed_name = surface.names
    i, j = surface.pair
    ax.plot(best[i], best[j], "*", color=COLOURS["best"], ms=13, mec="white", label="least squares")
    path = np.asarray(path, dtype=np.float64).reshape(-1, 3)
    if len(path):
        ax.plot(path[:, i], path[:, j], "-", color=COLOURS["current"], lw=1.3, marker="." if len(path) <= 200 else None,
                ms=4, label="SGD's path")
        ax.plot(path[0, i], path[0, j], "o", color="black", ms=5, label="start")
    ax.set_xlim(surface.xs[0], surface.xs[-1])
    ax.set_ylim(surface.ys[0], surface.ys[-1])
    ax.set_xlabel(x_name)
    ax.set_ylabel(y_name)
    ax.set_title(f"{label} with {fixed_name} = {surface.fixed:.3g}", fontsize=9)
    ax.legend(loc="upper right", fontsize=8, framealpha=0.9)
    canvas.draw()
    return _encode_png(canvas)
