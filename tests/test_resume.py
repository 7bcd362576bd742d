"""Checkpoints and --resume, for real: train.py killed with SIGKILL at a random moment, resumed, and compared
with an uninterrupted run (one process, and two gloo processes under torchrun); checkpoints of other data
or settings refused in one line; --keep best."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train as train_script
from dlcourse.hub.model_card import model_card
from dlcourse.served.loading import load_model_file
from dlcourse.training import checkpoint
from dlcourse.training.data import load_data
from dlcourse.training.evaluate import evaluate_model_file
from dlcourse.training.learner import create_model
from trainkit import FAST, ROOT, make_image_folder, one_line_error, run_train

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
EPOCHS = 4  # in all, the frozen one included
TIMING = ("seconds", "train_images_per_second")  # the history's clock readings: all else must be equal


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("shapes"), per_class=12)  # 29 training images, 7 validation


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    """A 'pretrained' checkpoint to fine-tune from (random weights; the recipe is what is tested)."""
    path = tmp_path_factory.mktemp("weights") / "start.pth"
    torch.manual_seed(0)
    torch.save(create_model("test_resnet", 1000, 3, pretrained=False).state_dict(), path)
    return path


def recipe(folder, weights, out) -> list[str]:
    """Fine-tune: a frozen epoch, then three; default augmentation drawn by one loader worker per process."""
    return ["--data", str(folder), "--arch", "test_resnet", "--weights", str(weights), "--img-size", "32",
            "--batch-size", "8", "--workers", "1", "--device", "cpu", "--epochs", str(EPOCHS - 1), "--out", str(out),
            "--report-dir", str(out.parent / "report")]


def start(args: list[str], cwd, launcher: list[str] | None = None) -> subprocess.Popen:
    """train.py running in the background, its output going to cwd/train.log."""
    command = (launcher or [sys.executable]) + [str(ROOT / "train.py"), *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    with open(cwd / "train.log", "w") as log:
        return subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)


def kill_at_random(run: subprocess.Popen, ckpt, rng: random.Random) -> float:
    """Watch the checkpoint being replaced after epochs 1 and 2, then SIGKILL every process of the run at a
    random moment of the next epoch's length (a training step, an evaluation or a checkpoint being written)."""
    def wait_for_new(previous):
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            try:
                inode = os.stat(ckpt).st_ino
            except FileNotFoundError:
                inode = None
            if inode is not None and inode != previous:
                return inode, time.monotonic()
            assert run.poll() is None, (Path(run.args[0]).name, "ended early")
            time.sleep(0.005)
        raise AssertionError("no checkpoint appeared")

    first, at_first = wait_for_new(None)
    _, at_second = wait_for_new(first)
    delay = rng.uniform(0, at_second - at_first)
    time.sleep(delay)
    assert run.poll() is None, "the run ended before it could be killed"
    for pid in [run.pid, *descendants(run.pid)]:  # torchrun starts its workers in sessions of their own
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert run.wait(timeout=60) == -signal.SIGKILL
    return delay


def descendants(pid: int) -> list[int]:
    """The processes below `pid` (Linux /proc): torchrun's workers and their data loader processes."""
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            children = open(f"/proc/{pid}/task/{task}/children").read().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def same_model(resumed, uninterrupted) -> None:
    meta_a, weights_a = load_model_file(resumed)
    meta_b, weights_b = load_model_file(uninterrupted)
    assert weights_a.keys() == weights_b.keys()
    assert max((weights_a[k].double() - weights_b[k].double()).abs().max().item() for k in weights_a) <= 1e-6
    strip = lambda history: [{k: v for k, v in row.items() if k not in TIMING} for row in history]  # noqa: E731
    assert strip(meta_a.history) == strip(meta_b.history) and len(meta_a.history) == EPOCHS
    assert meta_a.metrics == meta_b.metrics


