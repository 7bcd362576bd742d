"""Learning-rate schedules on the "Fit a quadratic" tab's data: where each one ends; prints figures, judges nothing.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_schedules.py [--repeats 20]

1. For each case (data set, loss, learning rate, momentum, steps; the data set's start, as the tab's), the final
   loss of a run under each schedule, how much the loss still moved over the run's last 20 steps (max - min: a
   run that bounces moves a lot), and the distance of (a, b, c) to the least-squares answer, against the loss
   of least squares itself. Deterministic: the same figures on any machine.
2. The time of 1000 steps under each schedule, as a ratio to constant (interleaved in one run).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from dlcourse.quadratic import fit as q  # noqa: E402
from dlcourse.training.schedules import SCHEDULES  # noqa: E402

TAIL = 20  # the last steps over which a run's bouncing is measured
# (data set, loss, log10 of lr as the tab's slider holds it, momentum, steps, standardise); the first and the
# fourth are the tab's What to try
CASES = [
    ("lesson", "mae", 0.0, 0.0, 100, False),
    ("lesson", "mae", -0.5, 0.0, 300, False),
    ("lesson", "mae", -1.0, 0.9, 200, False),
    ("lesson", "mse", -0.6, 0.0, 100, False),
    ("lesson", "mse", -1.0, 0.9, 100, False),
    ("roller_coaster", "mse", -1.0, 0.9, 200, True),
]


def case_label(dataset: str, loss: str, lr_log: float, momentum: float, steps: int, standardise: bool) -> str:
    extras = (f", momentum {momentum:g}" if momentum else "") + (", standardised x" if standardise else "")
    return f"{dataset}, {loss.upper()}, lr {10**lr_log:.3g} (log₁₀ {lr_log:g}){extras}, {steps} steps"


def final_losses() -> None:
    print("1. final loss of each schedule, same start and steps (bounce: max - min of the loss over the last "
          f"{TAIL} steps; distance: |(a, b, c) - least squares|)")
    print(f"| case | least squares | {' | '.join(SCHEDULES)} |")
    print("| --- | --- |" + " --- |" * len(SCHEDULES))
    for case in CASES:
        dataset, loss, lr_log, momentum, steps, standardise = case
        data = q.make_data(dataset)
        best = q.least_squares(data)
        cells = []
        for schedule in SCHEDULES:
            run = q.sgd(data, data.spec.start, q.sgd_settings(loss, 10**lr_log, momentum, steps, standardise, schedule))
            if run.diverged:
                cells.append(f"diverged at step {run.steps - 1}")
                continue
            tail = np.append(run.losses, run.end_loss)[-TAIL:]
            distance = np.linalg.norm(run.end - best)
            cells.append(f"**{run.end_loss:.4g}** (bounce {np.ptp(tail):.2g}, distance {distance:.2g})")
        print(f"| {case_label(*case)} | {q.loss_of(best, data, loss):.4g} | {' | '.join(cells)} |")


def step_costs(repeats: int) -> None:
    print(f"2. 1000 steps (lesson, MSE, lr 0.1, momentum 0.9), p50 of {repeats}, interleaved")
    data = q.make_data("lesson")
    settings = {s: q.sgd_settings("mse", 0.1, 0.9, 1000, False, s) for s in SCHEDULES}
    times: dict[str, list[float]] = {s: [] for s in SCHEDULES}
    for _ in range(repeats + 1):  # the first round warms up
        for schedule in SCHEDULES:
            start = time.perf_counter()
            q.sgd(data, data.spec.start, settings[schedule])
            times[schedule].append((time.perf_counter() - start) * 1000)
    base = statistics.median(times["constant"][1:])
    for schedule in SCHEDULES:
        p50 = statistics.median(times[schedule][1:])
        print(f"  {schedule}: {p50:.1f} ms ({p50 / base:.2f}x constant)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    final_losses()
    step_costs(args.repeats)


if __name__ == "__main__":
    main()
