"""The classifier's forward pass on ONNX Runtime: the same answers as eager PyTorch, or eager PyTorch itself."""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import weakref

import pytest
import torch

from conftest import EXAMPLES_DIR, ROOT
from dlcourse.machine import usable_cores
from dlcourse.served.classifier import Classifier
from dlcourse.served.fast_forward import TOLERANCE, Exported, OnnxForward, fastest_forward, onnx_forward
from dlcourse.served.images import load_image
from dlcourse.served.loading import load_model_file
from dlcourse.served.modelfile import build_model


def test_the_served_model_runs_on_onnx_runtime_with_eager_pytorchs_probabilities(classifier, model_path):
    assert isinstance(classifier.forward, OnnxForward)
    images = [load_image(path) for path in sorted(EXAMPLES_DIR.glob("*.png"))]
    inputs = classifier.batch_inputs([classifier.prepare(image) for image in images])
    with torch.inference_mode():
        eager = build_model(*load_model_file(model_path))(inputs).softmax(dim=1)
    for start, stop in ((0, 1), (1, 5), (0, len(inputs))):  # one image, a few, all examples: any batch size
        assert (classifier.probabilities(inputs[start:stop]) - eager[start:stop]).abs().max() <= TOLERANCE
    labels = [next(iter(classifier.predict(image))) for image in images]
    assert labels == [path.stem.rsplit("-", 1)[-1] for path in sorted(EXAMPLES_DIR.glob("*.png"))]


def test_onnx_runtime_keeps_the_only_copy_of_the_weights(model_path):
    meta, state_dict = load_model_file(model_path)
    network = build_model(meta, state_dict)
    network_gone, weight_gone = weakref.ref(network), weakref.ref(next(network.parameters()))
    classifier = Classifier.from_network(meta, network)
    del network, state_dict
    gc.collect()
    assert isinstance(classifier.forward, OnnxForward)
    assert network_gone() is None and weight_gone() is None  # ONNX Runtime's own copy is all that is left


def test_a_photo_models_forward_pass_alone_is_split_over_the_cores_a_digits_models_is_not(model_path):
    """One visitor's photo waits about half as long on two cores; the 32 px digits model's layers are too small
    to share (SPLIT_FROM_MS). Runs side by side keep one thread each, with the same answers."""
    import threading

    import timm

    cores = usable_cores()
    photo_model = timm.create_model("resnet18", num_classes=2).eval()  # random weights: nothing downloads
    exported = Exported.of(photo_model, 3, 224)
    split = onnx_forward(exported)
    assert split.alone_threads == cores and (split.alone is not split.session) == (cores > 1)
    alone = split(exported.probe)
    side_by_side = [None, None]

    def run(slot: int) -> None:
        side_by_side[slot] = split(exported.probe)

    runs = [threading.Thread(target=run, args=(slot,)) for slot in range(2)]
    for thread in runs:
        thread.start()
    for thread in runs:
        thread.join()
    for logits in side_by_side:
        assert (logits.softmax(dim=1) - alone.softmax(dim=1)).abs().max() <= TOLERANCE
    assert split.running == 0
    meta, state_dict = load_model_file(model_path)
    digits = onnx_forward(Exported.of(build_model(meta, state_dict).eval(), meta.in_chans, meta.img_size))
    assert digits.alone_threads == 1 and digits.alone is digits.session


class ExportFails(torch.nn.Module):
    def forward(self, x):
        return torch.from_numpy(x.numpy().mean(axis=(2, 3)))  # leaves torch: nothing to export


class TracedBranch(torch.nn.Module):
    """Answers by a Python branch on the batch size: an exported graph keeps the branch it was traced through."""

    def forward(self, x):
        means = x.mean(dim=(1, 2, 3))
        return torch.stack([means, -means], dim=1) if x.shape[0] == 1 else torch.stack([-means, means], dim=1)


def test_a_network_onnx_cannot_export_or_answers_differently_stays_eager():
    for model in (ExportFails(), TracedBranch()):
        assert fastest_forward(model, 1, 8) is model


