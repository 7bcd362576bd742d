"""Timing helpers the benchmark scripts share: wall time of repeated calls, and percentiles of them."""
from __future__ import annotations

import statistics
import time
from typing import Callable


def timings_ms(fn: Callable[[], object], repeats: int, pause_s: float = 0.0) -> list[float]:
    """Wall time of each of `repeats` calls, in milliseconds, after one warm-up call.

    `pause_s`: sleep this long before each call, as a server waits between requests (on this project's
    2-core machine a call 10 ms after anything else ran took 2-3x as long as back to back)."""
    fn()
    times = []
    for _ in range(repeats):
        if pause_s:
            time.sleep(pause_s)
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def percentile(times: list[float], q: int) -> float:
    """The q-th percentile, interpolated between the values seen (numpy's default)."""
    return statistics.quantiles(times, n=100, method="inclusive")[q - 1] if len(times) > 1 else times[0]
