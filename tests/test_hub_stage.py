"""`python -m dlcourse.hub stage`: the files a push uploads, timm's own among them, loaded offline by timm."""
from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
import timm
import torch

from dlcourse.hub import model_repo as hub
from dlcourse.hub.__main__ import main as hub_main
from dlcourse.served.classifier import Classifier
from dlcourse.errors import BadInput
from dlcourse.served.images import load_image
from dlcourse.served.loading import load_model_file
from dlcourse.served.modelfile import build_model
from trainkit import FAST, ROOT, SHAPES, make_image_folder, run_train, shape_image

DIGIT = ROOT / "examples" / "mnist-test-7.png"  # a real MNIST test digit: 28x28, white on black


@pytest.fixture(scope="module")
def digits(tmp_path_factory) -> Path:
    """The default model, staged as `--push-to-hub someone/digits` would upload it."""
    folder = tmp_path_factory.mktemp("stage") / "digits"
    hub.stage(hub.DEFAULT_MODEL_PATH, folder, "someone/digits")
    return folder


@pytest.fixture(scope="module")
def shapes_model(tmp_path_factory) -> Path:
    """A 3-channel photo model trained by train.py on generated shapes."""
    work = tmp_path_factory.mktemp("shapes")
    run = run_train(["--data", str(make_image_folder(work / "data")), *FAST, "--epochs", "2",
                     "--out", str(work / "shapes.pkl")], cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    return work / "shapes.pkl"


@pytest.fixture(scope="module")
def fastai_export(tmp_path_factory) -> Path:
    """A real fastai learn.export(): vision_learner on three shapes, timm's test_resnet body, fastai's head."""
    from fastai.vision.all import ImageDataLoaders, Resize, vision_learner

    work = tmp_path_factory.mktemp("fastai")
    data = make_image_folder(work / "data", per_class=4, nested=False)
    dls = ImageDataLoaders.from_folder(data, valid_pct=0.25, item_tfms=Resize(32), bs=4, num_workers=0, device="cpu")
    vision_learner(dls, "test_resnet", pretrained=False).export(work / "export.pkl")
    return work / "export.pkl"


def files_in(folder: Path) -> list[str]:
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())


def card_code(card: str, section: str = "## Use with timm") -> str:
    """The first Python block of a model card section."""
    return re.search(r"```python\n(.*?)```", card.split(section, 1)[1], re.S).group(1)