BIG_BATCH = """
import ctypes, torch
from dlcourse.served.fast_forward import OnnxForward

def rss_mb():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmRSS")).split()[1]) / 1024

torch.set_num_threads(1)
wide = torch.nn.Sequential(torch.nn.Conv2d(3, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(64, 2, 1)).eval()
with torch.no_grad():
    forward = OnnxForward.from_network(wide, torch.zeros(1, 3, 224, 224))
forward(torch.zeros(1, 3, 224, 224))
ctypes.CDLL("libc.so.6").malloc_trim(0)
before = rss_mb()
forward(torch.zeros(32, 3, 224, 224))  # ~400 MB of activations while it runs
ctypes.CDLL("libc.so.6").malloc_trim(0)
print(rss_mb() - before)
"""


def test_a_big_batch_leaves_onnx_runtimes_arena_as_it_was():
    run = subprocess.run([sys.executable, "-c", BIG_BATCH], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert float(run.stdout) < 100  # MB kept after the batch (ONNX Runtime's arena as it comes: ~530)


WITHOUT_ONNX = """
import sys
from dlcourse.served.classifier import Classifier
from dlcourse.served.fast_forward import OnnxForward

classifier = Classifier.from_file("model/model.pkl")
print(isinstance(classifier.forward, OnnxForward), "onnx" in sys.modules)
"""


def test_the_export_needs_no_onnx_package():
    """torch's exporter would import `onnx` (1-3 s of start-up) only to look for onnxscript functions."""
    run = subprocess.run([sys.executable, "-c", WITHOUT_ONNX], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.split() == ["True", "False"]  # served by ONNX Runtime, the onnx package never imported


LOADING = """
import json, os, pickle, sys, torch
from dlcourse.served import child_export
from dlcourse.served.classifier import Classifier
from dlcourse.served.images import load_image

class RunsCode:
    def __reduce__(self):
        return (os.system, ("touch ran-code",))

{patch}
classifier = Classifier.loading(sys.argv[1]).result()
{then}
images = [load_image(path) for path in sys.argv[2:]]
print(json.dumps({{"forward": type(classifier.forward).__name__, "classes": classifier.classes,
                  "built here": sorted(m for m in ("timm", "torchvision") if m in sys.modules),
                  "probabilities": [list(p.values()) for p in classifier.predict_batch(images)]}}))
"""
CHILD_ANSWERS = {  # what the forked child sends back -> whether this process used it
    "its export": ("", True),
    "its export, forked after torch ran in parallel here": (
        "torch.set_num_threads(2); torch.nn.functional.conv2d(torch.randn(4, 3, 96, 96), torch.randn(16, 3, 3, 3))", True),
    "nothing: it failed": ("child_export._answer = lambda path: 1 / 0", False),
    "code to run": ("child_export._answer = lambda path: pickle.dumps(RunsCode())", False),
    "probabilities ONNX Runtime does not match": (
        "export = child_export._answer\n"
        "def _answer(path):\n"
        "    record = torch.load(__import__('io').BytesIO(export(path)), weights_only=True)\n"
        "    record['probabilities'] = record['probabilities'].roll(1, dims=1)\n"
        "    buffer = __import__('io').BytesIO(); torch.save(record, buffer); return buffer.getvalue()\n"
        "child_export._answer = _answer", False),
}


@pytest.mark.parametrize("answer", CHILD_ANSWERS)
def test_loading_serves_the_childs_export_or_loads_the_file_itself(answer, classifier, model_path, tmp_path):
    """app.py's loading: a forked child builds and exports the network, so the server never imports timm or
    torchvision; whatever the child answers instead, the server loads the file itself, runs no code from the
    answer (read weights-only), and serves the same probabilities."""
    patch, used = CHILD_ANSWERS[answer]
    then = "import dlcourse.ui.space, dlcourse.pixels.baseline" if used else ""  # the rest of what app.py imports
    examples = sorted(EXAMPLES_DIR.glob("*.png"))[:4]
    script = LOADING.format(patch=patch, then=then)
    run = subprocess.run([sys.executable, "-c", script, str(model_path), *map(str, examples)],
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    served = json.loads(run.stdout)
    assert served["forward"] == "OnnxForward" and served["classes"] == classifier.classes
    assert (served["built here"] == []) == used, served["built here"]
    assert not (tmp_path / "ran-code").exists()
    expected = [list(p.values()) for p in classifier.predict_batch([load_image(path) for path in examples])]
    assert torch.allclose(torch.tensor(served["probabilities"]), torch.tensor(expected), atol=1e-6)
