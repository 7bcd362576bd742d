"""Shared fixtures: the project's MNIST copy, its artifacts, and real Gradio servers on localhost (support.serving)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# The tests reach nothing beyond this machine: no usage telemetry from Gradio, its client (which the MCP
# server also runs) or huggingface_hub. Set before gradio and huggingface_hub are imported: they read these then.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import pytest  # noqa: E402
from gradio_client import Client  # noqa: E402

# The tests import these from here too.
from support.serving import EXAMPLES_DIR, MNIST_DIR, ROOT, free_port, serving  # noqa: E402,F401


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module's tests, as app.py serves (on a small shared CPU more threads only fight)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return MNIST_DIR


@pytest.fixture(scope="session")
def model_path() -> Path:
    """The model file the app serves: model/model.pkl unless MODEL_PATH says otherwise."""
    from dlcourse.hub.model_repo import model_file_path

    return model_file_path({"MODEL_PATH": os.environ.get("MODEL_PATH", "")})


@pytest.fixture(scope="session")
def classifier(model_path):
    """The model the app serves, loaded once."""
    from dlcourse.served.classifier import Classifier

    return Classifier.from_file(model_path)


@pytest.fixture(scope="session")
def baseline():
    """The committed ideal digits (model/), loaded once."""
    from dlcourse.pixels.baseline import PixelBaseline

    return PixelBaseline.load()


@pytest.fixture(scope="session")
def app_url(classifier, baseline) -> Iterator[str]:
    """The whole Space, as app.py builds it, served on localhost for the test session."""
    from dlcourse.ui.space import build_demo

    with serving(build_demo(classifier, baseline)) as url:
        yield url


@pytest.fixture(scope="session")
def client(app_url) -> Client:
    """A gradio_client connected to the served Space."""
    return Client(app_url, verbose=False)


@dataclass
class PlantedDigits:
    folder: Path  # PNG digits in class folders with planted mistakes (support/planted.py); tests change copies only
    planted: dict[str, str]  # planted file -> its truth: the right digit, "photo" or "unreadable"
    model: Path  # a model train.py trained on the folder as it is
    output: str  # what train.py printed


@pytest.fixture(scope="session")
def planted_digits(tmp_path_factory) -> PlantedDigits:
    """300 MNIST digits as PNG files, 10% in a wrong class folder, 3 photos and 2 broken files among them, and a
    tiny model train.py trained on them (seconds on a CPU): what the data cleaner's tests rank and clean."""
    from support.planted import make_planted_mnist
    from trainkit import FAST, run_train

    root = tmp_path_factory.mktemp("planted")
    planted = make_planted_mnist(root / "digits", MNIST_DIR, count=300, photos=3, unreadable=2)
    model = root / "model.pkl"
    run = run_train([*FAST, "--img-size", "28", "--epochs", "2", "--data", str(root / "digits"), "--out", str(model),
                     "--report-dir", str(root / "report")], cwd=root)
    assert run.returncode == 0, run.stderr[-3000:]
    return PlantedDigits(root / "digits", planted, model, run.stdout)
