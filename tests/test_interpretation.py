"""Confusion matrix, most confused, top losses, the model file's summary and the report folder."""
from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
import torch.nn.functional as F

from dlcourse.hub import model_card
from dlcourse.training import interpretation, report
from dlcourse.training.interpretation import Interpretation, confusion_matrix, most_confused, top_losses
from dlcourse.served.modelfile import build_model
from dlcourse.served.loading import load_model_file
from reportkit import CLASSES, HISTORY, MEAN, STD, tiny_model_file


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_model_file(tmp_path_factory.mktemp("model") / "model.pkl")


def test_confusion_matrix_sums_to_the_set_and_agrees_with_a_plain_count():
    generator = torch.Generator().manual_seed(3)
    targets = torch.randint(0, 5, (1000,), generator=generator)
    preds = torch.where(torch.rand(1000, generator=generator) < 0.7, targets,
                        torch.randint(0, 5, (1000,), generator=generator))
    cm = confusion_matrix(targets, preds, 5)
    assert cm.shape == (5, 5) and cm.dtype == torch.int64
    assert int(cm.sum()) == 1000
    counts = Counter(zip(targets.tolist(), preds.tolist()))
    assert cm.tolist() == [[counts[(i, j)] for j in range(5)] for i in range(5)]
    assert cm.sum(1).tolist() == torch.bincount(targets, minlength=5).tolist()  # rows are actual classes


def test_most_confused_is_fastais():
    cm = torch.tensor([[5, 2, 0], [3, 7, 2], [1, 0, 9]])
    assert most_confused(cm, ["a", "b", "c"]) == [("b", "a", 3), ("a", "b", 2), ("b", "c", 2), ("c", "a", 1)]
    assert most_confused(cm, ["a", "b", "c"], min_val=2) == [("b", "a", 3), ("a", "b", 2), ("b", "c", 2)]
    assert most_confused(torch.eye(3, dtype=torch.long) * 4, ["a", "b", "c"]) == []


def test_top_losses_are_sorted_and_say_what_happened():
    logits = torch.tensor([[2.0, 0.0], [0.0, 3.0], [0.0, 0.5], [4.0, -1.0]])
    targets = torch.tensor([0, 0, 1, 1])
    top = top_losses(logits, targets, ["no", "yes"], k=3)
    losses = [item["loss"] for item in top]
    assert losses == sorted(losses, reverse=True) and len(top) == 3
    assert top[0] == {
        "index": 3, "actual": "yes", "predicted": "no",
        "loss": pytest.approx(F.cross_entropy(logits[3:], targets[3:]).item()),
        "prob_actual": pytest.approx(logits[3].softmax(0)[1].item()),
        "prob_predicted": pytest.approx(logits[3].softmax(0)[0].item()),
    }
    assert all(item["prob_actual"] == pytest.approx(torch.exp(torch.tensor(-item["loss"])).item()) for item in top)


def test_summary_loads_weights_only_and_top_losses_recompute_from_the_saved_model(tiny):
    record = torch.load(tiny.path, weights_only=True)
    summary = record["meta"]["report"]
    assert sum(map(sum, summary["confusion_matrix"])) == summary["n_valid"] == len(tiny.valid)
    assert summary["curves"]["train_loss"] == [row["train_loss"] for row in HISTORY]
    top = summary["top_losses"]
    assert [t["loss"] for t in top] == sorted((t["loss"] for t in top), reverse=True)
    # The saved weights, rebuilt, give the same loss for the same validation images.
    meta, state_dict = load_model_file(tiny.path)
    model = build_model(meta, state_dict)
    indices = [t["index"] for t in top]
    inputs, targets = tiny.valid.tensors[0][indices], tiny.valid.tensors[1][indices]
    with torch.inference_mode():
        again = F.cross_entropy(model(inputs), targets, reduction="none")
    assert again.tolist() == pytest.approx([t["loss"] for t in top], abs=1e-5)
    assert [CLASSES[i] for i in targets.tolist()] == [t["actual"] for t in top]
    # No larger loss was left out.
    all_losses = F.cross_entropy(tiny.logits, tiny.valid.tensors[1], reduction="none")
    assert min(t["loss"] for t in top) >= all_losses.sort(descending=True).values[len(top) - 1].item() - 1e-6
    thumbs = summary["top_loss_images"]
    assert thumbs.dtype == torch.uint8 and thumbs.shape == (len(top), 1, 24, 24)
    assert torch.equal(thumbs, interpretation.denormalize(inputs, MEAN, STD))


