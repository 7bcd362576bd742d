"""A student's fastai learn.export() file, served without fastai and without running anything in it.

The exports are real: tests/fastai_exports.py makes them with fastai in a process of its own (where the
label function `is_cat` lives, as in a notebook) and records learn.predict's answers on the same image files.
"""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import types
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from gradio_client import Client, handle_file

from conftest import ROOT, free_port
from payloads import RunsExec, RunsShell
from dlcourse.served.classifier import Classifier
from dlcourse.errors import BadInput
from dlcourse.served.fastai_export import read_export
from dlcourse.served.fast_forward import OnnxForward
from dlcourse.hub.model_card import model_card
from dlcourse.served.images import load_image
from dlcourse.served.loading import load_model_file
from dlcourse.ui.classify import heading_markdown, model_card_markdown

TOLERANCE = 1e-4
FASTAI_MODULES = ("fastai", "fastcore", "fasttransform", "plum")
SERVED = {  # export: (arch, resize method)
    "resnet18_crop": ("resnet18", "crop"),
    "lesson_224": ("resnet18", "crop"),
    "resnet18_pad": ("resnet18", "pad"),
    "resnet18_rrc": ("resnet18", "squish-crop"),
    "presize_rrc": ("resnet18", "crop"),
    "presize_affine": ("resnet18", "crop"),
    "timm_squish": ("resnet10t", "squish"),
    "windows_path": ("resnet18", "crop"),
}


@dataclass
class Exports:
    folder: Path
    predictions: dict  # {export name: {"vocab": [...], "probs": {image file name: [p, ...]}}}

    def images(self) -> list[Path]:
        return sorted((self.folder / "images").iterdir())

    def expected(self, name: str, image: Path) -> dict[str, float]:
        record = self.predictions[name]
        return dict(zip(record["vocab"], record["probs"][image.name]))


@pytest.fixture(scope="module")
def exports(tmp_path_factory) -> Exports:
    folder = tmp_path_factory.mktemp("fastai")
    run = subprocess.run([sys.executable, str(ROOT / "tests" / "fastai_exports.py"), str(folder)], cwd=ROOT,
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stderr[-3000:]
    return Exports(folder, json.loads((folder / "predictions.json").read_text()))


def worst_difference(classifier: Classifier, exports: Exports, name: str) -> float:
    differences = []
    for image in exports.images():
        got, want = classifier.predict(load_image(image)), exports.expected(name, image)
        assert set(got) == set(want)
        differences += [abs(got[label] - want[label]) for label in want]
    return max(differences)


@pytest.mark.parametrize("name", list(SERVED))
def test_the_export_answers_as_learn_predict_does(exports, name):
    classifier = Classifier.from_file(exports.folder / f"{name}.pkl")
    arch, resize = SERVED[name]
    assert classifier.meta.arch == arch and classifier.meta.resize == resize
    assert classifier.meta.origin == f"fastai export: vision_learner, {arch}"
    assert classifier.classes == exports.predictions[name]["vocab"]
    assert isinstance(classifier.forward, OnnxForward)  # the served forward pass, not the network it came from
    assert worst_difference(classifier, exports, name) < TOLERANCE


def test_what_the_file_names_need_not_exist_here(exports):
    def pickle_of(name: str) -> bytes:
        with zipfile.ZipFile(exports.folder / f"{name}.pkl") as archive:
            return archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))

    assert b"is_cat" in pickle_of("resnet18_crop")  # the label function, pickled by cloudpickle from __main__
    assert b"WindowsPath" in pickle_of("windows_path")  # fastai's load_learner: "cannot instantiate 'WindowsPath'"
    assert not hasattr(sys.modules["__main__"], "is_cat")
    assert Classifier.from_file(exports.folder / "windows_path.pkl").classes == ["False", "True"]


