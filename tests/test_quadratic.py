"""The quadratic tab's logic: data, losses, SGD the book's way, least squares, divergence, scaling, inputs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from dlcourse.quadratic import fit as q
from dlcourse.quadratic import api
from dlcourse.quadratic import plots
from dlcourse.quadratic import session as qs
from dlcourse.errors import BadInput
from dlcourse.training.schedules import SCHEDULES, one_cycle

LESSON_START = (1.1, 1.1, 1.1)


def lesson():
    return q.make_data("lesson", noise=1, points=20, seed=42)


def roller():
    return q.make_data("roller_coaster", noise=1, points=20, seed=42)


def first_within(run: q.SGDRun, best: np.ndarray, share: float = 0.02) -> int | None:
    """The first step whose parameters are all within `share` of the least-squares answer."""
    rows = np.vstack([run.params, run.end])
    hits = [i for i, row in enumerate(rows) if q.close_to(row, best, share)]
    return hits[0] if hits else None


# ---------------------------------------------------------------- data


def test_lesson_data_are_the_lessons_points():
    # The lesson's own code: np.random.seed(42); x = linspace(-2, 2, 20); y = add_noise(f(x), 0.15, 1.5)
    np.random.seed(42)
    x = np.linspace(-2, 2, num=20)[:, None]
    f = 3 * x**2 + 2 * x + 1
    y = f * (1 + np.random.normal(scale=0.15, size=x.shape)) + np.random.normal(scale=1.5, size=x.shape)
    data = lesson()
    np.testing.assert_allclose(data.x, x[:, 0])
    np.testing.assert_allclose(data.y, y[:, 0])


def test_roller_coaster_is_chapter_4s_speed():
    data = roller()
    np.testing.assert_allclose(data.x, np.arange(20))
    quiet = q.make_data("roller_coaster", noise=0, points=20, seed=1)
    np.testing.assert_allclose(quiet.y, 0.75 * (np.arange(20) - 9.5) ** 2 + 1)
    assert np.std(data.y - quiet.y) == pytest.approx(3, rel=0.4)  # torch.randn(20) * 3


def test_data_depend_on_seed_noise_and_points_only():
    assert np.array_equal(lesson().y, lesson().y)
    assert not np.array_equal(lesson().y, q.make_data("lesson", 1, 20, 43).y)
    assert len(q.make_data("lesson", 1, 57, 0).x) == 57
    no_noise = q.make_data("lesson", 0, 20, 42)
    np.testing.assert_allclose(no_noise.y, 3 * no_noise.x**2 + 2 * no_noise.x + 1)


def test_least_squares_is_the_closed_form_fit():
    data = lesson()
    np.testing.assert_allclose(q.least_squares(data), np.polyfit(data.x, data.y, 2))
    exact = q.make_data("roller_coaster", noise=0, points=20, seed=0)
    np.testing.assert_allclose(q.least_squares(exact), [0.75, -14.25, 0.75 * 9.5**2 + 1])


def test_losses():
    preds, targets = torch.tensor([1.0, 2.0, 5.0]), torch.tensor([2.0, 2.0, 2.0])
    assert q.LOSSES["mae"](preds, targets).item() == pytest.approx(4 / 3)
    assert q.LOSSES["mse"](preds, targets).item() == pytest.approx(10 / 3)
    data = lesson()
    best = q.least_squares(data)
    assert q.loss_of(best, data, "mse") == pytest.approx(np.mean((np.polyval(best, data.x) - data.y) ** 2))


# ---------------------------------------------------------------- SGD, as the book does it


def test_lesson_mae_loss_falls_on_each_of_the_first_ten_steps():
    run = q.sgd(lesson(), LESSON_START, q.sgd_settings("mae", lr=0.01, momentum=0, steps=10))
    assert run.steps == 10 and not run.diverged
    assert run.losses[0] == pytest.approx(2.4219, abs=1e-3)  # the lesson's first printed loss
    assert np.all(np.diff(np.append(run.losses, run.end_loss)) < 0), run.losses


def test_a_step_is_params_minus_lr_times_the_gradient_with_momentum():
    data, lr, mom = lesson(), 0.05, 0.9
    run = q.sgd(data, LESSON_START, q.sgd_settings("mse", lr, mom, 3))
    feats = q.features(data.x)

    def grad(p):  # d/dp of mean((F p - y)^2), by hand
        return 2 * feats.T @ (feats @ p - data.y) / len(data.x)

    p, v = np.array(LESSON_START), np.zeros(3)
    for i in range(3):
        np.testing.assert_allclose(run.params[i], p)
        np.testing.assert_allclose(run.grads[i], grad(p))
        v = mom * v + grad(p)
        p = p - lr * v
    np.testing.assert_allclose(run.end, p)
    np.testing.assert_allclose(run.velocity, v)


def test_mse_with_momentum_gets_within_2_percent_of_least_squares_on_the_lesson():
    data = lesson()
    run = q.sgd(data, LESSON_START, q.sgd_settings("mse", lr=0.1, momentum=0.9, steps=1000))
    assert not run.diverged
    assert q.close_to(run.end, q.least_squares(data), 0.02)
    assert first_within(run, q.least_squares(data)) < 1000


def test_standardised_roller_coaster_gets_within_2_percent():
    data = roller()
    best = q.least_squares(data)
    run = q.sgd(data, (1, 1, 1), q.sgd_settings("mse", lr=0.1, momentum=0.9, steps=1000, standardise=True))
    assert not run.diverged
    assert q.close_to(run.end, best, 0.02), (run.end, best)
    assert first_within(run, best) < 200
    # the parameters come back in t's own units: the fitted curve matches least squares' on the data
    np.testing.assert_allclose(q.quadratic(run.end, data.x), q.quadratic(best, data.x), rtol=1e-3, atol=1e-3)


def test_raw_roller_coaster_crawls_and_the_message_says_why():
    data = roller()
    best = q.least_squares(data)
    assert best[2] > 60
    result = api.fit_quadratic("roller_coaster", a=1, b=1, c=1, loss="mse", lr=1e-5, momentum=0, steps=1000)
    assert not result["diverged"]
    assert result["final"]["c"] < 10  # c hardly moves in 1000 steps...
    assert result["least_squares"]["c"] == pytest.approx(best[2])
    assert result["distance"] > 50  # ...so it ends far from the answer
    message = result["message"].lower()
    assert "badly scaled" in message and "standardise" in message and "361" in message
    assert q.scaling_advice(data, standardise=True) is None
    assert q.scaling_advice(lesson(), standardise=False) is None  # x in [-2, 2] is fine as it is


def test_standardiser_maps_parameters_both_ways():
    scaler = q.Standardiser.of(roller().x)
    params = np.array([0.75, -14.25, 68.7])
    np.testing.assert_allclose(scaler.to_original(scaler.to_fit(params)), params)
    t = np.linspace(0, 19, 7)
    np.testing.assert_allclose(q.quadratic(scaler.to_fit(params), scaler.apply(t)), q.quadratic(params, t))


def test_high_learning_rate_diverges_with_a_reason_and_stops_early():
    data = lesson()
    stable = q.Scaling.of(data.x).stable_lr()
    run = q.sgd(data, LESSON_START, q.sgd_settings("mse", lr=2 * stable, momentum=0, steps=1000))
    assert run.diverged and run.steps < 100
    assert run.losses[-1] > q.DIVERGE_FACTOR * run.losses[0]
    assert np.all(np.isfinite(run.end))
    assert "too high" in run.reason and f"{stable:.2g}" in run.reason
    # just below the stable rate it converges
    calm = q.sgd(data, LESSON_START, q.sgd_settings("mse", lr=0.9 * stable, momentum=0, steps=1000))
    assert not calm.diverged


def test_divergence_to_infinity_is_caught_and_json_safe():
    result = api.fit_quadratic("roller_coaster", a=1, b=1, c=1, loss="mse", lr=10, steps=1000)
    assert result["diverged"] and "Diverged at step" in result["message"]
    json.dumps(result, allow_nan=False)  # no NaN or inf reaches JSON


def test_mae_with_a_huge_learning_rate_bounces_and_says_so():
    """MAE's steps never shrink, so too high a rate bounces without diverging: the summary says that, and
    not the divergence message (both say "too high")."""
    result = api.fit_quadratic("lesson", loss="mae", lr=5, steps=50)
    assert not result["diverged"] and result["final"]["loss"] > result["trajectory"]["loss"][0]
    assert "The loss went up, not down: the learning rate 5 is too high" in result["message"]
    assert "SGD bounces around instead of settling" in result["message"]
    assert "Diverged" not in result["message"]


# ---------------------------------------------------------------- learning-rate schedules, against torch


def torch_sgd(data: q.Data, settings: q.SGDSettings, scheduler=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """torch.optim.SGD on the same loss from LESSON_START, stepped by `scheduler(optimizer)` when given: the
    parameters (original units) at each step and at the end, and each step's learning rate and momentum."""
    x_fit, scaler = q.fit_inputs(data, settings.standardise)
    inputs, targets = torch.from_numpy(q.features(x_fit)), torch.from_numpy(data.y)
    start = np.array(LESSON_START)
    params = torch.tensor(scaler.to_fit(start) if scaler else start, requires_grad=True)
    optimizer = torch.optim.SGD([params], lr=settings.lr, momentum=settings.momentum)
    schedule = scheduler(optimizer) if scheduler else None
    rows, lrs, momentums = [], [], []
    for _ in range(settings.steps):
        rows.append(params.detach().numpy().copy())
        lrs.append(optimizer.param_groups[0]["lr"])
        momentums.append(optimizer.param_groups[0]["momentum"])
        optimizer.zero_grad()
        q.LOSSES[settings.loss](inputs @ params, targets).backward()
        optimizer.step()
        if schedule:
            schedule.step()
    rows, end = np.array(rows), params.detach().numpy()
    if scaler:  # as sgd converts them: the steps as one array, the end on its own
        rows, end = scaler.to_original(rows), scaler.to_original(end)
    return np.vstack([rows, end]), np.array(lrs), np.array(momentums)