def test_thumbnails_shrink_to_the_limit_and_stay_small():
    big = torch.randint(0, 256, (16, 3, 224, 160), dtype=torch.uint8)
    small = interpretation.thumbnails(big, 64)
    assert small.shape == (16, 3, 64, 46) and small.dtype == torch.uint8
    assert small.numel() <= 16 * 3 * 64 * 64  # about 200 kB in the model file, at most


def test_denormalize_inverts_normalisation():
    images = torch.randint(0, 256, (2, 3, 5, 5), dtype=torch.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    normalised = (images.float() / 255 - torch.tensor(mean).view(3, 1, 1)) / torch.tensor(std).view(3, 1, 1)
    assert torch.equal(interpretation.denormalize(normalised, mean, std), images)


def test_report_folder_has_the_figures_and_a_json_of_them(tiny, tmp_path):
    written = report.write_report(tmp_path / "report", tiny.meta, tiny.meta.report)
    assert set(written) == {"confusion_matrix", "top_losses", "curves", "json"}
    for name in ("confusion_matrix", "top_losses", "curves"):
        assert written[name].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    data = json.loads(written["json"].read_text())
    summary = tiny.meta.report
    assert data["confusion_matrix"] == summary["confusion_matrix"] and data["classes"] == CLASSES
    assert [row["n"] for row in data["per_class"]] == [sum(row) for row in summary["confusion_matrix"]]
    assert data["most_confused"][0] == dict(zip(("actual", "predicted", "count"), summary["most_confused"][0]))
    assert len(data["top_losses"]) == 12 and "top_loss_images" not in data
    card = model_card.model_card_section(summary, CLASSES, {"confusion_matrix": "report/confusion_matrix.png"})
    assert "![Confusion matrix](report/confusion_matrix.png)" in card and f"{summary['accuracy']:.2%}" in card


def test_report_cli_rebuilds_the_folder_from_a_model_file(tiny, tmp_path, capsys):
    assert report.main([str(tiny.path), str(tmp_path / "again")]) == 0
    assert (tmp_path / "again" / "report.json").is_file() and (tmp_path / "again" / "top_losses.png").is_file()
    old = tiny_model_file(tmp_path / "old.pkl", with_report=False)
    assert report.main([str(old.path), str(tmp_path / "none")]) == 1
    assert "no report" in capsys.readouterr().err


def test_interpretation_rejects_mismatched_shapes():
    with pytest.raises(ValueError):
        Interpretation(["a", "b"], torch.zeros(3, 2), torch.zeros(4, dtype=torch.long))


def test_show_batch_saves_a_labelled_grid_and_leaves_the_loader_as_it_was(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    generator = torch.Generator().manual_seed(5)
    data = TensorDataset(torch.randn(40, 3, 12, 12), torch.arange(40) % 4)
    loader = DataLoader(data, batch_size=8, shuffle=True, generator=generator)
    state, rng = generator.get_state(), torch.get_rng_state()
    first = next(iter(loader))[1]
    generator.set_state(state)
    path = report.show_batch(loader, CLASSES, [0.5, 0.5, 0.5], [0.2, 0.2, 0.2], tmp_path / "show_batch.png", n=6)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert torch.equal(generator.get_state(), state) and torch.equal(torch.get_rng_state(), rng)
    assert torch.equal(next(iter(loader))[1], first)  # training will see the same first batch
