"""train.py under torchrun: two gloo processes on the CPU, checked against a single-process evaluation."""
from __future__ import annotations

import sys

import pytest

from dlcourse.served.loading import load_model_file
from dlcourse.training.data import load_data
from dlcourse.training.distributed import Processes, shard
from dlcourse.training.evaluate import evaluate_model_file
from trainkit import FAST, ROOT, make_image_folder, run_train

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]


def test_two_processes_train_once_write_once_and_measure_what_they_saved(tmp_path):
    data = make_image_folder(tmp_path / "data", per_class=12)  # 36 images: 29 training, 7 validation (odd: 4 + 3)
    out, log = tmp_path / "model.pkl", tmp_path / "saves.log"
    args = ["--data", str(data), *FAST, "--epochs", "2", "--out", str(out)]
    run = run_train(args, cwd=tmp_path, launcher=TORCHRUN, script=ROOT / "tests" / "ddp_spy.py",
                    env={"SAVE_LOG": str(log), "OMP_NUM_THREADS": "1"})
    assert run.returncode == 0, run.stderr[-4000:]

    assert log.read_text().splitlines() == [f"rank 0 wrote {out}"]  # written once, by rank 0
    assert run.stdout.count("train_loss") == 1 and run.stdout.count("wrote ") == 1  # only rank 0 prints
    assert "batch 8 x 2 processes" in run.stdout

    meta, _ = load_model_file(out)
    assert meta.recipe["world_size"] == 2 and meta.recipe["global_batch_size"] == 16
    assert meta.command.startswith("torchrun --nproc_per_node=2 ") and "train.py" in meta.command
    assert [h["epoch"] for h in meta.history] == [1, 2]
    assert [h["valid_images"] for h in meta.history] == [7, 7]  # each image evaluated once, not once per process

    valid = load_data(str(data), seed=42)
    single = evaluate_model_file(out, valid.valid, valid.classes)  # one process, the saved file, its evaluation transform
    assert single["count"] == 7
    assert meta.metrics["accuracy"] == single["accuracy"]
    assert meta.metrics["valid_loss"] == pytest.approx(single["valid_loss"], abs=1e-5)


def test_evaluation_shards_cover_every_item_once():
    for world in (1, 2, 3, 8):
        shards = [shard(Processes(rank, world, rank, world, None), 7) for rank in range(world)]
        assert sorted(i for s in shards for i in s) == list(range(7))


def test_two_processes_train_the_model_one_process_trains_with_the_same_global_batch(tmp_path):
    """torchrun, 2 processes of batch 4, against one process of batch 8: the same weights after 6 steps.
    A LayerNorm network (no batch statistics) and no random augmentation, so each step's global batch is
    the only thing the two share; one process of batch 4 (other steps) shows the comparison can fail."""
    data = make_image_folder(tmp_path / "data", per_class=12)  # 29 training images: 3 steps an epoch either way
    fixed = ["--arch", "test_convnext", "--crop-scale", "0", "--no-flip", "--rotate", "0", "--epochs", "2"]
    weights = {}
    for name, launcher, batch in (("2x4", TORCHRUN, 4), ("1x8", None, 8), ("1x4", None, 4)):
        out = tmp_path / f"{name}.pkl"
        run = run_train(["--data", str(data), *FAST, *fixed, "--batch-size", str(batch), "--out", str(out)],
                        cwd=tmp_path, launcher=launcher, env={"OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr[-4000:]
        weights[name] = load_model_file(out)[1]

    def largest_difference(a: str, b: str) -> float:
        return max((weights[a][k].float() - weights[b][k].float()).abs().max().item() for k in weights[a])

    assert weights["2x4"].keys() == weights["1x8"].keys()
    assert largest_difference("2x4", "1x8") < 1e-4
    assert largest_difference("1x4", "1x8") > 1e-2
