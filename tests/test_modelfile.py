"""The model file format: a round trip, and refusal of anything foreign, tampered or able to run code."""
from __future__ import annotations

import pickle
import zipfile

import pytest
import timm
import torch

from conftest import ROOT
from dlcourse.served.classifier import Classifier
from dlcourse.errors import BadInput
from dlcourse.served.modelfile import ModelInfo, build_model, save_model_file
from dlcourse.served.loading import load_model_file
from payloads import RunsExec

META = {
    "arch": "test_resnet", "classes": ["a", "b", "c"], "in_chans": 1, "img_size": 28, "mean": [0.5], "std": [0.25],
    "preprocessing": "mnist", "metrics": {"accuracy": 0.5, "error_rate": 0.5, "valid_loss": 1.0},
    "history": [{"epoch": 1, "phase": "all", "train_loss": 1.2, "valid_loss": 1.0, "error_rate": 0.5,
                 "accuracy": 0.5, "seconds": 1.0}],
    "versions": {"torch": str(torch.__version__)}, "weights": None, "pretrained": False, "recipe": {"lr": 1e-3},
}


@pytest.fixture
def model():
    torch.manual_seed(0)
    return timm.create_model("test_resnet", num_classes=3, in_chans=1).eval()


@pytest.fixture
def saved(tmp_path, model):
    return save_model_file(tmp_path / "model.pkl", model.state_dict(), ModelInfo.from_dict(META))


def test_round_trip_gives_the_same_network_and_meta(saved, model):
    meta, state_dict = load_model_file(saved)
    assert meta == ModelInfo.from_dict(META) and meta.origin == "train.py" and meta.examples == []
    rebuilt = build_model(meta, state_dict)
    inputs = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(rebuilt(inputs), model(inputs))
    assert not saved.with_name("model.pkl.partial").exists()
    record = torch.load(saved, weights_only=True)
    assert record["meta"] == meta.to_dict()  # plain values only
    assert list(record) == ["format", "format_version", "meta", "state_dict", "weights_sha256"]
    assert (record["format"], record["format_version"]) == ("dlcourse-model", 1)


