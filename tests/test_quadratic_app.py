"""The quadratic tab served by Gradio: its API endpoints through gradio_client and plain HTTP, and its
handlers as the browser's events call them."""
from __future__ import annotations

import json

import gradio as gr
import httpx
import numpy as np
import pytest
from conftest import serving
from gradio.components.plot import PlotData
from gradio_client import Client
from gradio_client.exceptions import AppError

from dlcourse.quadratic import api
from dlcourse.quadratic import fit as q
from dlcourse.quadratic import plots
from dlcourse.ui import quadratic as ui


@pytest.fixture(scope="module")
def quad_url():
    with serving(ui.tab()) as url:
        yield url


@pytest.fixture(scope="module")
def quad_client(quad_url) -> Client:
    return Client(quad_url, verbose=False)


# ---------------------------------------------------------------- the API


def test_api_page_shows_the_endpoints_with_their_docs(quad_client):
    api = quad_client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/fit_quadratic", "/quadratic_loss", "/fit_relus"}
    assert not api["unnamed_endpoints"]  # the UI's own events stay private
    fit = api["named_endpoints"]["/fit_quadratic"]
    assert [p["parameter_name"] for p in fit["parameters"]] == [
        "dataset", "noise", "points", "seed", "a", "b", "c", "loss", "lr", "momentum", "steps", "standardise",
        "schedule"]
    info = httpx.get(quad_client.src.rstrip("/") + "/gradio_api/info").json()
    assert "SGD" in info["named_endpoints"]["/fit_quadratic"]["description"]
    # "Use via API" shows the schedule's choices and default; the MCP schema also says what each does
    (schedule,) = [p for p in info["named_endpoints"]["/fit_quadratic"]["parameters"]
                   if p["parameter_name"] == "schedule"]
    assert schedule["parameter_default"] == "constant"
    assert schedule["type"]["enum"] == ["constant", "cosine", "one-cycle"]
    tools = {tool["name"]: tool for tool in httpx.get(quad_client.src.rstrip("/") + "/gradio_api/mcp/schema").json()}
    described = tools["fit_quadratic"]["inputSchema"]["properties"]["schedule"]["description"]
    assert "CosineAnnealingLR" in described and "OneCycleLR" in described and "train.py" in described


def test_fit_quadratic_through_gradio_client(quad_client):
    result = quad_client.predict(dataset="lesson", a=1.1, b=1.1, c=1.1, loss="mae", lr=0.01, steps=10,
                                 api_name="/fit_quadratic")
    losses = result["trajectory"]["loss"]
    assert len(losses) == 10 and all(later < earlier for earlier, later in zip(losses, losses[1:]))
    assert len(result["trajectory"]["grad"]) == 10 and not result["diverged"]

    close = quad_client.predict(dataset="roller_coaster", a=1, b=1, c=1, loss="mse", lr=0.1, momentum=0.9,
                                steps=1000, standardise=True, api_name="/fit_quadratic")
    best = np.array([close["least_squares"][k] for k in "abc"])
    final = np.array([close["final"][k] for k in "abc"])
    assert q.close_to(final, best) and "within 2%" in close["message"]

    one_cycle = quad_client.predict(loss="mse", lr=0.25, steps=100, schedule="one-cycle", api_name="/fit_quadratic")
    assert one_cycle == api.fit_quadratic(loss="mse", lr=0.25, steps=100, schedule="one-cycle")
    assert one_cycle["trajectory"]["lr"][0] == pytest.approx(0.01) and not one_cycle["diverged"]


def test_quadratic_loss_through_gradio_client(quad_client):
    result = quad_client.predict(dataset="lesson", a=3, b=2, c=1, loss="mse", api_name="/quadratic_loss")
    assert result["loss"] > result["least_squares"]["loss"] > 0 and result["distance"] > 0


def test_bad_inputs_give_clear_errors_to_the_client(quad_client):
    with pytest.raises(AppError, match="at least 3 points"):
        quad_client.predict(points=0, api_name="/fit_quadratic")
    with pytest.raises(AppError, match="Unknown loss"):
        quad_client.predict(loss="hinge", api_name="/fit_quadratic")
    with pytest.raises(AppError, match="Unknown schedule 'step': choose 'constant', 'cosine'"):
        quad_client.predict(schedule="step", api_name="/fit_quadratic")
    extreme = quad_client.predict(lr=1e6, steps=10**6, loss="mse", api_name="/fit_quadratic")
    assert extreme["diverged"] and len(extreme["notes"]) == 2 and "too high" in extreme["message"]


def test_nan_over_plain_http_is_refused(quad_url):
    # gradio_client cannot even send NaN; other clients can (Python's json writes it).
    body = '{"data": ["lesson", 1, 20, 42, 1.1, 1.1, 1.1, "mse", NaN, 0, 10, false, "constant"]}'
    event = httpx.post(quad_url + "gradio_api/call/fit_quadratic", content=body,
                       headers={"Content-Type": "application/json"}).json()["event_id"]
    stream = httpx.get(f"{quad_url}gradio_api/call/fit_quadratic/{event}", timeout=30).text
    assert "event: error" in stream and "finite number" in stream


