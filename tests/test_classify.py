"""The Classify tab and its API, against the whole Space served on localhost, with the default model."""
import concurrent.futures
import io
import os
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from conftest import EXAMPLES_DIR, ROOT, free_port
from dlcourse.served.digit_variants import VARIANTS, render
from dlcourse.hub.model_repo import model_file_path
from dlcourse.mnist import load_split


def label_of(prediction: dict) -> str:
    return str(prediction["label"])


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    good = Image.open(EXAMPLES_DIR / "photo-thick-8.png").convert("RGB")
    files = {}

    def write(name: str, data: bytes) -> None:
        files[name] = folder / name
        files[name].write_bytes(data)

    write("notes.txt", b"this is not an image")
    write("empty.png", b"")
    jpeg = io.BytesIO()
    good.save(jpeg, "JPEG")
    write("truncated.jpg", jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    header = struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    write("bomb.png", b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 30001)) + chunk(b"IEND", b""))
    tiny = io.BytesIO()
    Image.new("RGB", (1, 1), "white").save(tiny, "PNG")
    write("tiny.png", tiny.getvalue())
    animation = io.BytesIO()
    frames = [Image.open(EXAMPLES_DIR / f"mnist-test-{d}.png").convert("P") for d in (3, 7)]
    frames[0].save(animation, "GIF", save_all=True, append_images=frames[1:], duration=100)
    write("animated.gif", animation.getvalue())
    return files


def test_classify_one_image_through_the_api(client):
    prediction = client.predict(handle_file(EXAMPLES_DIR / "mnist-test-7.png"), api_name="/classify")
    assert label_of(prediction) == "7"
    confidences = {str(c["label"]): c["confidence"] for c in prediction["confidences"]}
    assert confidences["7"] > 0.5 and len(confidences) == 5


def test_every_example_is_classified_as_its_name_says(client):
    for path in sorted(EXAMPLES_DIR.glob("*.png")):
        expected = path.stem.rsplit("-", 1)[-1]
        assert label_of(client.predict(handle_file(path), api_name="/classify")) == expected, path.name


def test_batch_gives_one_result_per_image_in_order(client, bad_files):
    paths = [EXAMPLES_DIR / "mnist-test-1.png", bad_files["notes.txt"], EXAMPLES_DIR / "mnist-test-0.png"]
    results = client.predict([handle_file(p) for p in paths], api_name="/classify_batch")
    assert [r["file"] for r in results] == ["mnist-test-1.png", "notes.txt", "mnist-test-0.png"]
    assert results[0]["label"] == "1" and results[2]["label"] == "0"
    assert "not an image" in results[1]["error"] and "label" not in results[1]


@pytest.mark.parametrize(
    "name, message",
    [
        ("notes.txt", "not an image"),
        ("empty.png", "empty"),
        ("truncated.jpg", "truncated"),
        ("bomb.png", "megapixels"),
        ("tiny.png", "1x1"),
        ("animated.gif", "animation"),
    ],
)
def test_bad_input_gets_a_clear_error_and_the_app_keeps_serving(client, bad_files, name, message):
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(bad_files[name]), api_name="/classify")
    assert label_of(client.predict(handle_file(EXAMPLES_DIR / "mnist-test-3.png"), api_name="/classify")) == "3"


def test_concurrent_requests_get_the_same_answers_as_sequential_ones(client, app_url):
    paths = sorted(EXAMPLES_DIR.glob("mnist-test-*.png")) * 3
    expected = [client.predict(handle_file(p), api_name="/classify") for p in paths[:10]] * 3

    def ask(path):
        return Client(app_url, verbose=False).predict(handle_file(path), api_name="/classify")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, paths))
    for got, want in zip(answers, expected):
        assert got["label"] == want["label"]
        assert got["confidences"][0]["confidence"] == pytest.approx(want["confidences"][0]["confidence"], abs=1e-5)


def test_real_world_renderings_of_mnist_test_digits_are_classified(classifier, mnist_dir):
    """500 test digits as dark ink on paper, off-centre, thick, thin, grey photos, RGB ink: >= 97% right."""
    if classifier.meta.preprocessing != "mnist":
        pytest.fail("the default model must be the digits model")
    images, labels = load_split(mnist_dir, "test")
    rng = np.random.default_rng(0)
    chosen = rng.choice(len(images), 500, replace=False)
    pictures = [render(images[i], VARIANTS[n % len(VARIANTS)], rng) for n, i in enumerate(chosen)]
    predictions = []
    for start in range(0, len(pictures), 100):
        predictions += [label_of({"label": next(iter(p))}) for p in classifier.predict_batch(pictures[start : start + 100])]
    accuracy = np.mean([p == str(labels[i]) for p, i in zip(predictions, chosen)])
    assert accuracy >= 0.97, f"{accuracy:.1%}"


def test_unreachable_model_repo_falls_back_to_the_local_file(caplog, tmp_path):
    local = tmp_path / "model.pkl"
    # a Hub endpoint where nothing listens: the real download code fails as it would offline
    unreachable = {"MODEL_REPO": "someone/digits", "MODEL_PATH": str(local), "HF_ENDPOINT": f"http://127.0.0.1:{free_port()}"}
    with caplog.at_level("WARNING"):
        assert model_file_path(unreachable) == local
    assert "someone/digits" in caplog.text and str(local) in caplog.text


def test_python_app_py_serves_on_the_port_it_is_given():
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.stdout.read().decode()[-3000:])
                time.sleep(0.5)
        prediction = client.predict(handle_file(EXAMPLES_DIR / "mnist-test-2.png"), api_name="/classify")
        assert label_of(prediction) == "2"
    finally:
        server.terminate()
        server.wait(30)
