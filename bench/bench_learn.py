"""Speed of chapter 4's learning views on this machine, with one torch thread (as app.py serves); prints
figures beside the targets, judges nothing.

    .venv/bin/python bench/bench_learn.py [--repeats 7]

Targets from issue 14: 20 linear epochs under 0.3 s and 40 simple-net epochs under 1.5 s; each epoch's
redraw in the live view under 100 ms.

1. training from scratch (`learn_pixels.train`: starting weights, shuffles, mnist_loss, BasicOptim, the
   validation accuracy after every epoch) against a floor measured in the same run: the same batch steps
   and the same validation after each epoch, as a bare loop over fixed slices (no shuffling, no records);
2. one epoch's redraw: the section's outputs for the latest epoch (accuracy and loss tables, first-layer
   picture, status) and Gradio's postprocessing of them (the picture written as a PNG, the plots'
   tables serialised), after 20 / 40 epochs;
3. the quadratic tab's new views: 2000 SGD steps on 8 ReLUs with their two plots, and the loss landscape.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import gradio as gr  # noqa: E402
import torch  # noqa: E402

from dlcourse import learn_pixels as lp  # noqa: E402
from dlcourse import quadratic as q  # noqa: E402
from dlcourse import quadratic_session as qs  # noqa: E402
from dlcourse.pixel_similarity import PixelBaseline  # noqa: E402
from dlcourse.ui import learn_pixels as learn_ui  # noqa: E402
from dlcourse.ui import quadratic as quad_ui  # noqa: E402
from dlcourse.ui.common import Picture  # noqa: E402
from timing import percentile, timings_ms  # noqa: E402


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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(1)
    baseline = PixelBaseline.load()
    data = lp.data_for(baseline)
    print(f"torch threads {torch.get_num_threads()}; {len(data.train_x):,} training and {len(data.valid_x):,} "
          f"validation 3s and 7s")
    training(data, args.repeats)
    redraw(data, lp.baseline_accuracy(baseline), args.repeats)
    quadratic_views(args.repeats)
