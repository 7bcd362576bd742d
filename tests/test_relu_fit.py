"""The quadratic tab's new views: a sum of ReLUs fitted by SGD (/fit_relus), and the loss over two of a, b, c
with SGD's path; logic, the handlers the browser calls, and the endpoint through gradio_client and plain HTTP."""
from __future__ import annotations

import json
import math

import gradio as gr
import httpx
import numpy as np
import pytest
import torch
from conftest import serving
from gradio.components.plot import PlotData
from gradio_client import Client
from gradio_client.exceptions import AppError

from dlcourse.quadratic import fit as q
from dlcourse.quadratic import api
from dlcourse.quadratic import session as qs
from dlcourse.quadratic import relu_fit as rf
from dlcourse.errors import BadInput
from dlcourse.training.schedules import one_cycle
from dlcourse.ui import quadratic as ui

LESSON = q.make_data("lesson")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # as app.py serves


# ---------------------------------------------------------------- ReLUs


def test_relu_parts_are_rectified_lines_and_add_up_to_the_sum():
    slopes, intercepts, x = np.array([1.0, -2.0]), np.array([0.5, 1.0]), np.linspace(-2, 2, 9)
    parts = rf.relu_parts(slopes, intercepts, x)
    assert parts.shape == (2, 9) and parts.min() == 0
    assert np.allclose(parts[0], np.maximum(x + 0.5, 0)) and np.allclose(parts[1], np.maximum(1 - 2 * x, 0))
    assert np.allclose(rf.relu_sum(slopes, intercepts, 3.0, x), parts.sum(0) + 3)
    torch_parts = rf.relu_parts(torch.from_numpy(slopes), torch.from_numpy(intercepts), torch.from_numpy(x))
    assert np.allclose(torch_parts.numpy(), parts)


def test_eight_relus_fit_the_lesson_better_than_the_best_quadratic():
    result = api.fit_relus("lesson", relus=8, loss="mse", lr=0.01, momentum=0.9, steps=2000, seed=42)
    quadratic = result["least_squares"]["loss"]
    assert quadratic == pytest.approx(1.6924, abs=1e-4)
    assert result["final"]["loss"] < 0.7 * quadratic
    losses = result["trajectory"]["loss"]
    assert len(losses) == 2000 and losses[-1] < losses[0] / 5 and not result["diverged"]
    assert len(result["final"]["relus"]) == 8 and len(result["trajectory"]["fresh_loss"]) == 2000
    # the ReLUs reported in x's units give the reported loss
    relus = result["final"]["relus"]
    fit = rf.ReluFit(np.array([r["slope"] for r in relus]), np.array([r["intercept"] for r in relus]),
                     result["final"]["constant"], np.array(losses), np.array([]), math.nan, math.nan)
    assert rf.loss_of_fit(fit, LESSON.x, LESSON.y, "mse") == pytest.approx(result["final"]["loss"], rel=1e-6)
    for r in relus:  # each kink is where its line crosses zero
        assert r["slope"] * r["kink"] + r["intercept"] == pytest.approx(0, abs=1e-6)


def test_many_relus_chase_the_noise_and_say_so():
    many = api.fit_relus("lesson", relus=32, loss="mse", lr=0.01, momentum=0.9, steps=2000, seed=42)
    assert many["chasing_noise"] and "Chasing the noise" in many["message"]
    fresh, train = many["trajectory"]["fresh_loss"], many["trajectory"]["loss"]
    lowest = int(np.argmin(fresh))
    assert many["final"]["fresh_loss"] > 1.05 * fresh[lowest] and many["final"]["loss"] < train[lowest]
    few = api.fit_relus("lesson", relus=8, loss="mse", lr=0.01, momentum=0.9, steps=2000, seed=42)
    assert not few["chasing_noise"] and "Chasing" not in few["message"]


def test_one_relu_cannot_bend_enough():
    one = api.fit_relus("lesson", relus=1, loss="mse", lr=0.01, momentum=0.9, steps=2000, seed=42)
    assert one["final"]["loss"] > 2 * one["least_squares"]["loss"]


def test_fresh_points_come_from_the_same_curve_and_never_change():
    fresh = rf.fresh_points(LESSON)
    assert len(fresh.x) == rf.FRESH_POINTS and fresh.x.min() >= -2 and fresh.x.max() <= 2
    assert np.array_equal(fresh.y, rf.fresh_points(LESSON).y)
    clean = rf.fresh_points(q.make_data("lesson", noise=0))
    assert np.allclose(clean.y, 3 * clean.x**2 + 2 * clean.x + 1)


def test_same_seed_same_fit():
    first = api.fit_relus(relus=4, steps=300, seed=5)
    assert api.fit_relus(relus=4, steps=300, seed=5) == first
    assert api.fit_relus(relus=4, steps=300, seed=6)["final"] != first["final"]