def run_rows(run: q.SGDRun) -> np.ndarray:
    return np.vstack([run.params, run.end])


@pytest.mark.parametrize("loss, lr, momentum, standardise", [
    ("mae", 0.01, 0.0, False), ("mse", 0.1, 0.9, False), ("mse", 0.1, 0.9, True), ("mae", 1.0, 0.0, False)])
def test_constant_schedule_is_torch_sgd_bit_for_bit(loss, lr, momentum, standardise):
    """The default schedule leaves the fit as it was: every step equal to torch.optim.SGD's, to the last bit."""
    data = lesson()
    settings = q.sgd_settings(loss, lr, momentum, 200, standardise)
    assert settings.schedule == "constant"
    run = q.sgd(data, LESSON_START, settings)
    rows, lrs, momentums = torch_sgd(data, settings)
    np.testing.assert_array_equal(run_rows(run), rows)
    assert run.lrs.tolist() == lrs.tolist() == [lr] * 200 and run.momentums.tolist() == momentums.tolist()
    assert api.fit_quadratic(loss=loss, lr=lr, momentum=momentum, steps=200, standardise=standardise) == \
        api.fit_quadratic(loss=loss, lr=lr, momentum=momentum, steps=200, standardise=standardise, schedule="constant")


SCHEDULERS = {  # torch's own: CosineAnnealingLR, and the OneCycleLR train.py trains with
    "cosine": lambda s: lambda optimizer: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=s.steps),
    "one-cycle": lambda s: lambda optimizer: one_cycle(optimizer, s.lr, s.steps, s.momentum),
}


