"""bench/bench_train.py runs end to end and prints every figure it promises (tiny settings; the figures
themselves are judged by nobody, here or there). timm's train.py is not in the timm package: the timm
comparison is checked when TIMM_TRAIN names a copy of it (a clone of pytorch-image-models)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from trainkit import ROOT

TINY = ["--models", "test_resnet", "--img-size", "32", "--photo-size", "64", "48", "--unique", "3",
        "--batch-size", "4", "--steps", "2", "--warmup", "1", "--rounds", "1", "--workers", "1", "--device", "cpu"]


def bench(*extra: str) -> str:
    run = subprocess.run([sys.executable, "bench/bench_train.py", *TINY, *extra], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout


def rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines() if line.startswith("test_resnet ")]


def test_bench_prints_loader_step_and_path_figures():
    out = bench()
    assert "12 training JPEGs 64x48 (3 distinct" in out  # (1 warm-up + 2 timed) x batch 4
    assert "AMP: CUDA only" in out
    ours = re.search(r"train.py's loader .*?\s([\d.]+)\n", out)
    pil = re.search(r"decoding with PIL .*?\s([\d.]+)\s+ours / PIL ([\d.]+)x", out)
    device = re.search(r"--decode device .*?\s([\d.]+)\s+device / ours ([\d.]+)x", out)
    assert ours and pil and device and min(float(ours.group(1)), float(pil.group(1)), float(device.group(1))) > 0
    table = rows(out)
    assert [(row[1], row[2], row[3]) for row in table] == [("off", "channels_last", "no"), ("off", "contiguous", "no")]
    for row in table:
        alone, path = float(row[4]), float(row[5])
        # the ratio of the unrounded figures: within rounding of the ratio of the printed ones (0.1 images/s)
        assert alone > 0 and path > 0 and row[6].endswith("x") and row[7] == "-"
        assert abs(float(row[6][:-1]) - path / alone) <= 0.005 + 0.05 * (path + alone) / alone**2


@pytest.mark.skipif(not os.environ.get("TIMM_TRAIN"), reason="TIMM_TRAIN (timm's train.py from its repository) not set")
def test_bench_runs_timm_train_py_on_the_same_data():
    out = bench("--timm-train", os.environ["TIMM_TRAIN"])
    for row in rows(out):
        assert float(row[7]) > 0 and row[8].endswith("x")
    assert out.count("timm: train.py") == 2 and "--model test_resnet" in out and "--batch-size 4" in out