@pytest.mark.parametrize("launcher", [None, TORCHRUN], ids=["one process", "torchrun, 2 gloo processes"])
def test_a_run_killed_at_a_random_moment_resumes_to_the_uninterrupted_model(folder, weights, tmp_path, launcher):
    rng = random.Random()
    seed = rng.randrange(10**6)
    print(f"kill timing seed {seed}")
    rng.seed(seed)
    work = tmp_path / "killed"
    work.mkdir()
    run = start(recipe(folder, weights, work / "model.pkl"), work, launcher)
    delay = kill_at_random(run, work / "model.ckpt", rng)
    assert not (work / "model.pkl").exists()
    state, _, _ = checkpoint.load(work / "model.ckpt")  # whole, even when the kill came while it was written
    assert 2 <= state["epoch"] < EPOCHS, (state["epoch"], delay)

    resumed = run_train([*recipe(folder, weights, work / "model.pkl"), "--resume"], cwd=work, launcher=launcher,
                        env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {work / 'model.ckpt'}: {state['epoch']} of {EPOCHS} epochs done" in resumed.stdout, resumed.stdout

    whole = tmp_path / "whole"
    whole.mkdir()
    uninterrupted = run_train(recipe(folder, weights, whole / "model.pkl"), cwd=whole, launcher=launcher,
                              env={"OMP_NUM_THREADS": "1"})
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    same_model(work / "model.pkl", whole / "model.pkl")


def test_a_checkpoint_of_other_data_or_settings_is_refused_in_one_line(folder, tmp_path, capsys):
    base = ["--data", str(folder), *FAST, "--out", str(tmp_path / "model.pkl"), "--report-dir", str(tmp_path / "report")]
    assert train_script.main(base) == 0
    saved = tmp_path / "model.ckpt"
    assert saved.is_file()
    other = make_image_folder(tmp_path / "other", per_class=12, classes=("circle", "square", "star"))
    for change, words in (
        (["--lr", "0.01"], "--lr was 0.002, this run has 0.01"),
        (["--arch", "test_convnext"], "--arch was 'test_resnet', this run has 'test_convnext'"),
        (["--data", str(other)], "was written for other data"),
        (["--epochs", "3"], "--epochs was 1, this run has 3"),
        (["--keep", "best"], "--keep was 'last', this run has 'best'"),
    ):
        capsys.readouterr()
        assert train_script.main([*base, *change, "--resume", str(saved)]) == 1
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("error: ") and words in error[0], (change, error)
    missing = run_train([*base, "--resume", str(tmp_path / "nowhere.ckpt")], cwd=tmp_path)
    assert "No checkpoint at" in one_line_error(missing)


def test_keep_best_writes_the_best_epoch_and_its_figures(folder, tmp_path):
    out = tmp_path / "model.pkl"
    args = ["--data", str(folder), "--arch", "test_resnet", "--no-pretrained", "--img-size", "32", "--batch-size", "8",
            "--workers", "0", "--device", "cpu", "--epochs", "4", "--lr", "0.02", "--out", str(out),
            "--report-dir", str(tmp_path / "report"), "--keep", "best", "--keep-metric", "valid_loss"]
    assert train_script.main(args) == 0
    meta, _ = load_model_file(out)
    losses = [row["valid_loss"] for row in meta.history]
    best = losses.index(min(losses)) + 1
    assert best < 4  # the premise: the best epoch is not the last one, so keeping it shows
    assert meta.kept_epoch == best and meta.recipe["keep"] == "best"
    row = meta.history[best - 1]
    assert meta.metrics["valid_loss"] == row["valid_loss"] and meta.metrics["accuracy"] == row["accuracy"]
    data = load_data(str(folder), seed=42)
    measured = evaluate_model_file(out, data.valid, data.classes)  # the weights in the file are that epoch's
    assert measured["valid_loss"] == pytest.approx(row["valid_loss"], abs=1e-5)
    assert meta.report["accuracy"] == pytest.approx(row["accuracy"])
    card = model_card(meta, "someone/shapes")
    assert f"| kept weights | epoch {best} of 4 (best valid_loss) |" in card
    assert json.loads((tmp_path / "report" / "report.json").read_text())["kept_epoch"] == best


def test_train_py_offers_the_metrics_the_learner_can_keep():
    from dlcourse.training.learner import KEEP_METRICS

    assert set(train_script.KEEP_METRICS) == set(KEEP_METRICS)