@pytest.mark.parametrize("schedule, loss, lr, momentum, steps, standardise", [
    ("cosine", "mse", 0.1, 0.0, 100, False),
    ("cosine", "mae", 1.0, 0.0, 100, False),
    ("cosine", "mse", 0.1, 0.9, 200, True),
    ("one-cycle", "mse", 0.25, 0.0, 100, False),
    ("one-cycle", "mse", 0.1, 0.9, 200, False),  # momentum cycled, 0.9 -> 0.805 -> 0.9
    ("one-cycle", "mae", 0.1, 0.5, 150, True),
    ("one-cycle", "mse", 0.1, 0.9, 4, False),  # too short to warm up: constant, in train.py too
])
def test_schedules_step_as_torch_sgd_under_torchs_scheduler(schedule, loss, lr, momentum, steps, standardise):
    data = lesson()
    settings = q.sgd_settings(loss, lr, momentum, steps, standardise, schedule)
    run = q.sgd(data, LESSON_START, settings)
    assert not run.diverged
    rows, lrs, momentums = torch_sgd(data, settings, SCHEDULERS[schedule](settings))
    np.testing.assert_allclose(run_rows(run), rows, rtol=0, atol=1e-9)
    np.testing.assert_allclose(run.lrs, lrs, rtol=1e-12, atol=0)
    np.testing.assert_allclose(run.momentums, momentums, rtol=1e-12, atol=0)
    if steps > 4:
        assert np.ptp(run.lrs) > lr / 2  # the rate did change
    if schedule == "one-cycle" and steps > 4:
        peak = int(np.argmax(run.lrs))
        assert run.lrs[0] == pytest.approx(lr / 25) and run.lrs[peak] == pytest.approx(lr, rel=1e-3)
        assert run.lrs[-1] < lr / 1e5 and peak < steps / 3
        assert momentum == 0 or run.momentums[peak] == pytest.approx(momentum * 0.85 / 0.95, rel=1e-3)


