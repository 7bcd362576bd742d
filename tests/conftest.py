"""Shared fixtures: the project's MNIST copy, its artifacts, and real Gradio servers on localhost."""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path
from typing import Iterator

# The tests reach nothing beyond this machine: no usage telemetry from Gradio, its client (which the MCP
# server also runs) or huggingface_hub. Set before gradio and huggingface_hub are imported: they read these then.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"

import gradio as gr  # noqa: E402
import pytest  # noqa: E402
from gradio_client import Client  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = ROOT / "data" / "mnist"
EXAMPLES_DIR = ROOT / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(demo: gr.Blocks) -> Iterator[str]:
    """Launch a Blocks on a free localhost port, as app.py launches the Space; yield its URL; close it afterwards."""
    from dlcourse.ui.space import LAUNCH_OPTIONS, prepare_process

    prepare_process()  # the process settings app.py serves with (torch threads, Gradio sessions, malloc)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **LAUNCH_OPTIONS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    return MNIST_DIR


@pytest.fixture(scope="session")
def classifier():
    """The model the app serves: model/model.pkl unless MODEL_PATH says otherwise, loaded once."""
    from dlcourse.classifier import Classifier
    from dlcourse.hub import model_file_path

    return Classifier.from_file(model_file_path({"MODEL_PATH": os.environ.get("MODEL_PATH", "")}))


@pytest.fixture(scope="session")
def baseline():
    """The committed ideal digits (model/), loaded once."""
    from dlcourse.pixel_similarity import PixelBaseline

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
