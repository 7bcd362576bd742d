"""Speed of chapter 4's learning views on this machine, with one torch thread (as app.py serves); prints
figures beside the targets, judges nothing.

    .venv/bin/python bench/bench_learn.py [--repeats 7] [--no-browser]

Targets from issue 14: 20 linear epochs under 0.3 s and 40 simple-net epochs under 1.5 s; each epoch's
redraw in the live view under 100 ms.

1. training from scratch (`learn_pixels.train`: starting weights, shuffles, mnist_loss, BasicOptim, the
   validation accuracy after every epoch) against a floor measured in the same run: the same batch steps
   and the same validation after each epoch, as a bare loop over fixed slices (no shuffling, no records);
2. one epoch's redraw: the section's outputs for the latest epoch (accuracy and loss tables, first-layer
   picture, status) and Gradio's postprocessing of them (the picture written as a PNG, the plots'
   tables serialised), after 20 / 40 epochs;
3. the quadratic tab's new views: 2000 SGD steps on 8 ReLUs with their two plots, and the loss landscape;
4. the live view in Chromium (when installed): "Train N epochs" on a real server with the pause between
   epochs removed, the time from one epoch's status to the next in the page: training the epoch, its
   redraw, the transfer and the page's update of both plots and the picture.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from dlcourse.pixels import learn as lp  # noqa: E402
from dlcourse.quadratic import fit as q  # noqa: E402
from dlcourse.quadratic import session as qs  # noqa: E402
from dlcourse.pixels.baseline import PixelBaseline  # noqa: E402
from dlcourse.ui import learn_pixels as learn_ui  # noqa: E402
from dlcourse.ui import quadratic as quad_ui  # noqa: E402
from dlcourse.ui.common import Picture  # noqa: E402
from support.serving import serving  # noqa: E402
from support.timing import percentile, timings_ms  # noqa: E402


def bare_loop(data: lp.ThreesAndSevens, settings: lp.Settings) -> None:
    """The floor: the same batch steps (forward, mnist_loss, backward, SGD step) and the same validation after
    each epoch, and nothing else."""
    params = lp.init_params(settings.model, False, torch.Generator().manual_seed(settings.seed))
    x, y, size = data.train_x, data.train_y, settings.batch_size
    for _ in range(settings.epochs):
        for start in range(0, len(x), size):
            lp.mnist_loss(lp.forward(params, x[start:start + size]), y[start:start + size]).backward()
            with torch.no_grad():
                for p in params:
                    p -= p.grad * settings.lr
                    p.grad = None
        with torch.no_grad():
            lp.batch_accuracy(lp.forward(params, data.valid_x), data.valid_y)


def training(data: lp.ThreesAndSevens, repeats: int) -> None:
    for model, epochs, target in (("linear", 20, 0.3), ("simple net", 40, 1.5)):
        settings = lp.settings(model, 1.0, epochs, 256, 42, train_images=len(data.train_x))
        ours, floor = [], []
        for _ in range(repeats):  # interleaved: drift of a shared machine's speed hits both alike
            ours += timings_ms(lambda: lp.train(data, settings), 1)
            floor += timings_ms(lambda: bare_loop(data, settings), 1)
        accuracy = lp.train(data, settings).valid_accuracy[-1]
        mine, bare = statistics.median(ours) / 1000, statistics.median(floor) / 1000
        print(f"{epochs} {model} epochs (lr 1, batch 256): median {mine:.3f} s, best {min(ours) / 1000:.3f} s "
              f"(target < {target} s); bare loop {bare:.3f} s: {mine / bare:.2f}x; validation accuracy {accuracy:.2%}")


def redraw(data: lp.ThreesAndSevens, baseline: float, repeats: int) -> None:
    with gr.Blocks():
        picture = Picture(type="pil", format="png", image_mode=None)
        accuracy = gr.LinePlot(x="epoch", y="accuracy", color="series")
        loss = gr.LinePlot(x="epoch", y="loss")

    for model, epochs in (("linear", 20), ("simple net", 40)):
        done = lp.train(data, lp.settings(model, 1.0, epochs, 256, 42, train_images=len(data.train_x)))

        def frame():
            update, losses, layer, status, _ = learn_ui._view(done, baseline, epochs, [])
            picture.postprocess(layer)
            accuracy.postprocess(update["value"])
            loss.postprocess(losses)
            return status

        times = timings_ms(frame, repeats * 10)
        print(f"one epoch's redraw, {model} after {epochs} epochs: p50 {statistics.median(times):.1f} ms, "
              f"p95 {percentile(times, 95):.1f} ms (target < 100 ms)")


def quadratic_views(repeats: int) -> None:
    relus = timings_ms(lambda: quad_ui.fit_with_relus("lesson", 1.0, 20, 42, "mse", -2, 0.9, 8, 2000), repeats)
    print(f"Fit with ReLUs, 8 ReLUs x 2000 steps with both plots: median {statistics.median(relus):.0f} ms")
    data = q.make_data()
    session = qs.new_session(data, (1.1, 1.1, 1.1), "mse")
    session, _ = qs.advance(session, data, q.sgd_settings("mse", 0.1, 0.9, 200), 200)
    contours = timings_ms(lambda: quad_ui.landscape("lesson", 1.0, 20, 42, 1.1, 1.1, 1.1, "mse", "a and b", session),
                          repeats)
    print(f"loss landscape with a 200-step path: median {statistics.median(contours):.0f} ms")


def in_browser(baseline: PixelBaseline, chromium: str, epochs: int = 20) -> None:
    from playwright.sync_api import sync_playwright

    learn_ui.FRAME_SECONDS = 0.0  # no pause between epochs: frames as fast as they can be made and shown
    record = """() => {
        window.__stamps = [];
        const status = document.querySelector('#learn-status');
        new MutationObserver(() => {
            const m = status.innerText.match(/epoch (\\d+):/);
            if (m && !window.__stamps.some(s => s[0] === +m[1])) window.__stamps.push([+m[1], performance.now()]);
        }).observe(status, {childList: true, subtree: true, characterData: true});
    }"""
    with serving(learn_ui.section(baseline)) as url, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(url)
        page.locator("#learn-epochs input[type=number]").fill(str(epochs))
        page.locator("#learn-epochs input[type=number]").press("Enter")
        for model in lp.MODEL_NAMES:
            page.locator("#learn-model").get_by_text(model).click()
            page.locator("#learn-status").filter(has_text=f"{model}, epoch 0").wait_for()
            page.evaluate(record)
            page.locator("#learn-run").click()
            page.locator("#learn-status").filter(has_text=f"epoch {epochs}:").wait_for(timeout=120_000)
            stamps = [stamp for stamp in page.evaluate("() => window.__stamps") if stamp[0] >= 1]
            gaps = [later[1] - earlier[1] for earlier, later in zip(stamps, stamps[1:])]
            print(f"Chromium, {model}, Train {epochs} epochs without pauses: {len(stamps)} epochs shown, one to the "
                  f"next p50 {statistics.median(gaps):.0f} ms, p95 {percentile(gaps, 95):.0f} ms (training the "
                  f"epoch included)")
        browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    baseline = PixelBaseline.load()
    data = lp.data_for(baseline)
    print(f"torch threads {torch.get_num_threads()}; {len(data.train_x):,} training and {len(data.valid_x):,} "
          f"validation 3s and 7s")
    training(data, args.repeats)
    redraw(data, lp.baseline_accuracy(baseline), args.repeats)
    quadratic_views(args.repeats)
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium and not args.no_browser:
        in_browser(baseline, chromium)
    else:
        print("Chromium: skipped (not installed, or --no-browser)")