def test_a_run_shown_a_few_steps_at_a_time_follows_one_schedule():
    """The tab runs N steps in slices, one per frame: together they are the one run, schedule and all."""
    data = lesson()
    settings = q.sgd_settings("mse", 0.25, 0.9, 100, schedule="one-cycle")
    whole = q.sgd(data, LESSON_START, settings)
    session = qs.new_session(data, LESSON_START, "mse")
    for first in range(0, 100, 30):
        session, _ = qs.advance(session, data, settings, min(30, 100 - first), done=first)
    np.testing.assert_array_equal(session.params, whole.end)
    assert session.lrs == whole.lrs.tolist() and session.losses == whole.losses.tolist()


def test_where_constant_sgd_keeps_overshooting_a_decaying_schedule_settles():
    """The tab's What to try (bench/bench_schedules.py prints the figures)."""
    # MAE's slope keeps its size near the bottom, so at lr 1 constant steps keep jumping past it
    mae = {s: api.fit_quadratic("lesson", loss="mae", lr=1, steps=100, schedule=s) for s in SCHEDULES}
    best = mae["constant"]["least_squares"]["loss"]
    bounce = np.ptp(mae["constant"]["trajectory"]["loss"][-20:])
    assert mae["constant"]["final"]["loss"] > 1.1 * best and bounce > 0.3 * best
    for schedule in ("cosine", "one-cycle"):
        result = mae[schedule]
        assert np.ptp(result["trajectory"]["loss"][-20:]) < bounce / 20
        assert result["final"]["loss"] < best  # MAE's own best scores a little under least squares
    # MSE just above the stable rate: constant and cosine blow up; one-cycle's warm-up gets to least squares
    mse = {s: api.fit_quadratic("lesson", loss="mse", lr=10**-0.6, steps=100, schedule=s) for s in SCHEDULES}
    assert mse["constant"]["diverged"] and mse["cosine"]["diverged"]
    assert not mse["one-cycle"]["diverged"] and "within 2%" in mse["one-cycle"]["message"]


