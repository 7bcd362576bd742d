"""train.py end to end with --show-batch, --lr-find and the validation report (CPU, seconds)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trainkit import SHAPES, make_image_folder

ROOT = Path(__file__).resolve().parent.parent
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    """72 small pictures of three shapes in ImageFolder layout."""
    return make_image_folder(tmp_path_factory.mktemp("shapes"), per_class=24, nested=False)


def train(tmp_path: Path, data: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(ROOT / "train.py"), "--data", str(data), "--arch", "test_resnet",
               "--no-pretrained", "--img-size", "32", "--batch-size", "8", "--workers", "0", "--device", "cpu",
               "--out", str(tmp_path / "model.pkl"), *extra]
    return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)


def test_train_with_show_batch_lr_find_and_report(tmp_path, shapes):
    run = train(tmp_path, shapes, "--epochs", "2", "--show-batch", "--lr-find", "valley", "--lr-find-iters", "30",
                "--top-losses", "8")
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "suggested lr: valley" in out and "(the valley suggestion)" in out
    assert "most confused" in out

    folder = tmp_path / "reports" / "model"  # the default: reports/<stem of --out>/
    for name in ("show_batch", "lr_find", "confusion_matrix", "top_losses", "curves"):
        assert (folder / f"{name}.png").read_bytes()[:8] == PNG, name
    figures = json.loads((folder / "report.json").read_text())
    assert figures["classes"] == list(SHAPES) and figures["n_valid"] == 14
    assert sum(map(sum, figures["confusion_matrix"])) == 14
    valley = figures["lr_find"]["suggestions"]["valley"]
    lrs, exploded = figures["lr_find"]["lrs"], figures["lr_find"]["stopped_early"]
    assert len(lrs) <= 30 and exploded == (len(lrs) < 30)  # the loss exploding is the only early stop
    assert (f"lr-find: {len(lrs)} mini-batches from {lrs[0]:.1e} to {lrs[-1]:.1e}"
            f"{' (stopped: the loss exploded)' if exploded else ''}; suggested lr: valley {valley:.2e}") in out

    record = torch.load(tmp_path / "model.pkl", weights_only=True)  # plain values and tensors only
    meta = record["meta"]
    summary = meta["report"]
    assert summary["confusion_matrix"] == figures["confusion_matrix"]
    assert summary["accuracy"] == pytest.approx(meta["metrics"]["accuracy"])
    assert len(summary["top_losses"]) == 8 and summary["top_loss_images"].shape == (8, 3, 32, 32)
    assert summary["lr_find"]["suggestions"]["valley"] == valley == pytest.approx(meta["recipe"]["lr"])
    assert summary["curves"]["epoch"] == [1, 2]
    matrix = summary["confusion_matrix"]
    wrong = sum(map(sum, matrix)) - sum(matrix[i][i] for i in range(len(matrix)))
    assert sum(count for *_, count in summary["most_confused"]) == wrong
    pairs = "".join(f"  {actual} -> {predicted}: {count}\n" for actual, predicted, count in summary["most_confused"])
    expected = f"most confused (actual -> predicted: count):\n{pairs}" if wrong else "most confused: none ("
    assert expected in out


def test_bare_lr_find_stops_before_training(tmp_path, shapes):
    run = train(tmp_path, shapes, "--lr-find", "--lr-find-iters", "12", "--report-dir", "looks")
    assert run.returncode == 0, run.stderr[-3000:]
    assert "suggested lr: valley" in run.stdout and "epoch" not in run.stdout.split("lr-find:")[1]
    assert (tmp_path / "looks" / "lr_find.png").read_bytes()[:8] == PNG
    assert not (tmp_path / "model.pkl").exists()


def test_train_py_option_defaults_are_the_libraries():
    from dlcourse.training import interpretation, lr_find
    from dlcourse.training import insight

    assert (insight.DEFAULT_START_LR, insight.DEFAULT_END_LR, insight.DEFAULT_NUM_IT) == (
        lr_find.DEFAULT_START_LR, lr_find.DEFAULT_END_LR, lr_find.DEFAULT_NUM_IT)
    assert insight.DEFAULT_TOP_LOSSES == interpretation.DEFAULT_TOP_LOSSES


def test_push_to_hub_uploads_the_report_and_shows_it_in_the_model_card(tmp_path, monkeypatch):
    import huggingface_hub

    from dlcourse.training import report
    from dlcourse.hub.model_repo import push_to_hub
    from reportkit import tiny_model_file

    tiny = tiny_model_file(tmp_path / "model.pkl")
    files = report.write_report(tmp_path / "reports" / "model", tiny.meta, tiny.meta.report)
    commits = []

    class FakeApi:  # the Hub, as far as push_to_hub talks to it
        def __init__(self, token=None):
            assert token == "hf_test"

        def create_repo(self, repo_id, **kwargs):
            return f"https://huggingface.co/{repo_id}"

        def list_repo_files(self, repo_id, **kwargs):
            return []

        def create_commit(self, repo_id, operations, **kwargs):  # read now: push's staging folder goes afterwards
            commits.append({op.path_in_repo: Path(op.path_or_fileobj).read_bytes() for op in operations})

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    push_to_hub("someone/shapes", tiny.path, token="hf_test", report_files=files)
    (uploaded,) = commits
    assert set(uploaded) == {"model.pkl", "model.safetensors", "config.json", "README.md", "report/confusion_matrix.png",
                             "report/top_losses.png", "report/curves.png", "report/report.json"}
    assert uploaded["report/top_losses.png"] == files["top_losses"].read_bytes()
    card = uploaded["README.md"].decode()
    for name in ("confusion_matrix", "top_losses", "curves"):
        assert f"](report/{name}.png)" in card
    assert "## How good is this model?" in card and "### Most confused" in card and "### Top losses" in card
    actual, predicted, count = tiny.meta.report["most_confused"][0]
    assert f"| {actual} | {predicted} | {count} |" in card