def test_stage_writes_the_model_file_timm_files_card_and_report(digits):
    assert files_in(digits) == ["README.md", "config.json", "model.pkl", "model.safetensors", "report/confusion_matrix.png",
                                "report/curves.png", "report/report.json", "report/top_losses.png"]
    assert (digits / "model.pkl").read_bytes() == hub.DEFAULT_MODEL_PATH.read_bytes()
    config = json.loads((digits / "config.json").read_text())
    assert (config["architecture"], config["num_classes"], config["label_names"]) == ("resnet10t", 10, list("0123456789"))
    assert config["model_args"]["in_chans"] == 1
    cfg = config["pretrained_cfg"]
    assert (cfg["input_size"], cfg["mean"], cfg["std"]) == ([1, 32, 32], [0.449], [0.226])
    assert (cfg["interpolation"], cfg["crop_pct"], cfg["crop_mode"]) == ("bilinear", 1.0, "center")
    assert "tag" not in cfg  # timm's name of the ImageNet checkpoint: these weights are not it
    card = (digits / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: timm\n")
    assert 'timm.create_model("hf-hub:someone/digits", pretrained=True)' in card
    assert "](report/confusion_matrix.png)" in card and "MODEL_REPO=someone/digits" in card


def test_timm_loads_the_staged_files_with_the_apps_logits(digits):
    classifier = Classifier.from_file(hub.DEFAULT_MODEL_PATH)
    model = timm.create_model(f"local-dir:{digits}", pretrained=True).eval()
    assert model.pretrained_cfg["label_names"] == classifier.classes
    assert timm.data.resolve_data_config({}, model=model) == {
        "input_size": (1, 32, 32), "interpolation": "bilinear", "mean": [0.449], "std": [0.226], "crop_pct": 1.0,
        "crop_mode": "center"}
    paths = sorted((ROOT / "examples").glob("*.png"))
    inputs = torch.stack([classifier.to_input(load_image(path)) for path in paths])
    with torch.inference_mode():
        logits = model(inputs)
        assert torch.allclose(logits, build_model(*load_model_file(hub.DEFAULT_MODEL_PATH))(inputs), atol=1e-5)  # the app's network
        assert torch.allclose(logits, classifier.forward(inputs), atol=1e-4)  # its forward pass as served (ONNX)


def test_the_cards_timm_code_runs_and_agrees_with_the_app(digits):
    """The card's own snippet, with the local folder for the Hub repo and a real MNIST digit for the picture."""
    code = card_code((digits / "README.md").read_text())
    code = code.replace("hf-hub:someone/digits", f"local-dir:{digits}").replace('"digit.png"', repr(str(DIGIT)))
    scope: dict = {}
    exec(code, scope)
    app = Classifier.from_file(hub.DEFAULT_MODEL_PATH).predict(load_image(DIGIT))
    (probability, label), *_ = scope["top5"]
    assert label == next(iter(app)) == "7"
    assert probability == pytest.approx(app["7"], abs=0.02)  # timm resizes the PIL image, the app the tensor


def test_a_photo_model_round_trips_through_timm(shapes_model, tmp_path):
    folder = tmp_path / "staged"
    hub.stage(shapes_model, folder, "someone/shapes")
    classifier = Classifier.from_file(shapes_model)
    config = json.loads((folder / "config.json").read_text())
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32] and config["label_names"] == list(SHAPES)
    pictures = [shape_image(shape, random.Random(n)) for n, shape in enumerate(SHAPES * 3)]
    inputs = torch.stack([classifier.to_input(picture) for picture in pictures])
    model = timm.create_model(f"local-dir:{folder}", pretrained=True).eval()
    with torch.inference_mode():
        logits = model(inputs)
        assert torch.allclose(logits, build_model(*load_model_file(shapes_model))(inputs), atol=1e-5)
        assert torch.allclose(logits, classifier.forward(inputs), atol=1e-4)

    picture = tmp_path / "square.png"
    pictures[1].save(picture)
    code = card_code((folder / "README.md").read_text())
    assert '.convert("RGB")' in code
    scope: dict = {}
    exec(code.replace("hf-hub:someone/shapes", f"local-dir:{folder}").replace('"picture.jpg"', repr(str(picture))), scope)
    app = classifier.predict(load_image(picture))
    assert {label: p for p, label in scope["top5"]} == pytest.approx(app, abs=0.02)


def test_a_fastai_export_gets_no_timm_files_and_the_card_says_why(tmp_path, fastai_export):
    """A real fastai learn.export() (vision_learner: timm body, fastai head): timm.create_model cannot rebuild
    that network from a name, so no config.json or model.safetensors; model.pkl is the converted, safe file."""
    staged = hub.stage(fastai_export, tmp_path / "staged", "someone/shapes")
    assert staged == ["README.md", "model.pkl"]
    card = (tmp_path / "staged" / "README.md").read_text()
    assert ("timm cannot load this model alone: its network is a timm-features body under a fastai head "
            "(fastai export: vision_learner, test_resnet)") in card
    assert "hf-hub:" not in card and "Classifier.from_file" in card
    assert "library_name: timm" not in card.split("---")[1]  # the Hub would offer "Use in timm", which would fail
    record = torch.load(tmp_path / "staged" / "model.pkl", weights_only=True)  # no objects: this project's format
    assert record["meta"]["head"]["kind"] == "fastai" and record["meta"]["classes"] == list(SHAPES)
    image = shape_image("circle", random.Random(4))
    assert Classifier.from_file(tmp_path / "staged" / "model.pkl").predict(image) == pytest.approx(
        Classifier.from_file(fastai_export).predict(image))


class StubHubApi:
    """The Hub, as far as push_to_hub talks to it (the real one needs the network): a repo's files, commits."""

    files: list[str] = []
    commits: list[dict] = []

    def __init__(self, token=None):
        assert token == "hf_test"

    def create_repo(self, repo_id, **kwargs):
        return f"https://huggingface.co/{repo_id}"

    def list_repo_files(self, repo_id, **kwargs):
        return list(self.files)

    def create_commit(self, repo_id, operations, **kwargs):  # read now: the staging folder is gone afterwards
        self.commits.append({op.path_in_repo: Path(op.path_or_fileobj).read_bytes() if hasattr(op, "path_or_fileobj")
                             else None for op in operations})


