"""Pixel-similarity speed on this machine; prints figures beside the targets, judges nothing.

    .venv/bin/python bench/bench_pixel_similarity.py [--repeats 200] [--skip-http]

1. one drawing to result: a 280x280 sketchpad PNG decoded, made MNIST-style, compared with the ideals, and
   turned into every output of the tab (pictures, distances table): p50 / p95, target < 30 ms;
2. the whole 10,000-image MNIST test set, all modes (3 or 7 and all ten, L1 and L2), from the uint8
   arrays: target < 1 s;
3. through the HTTP API (a real server on localhost, gradio_client): p50 / p95, for reference.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dlcourse.mnist import load_split  # noqa: E402
from dlcourse.pixels.baseline import DISTANCES, MODES, PixelBaseline  # noqa: E402
from support.serving import sketch_value  # noqa: E402
from support.timing import percentile, timings_ms  # noqa: E402

EXAMPLE = ROOT / "examples" / "mnist-test-3.png"


def one_drawing(baseline: PixelBaseline, repeats: int) -> None:
    from dlcourse.ui.common import image_from_sketch
    from dlcourse.ui.pixel_similarity import present

    with tempfile.TemporaryDirectory() as folder:
        sketch = sketch_value(Path(folder), digit=EXAMPLE)
        combos = [(mode, distance) for mode in MODES for distance in DISTANCES]
        times: dict[tuple[str, str], list[float]] = {combo: [] for combo in combos}
        for _ in range(5):  # interleaved, so drift of a shared machine's speed hits every combination alike
            for mode, distance in combos:
                times[mode, distance] += timings_ms(
                    lambda: present(baseline.compare_image(image_from_sketch(sketch), mode, distance)), repeats // 5
                )
        for (mode, distance), ms in times.items():
            print(f"one drawing to result, {mode}, {distance}: p50 {statistics.median(ms):.2f} ms, "
                  f"p95 {percentile(ms, 95):.2f} ms (target < 30 ms)")


def whole_test_set(baseline: PixelBaseline, rounds: int) -> None:
    images, labels = load_split(ROOT / "data" / "mnist", "test")
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        accuracy = baseline.accuracies(images, labels)
        times.append(time.perf_counter() - start)
    figures = "; ".join(f"{mode} " + ", ".join(f"{d} {v:.2%}" for d, v in by.items()) for mode, by in accuracy.items())
    print(f"whole {len(images):,}-image test set, all modes: median {statistics.median(times):.3f} s, "
          f"best {min(times):.3f} s of {rounds} (target < 1 s) [{figures}]")
    for mode in MODES:
        for distance in DISTANCES:
            one = timings_ms(lambda: baseline.accuracy_on(images, labels, mode, distance), 3)
            print(f"  {mode}, {distance}: median {statistics.median(one):.0f} ms")


def http(baseline: PixelBaseline, repeats: int) -> None:
    from gradio_client import Client, handle_file

    from support.serving import serving
    from dlcourse.ui import pixel_similarity

    with serving(pixel_similarity.tab(baseline, None)) as url:
        client = Client(url, verbose=False)
        file = handle_file(EXAMPLE)
        times = timings_ms(lambda: client.predict(file, "all ten digits", "L2", api_name="/pixel_similarity"), repeats)
    print(f"HTTP API (gradio_client, localhost, /pixel_similarity): p50 {statistics.median(times):.1f} ms, p95 {percentile(times, 95):.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5, help="passes over the whole test set")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    baseline = PixelBaseline.load()
    print(f"torch threads {torch.get_num_threads()}")
    one_drawing(baseline, args.repeats)
    whole_test_set(baseline, args.rounds)
    if not args.skip_http:
        http(baseline, args.repeats // 4)
