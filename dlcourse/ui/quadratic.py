"""The "Fit a quadratic" tab: sliders for a, b, c with a live plot, then SGD step by step.

Components and wiring only: the data, losses, SGD and least squares are in `dlcourse.quadratic.fit`,
the session and its words in `dlcourse.quadratic.session`, the pictures in `dlcourse.quadratic.plots`.
Public API endpoints, from `dlcourse.quadratic.api`: /fit_quadratic (a whole SGD run as JSON),
/quadratic_loss (score a guess) and /fit_relus (the same data fitted by a sum of ReLUs).
"""
from __future__ import annotations

import math
import time
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd
from gradio.components.plot import PlotData

from ..quadratic import fit as q
from ..quadratic import api
from ..quadratic import plots
from ..quadratic import session as qs
from ..quadratic import relu_fit as rf
from ..training.schedules import ONE_CYCLE, SCHEDULES
from .common import shows_errors

# A run shows at most this many frames, at most one per FRAME_SECONDS: 1000 steps animate in ~2 s.
MAX_FRAMES = 24
FRAME_SECONDS = 0.08
LR_LOG_RANGE = (math.log10(q.LR_RANGE[0]), math.log10(q.LR_RANGE[1]))
UI_MAX_STEPS = 2000
UI_MAX_POINTS = 200
UI_MAX_NOISE = 5.0
# A number typed into a slider's box may lie outside its range; the value sent is then the nearest end,
# so these labels clamp the same way and say what will actually be used.
LR_TEXT_JS = ("(v) => { const lr = 10 ** Math.min(Math.max(v, %g), %g); "
              "return `lr = ${lr < 1e-3 ? lr.toExponential(1) : +lr.toPrecision(2)}`; }" % LR_LOG_RANGE)
RUN_LABEL_JS = "(n) => { n = Math.min(Math.max(Math.round(n), 1), %d); return `Run ${n} step${n == 1 ? '' : 's'}`; }" % UI_MAX_STEPS

INTRO = """\
Guess a curve, measure how wrong it is, let the gradient say which way to move, step, repeat: that loop
is how every neural net learns (chapter 4 of the book, lesson 3 of the course). Here the "model" is
y = a x² + b x + c and its three parameters are yours to move, or SGD's."""

EXPLAIN_LOSS = """\
**Loss**: one number for how wrong the curve is. MAE averages the distances from each point to the curve
(the thin red lines), MSE averages their squares, so big misses count much more. Noise means it can
never reach 0: the dashed green curve is the lowest MSE there is, found in one go by least squares."""

EXPLAIN_SGD = f"""\
**Gradient**: for each of a, b, c, how fast the loss changes as that parameter goes up. PyTorch works it out:
`loss.backward()` fills `params.grad`. **Learning rate**: how far to move against it each step,
`params -= lr * params.grad`. Too small and SGD crawls; too big and each step overshoots and the loss
explodes. **Momentum** keeps part of the previous steps' direction, which helps along long narrow valleys
(0 is the book's plain SGD). **Standardise x** fits on (x − mean) / std, so x², x and 1 are of similar size.
A **learning-rate schedule** changes the rate over each run's N steps (drawn under the loss): *cosine* lowers
it from lr to 0, so the steps shrink as SGD nears the bottom; *one-cycle*, as `train.py` trains, warms up from
lr/{ONE_CYCLE.div_factor:g} to lr over the first {ONE_CYCLE.pct_start:.0%} of the steps, then lowers it to almost 0.

*What to try:* on the lesson's data with MAE and lr 0.01, press *Step once* a few times and watch the loss
fall. Switch to MSE and push the learning rate to 1: it diverges. On the roller coaster, run 1000 steps at
lr 1e-5 and see c hardly move; then tick *standardise x*, set lr 0.1 and momentum 0.9, and run again.
Back on the lesson's data with MAE, set lr 1 (log₁₀ 0) and run 100 steps: the loss keeps bouncing and ends
at 1.24, above least squares' 1.01. Reset, choose *cosine* or *one-cycle* and run again: it settles at 0.99
(MAE's own best lies a little below least squares'). With MSE, 100 steps at lr 0.25 (log₁₀ −0.6) diverge
under constant and cosine; one-cycle's gentle start lets the same peak rate reach least squares."""