def test_the_answer_has_each_steps_learning_rate_and_the_schedule_is_checked():
    result = api.fit_quadratic(loss="mse", lr=0.2, momentum=0.9, steps=40, schedule="one-cycle")
    traj = result["trajectory"]
    assert len(traj["lr"]) == len(traj["momentum"]) == 40 and result["settings"]["schedule"] == "one-cycle"
    assert traj["lr"][0] == pytest.approx(0.2 / 25) and max(traj["lr"]) == pytest.approx(0.2, rel=1e-2)
    assert traj["momentum"][0] == 0.9 and min(traj["momentum"]) < 0.82
    json.dumps(result, allow_nan=False)
    assert api.fit_quadratic(steps=5, schedule=" Cosine ")["settings"]["schedule"] == "cosine"
    for bad in ("linear", "", None, 3, ["cosine"]):
        with pytest.raises(BadInput, match="Unknown schedule .*: choose 'constant', 'cosine' .* or 'one-cycle'"):
            api.fit_quadratic(steps=5, schedule=bad)
    short = api.fit_quadratic(lr=0.01, steps=4, schedule="one-cycle")
    assert short["trajectory"]["lr"] == [0.01] * 4
    assert any("needs at least 5 steps; a run of 4 keeps the learning rate constant" in n for n in short["notes"])


# ---------------------------------------------------------------- nonsense and extremes


@pytest.mark.parametrize("field", ["noise", "points", "seed", "a", "b", "c", "lr", "momentum", "steps"])
@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "abc", None])
def test_non_numbers_are_refused_with_a_clear_message(field, value):
    with pytest.raises(BadInput, match="number"):
        api.fit_quadratic(**{field: value}, steps=5) if field != "steps" else api.fit_quadratic(steps=value)


def test_unknown_choices_and_too_few_points_are_refused():
    with pytest.raises(BadInput, match="data set"):
        q.make_data("mnist")
    with pytest.raises(BadInput, match="loss"):
        api.fit_quadratic(loss="hinge")
    for points in (0, -5, 2):
        with pytest.raises(BadInput, match="at least 3 points"):
            q.make_data("lesson", points=points)


def test_extreme_settings_are_clamped_with_notes():
    settings = q.sgd_settings("MSE", lr=1e6, momentum=1.5, steps=10**6)
    assert (settings.loss, settings.lr, settings.momentum, settings.steps) == ("mse", 10, 0.99, 10_000)
    assert len(settings.notes) == 3 and all("using" in note for note in settings.notes)
    settings = q.sgd_settings("mae", lr=0, momentum=-1, steps=0)
    assert (settings.lr, settings.momentum, settings.steps) == (q.LR_RANGE[0], 0, 1)
    assert any("downhill" in note for note in settings.notes)
    data = q.make_data("lesson", noise=99, points=10**6, seed=-3)
    assert (data.noise, data.points, data.seed) == (10, 1000, 0) and len(data.notes) == 3


def test_extreme_inputs_through_the_api_function_never_crash():
    result = api.fit_quadratic(lr=1e6, steps=10**6, a=1e300, loss="mse")
    assert result["settings"]["lr"] == 10 and result["settings"]["steps"] == 10_000
    assert result["diverged"]
    assert any("1e+300" in note for note in result["notes"])
    json.dumps(result, allow_nan=False)
    zero = api.fit_quadratic(lr=0, steps=0)
    assert len(zero["trajectory"]["loss"]) == 1 and len(zero["notes"]) == 2