def test_the_roller_coaster_fits_too_on_standardised_x():
    result = api.fit_relus("roller_coaster", relus=8, loss="mse", lr=0.01, momentum=0.9, steps=2000, seed=42)
    assert not result["diverged"] and result["final"]["loss"] < result["least_squares"]["loss"]


def test_too_high_a_learning_rate_diverges_with_the_reason():
    result = api.fit_relus(relus=8, loss="mse", lr=1e6, momentum=0.9, steps=10**6)
    assert result["diverged"] and "too high" in result["message"]
    assert result["notes"] == ["learning rate 1e+06 is outside [1e-06, 10]: using 10.",
                               "steps 1,000,000 is outside [1, 10,000]: using 10,000."]
    assert len(result["trajectory"]["loss"]) < 100  # it stopped as soon as it blew up


@pytest.mark.parametrize("relus, note", [(0, "ReLUs 0 is outside [1, 32]: using 1."),
                                         (1000, "ReLUs 1,000 is outside [1, 32]: using 32.")])
def test_the_number_of_relus_is_clamped_with_a_note(relus, note):
    result = api.fit_relus(relus=relus, steps=5)
    assert note in result["notes"] and len(result["final"]["relus"]) == result["settings"]["relus"]


@pytest.mark.parametrize("field, value, message", [
    ("relus", float("nan"), "ReLUs must be a finite number, not nan"),
    ("lr", "fast", "learning rate must be a number, not 'fast'"),
    ("loss", "hinge", "Unknown loss 'hinge'"),
    ("dataset", "stocks", "Unknown data set 'stocks'"),
])
def test_nonsense_is_refused_with_a_clear_message(field, value, message):
    with pytest.raises(BadInput, match=message):
        api.fit_relus(**{field: value, "steps": 5})


# ---------------------------------------------------------------- the loss landscape


def test_the_loss_surface_is_lowest_at_least_squares_for_mse():
    best = q.least_squares(LESSON)
    surface = q.loss_surface(LESSON, "mse", best, q.pair_indices("a and b"))
    assert surface.losses.shape == (q.SURFACE_SIZE, q.SURFACE_SIZE) and surface.names == ("a", "b", "c")
    assert surface.fixed == pytest.approx(best[2])
    row, col = np.unravel_index(int(surface.losses.argmin()), surface.losses.shape)
    step = (surface.xs[1] - surface.xs[0], surface.ys[1] - surface.ys[0])
    assert abs(surface.xs[col] - best[0]) <= step[0] and abs(surface.ys[row] - best[1]) <= step[1]
    assert surface.losses.min() == pytest.approx(q.loss_of(best, LESSON, "mse"), rel=1e-2)
    k, j = 10, 20  # any grid point is the loss of those parameters
    assert surface.losses[k, j] == pytest.approx(q.loss_of([surface.xs[j], surface.ys[k], best[2]], LESSON, "mse"))


def test_the_surface_holds_the_whole_path_but_not_a_blow_up():
    path = [[1.1, 1.1, 1.1], [-3.0, 6.0, 1.1], [1e9, 1e9, 1.1]]
    surface = q.loss_surface(LESSON, "mae", [1.1, 1.1, 1.1], q.pair_indices("a and b"), path)
    assert surface.xs[0] <= -3 and surface.ys[-1] >= 6 and surface.xs[-1] < 1e3
    with pytest.raises(BadInput, match="Unknown pair"):
        q.pair_indices("a and z")


def test_the_session_keeps_sgds_path_and_breaks_it_after_a_divergence():
    session = qs.new_session(LESSON, (1.1, 1.1, 1.1), "mse")
    session, _ = qs.advance(session, LESSON, q.sgd_settings("mse", 0.01, 0.9, 5), 5)
    assert len(session.path) == 5 and session.path[0] == [1.1, 1.1, 1.1]
    session, run = qs.advance(session, LESSON, q.sgd_settings("mse", 10, 0, 50), 50)
    assert run.diverged and all(math.isnan(v) for v in session.path[-1])


