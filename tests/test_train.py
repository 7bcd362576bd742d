"""train.py end to end on tiny generated data (CPU, seconds): data sources, the model file, bad input, the Hub."""
from __future__ import annotations

import random
import re
import subprocess
import sys

import pytest
import torch

import train as train_script
from dlcourse.served.classifier import Classifier
from dlcourse.errors import BadInput
from dlcourse.hub.model_card import model_card
from dlcourse.served.loading import load_model_file
from dlcourse.training.data import load_data
from dlcourse.training.evaluate import evaluate_model_file
from dlcourse.training.learner import create_model
from payloads import RunsExec
from trainkit import FAST, ROOT, SHAPES, make_image_folder, make_named_folder, one_line_error, run_train, shape_image


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Three classes of 12 shapes in nested ImageFolder layout, plus two files that are not images."""
    root = make_image_folder(tmp_path_factory.mktemp("shapes"))
    (root / "circle" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (root / "square" / "empty.png").write_bytes(b"")
    return root


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    """train.py run once on the folder; (completed process, model file path)."""
    work = tmp_path_factory.mktemp("run")
    run = run_train(["--data", str(folder), *FAST, "--epochs", "2", "--out", str(work / "model.pkl")], cwd=work)
    return run, work / "model.pkl"


def test_help_documents_every_option():
    run = subprocess.run([sys.executable, "train.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0
    parser_options = {opt for action in train_script_parser()._actions for opt in action.option_strings}
    for option in parser_options:
        assert option in run.stdout, option
    for word in ("ImageFolder", "--label-re", "torchrun", "per process", "timm"):
        assert word in run.stdout


def train_script_parser():
    """The argparse parser of train.py, caught as parse_args builds it."""
    import argparse

    captured = {}
    original = argparse.ArgumentParser.parse_args

    def capture(self, *args, **kwargs):
        captured["parser"] = self
        raise SystemExit(0)

    argparse.ArgumentParser.parse_args = capture
    try:
        with pytest.raises(SystemExit):
            train_script.parse_args([])
    finally:
        argparse.ArgumentParser.parse_args = original
    return captured["parser"]


def test_image_folder_end_to_end(trained):
    run, path = trained
    assert run.returncode == 0, run.stderr[-3000:]
    out = run.stdout
    assert "3 classes, 29 training and 7 validation images" in out  # 36 images, 20% held out, 2 unreadable skipped
    assert "skipped 2 unreadable image files" in out and "broken.jpg" in out
    header = next(line for line in out.splitlines() if line.startswith("epoch"))
    assert header.split() == ["epoch", "phase", "train_loss", "valid_loss", "error_rate", "accuracy", "time"]
    rows = [line.split() for line in out.splitlines() if re.match(r"^\d+\s+all\s", line)]
    assert [row[0] for row in rows] == ["1", "2"]

    classifier = Classifier.from_file(path)
    assert classifier.classes == list(SHAPES)
    probs = classifier.predict(shape_image("circle", random.Random(5)))
    assert set(probs) == set(SHAPES) and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)

    meta = classifier.meta
    assert meta.arch == "test_resnet" and meta.in_chans == 3 and meta.img_size == 32
    assert meta.preprocessing == "photo" and meta.pretrained is False
    assert meta.train_size == 29 and meta.valid_size == 7 and meta.skipped_files == 2
    assert [h["epoch"] for h in meta.history] == [1, 2]
    assert meta.metrics["accuracy"] == meta.history[-1]["accuracy"]
    assert meta.command.startswith("python ") and "--epochs 2" in meta.command
    assert set(meta.versions) == {"torch", "timm", "torchvision", "python"}
    assert meta.versions["torch"] == torch.__version__
    assert re.match(r"\d{4}-\d\d-\d\dT", meta.created)
    assert meta.recipe["world_size"] == 1 and meta.augment["flip"] is True


def test_stored_metrics_are_those_of_the_saved_model(trained, folder):
    _, path = trained
    meta, _ = load_model_file(path)
    data = load_data(str(folder), seed=42)
    measured = evaluate_model_file(path, data.valid, data.classes)
    assert measured["count"] == 7
    assert measured["accuracy"] == meta.metrics["accuracy"]
    assert measured["valid_loss"] == pytest.approx(meta.metrics["valid_loss"], abs=1e-5)


def test_labels_from_file_names(tmp_path):
    named = make_named_folder(tmp_path / "pets")
    (named / "notes.png").write_bytes(b"")  # does not match: ignored, never read
    shape_image("circle", random.Random(2)).save(named / "README.png")
    out = tmp_path / "named.pkl"
    run = run_train(["--data", str(named), "--label-re", r"^(.+)_\d+\.(jpg|jpeg|png)$", *FAST, "--out", str(out)], cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "ignored 2 image files whose names do not match --label-re" in run.stdout
    classifier = Classifier.from_file(out)
    assert classifier.classes == ["Round_Thing", "Tri", "square"]  # case kept, sorted
    assert len(classifier.predict(shape_image("square", random.Random(3)))) == 3


def test_own_train_valid_split_is_used(tmp_path):
    make_image_folder(tmp_path / "split" / "train", per_class=6, nested=False)
    make_image_folder(tmp_path / "split" / "valid", per_class=2, nested=False)
    data = load_data(str(tmp_path / "split"))
    assert (len(data.train), len(data.valid)) == (18, 6) and "valid/" in data.split


def test_same_seed_same_model_on_cpu(folder, tmp_path):
    args = ["--data", str(folder), *FAST, "--seed", "7"]
    for name in ("a.pkl", "b.pkl"):
        assert train_script.main([*args, "--out", str(tmp_path / name)]) == 0
    digest = [torch.load(tmp_path / name, weights_only=True)["weights_sha256"] for name in ("a.pkl", "b.pkl")]
    assert digest[0] == digest[1]
    assert train_script.main([*args, "--seed", "8", "--out", str(tmp_path / "c.pkl")]) == 0
    assert torch.load(tmp_path / "c.pkl", weights_only=True)["weights_sha256"] != digest[0]


def _missing(root):
    return root / "nowhere"


def _empty(root):
    root.mkdir(parents=True)
    return root


def _one_class(root):
    return make_image_folder(root, per_class=3, classes=("circle",))


def _folder(root):
    return make_image_folder(root, per_class=3)


def _named(root):
    return make_named_folder(root)


def _two_images(root):
    return make_image_folder(root, per_class=1, classes=("a", "b"), nested=False)


@pytest.mark.parametrize(
    "make, extra, message",
    [
        (_missing, [], "no folder"),
        (_empty, [], "no images in class sub-folders"),
        (_one_class, [], "a classifier needs at least two classes"),
        (_named, [], "give --label-re to read labels from their names"),
        (_named, ["--label-re", r"^(\d+)\.gif$"], "matches none of the 36 file names"),
        (_named, ["--label-re", r"^.+\.png$"], "needs a group"),
        (_named, ["--label-re", r"^(.+"], "not a valid regular expression"),
        (_folder, ["--arch", "resnet_18"], "unknown architecture 'resnet_18'"),
        (_folder, ["--valid-pct", "1.5"], "--valid-pct"),
        (_folder, ["--crop-scale", "0.5", "2"], "--crop-scale"),
        (_folder, ["--epochs", "0"], "nothing to train"),
        (_two_images, [], "only 1 training images"),
    ],
    ids=["missing", "empty", "one-class", "flat-without-regex", "regex-no-match", "regex-no-group", "regex-invalid",
         "unknown-arch", "valid-pct", "crop-scale", "no-epochs", "too-few-images"],
)
def test_bad_input_is_one_clear_line(tmp_path, capsys, make, extra, message):
    args = ["--data", str(make(tmp_path / "data")), *FAST, *extra, "--out", str(tmp_path / "never.pkl")]
    assert train_script.main(args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err
    assert not (tmp_path / "never.pkl").exists()


def test_bad_input_from_the_command_line(tmp_path):
    """The same through a real process: exit status 1, one line on stderr, no traceback."""
    run = run_train(["--data", str(tmp_path / "missing"), *FAST], cwd=tmp_path)
    assert "no folder" in one_line_error(run)
    run = run_train(["--data", str(make_image_folder(tmp_path / "ok", per_class=3)), *FAST, "--arch", "convnext_tinyy"],
                    cwd=tmp_path)
    assert "Did you mean convnext_tiny" in one_line_error(run)


def test_all_images_unreadable(tmp_path, capsys):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.png").write_bytes(b"garbage")
    assert train_script.main(["--data", str(tmp_path), *FAST]) == 1
    assert "none of the 2 image files" in capsys.readouterr().err


def test_offline_pretrained_download_is_a_clear_error(tmp_path):
    """The real download path with the Hub switched off: the message says what to do instead."""
    data = make_image_folder(tmp_path / "data", per_class=3)
    args = ["--data", str(data), "--arch", "resnet10t", "--pretrained", "--device", "cpu"]
    run = run_train(args, cwd=tmp_path, env={"HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    line = one_line_error(run)
    assert "could not get pretrained weights for resnet10t" in line and "--weights FILE" in line


def test_local_weights_file_is_loaded_and_the_head_replaced(tmp_path):
    torch.manual_seed(0)
    source = create_model("test_resnet", 1000, 3, pretrained=False)
    torch.save(source.state_dict(), tmp_path / "checkpoint.pth")
    model = create_model("test_resnet", 3, 3, pretrained=False, weights=str(tmp_path / "checkpoint.pth"))
    assert torch.equal(model.conv1[0].weight, source.conv1[0].weight)
    assert model.get_classifier().out_features == 3
    gray = create_model("test_resnet", 3, 1, pretrained=False, weights=str(tmp_path / "checkpoint.pth"))
    assert gray.conv1[0].weight.shape[1] == 1  # timm folds the RGB filters into one channel


def test_weights_file_that_would_run_code_is_refused(tmp_path):
    marker = tmp_path / "ran"
    torch.save({"stem.0.weight": RunsExec(marker)}, tmp_path / "evil.pth")
    with pytest.raises(BadInput, match="cannot be loaded"):
        create_model("test_resnet", 3, 3, pretrained=False, weights=str(tmp_path / "evil.pth"))
    assert not marker.exists()


def test_push_to_hub_without_token_keeps_the_file(tmp_path, folder):
    out = tmp_path / "model.pkl"
    env = {"HF_TOKEN": "", "HF_HOME": str(tmp_path / "hf"), "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1"}
    run = run_train(["--data", str(folder), *FAST, "--out", str(out), "--push-to-hub", "someone/shapes"],
                    cwd=tmp_path, env=env)
    line = one_line_error(run)
    assert "no Hugging Face token" in line and str(out) in line
    assert "warning: --push-to-hub" in run.stderr  # said before training, too
    assert Classifier.from_file(out).classes == list(SHAPES)


def test_push_to_hub_unreachable_keeps_the_file(tmp_path, folder):
    """The real upload code against a Hub address where nothing listens."""
    out = tmp_path / "model.pkl"
    env = {"HF_TOKEN": "hf_not_a_real_token", "HF_HOME": str(tmp_path / "hf"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    run = run_train(["--data", str(folder), *FAST, "--out", str(out), "--push-to-hub", "someone/shapes"],
                    cwd=tmp_path, env=env)
    line = one_line_error(run)
    assert "--push-to-hub someone/shapes failed" in line and "kept" in line
    assert load_model_file(out)[0].classes == list(SHAPES)


def test_model_card_tells_what_the_model_is(trained):
    meta, _ = load_model_file(trained[1])
    card = model_card(meta, "someone/shapes")
    assert card.startswith("---\nlibrary_name: timm")
    assert f"| validation accuracy | {meta.metrics['accuracy']:.4f} |" in card
    assert "`circle`, `square`, `triangle`" in card and "test_resnet" in card
    assert meta.command in card and "MODEL_REPO=someone/shapes" in card
    assert card.count("| all |") == 2  # one row per epoch


def test_fine_tune_from_a_local_checkpoint_freezes_then_unfreezes(folder, tmp_path, capsys):
    """The pretrained recipe without the Hub: --weights FILE, one frozen epoch (the default), then the rest."""
    torch.manual_seed(0)
    torch.save(create_model("test_resnet", 1000, 3, pretrained=False).state_dict(), tmp_path / "imagenet.pth")
    args = ["--data", str(folder), *[a for a in FAST if a != "--no-pretrained"], "--weights", str(tmp_path / "imagenet.pth"),
            "--out", str(tmp_path / "tuned.pkl")]
    assert train_script.main(args) == 0
    assert "1 frozen + 1 epoch," in capsys.readouterr().out
    meta, _ = load_model_file(tmp_path / "tuned.pkl")
    assert [h["phase"] for h in meta.history] == ["head", "all"]
    assert meta.pretrained is True and meta.weights == "imagenet.pth" and meta.recipe["freeze_epochs"] == 1
