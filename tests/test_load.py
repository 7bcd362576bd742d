"""bench/load.py works: a small run of it passes, and its checks catch wrong answers."""
from __future__ import annotations

import copy
import importlib.util
import re
import subprocess
import sys

import pytest

from conftest import EXAMPLES_DIR, ROOT

SCRIPT = ROOT / "bench" / "load.py"


@pytest.fixture(scope="module")
def load():
    spec = importlib.util.spec_from_file_location("load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["load"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


def test_a_small_load_run_passes_with_every_endpoint_and_memory_reported():
    done = subprocess.run([sys.executable, str(SCRIPT), "--requests", "60", "--clients", "5"], cwd=ROOT,
                          capture_output=True, text=True, timeout=240)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    for endpoint, count in (("/classify", 18), ("/classify_batch", 6), ("/fit_quadratic", 12),
                            ("/quadratic_loss", 12), ("/pixel_similarity", 12), ("all", 60)):
        assert re.search(rf"^{re.escape(endpoint)} +{count} +\d+ +\d+ +\d+ +0 +0$", out, re.M), (endpoint, out)
    assert re.search(r"server RSS: after warm-up [\d.]+ MB, at the end [\d.]+ MB", out) and "OK: no errors" in out


def test_the_mix_covers_every_endpoint_in_fixed_proportions(load):
    jobs = load.make_jobs(600, seed=0)
    counts = {endpoint: sum(job.endpoint == endpoint for job in jobs) for endpoint in load.ENDPOINTS}
    assert counts == {"/classify": 180, "/classify_batch": 60, "/fit_quadratic": 120, "/quadratic_loss": 120,
                      "/pixel_similarity": 120}
    assert [job.endpoint for job in jobs] == [job.endpoint for job in load.make_jobs(600, seed=0)]


def test_wrong_answers_are_caught(load):
    seven = EXAMPLES_DIR / "mnist-test-7.png"
    right = {"label": "7", "confidences": [{"label": str(d), "confidence": c} for d, c in
                                           zip((7, 1, 2, 3, 4), (0.96, 0.01, 0.01, 0.01, 0.01))]}
    job = load.classify_job(seven)
    assert job.check(right) is None
    assert "expected 7" in job.check({**right, "label": "1"})

    fit = load.fit_job(load.FITS[0])
    answer = load.api.fit_quadratic(**load.FITS[0])
    assert fit.check(answer) is None
    nudged = copy.deepcopy(answer)
    nudged["final"]["a"] += 1e-6
    assert "expected" in fit.check(nudged)

    loss = load.loss_job((3, 2, 1), "mse")
    assert "expected" in loss.check({"loss": 0.0, "distance": 0.0})