EXPLAIN_RELUS = """\
A **ReLU** (rectified linear unit) is a line with its negative part cut off: max(0, m x + k), flat and then
straight. Add up N of them and a constant and the sum bends wherever one of them starts: with enough of them
it can follow any curve, with no x² anywhere. Each faint line below is one ReLU; the red line is their sum.
They are fitted by the same SGD as the quadratic (the loss, learning rate, momentum and schedule chosen above).
The grey dots are fresh points from the same curve that the fit never sees: when more ReLUs only bend to
follow this sample's noise, the loss on them rises while the training loss still falls.

*What to try:* on the lesson's data choose MSE, learning rate 0.01 (log₁₀ −2) and momentum 0.9: 8 ReLUs beat
the least-squares quadratic on the points they were fitted to; 32 fit them a little closer still, while
their loss on the fresh points climbs back up from its lowest, and the tab says so."""

EXPLAIN_LANDSCAPE = """\
**The loss as a landscape.** The loss depends on a, b and c; hold one of them still and it becomes a map
over the other two: each contour joins parameters with the same loss, the star is the lowest point. The red
line is the path SGD has taken since the last reset (press *Step once* or *Run N steps* above). Plain SGD
goes straight downhill; with momentum 0.9 it overshoots and swings round the valley; with a learning rate
too high it zigzags across the valley, further each time. (Distill's
[*Why Momentum Really Works*](https://distill.pub/2017/momentum/) explores this picture.)"""


def _plot(png: bytes | None) -> PlotData | None:
    return None if png is None else PlotData(type="matplotlib", plot=plots.data_url(png))


def _slider_values(params: np.ndarray, spec: q.DataSet) -> list[Any]:
    """The sliders follow the parameters, held inside their ranges (the plot shows the true values)."""
    out = []
    for value, (lo, hi) in zip(params, spec.param_ranges):
        out.append(gr.update(value=round(float(np.clip(value, lo, hi)), 4)) if math.isfinite(value) else gr.skip())
    return out


def _trace_frame(session: qs.Session) -> pd.DataFrame:
    headers, rows = qs.trace_table(session)
    return pd.DataFrame(rows, columns=headers)


def _view(data: q.Data, session: qs.Session, standardise: bool, notes: list[str], with_history: bool = True,
          x_max: int | None = None, lrs: list[float] | None = None):
    """Plot, loss line, status, loss curve (steps up to `x_max`), learning rates (`lrs`, by default the
    session's), trace and state for a session."""
    r = qs.readout(data, session.params, session.loss)
    curve = plots.curve_png(data, r.best, session.params)
    loss_curve = lr_curve = None
    if with_history and session.losses:
        loss_curve = plots.loss_png(session.losses, r.best_loss, session.loss.upper(), session.diverged_at, x_max)
        lr_curve = plots.lr_png(session.lrs if lrs is None else lrs, x_max)
    return (
        _plot(curve),
        qs.loss_line(session.params, r, session.loss),
        qs.status_text(data, standardise, notes, session.message),
        _plot(loss_curve),
        _plot(lr_curve),
        _trace_frame(session),
        session,
    )


def _inputs(dataset, noise, points, seed, a, b, c, loss) -> tuple[q.Data, str, np.ndarray, list[str]]:
    data = q.make_data(dataset, noise, points, seed)
    notes = list(data.notes)
    params = q.clean_params(a, b, c, notes)
    return data, q.loss_name(loss), params, notes


@shows_errors
def move(dataset, noise, points, seed, a, b, c, loss, standardise):
    """A slider moved or Reset was pressed: a new session at the sliders' values."""
    data, loss, params, notes = _inputs(dataset, noise, points, seed, a, b, c, loss)
    return _view(data, qs.new_session(data, params, loss), standardise, notes, with_history=False)