def test_the_network_holds_the_files_weights_once_and_half_precision_ones_as_float32(saved, model):
    meta, state_dict = load_model_file(saved)
    rebuilt = build_model(meta, state_dict)
    shared = {name: tensor.data_ptr() for name, tensor in rebuilt.state_dict().items()}
    assert shared == {name: tensor.data_ptr() for name, tensor in state_dict.items()}  # no second copy
    half = build_model(meta, {name: tensor.half() if tensor.is_floating_point() else tensor
                              for name, tensor in state_dict.items()})
    assert all(p.dtype == torch.float32 for p in half.parameters())  # the network's own dtype, as before
    inputs = torch.randn(4, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(half(inputs), model(inputs), atol=1e-2)


def test_files_written_before_the_artifacts_helper_still_load():
    """model/model.pkl was written by the model file's own save code, before dlcourse.artifacts; the fastai
    export in tests/data by fastai 2.7."""
    info, state_dict = load_model_file(ROOT / "model" / "model.pkl")
    assert info.arch == "resnet10t" and info.classes == [str(d) for d in range(10)] and len(state_dict) == 86
    info, state_dict = load_model_file(ROOT / "tests" / "data" / "fastai-2.7" / "export.pkl")
    assert info.origin.startswith("fastai export: vision_learner") and state_dict


def test_a_classifier_loads_it(saved):
    classifier = Classifier.from_file(saved)
    assert classifier.classes == ["a", "b", "c"] and classifier.meta.preprocessing == "mnist"


@pytest.mark.parametrize("writer", ["torch.save", "pickle-2", "pickle-4", "pickle-5"])
def test_a_pickle_that_would_run_code_is_refused_and_never_run(tmp_path, writer):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pkl"
    record = {"format": "dlcourse-model", "format_version": 1, "meta": RunsExec(marker), "state_dict": {}}
    if writer == "torch.save":
        torch.save(record, path)
    else:
        path.write_bytes(pickle.dumps(record, protocol=int(writer[-1])))
    with pytest.raises(BadInput, match="refused.*could run code.*Nothing in it was executed") as refused:
        load_model_file(path)
    if writer in ("torch.save", "pickle-2"):
        assert "Unsupported global: GLOBAL exec" in str(refused.value)
    with pytest.raises(BadInput):
        Classifier.from_file(path)
    assert not marker.exists()
    # The payload is live: an unsafe load does run it. The model file loader never does that.
    torch.load(path, weights_only=False) if writer == "torch.save" else pickle.loads(path.read_bytes())
    assert marker.exists()


class Learner:
    """Named like fastai's Learner, but not fastai's: a pickle of objects, neither our format nor an export."""

    def __init__(self, model):
        self.model, self.dls, self.loss_func = model, None, torch.nn.CrossEntropyLoss()


def test_a_pickle_of_objects_that_is_no_fastai_export_is_refused(tmp_path, model):
    path = tmp_path / "export.pkl"
    torch.save(Learner(model), path)
    with pytest.raises(BadInput, match="neither a model file of train.py nor a fastai Learner export"):
        load_model_file(path)


def test_changed_weights_are_refused(saved):
    record = torch.load(saved, weights_only=True)
    name = next(iter(record["state_dict"]))
    record["state_dict"][name] = record["state_dict"][name] + 1e-3
    torch.save(record, saved)
    with pytest.raises(BadInput, match="modified after it was written"):
        load_model_file(saved)


def test_flipped_bytes_are_refused(saved):
    data = bytearray(saved.read_bytes())
    with zipfile.ZipFile(saved) as archive:  # a byte inside the largest stored tensor
        info = max(archive.infolist(), key=lambda i: i.file_size)
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + info.file_size // 2
    data[offset] ^= 0xFF
    saved.write_bytes(bytes(data))
    with pytest.raises(BadInput, match="modified after it was written|can be read"):
        load_model_file(saved)


def test_truncated_file_is_refused(saved):
    saved.write_bytes(saved.read_bytes()[:1000])
    with pytest.raises(BadInput, match="not a model file that can be read"):
        load_model_file(saved)


def test_foreign_files_are_refused(tmp_path, model):
    plain = tmp_path / "weights.pth"
    torch.save(model.state_dict(), plain)
    with pytest.raises(BadInput, match="not a model file of this project"):
        load_model_file(plain)
    text = tmp_path / "notes.pkl"
    text.write_text("hello")
    with pytest.raises(BadInput):
        load_model_file(text)
    with pytest.raises(BadInput, match="No model file"):
        load_model_file(tmp_path / "absent.pkl")


def test_values_torch_could_not_load_back_are_refused_on_save(tmp_path, model):
    meta = dict(META, versions={"torch": torch.__version__})  # a TorchVersion, a str subclass
    with pytest.raises(BadInput, match=r"meta\['versions'\]\['torch'\] is a TorchVersion"):
        save_model_file(tmp_path / "x.pkl", model.state_dict(), ModelInfo.from_dict(meta))
    assert not (tmp_path / "x.pkl").exists()


def test_incomplete_meta_is_refused_on_save_and_load(tmp_path, model):
    with pytest.raises(BadInput, match="'classes'"):
        ModelInfo.from_dict({k: v for k, v in META.items() if k != "classes"})
    one_class = ModelInfo.from_dict(META)
    one_class.classes = ["a"]
    with pytest.raises(BadInput, match="two classes"):
        save_model_file(tmp_path / "x.pkl", model.state_dict(), one_class)
    assert not (tmp_path / "x.pkl").exists()
    path = save_model_file(tmp_path / "y.pkl", model.state_dict(), ModelInfo.from_dict(META))
    record = torch.load(path, weights_only=True)
    record["meta"]["preprocessing"] = "sorcery"
    torch.save(record, path)
    with pytest.raises(BadInput, match="unknown preprocessing"):
        load_model_file(path)


def test_one_accuracy_rule_for_every_view():
    """A file that records only an error rate: the Classify panel, the report, the model card and the Pixel
    similarity tab all show the same accuracy, taken from ModelInfo.accuracy."""
    from dlcourse.hub.model_card import model_card
    from dlcourse.training.report_view import for_display
    from dlcourse.ui.classify import model_card_markdown
    from dlcourse.ui.pixel_similarity import classifier_markdown

    info = ModelInfo.from_dict(META | {"classes": [str(d) for d in range(10)], "metrics": {"error_rate": 0.0125}})
    assert info.accuracy == pytest.approx(0.9875)
    assert "| Validation accuracy | 98.75% |" in model_card_markdown(info)
    assert "Validation accuracy: 98.75%" in for_display(info)["headline"]
    assert "| validation accuracy | 0.9875 |" in model_card(info)
    assert "**98.75%**" in classifier_markdown(info)
    assert "| Made with | train.py |" in model_card_markdown(info)