def test_fit_quadratic_returns_the_whole_trajectory():
    result = api.fit_quadratic("lesson", loss="mae", lr=0.01, steps=10)
    traj = result["trajectory"]
    assert len(traj["params"]) == len(traj["loss"]) == len(traj["grad"]) == 10
    assert traj["params"][0] == [1.1, 1.1, 1.1]
    assert set(result["final"]) == {"a", "b", "c", "loss"}
    assert result["settings"]["steps"] == 10 and result["notes"] == []
    assert len(result["data"]["x"]) == 20
    json.dumps(result, allow_nan=False)


def test_evaluate_quadratic_scores_a_guess():
    best = q.least_squares(lesson())
    at_best = api.evaluate_quadratic("lesson", a=best[0], b=best[1], c=best[2], loss="mse")
    assert at_best["distance"] == pytest.approx(0, abs=1e-9)
    assert at_best["loss"] == pytest.approx(at_best["least_squares"]["loss"])
    assert api.evaluate_quadratic(loss="mse")["loss"] > at_best["loss"]


# ---------------------------------------------------------------- the tab's session and pictures


def test_session_steps_carry_momentum_and_divergence_reverts():
    data = lesson()
    settings = q.sgd_settings("mse", lr=0.05, momentum=0.9, steps=1)
    session = qs.new_session(data, LESSON_START, "mse")
    for _ in range(5):
        session, _ = qs.advance(session, data, settings, 1)
    whole = q.sgd(data, LESSON_START, q.sgd_settings("mse", 0.05, 0.9, 5))
    np.testing.assert_allclose(session.params, whole.end)  # five single steps = one run of five
    assert session.steps == 5 and len(session.trace) == 5 and len(session.losses) == 5
    before = session.params.copy()
    session, run = qs.advance(session, data, q.sgd_settings("mse", lr=5, steps=100), 100)
    assert run.diverged and session.diverged_at == [session.steps - 1]
    np.testing.assert_allclose(session.params, before)
    assert session.velocity is None and "Diverged" in session.message
    assert qs.session_for(session, data, "mse", (0, 0, 0)) is session
    assert qs.session_for(session, data, "mae", (0, 0, 0)).steps == 0


def test_trace_table_is_newest_first():
    data = lesson()
    session, _ = qs.advance(qs.new_session(data, LESSON_START, "mae"), data, q.sgd_settings("mae", 0.01, 0, 3), 3)
    headers, rows = qs.trace_table(session)
    assert headers == qs.TRACE_COLUMNS and [row[0] for row in rows] == [2, 1, 0]


def test_plots_are_pngs_and_redraws_are_consistent():
    data, other = lesson(), roller()
    best = q.least_squares(data)
    first = plots.curve_png(data, best, LESSON_START)
    assert first[:8] == b"\x89PNG\r\n\x1a\n"
    plots.curve_png(other, q.least_squares(other), (1, 1, 1))
    assert plots.curve_png(data, best, LESSON_START) == first  # same picture after switching
    assert plots.curve_png(data, best, (math.nan, 1, 1e300))[:4] == b"\x89PNG"
    losses = [10.0, 5.0, 2.0, 1e12, math.inf, math.nan]
    assert plots.loss_png(losses, 1.0, "MSE", [4])[:4] == b"\x89PNG"
    grown = plots.loss_png([10.0, 5.0, 2.0], 1.0, "MSE", x_max=10)
    assert plots.loss_png([10.0, 5.0, 2.0], 1.0, "MSE", x_max=10) == grown
    rates = q.sgd_settings(lr=0.1, steps=50, schedule="cosine").rates()[0]
    cosine = plots.lr_png(rates)
    assert cosine[:4] == b"\x89PNG" and plots.lr_png([0.1] * 50) != cosine
    kept = plots.LrPlot()  # a figure drawn again shows only what it is given now
    kept.draw(np.full(300, 5.0), 300)
    assert kept.draw(rates, 49) == plots.LrPlot().draw(rates, 49) == cosine
