"""Speed of the "Fit a quadratic" tab on this machine; prints figures, judges nothing.

    .venv/bin/python bench/bench_quadratic.py [--repeats 100] [--no-browser]

Targets from issue 8: a slider move returns a redrawn plot in < 100 ms; 1000 SGD steps run in < 1 s.

1. slider move, in process: the handler a slider's input event calls (new data + loss + blitted plot);
   and the plot alone, blitted vs a full matplotlib redraw (what blitting saves);
2. slider move through a real server on localhost: the same handler as an un-queued endpoint (as the
   tab's slider event is), called by gradio_client (HTTP, serialisation and the PNG data URL included);
3. slider move in a browser (Chromium, when installed): from the slider's input to the new image in the page;
4. 1000 SGD steps: `sgd` in process (torch autograd, float64), and /fit_quadratic through the API;
5. Run 1000 steps in the tab: frames, time per frame, and the whole animation (paced to be watchable).
"""
from __future__ import annotations

import argparse
import io
import itertools
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
from gradio_client import Client  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from dlcourse.quadratic import fit as q  # noqa: E402
from dlcourse.quadratic import plots  # noqa: E402
from dlcourse.ui import quadratic as ui  # noqa: E402
from support.serving import serving  # noqa: E402
from support.timing import percentile, timings_ms  # noqa: E402

LESSON = ["lesson", 1.0, 20, 42]


def varied(fn: Callable[[int], object]) -> Callable[[], object]:
    """`fn` called with 0, 1, 2, ...: each timed call moves a slider to a new value (nothing cached helps)."""
    calls = itertools.count()
    return lambda: fn(next(calls))


def show(label: str, times: list[float]) -> None:
    print(f"  {label}: p50 {statistics.median(times):.1f} ms, p95 {percentile(times, 95):.1f} ms (n={len(times)})")


def a_value(i: int) -> float:
    return round(1.1 + 0.05 * (i % 40), 2)  # a slider dragged back and forth


def full_redraw_png(data: q.Data, best: np.ndarray, params) -> bytes:
    """The plain way: a new figure, everything drawn, savefig (what gr.Plot does with a Figure)."""
    fig = Figure(figsize=plots.CURVE_SIZE, dpi=plots.DPI)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    xs = np.linspace(*data.spec.x_range, plots.CURVE_SAMPLES)
    ax.scatter(data.x, data.y, s=18)
    ax.plot(xs, q.quadratic(best, xs), "--")
    ax.plot(xs, q.quadratic(params, xs))
    ax.legend(["least squares", "data", "your curve"])
    out = io.BytesIO()
    fig.savefig(out, format="png")
    return out.getvalue()


def in_process(repeats: int) -> None:
    print("1. slider move, in process")
    show("handler (ui.move)",
         timings_ms(varied(lambda i: ui.move(*LESSON, a_value(i), 1.1, 1.1, "mae", False)), repeats))
    data = q.make_data(*LESSON)
    best = q.least_squares(data)
    show("plot only, blitted",
         timings_ms(varied(lambda i: plots.curve_png(data, best, (a_value(i), 1.1, 1.1))), repeats))
    show("plot only, full matplotlib redraw",
         timings_ms(varied(lambda i: full_redraw_png(data, best, (a_value(i), 1.1, 1.1))), max(repeats // 4, 5)))


def move_server() -> gr.Blocks:
    """The tab, and its slider handler as a public endpoint (in the tab a private event), same components out."""
    tab = ui.tab()
    with gr.Blocks() as demo:
        inputs = [gr.Textbox(), gr.Number(), gr.Number(), gr.Number(), gr.Number(), gr.Number(), gr.Number(),
                  gr.Textbox(), gr.Checkbox()]
        outputs = [gr.Plot(), gr.Markdown(), gr.Markdown(), gr.Plot(), gr.Plot(), gr.Dataframe(), gr.State()]
        gr.Button().click(ui.move, inputs, outputs, api_name="move", queue=False)  # as the tab's slider event
        tab.render()
    return demo


def through_server(repeats: int, browser: bool) -> None:
    with serving(move_server()) as url:
        client = Client(url, verbose=False)
        print("2. slider move through the server (gradio_client -> HTTP -> handler -> PNG data URL)")
        show("round trip", timings_ms(
            varied(lambda i: client.predict(*LESSON, a_value(i), 1.1, 1.1, "mae", False, api_name="/move")), repeats))
        print("4. 1000 SGD steps")
        show("/fit_quadratic, 1000 steps, through the API", timings_ms(
            lambda: client.predict(loss="mse", lr=0.1, momentum=0.9, steps=1000, api_name="/fit_quadratic"), 10))
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if browser and chromium:
            in_browser(url, chromium, repeats)
        else:
            print("3. slider move in a browser: skipped (no Chromium, or --no-browser)")


def in_browser(url: str, chromium: str, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    # Set the a slider's range input as a drag would, then wait for the plot's image to change.
    measure = """async (value) => {
        const img = document.querySelector('#quad-plot img');
        const before = img.getAttribute('src');
        const range = document.querySelector('#quad-a input[type=range]');
        const t0 = performance.now();
        const changed = new Promise((resolve) => {
            const obs = new MutationObserver(() => {
                const now = document.querySelector('#quad-plot img');
                if (now && now.getAttribute('src') !== before) { obs.disconnect(); resolve(); }
            });
            obs.observe(document.querySelector('#quad-plot'), {subtree: true, attributes: true, childList: true});
        });
        range.value = value;
        range.dispatchEvent(new Event('input', {bubbles: true}));
        await changed;
        return performance.now() - t0;
    }"""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(url)
        page.wait_for_selector("#quad-plot img", timeout=60_000)
        times = []
        for i in range(repeats + 1):
            ms = page.evaluate(measure, str(a_value(i + 1)))
            if i:
                times.append(ms)
            page.wait_for_timeout(30)
        browser.close()
    print("3. slider move in Chromium (input event -> new plot image in the page)")
    show("slider to picture", times)


def sgd_speed() -> None:
    data = q.make_data(*LESSON)
    settings = q.sgd_settings("mse", 0.1, 0.9, 1000)
    times = timings_ms(lambda: q.sgd(data, (1.1, 1.1, 1.1), settings), 10)
    print("4. 1000 SGD steps")
    show("sgd() in process (autograd, recording every step)", times)


def run_animation() -> None:
    frames, stamps = 0, []
    start = time.perf_counter()
    for _ in ui.sgd_steps(*LESSON, 1.1, 1.1, 1.1, "mse", -1, 0.9, 1000, False, None):
        frames += 1
        stamps.append(time.perf_counter())
    total = time.perf_counter() - start
    gaps = np.diff([start] + stamps) * 1000
    print("5. Run 1000 steps in the tab (a generator; frames paced at >= "
          f"{ui.FRAME_SECONDS * 1000:.0f} ms, at most {ui.MAX_FRAMES})")
    print(f"  {frames} frames in {total:.2f} s; time between frames p50 {np.median(gaps):.0f} ms, "
          f"max {gaps.max():.0f} ms")
    ui.FRAME_SECONDS, pace = 0.0, ui.FRAME_SECONDS
    start = time.perf_counter()
    for _ in ui.sgd_steps(*LESSON, 1.1, 1.1, 1.1, "mse", -1, 0.9, 1000, False, None):
        pass
    ui.FRAME_SECONDS = pace
    print(f"  the same without pacing (compute + drawing only): {time.perf_counter() - start:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    in_process(args.repeats)
    sgd_speed()
    run_animation()
    through_server(args.repeats, browser=not args.no_browser)


if __name__ == "__main__":
    main()