@shows_errors
def refresh(dataset, noise, points, seed, a, b, c, loss, standardise, session):
    """Data, loss or standardise changed: keep the session if it still applies, else start at the sliders."""
    data, loss, params, notes = _inputs(dataset, noise, points, seed, a, b, c, loss)
    return _view(data, qs.session_for(session, data, loss, params), standardise, notes)


@shows_errors
def preset(dataset):
    """A data set was chosen: its slider ranges, the book's start, loss and learning rate."""
    spec = q.DATASETS[q.dataset_name(dataset)]
    sliders = [gr.Slider(minimum=lo, maximum=hi, value=v) for (lo, hi), v in zip(spec.param_ranges, spec.start)]
    return (*sliders, spec.loss, math.log10(spec.lr))


def _frame(data: q.Data, session: qs.Session, settings: q.SGDSettings, notes: list[str], x_max: int,
           lrs: list[float] | None):
    view = _view(data, session, settings.standardise, notes, x_max=x_max, lrs=lrs)
    return (*view, *_slider_values(session.params, data.spec))


def _learning_rate(lr_log: Any) -> Any:
    """The slider holds log10(lr); anything unusable goes on to the logic's checks as it is."""
    try:
        return 10 ** float(lr_log)
    except (TypeError, ValueError, OverflowError):
        return lr_log


@shows_errors
def sgd_steps(dataset, noise, points, seed, a, b, c, loss, lr_log, momentum, steps, standardise, session,
              schedule="constant", once=False):
    """Step once, or Run N steps: yields a frame every few steps (throttled), the last one with a summary."""
    data, loss, params, notes = _inputs(dataset, noise, points, seed, a, b, c, loss)
    settings = q.sgd_settings(loss, _learning_rate(lr_log), momentum, 1 if once else steps, standardise, schedule)
    notes += settings.notes
    session = qs.session_for(session, data, loss, params)
    start = session.params.copy()
    start_loss = q.loss_of(start, data, loss)
    total = settings.steps
    x_max = session.steps + total
    planned_lrs = session.lrs + settings.rates()[0].tolist()  # the whole run's schedule, drawn from the start
    frames = min(total, MAX_FRAMES)
    bounds = np.linspace(0, total, frames + 1).round().astype(int)
    for k, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
        began = time.monotonic()
        session, run = qs.advance(session, data, settings, hi - lo, done=lo, revert_to=start)
        done = run.diverged or k == frames - 1
        if not run.diverged:
            session.message = (q.summary(data, settings, steps=total, start_loss=start_loss, end=session.params,
                                         end_loss=run.end_loss)
                               if done else f"Running: {hi} of {total} steps…")
        yield _frame(data, session, settings, notes, x_max, None if run.diverged else planned_lrs)
        if done:
            return
        time.sleep(max(0.0, FRAME_SECONDS - (time.monotonic() - began)))


@shows_errors
def fit_with_relus(dataset, noise, points, seed, loss, lr_log, momentum, relus, steps, schedule="constant"):
    """Fit the tab's data with a sum of ReLUs: the fit, each part, the losses and what they say."""
    data = q.make_data(dataset, noise, points, seed)
    settings = q.sgd_settings(loss, _learning_rate(lr_log), momentum, steps, schedule=schedule)
    notes = list(data.notes) + list(settings.notes)
    count = rf.relus_count(relus, notes)
    result = rf.fit(data, count, settings, data.seed)
    lo, hi = data.spec.x_range
    pad = 0.03 * (hi - lo)
    xs = np.linspace(lo - pad, hi + pad, plots.CURVE_SAMPLES)
    fresh = rf.fresh_points(data)
    picture = plots.relu_png(data, q.least_squares(data), xs, result.parts(xs), result.constant, (fresh.x, fresh.y))
    losses = plots.fit_losses_png(result.losses, result.fresh_losses, settings.loss.upper(), result.chasing_from)
    text = " ".join([rf.message(data, count, settings, result), *notes])
    return _plot(picture), _plot(losses), text


@shows_errors
def landscape(dataset, noise, points, seed, a, b, c, loss, pair, session):
    """Contours of the loss over two parameters, with the session's path on them."""
    data, loss, params, _ = _inputs(dataset, noise, points, seed, a, b, c, loss)
    session = qs.session_for(session, data, loss, params)
    path = session.path + [session.params.tolist()]
    surface = q.loss_surface(data, loss, session.params, q.pair_indices(pair), path)
    return _plot(plots.contour_png(surface, np.array(path), q.least_squares(data), loss.upper()))