@pytest.fixture
def stub_hub(monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", StubHubApi)
    StubHubApi.files, StubHubApi.commits = [], []
    return StubHubApi


def test_push_uploads_exactly_the_staged_files(tmp_path, stub_hub):
    assert hub.push_to_hub("someone/digits", hub.DEFAULT_MODEL_PATH, token="hf_test") == "https://huggingface.co/someone/digits"
    staged = hub.stage(hub.DEFAULT_MODEL_PATH, tmp_path / "staged", "someone/digits")
    (uploaded,) = stub_hub.commits
    assert sorted(uploaded) == staged
    for name in ("model.pkl", "model.safetensors", "config.json", "README.md", "report/report.json"):
        assert uploaded[name] == (tmp_path / "staged" / name).read_bytes(), name


def test_push_deletes_an_earlier_pushs_timm_files_the_model_no_longer_has(fastai_export, stub_hub):
    """A fastai model pushed where a timm one was: its stale config.json would tell timm to build the old model."""
    stub_hub.files = ["README.md", "model.pkl", "model.safetensors", "config.json", "report/curves.png", "notes.md"]
    hub.push_to_hub("someone/shapes", fastai_export, token="hf_test")
    (commit,) = stub_hub.commits
    deleted = sorted(name for name, content in commit.items() if content is None)
    assert deleted == ["config.json", "model.safetensors", "report/curves.png"]  # the user's notes.md stays
    assert sorted(name for name, content in commit.items() if content is not None) == ["README.md", "model.pkl"]


def test_stage_refuses_a_folder_with_files_and_a_file_that_is_not_a_model(tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.bin").write_bytes(b"x")
    with pytest.raises(BadInput, match="not an empty folder"):
        hub.stage(hub.DEFAULT_MODEL_PATH, tmp_path / "full")
    (tmp_path / "notes.pkl").write_text("hello")
    with pytest.raises(BadInput, match="not a model file"):
        hub.stage(tmp_path / "notes.pkl", tmp_path / "new")
    assert not (tmp_path / "new").exists()


def test_stage_from_the_command_line(tmp_path):
    run = subprocess.run([sys.executable, "-m", "dlcourse.hub", "stage", str(hub.DEFAULT_MODEL_PATH),
                          str(tmp_path / "out"), "--repo", "someone/digits"],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert sorted(Path(line).relative_to(tmp_path / "out").as_posix() for line in run.stdout.split()) == files_in(tmp_path / "out")
    run = subprocess.run([sys.executable, "-m", "dlcourse.hub", "stage", str(tmp_path / "missing.pkl"), str(tmp_path / "x")],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and run.stderr.startswith("error: No model file")


def test_stage_takes_train_pys_report_folder(tmp_path, capsys):
    """--report-dir: the figures train.py wrote (lr_find and show_batch among them), copied as they are."""
    from dlcourse.training import report

    info, _ = load_model_file(hub.DEFAULT_MODEL_PATH)
    folder = tmp_path / "reports" / "model"
    written = report.write_report(folder, info, info.report)
    (folder / "lr_find.png").write_bytes(written["curves"].read_bytes())  # any PNG: train.py's finder plot
    assert hub_main(["stage", str(hub.DEFAULT_MODEL_PATH), str(tmp_path / "out"), "--report-dir", str(folder)]) == 0
    staged = sorted(Path(line).relative_to(tmp_path / "out").as_posix() for line in capsys.readouterr().out.split())
    assert [name for name in staged if name.startswith("report/")] == [
        "report/confusion_matrix.png", "report/curves.png", "report/lr_find.png", "report/report.json",
        "report/top_losses.png"]
    for name in ("lr_find.png", "report.json"):
        assert (tmp_path / "out" / "report" / name).read_bytes() == (folder / name).read_bytes()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "](report/lr_find.png)" in card and "[report.json](report/report.json)" in card


def test_push_from_the_command_line(stub_hub, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert hub_main(["push", str(hub.DEFAULT_MODEL_PATH), "someone/digits"]) == 0
    assert capsys.readouterr().out.strip() == "https://huggingface.co/someone/digits"
    (commit,) = stub_hub.commits
    assert {"model.pkl", "model.safetensors", "config.json", "README.md"} <= set(commit)
    monkeypatch.setenv("HF_TOKEN", "")
    monkeypatch.setattr(hub, "hub_token", lambda: None)  # no cached `hf auth login` token either
    assert hub_main(["push", str(hub.DEFAULT_MODEL_PATH), "someone/digits"]) == 1
    assert capsys.readouterr().err.startswith("error: --push-to-hub someone/digits: no Hugging Face token")