def test_the_apps_code_path_never_imports_fastai(exports):
    """app.py's own start-up (model file from MODEL_PATH, the whole Space built), one prediction, in a
    fresh process: no fastai, fastcore, fasttransform or plum module is ever imported."""
    image = exports.images()[0]
    script = (
        "import runpy, sys\n"
        "space = runpy.run_path('app.py')\n"  # not __main__: builds the demo, does not launch it
        "from dlcourse.served.images import load_image\n"
        f"print(space['classifier'].predict(load_image({str(image)!r})))\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FASTAI_MODULES!r}))\n"
    )
    env = {**os.environ, "MODEL_PATH": str(exports.folder / "resnet18_crop.pkl")}
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    answer, modules = run.stdout.strip().splitlines()[-2:]
    assert modules == "[]"
    want = exports.expected("resnet18_crop", image)
    assert all(abs(eval(answer)[label] - p) < TOLERANCE for label, p in want.items())


@pytest.mark.parametrize("name, words", [
    ("multi_label", ["multi-label learner", "BCEWithLogitsLossFlat", "sigmoid and threshold 0.5"]),
    ("tabular", ["tabular learner", "TabularLearner"]),
    ("text", ["text learner", "SequentialRNN"]),
    ("custom_head", ["Sigmoid", "unknown custom head"]),
    ("custom_body", ["do not fit torchvision 'resnet18'", "missing 0.7.", "unknown custom body or head"]),
    ("unknown_timm_arch", ["timm installed here does not know", "resnet10t_from_a_newer_timm"]),
])
def test_what_cannot_be_served_is_refused_in_one_line_naming_it(exports, name, words):
    with pytest.raises(BadInput) as refused:
        Classifier.from_file(exports.folder / f"{name}.pkl")
    message = str(refused.value)
    assert "\n" not in message and all(word in message for word in words), message


def test_damaged_exports_are_refused_in_one_line(exports, tmp_path):
    whole = (exports.folder / "resnet18_crop.pkl").read_bytes()
    with zipfile.ZipFile(exports.folder / "resnet18_crop.pkl") as archive:
        pickle_entry = next(i for i in archive.infolist() if i.filename.endswith("/data.pkl"))
    flipped = bytearray(whole)
    flipped[pickle_entry.header_offset + 30 + len(pickle_entry.filename) + len(pickle_entry.extra) + 100] ^= 0xFF
    cases = {"truncated.pkl": whole[: len(whole) // 2], "flipped.pkl": bytes(flipped), "empty.pkl": b"",
             "cut-pickle.pkl": _zip_with(tmp_path, pickle=_pickle_of(exports)[:5000])}
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(BadInput) as refused:
            Classifier.from_file(tmp_path / name)
        assert "\n" not in str(refused.value), name
    with pytest.raises(BadInput, match="is damaged: "):
        read_export(tmp_path / "cut-pickle.pkl")


def _pickle_of(exports: Exports) -> bytes:
    with zipfile.ZipFile(exports.folder / "resnet18_crop.pkl") as archive:
        return archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))


def _zip_with(folder: Path, pickle: bytes) -> bytes:
    path = folder / "zip-with-pickle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("export/data.pkl", pickle)
    return path.read_bytes()


def _fake_fastai_learner(**state):
    """An object that pickles as fastai.learner.Learner (fake modules while pickling: fastai is not imported)."""
    fastai, learner_module = types.ModuleType("fastai"), types.ModuleType("fastai.learner")
    learner_class = type("Learner", (), {"__module__": "fastai.learner"})
    learner_module.Learner, fastai.learner = learner_class, learner_module
    learner = learner_class()
    learner.__dict__.update(state)
    return learner, {"fastai": fastai, "fastai.learner": learner_module}