# ---------------------------------------------------------------- the handlers the browser calls

LESSON = ["lesson", 1.0, 20, 42, 1.1, 1.1, 1.1, "mae"]


@pytest.fixture
def no_pauses(monkeypatch):
    monkeypatch.setattr(ui, "FRAME_SECONDS", 0.0)


def test_slider_move_redraws_plot_and_loss():
    plot, loss_line, status, loss_curve, lr_curve, trace, session = ui.move(*LESSON, False)
    assert isinstance(plot, PlotData) and plot.plot.startswith("data:image/png;base64,")
    assert "2.422" in loss_line and loss_curve is None and lr_curve is None and trace.empty and session.steps == 0
    assert status == ""


def test_run_animates_and_sliders_follow(no_pauses):
    frames = list(ui.sgd_steps(*LESSON, -2, 0.0, 100, False, None))
    assert 2 < len(frames) <= ui.MAX_FRAMES
    plot, loss_line, status, loss_curve, lr_curve, trace, session, a, b, c = frames[-1]
    assert session.steps == 100 and isinstance(loss_curve, PlotData) and isinstance(lr_curve, PlotData)
    assert [a["value"], b["value"], c["value"]] == pytest.approx(session.params, abs=1e-4)
    assert "100 steps" in status and list(trace["step"])[:2] == [99, 98]
    assert all("Running" in frame[2] for frame in frames[:-1])
    # Step once continues the same session
    (frame,) = list(ui._step_once(*LESSON, -2, 0.0, 100, False, session))
    assert frame[6].steps == 101


def test_a_scheduled_run_draws_its_learning_rates_under_the_loss(no_pauses):
    frames = list(ui.sgd_steps(*LESSON, 0.0, 0.0, 100, False, None, "cosine"))
    *_, lr_curve, trace, session, a, b, c = frames[-1]
    fit = api.fit_quadratic(loss="mae", lr=1.0, steps=100, schedule="cosine")
    assert session.lrs == fit["trajectory"]["lr"] and session.losses == fit["trajectory"]["loss"]
    assert [a["value"], b["value"], c["value"]] == pytest.approx([fit["final"][k] for k in "abc"], abs=1e-4)
    # the whole run's schedule is drawn from its first frame on
    assert lr_curve.plot == plots.data_url(plots.lr_png(fit["trajectory"]["lr"], 100))
    assert all(frame[4].plot == lr_curve.plot for frame in frames)
    # the next run starts its schedule again
    frames = list(ui.sgd_steps(*LESSON, 0.0, 0.0, 10, False, session, "one-cycle"))
    session = frames[-1][6]
    assert session.lrs[100:] == q.sgd_settings(lr=1.0, steps=10, schedule="one-cycle").rates()[0].tolist()
    with pytest.raises(gr.Error, match="Unknown schedule"):
        list(ui.sgd_steps(*LESSON, 0.0, 0.0, 10, False, None, "sometimes"))


def test_divergence_in_the_tab_says_why_and_puts_parameters_back(no_pauses):
    frames = list(ui.sgd_steps(*LESSON[:-1], "mse", 0.5, 0.0, 200, False, None))
    *_, status, _, _, _, session, a, b, c = frames[-1]
    assert "Diverged" in status and "too high" in status and session.diverged_at
    np.testing.assert_allclose(session.params, [1.1, 1.1, 1.1])
    assert [a["value"], b["value"], c["value"]] == [1.1, 1.1, 1.1]


def test_raw_roller_coaster_points_at_standardise(no_pauses):
    roller = ["roller_coaster", 1.0, 20, 42, 1, 1, 1, "mse"]
    assert "standardise" in ui.move(*roller, False)[2]
    assert ui.move(*roller, True)[2] == ""
    frames = list(ui.sgd_steps(*roller, -5, 0.0, 1000, False, None))
    status = frames[-1][2]
    assert "1000 steps" in status and "Badly scaled" in status and "standardise" in status
    c = frames[-1][-1]
    assert c["value"] < 10  # the c slider has hardly moved


def test_bad_input_in_a_streaming_handler_becomes_a_gradio_error():
    with pytest.raises(gr.Error, match="Unknown loss"):
        list(ui.sgd_steps(*LESSON[:-1], "hinge", -2, 0.0, 10, False, None))
    with pytest.raises(gr.Error, match="seed"):
        ui.move("lesson", 1.0, 20, None, 1, 1, 1, "mae", False)


def test_dataset_preset_sets_ranges_start_loss_and_lr():
    a, b, c, loss, lr_log = ui.preset("roller_coaster")
    assert (c.minimum, c.maximum, c.value) == (-100, 200, 1.0)
    assert loss == "mse" and lr_log == pytest.approx(-5)
    json.dumps([loss, lr_log])