@pytest.mark.parametrize("schedule", ["constant", "cosine", "one-cycle"])
def test_relus_step_as_torch_sgd_under_the_schedule(schedule):
    settings = q.sgd_settings("mse", 0.02, 0.9, 300, schedule=schedule)
    result = rf.fit(LESSON, 6, settings, seed=7)
    params = [p.requires_grad_() for p in rf.start_params(6, 7)]
    optimizer = torch.optim.SGD(params, lr=settings.lr, momentum=settings.momentum)
    scheduler = {"constant": lambda: None,
                 "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=settings.steps),
                 "one-cycle": lambda: one_cycle(optimizer, settings.lr, settings.steps, settings.momentum)}[schedule]()
    scaler = q.Standardiser.of(LESSON.x)
    x, y = torch.from_numpy(scaler.apply(LESSON.x)), torch.from_numpy(LESSON.y)
    for _ in range(settings.steps):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(rf.relu_sum(*params, x), y).backward()
        optimizer.step()
        if scheduler:
            scheduler.step()
    slopes, intercepts, constant = (p.detach().numpy() for p in params)
    np.testing.assert_allclose(result.slopes, slopes / scaler.std, rtol=0, atol=1e-9)
    np.testing.assert_allclose(result.intercepts, intercepts - slopes * scaler.mean / scaler.std, rtol=0, atol=1e-9)
    assert result.constant == pytest.approx(float(constant), abs=1e-9)
    lrs = api.fit_relus("lesson", 6, "mse", 0.02, 0.9, 300, 7, schedule=schedule)["trajectory"]["lr"]
    np.testing.assert_allclose(lrs, settings.rates()[0])


# ---------------------------------------------------------------- the handlers the browser calls


def test_fit_with_relus_handler_draws_both_plots_and_says_what_happened():
    picture, losses, text = ui.fit_with_relus("lesson", 1.0, 20, 42, "mse", -2, 0.9, 8, 2000)
    assert isinstance(picture, PlotData) and picture.plot.startswith("data:image/png;base64,")
    assert isinstance(losses, PlotData)
    assert text.startswith("8 ReLUs, 2000 steps: MSE") and "least-squares quadratic: 1.692" in text
    _, _, clamped = ui.fit_with_relus("lesson", 1.0, 20, 42, "mse", -2, 0.9, 100, 5)
    assert "ReLUs 100 is outside [1, 32]: using 32." in clamped
    with pytest.raises(gr.Error, match="ReLUs is missing"):
        ui.fit_with_relus("lesson", 1.0, 20, 42, "mse", -2, 0.9, None, 5)


def test_landscape_handler_draws_contours_for_each_pair():
    session = qs.new_session(LESSON, (1.1, 1.1, 1.1), "mae")
    session, _ = qs.advance(session, LESSON, q.sgd_settings("mae", 0.01, 0, 20), 20)
    pictures = {pair: ui.landscape("lesson", 1.0, 20, 42, 1.1, 1.1, 1.1, "mae", pair, session).plot
                for pair in q.PAIRS}
    assert len(set(pictures.values())) == 3
    with pytest.raises(gr.Error, match="Unknown pair"):
        ui.landscape("lesson", 1.0, 20, 42, 1.1, 1.1, 1.1, "mae", "x and y", session)


# ---------------------------------------------------------------- the endpoint


@pytest.fixture(scope="module")
def quad_url():
    with serving(ui.tab()) as url:
        yield url


def test_fit_relus_through_gradio_client(quad_url):
    client = Client(quad_url, verbose=False)
    endpoint = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/fit_relus"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == [
        "dataset", "relus", "loss", "lr", "momentum", "steps", "seed", "noise", "points", "schedule"]
    tools = {tool["name"]: tool for tool in httpx.get(quad_url + "gradio_api/mcp/schema").json()}
    assert all(schema["description"] for schema in tools["fit_relus"]["inputSchema"]["properties"].values())
    result = client.predict(dataset="lesson", relus=8, loss="mse", lr=0.01, momentum=0.9, steps=2000, seed=42,
                            api_name="/fit_relus")
    assert result == api.fit_relus("lesson", 8, "mse", 0.01, 0.9, 2000, 42)
    assert result["final"]["loss"] < result["least_squares"]["loss"] and len(result["trajectory"]["loss"]) == 2000
    with pytest.raises(AppError, match="Unknown loss"):
        client.predict(loss="hinge", api_name="/fit_relus")
    body = json.dumps({"data": ["lesson", 8, "mse", float("nan"), 0.9, 10, 42, 1, 20, "constant"]})
    event = httpx.post(quad_url + "gradio_api/call/fit_relus", content=body,
                       headers={"Content-Type": "application/json"}).json()["event_id"]
    stream = httpx.get(f"{quad_url}gradio_api/call/fit_relus/{event}", timeout=30).text
    assert "event: error" in stream and "learning rate must be a finite number" in stream
    assert client.predict(relus=2, steps=3, api_name="/fit_relus")["final"]["loss"] > 0  # still serving
    cosine = client.predict(relus=4, steps=50, schedule="cosine", api_name="/fit_relus")
    assert cosine == api.fit_relus(relus=4, steps=50, schedule="cosine") and cosine["trajectory"]["lr"][-1] < 1e-4
    with pytest.raises(AppError, match="Unknown schedule 'warm'"):
        client.predict(schedule="warm", api_name="/fit_relus")