def test_malicious_exports_are_refused_and_provably_never_run(tmp_path):
    markers = {name: tmp_path / f"{name}-ran" for name in ("system", "exec", "model", "loss")}
    files = {"system.pkl": {"payload": RunsShell(markers["system"])}, "exec.pkl": [RunsExec(markers["exec"])]}
    learner, fake_modules = _fake_fastai_learner(model=RunsShell(markers["model"]), loss_func=RunsExec(markers["loss"]),
                                                 dls=None, arch="resnet18")
    saved = {name: sys.modules.get(name) for name in fake_modules}
    sys.modules.update(fake_modules)
    try:
        for name, payload in files.items():
            torch.save(payload, tmp_path / name)
        torch.save(learner, tmp_path / "fastai-named.pkl", pickle_protocol=2)
    finally:
        for name, module in saved.items():
            sys.modules.pop(name) if module is None else sys.modules.__setitem__(name, module)
    assert b"fastai.learner" in zipfile.ZipFile(tmp_path / "fastai-named.pkl").read("fastai-named/data.pkl")

    # Load each in a process with an audit hook: no process, no shell, no import of what the file names;
    # the markers say no exec() of the file's code either (imports exec module code, so that event is no proof).
    script = (
        "import json, sys\n"
        "from dlcourse.served.classifier import Classifier\n"
        "from dlcourse.errors import BadInput\n"
        "import dlcourse.served.fastai_export\n"
        "events = []\n"
        "watched = ('os.system', 'subprocess.Popen', 'os.posix_spawn', 'os.exec', 'os.fork')\n"
        "sys.addaudithook(lambda event, args: events.append(event) if event in watched or (event == 'import' and"
        " args[0].split('.')[0] in ('fastai', 'posix', 'builtins', 'fastcore')) else None)\n"
        "refusals = {}\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        Classifier.from_file(path)\n"
        "    except BadInput as error:\n"
        "        refusals[path] = str(error)\n"
        "print(json.dumps({'events': events, 'refusals': refusals}))\n"
    )
    paths = [str(tmp_path / name) for name in (*files, "fastai-named.pkl")]
    run = subprocess.run([sys.executable, "-c", script, *paths], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["events"] == [] and not any(marker.exists() for marker in markers.values())
    assert set(result["refusals"]) == set(paths)
    assert "nor a fastai Learner export" in result["refusals"][paths[0]]
    assert "cannot be served: its loss is __builtin__.exec" in result["refusals"][paths[2]]

    # The payloads are live: an ordinary unpickling (fastai's load_learner does one) runs them.
    for path in paths[:2]:
        try:
            torch.load(path, weights_only=False)
        except Exception:
            pass
    assert markers["system"].exists() and markers["exec"].exists()


def _start_app(env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), **env}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 180
    while True:
        try:
            urllib.request.urlopen(url + "config", timeout=5).read()
            return server, url
        except Exception:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(server.stdout.read().decode()[-3000:])
            time.sleep(0.5)


def test_python_app_py_serves_the_export_given_as_model_path(exports):
    """The lesson's export (resnet18 at 224 px) through the served path: ONNX Runtime, as learn.predict answers."""
    server, url = _start_app({"MODEL_PATH": str(exports.folder / "lesson_224.pkl")})
    try:
        client = Client(url, verbose=False)
        for image in exports.images()[:4]:
            answer = client.predict(handle_file(image), api_name="/classify")
            got = {item["label"]: item["confidence"] for item in answer["confidences"]}
            want = exports.expected("lesson_224", image)
            assert answer["label"] == max(want, key=want.get)
            assert all(abs(got[label] - p) < TOLERANCE for label, p in want.items())
        config = json.load(urllib.request.urlopen(url + "config", timeout=30))
        texts = {c["props"].get("elem_id"): c["props"].get("value") for c in config["components"]}
        assert "| Made with | fastai export: vision_learner, resnet18 |" in texts["cls-model-info"]
        assert "train.py" not in texts["cls-heading"] and "fastai export: vision_learner, resnet18" in texts["cls-heading"]
    finally:
        server.terminate()
        server.wait(30)


def test_an_unusable_model_file_stops_start_up_with_one_line(exports):
    env = {**os.environ, "MODEL_PATH": str(exports.folder / "multi_label.pkl")}
    run = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "multi-label learner" in last