def tab() -> gr.Blocks:
    """The tab's components and wiring, a Blocks of its own: space.py renders it; it can also be served alone."""
    default = q.DATASETS["lesson"]
    with gr.Blocks(title="Fit a quadratic") as blocks:
        gr.Markdown(INTRO)
        session = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=340):
                dataset = gr.Radio([(s.label, key) for key, s in q.DATASETS.items()], value="lesson",
                                   label="Data set", elem_id="quad-dataset")
                with gr.Row():
                    noise = gr.Slider(0, UI_MAX_NOISE, value=1.0, step=0.1, label="noise (1 = the book's)",
                                      elem_id="quad-noise", min_width=100)
                    points = gr.Slider(q.POINTS_RANGE[0], UI_MAX_POINTS, value=20, step=1, label="points",
                                       elem_id="quad-points", min_width=100)
                    seed = gr.Number(42, precision=0, label="seed", elem_id="quad-seed", min_width=80)
                sliders = [
                    gr.Slider(lo, hi, value=v, step=0.01, label=label, elem_id=f"quad-{name}")
                    for name, label, (lo, hi), v in zip(
                        "abc", ("a (times x²)", "b (times x)", "c (constant)"), default.param_ranges, default.start)
                ]
                loss = gr.Radio([("MAE: mean absolute error", "mae"), ("MSE: mean squared error", "mse")],
                                value=default.loss, label="Loss", elem_id="quad-loss-choice")
                gr.Markdown(EXPLAIN_LOSS)
                with gr.Row():
                    lr_log = gr.Slider(*LR_LOG_RANGE, value=math.log10(default.lr), step=0.1,
                                       label="learning rate (log₁₀)", elem_id="quad-lr", min_width=160)
                    lr_text = gr.Markdown(f"lr = {default.lr:g}", elem_id="quad-lr-value", min_width=90)
                with gr.Row():
                    momentum = gr.Slider(*q.MOMENTUM_RANGE, value=0.0, step=0.01, label="momentum (0 = plain SGD)",
                                         elem_id="quad-momentum", min_width=140)
                    steps = gr.Slider(1, UI_MAX_STEPS, value=10, step=1, label="N (steps per run)",
                                      elem_id="quad-steps", min_width=140)
                schedule = gr.Radio(list(SCHEDULES), value="constant", elem_id="quad-schedule",
                                    label="learning-rate schedule, over each run's N steps")
                standardise = gr.Checkbox(False, label="standardise x: fit on (x − mean) / std",
                                          elem_id="quad-standardise")
                with gr.Row():
                    step_btn = gr.Button("Step once", elem_id="quad-step")
                    run_btn = gr.Button("Run 10 steps", variant="primary", elem_id="quad-run")  # see RUN_LABEL_JS
                    reset_btn = gr.Button("Reset to the sliders", elem_id="quad-reset")
                gr.Markdown(EXPLAIN_SGD)
            with gr.Column(scale=3, min_width=380):
                data0 = q.make_data()
                view0 = _view(data0, qs.new_session(data0, default.start, default.loss), False, [])
                plot = gr.Plot(view0[0], label="data, your curve, least squares", show_label=False,
                               elem_id="quad-plot")
                loss_md = gr.Markdown(view0[1], elem_id="quad-loss")
                status = gr.Markdown(view0[2], elem_id="quad-status")
                loss_plot = gr.Plot(None, label="loss per step", show_label=False, elem_id="quad-loss-curve")
                lr_plot = gr.Plot(None, label="learning rate per step", show_label=False, elem_id="quad-lr-curve")
                trace = gr.Dataframe(view0[5], label="trace: newest step first (parameters where each step "
                                     "measured the loss, and its gradient)", interactive=False, max_height=300,
                                     elem_id="quad-trace")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=380):
                with gr.Accordion("Fit with ReLUs", open=True, elem_id="quad-relu-section"):
                    gr.Markdown(EXPLAIN_RELUS)
                    with gr.Row():
                        relus = gr.Slider(*rf.RELUS_RANGE, value=8, step=1, label="N (ReLUs)", elem_id="quad-relus",
                                          min_width=140)
                        relu_steps = gr.Slider(1, UI_MAX_STEPS, value=2000, step=1, label="steps",
                                               elem_id="quad-relu-steps", min_width=140)
                    relu_btn = gr.Button("Fit with ReLUs", variant="primary", elem_id="quad-relu-fit")
                    relu_text = gr.Markdown(elem_id="quad-relu-status")
                    relu_plot = gr.Plot(None, show_label=False, elem_id="quad-relu-plot")
                    relu_losses = gr.Plot(None, show_label=False, elem_id="quad-relu-losses")
            with gr.Column(scale=2, min_width=340):
                with gr.Accordion("The loss as a landscape, with SGD's path", open=True, elem_id="quad-landscape-section"):
                    gr.Markdown(EXPLAIN_LANDSCAPE)
                    pair = gr.Radio(list(q.PAIRS), value="a and b", label="Parameters on the axes",
                                    elem_id="quad-pair")
                    contours = gr.Plot(landscape("lesson", 1.0, 20, 42, *default.start, default.loss, "a and b", None),
                                       show_label=False, elem_id="quad-contours")

        data_inputs = [dataset, noise, points, seed, *sliders, loss]
        view = [plot, loss_md, status, loss_plot, lr_plot, trace, session]
        private = {"api_visibility": "private", "show_progress": "hidden"}

        run_inputs = [*data_inputs, lr_log, momentum, steps, standardise, session, schedule]
        run_event = run_btn.click(sgd_steps, run_inputs, [*view, *sliders], **private)
        step_event = step_btn.click(_step_once, run_inputs, [*view, *sliders], **private)
        running = [run_event, step_event]
        landscape_inputs = [*data_inputs, pair, session]
        for event in running:
            event.then(landscape, landscape_inputs, contours, **private)
        pair.change(landscape, landscape_inputs, contours, **private)
        relu_inputs = [dataset, noise, points, seed, loss, lr_log, momentum, relus, relu_steps, schedule]
        relu_btn.click(fit_with_relus, relu_inputs, [relu_plot, relu_losses, relu_text], **private)

        for slider in sliders:
            # Queued, though the handler is cheap (bench/bench_quadratic.py times it): Gradio shows no message for
            # an error in an event run with queue=False (a number typed beyond the slider's range only turned the
            # outputs to "Error"), and the queue bounds how many run at once. always_last: a drag sends its latest
            # value, not each one.
            slider.input(move, [*data_inputs, standardise], view, trigger_mode="always_last", cancels=running,
                         **private)
        reset_btn.click(move, [*data_inputs, standardise], view, cancels=running, **private).then(
            landscape, landscape_inputs, contours, **private)
        dataset.input(preset, dataset, [*sliders, loss, lr_log], cancels=running, **private).then(
            refresh, [*data_inputs, standardise, session], view, **private).then(
            landscape, landscape_inputs, contours, **private)
        for control in (noise, points):  # .change: dragging or typing a number
            control.change(refresh, [*data_inputs, standardise, session], view, cancels=running,
                            trigger_mode="always_last", **private)
        for control in (seed, loss, standardise):  # .input: not when a preset sets them
            control.input(refresh, [*data_inputs, standardise, session], view, cancels=running,
                          trigger_mode="always_last", **private)
        # Pure display tweaks run in the browser: no round trip.
        lr_log.change(None, lr_log, lr_text, js=LR_TEXT_JS, **private)
        steps.change(None, steps, run_btn, js=RUN_LABEL_JS, **private)

        gr.api(shows_errors(api.fit_quadratic), api_name="fit_quadratic")
        gr.api(shows_errors(api.evaluate_quadratic), api_name="quadratic_loss")
        gr.api(shows_errors(api.fit_relus), api_name="fit_relus")
    return blocks


def _step_once(*args):
    yield from sgd_steps(*args, once=True)