def test_model_repo_serves_a_push_to_hub_fastai_repo(exports, tmp_path):
    """MODEL_REPO, with no Hub here: the repo push_to_hub_fastai makes (its own _save_pretrained_fastai
    wrote model.pkl, README.md, pyproject.toml) laid in the Hub cache as hf_hub_download leaves it after a
    download; the real hf_hub_download, offline, resolves MODEL_REPO to that file. Not a stub, but no network."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--student--pets"
    shutil.copytree(exports.folder / "hub_repo", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    image = exports.images()[1]
    script = (
        "import json\n"
        "from dlcourse.served.classifier import Classifier\n"
        "from dlcourse.hub.model_repo import model_file_path\n"
        "from dlcourse.served.images import load_image\n"
        "path = model_file_path()\n"
        f"print(json.dumps({{'path': str(path), 'probs': Classifier.from_file(path).predict(load_image({str(image)!r}))}}))\n"
    )
    env = {**os.environ, "MODEL_REPO": "student/pets", "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1",
           "MODEL_PATH": str(tmp_path / "absent.pkl")}
    run = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["path"] == str(repo / "snapshots" / commit / "model.pkl")
    want = exports.expected("resnet18_crop", image)  # the same learner, exported by push_to_hub_fastai's code
    assert all(abs(result["probs"][label] - p) < TOLERANCE for label, p in want.items())


def test_convert_writes_a_weights_only_model_file_that_records_its_origin(exports, tmp_path):
    out = tmp_path / "pets.pkl"
    run = subprocess.run([sys.executable, "-m", "dlcourse.served.fastai_export", "convert",
                          str(exports.folder / "timm_squish.pkl"), str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"wrote {out}: fastai export: vision_learner, resnet10t, 2 classes (Cat, dog)" in run.stdout
    record = torch.load(out, weights_only=True)  # plain values and tensors only
    assert record["meta"]["origin"] == "fastai export: vision_learner, resnet10t"
    info, _ = load_model_file(out)
    assert info.body == "timm-features" and info.head["kind"] == "fastai" and info.resize == "squish"
    assert worst_difference(Classifier.from_file(out), exports, "timm_squish") < TOLERANCE
    card = model_card(info, "student/pets")
    assert "from a fastai export: vision_learner, resnet10t" in card and "| made with | fastai export" in card
    assert "| Made with | fastai export: vision_learner, resnet10t |" in model_card_markdown(info)
    assert set(info.metrics) == {"valid_loss", "error_rate", "accuracy"}  # the recorder's last epoch
    assert f"| Validation accuracy | {1 - info.metrics['error_rate']:.2%} |" in model_card_markdown(info)
    assert "train.py" not in heading_markdown(info)

    refused = subprocess.run([sys.executable, "-m", "dlcourse.served.fastai_export", "convert",
                              str(exports.folder / "multi_label.pkl"), str(tmp_path / "no.pkl")], cwd=ROOT,
                             capture_output=True, text=True, timeout=300)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines()[-1].startswith("error: ") and "multi-label" in refused.stderr
    assert not (tmp_path / "no.pkl").exists()


def test_read_export_refuses_a_plain_pickle_file(tmp_path):
    path = tmp_path / "plain.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(BadInput, match="not a torch zip file"):
        read_export(path)


def test_a_fastai_2_7_export_is_served_as_its_learn_predict_answered():
    """A file fastai 2.7 wrote (fastcore.transform pipelines, which fastai 2.8's load_learner refuses), kept in
    tests/data/fastai-2.7 with what its learn.predict said (make.py there says how it was made)."""
    folder = ROOT / "tests" / "data" / "fastai-2.7"
    expected = json.loads((folder / "predictions.json").read_text())
    with zipfile.ZipFile(folder / "export.pkl") as archive:
        assert b"fastcore.transform" in archive.read(next(n for n in archive.namelist() if n.endswith("/data.pkl")))
    classifier = Classifier.from_file(folder / "export.pkl")
    assert expected["fastai"].startswith("2.7.") and classifier.classes == expected["vocab"]
    assert classifier.meta.origin == "fastai export: vision_learner, test_resnet" and classifier.meta.resize == "squish"
    for name, probs in expected["probs"].items():
        got = classifier.predict(load_image(folder / name))
        assert all(abs(got[label] - p) < TOLERANCE for label, p in zip(expected["vocab"], probs)), name
