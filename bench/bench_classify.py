"""Classify speed of the served model on this machine; prints figures, judges nothing.

    .venv/bin/python bench/bench_classify.py [--model model/model.pkl] [--repeats 200]

1. in-process single image: Classifier.predict vs the bare preprocess + forward it wraps;
2. through the HTTP API (a real server on localhost, gradio_client): p50 / p95;
3. batch: Classifier.predict_batch vs the bare batched forward, images per second;
4. start-up: `python app.py` to its first answer vs `python -c "import torch, timm, gradio"`.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import torch  # noqa: E402

from dlcourse.served.classifier import Classifier  # noqa: E402
from dlcourse.served.images import load_image  # noqa: E402
from support.serving import free_port  # noqa: E402
from support.timing import percentile, timings_ms  # noqa: E402

EXAMPLES = sorted((ROOT / "examples").glob("*.png"))


def in_process(classifier: Classifier, repeats: int) -> None:
    image = load_image(EXAMPLES[0])

    @torch.inference_mode()
    def bare() -> torch.Tensor:
        return classifier.forward(classifier.to_input(image).unsqueeze(0))

    # interleave the two so drift of the machine's speed hits both alike
    bare_times, predict_times = [], []
    for _ in range(5):
        bare_times += timings_ms(bare, repeats // 5)
        predict_times += timings_ms(lambda: classifier.predict(image), repeats // 5)
    bare_p50, predict_p50 = statistics.median(bare_times), statistics.median(predict_times)
    print(f"in-process single image: predict p50 {predict_p50:.2f} ms, bare preprocess+forward p50 {bare_p50:.2f} ms, "
          f"ratio {predict_p50 / bare_p50:.3f}")
    decode = timings_ms(lambda: classifier.predict(load_image(EXAMPLES[0])), repeats // 2)
    print(f"  with decoding the PNG file as well: p50 {statistics.median(decode):.2f} ms")


def batch(classifier: Classifier, size: int = 64, rounds: int = 5) -> None:
    images = [load_image(EXAMPLES[i % len(EXAMPLES)]) for i in range(size)]
    inputs = torch.stack([classifier.to_input(image) for image in images])

    @torch.inference_mode()
    def bare() -> torch.Tensor:
        return classifier.forward(inputs)

    bare_times, batch_times = [], []
    for _ in range(rounds):  # interleaved, so drift of the machine's speed hits both alike
        bare_times += timings_ms(bare, 5)
        batch_times += timings_ms(lambda: classifier.predict_batch(images), 5)
    bare_ms, batch_ms = statistics.median(bare_times), statistics.median(batch_times)
    print(f"batch of {size}: predict_batch {size / batch_ms * 1000:.0f} images/s, bare batched forward "
          f"{size / bare_ms * 1000:.0f} images/s, throughput ratio {bare_ms / batch_ms:.2f}")


def http(classifier: Classifier, repeats: int) -> None:
    from gradio_client import Client, handle_file

    from support.serving import serving
    from dlcourse.ui import classify

    with serving(classify.tab(classifier)) as url:
        client = Client(url, verbose=False)
        file = handle_file(EXAMPLES[0])
        times = timings_ms(lambda: client.predict(file, api_name="/classify"), repeats)
        with httpx.Client(base_url=url, timeout=60) as connection:  # one connection, as any HTTP client keeps
            uploaded = upload(connection)
            raw = timings_ms(lambda: classify_over_http(connection, uploaded), repeats)
    print(f"HTTP API, gradio_client (uploads the file each call): p50 {statistics.median(times):.1f} ms, "
          f"p95 {percentile(times, 95):.1f} ms")
    print(f"HTTP API, plain POST /gradio_api/call/classify + GET the result: p50 {statistics.median(raw):.1f} ms, "
          f"p95 {percentile(raw, 95):.1f} ms")


def upload(connection: httpx.Client) -> str:
    with open(EXAMPLES[0], "rb") as f:
        return connection.post("gradio_api/upload", files={"files": f}).json()[0]


def classify_over_http(connection: httpx.Client, path: str) -> str:
    """The two requests the README's curl example makes, answer included."""
    data = {"data": [{"path": path, "meta": {"_type": "gradio.FileData"}}]}
    event = connection.post("gradio_api/call/classify", json=data).json()["event_id"]
    answer = connection.get(f"gradio_api/call/classify/{event}").text
    assert "event: complete" in answer, answer
    return answer


def startup(rounds: int = 3) -> None:
    def import_seconds() -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, timm, gradio"], check=True)
        return time.perf_counter() - start

    def app_seconds() -> float:
        port = free_port()
        env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port)}
        start = time.perf_counter()
        server = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        from gradio_client import Client, handle_file

        try:
            while True:
                try:
                    Client(f"http://127.0.0.1:{port}/", verbose=False).predict(handle_file(EXAMPLES[0]), api_name="/classify")
                    return time.perf_counter() - start
                except Exception:
                    if server.poll() is not None:
                        raise RuntimeError("app.py exited")
                    time.sleep(0.05)
        finally:
            server.terminate()
            server.wait()

    imports, apps = [], []
    for _ in range(rounds):
        imports.append(import_seconds())
        apps.append(app_seconds())
    print(f"start-up: python app.py to first answer {statistics.median(apps):.2f} s, "
          f"import torch+timm+gradio {statistics.median(imports):.2f} s, ratio "
          f"{statistics.median(apps) / statistics.median(imports):.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "model" / "model.pkl")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--threads", type=int, default=1, help="torch threads; app.py serves with 1 a request")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = Classifier.from_file(args.model)
    print(f"model: {model.meta.arch} {model.meta.img_size} px, torch threads {torch.get_num_threads()}")
    in_process(model, args.repeats)
    batch(model)
    http(model, args.repeats // 2)
    if not args.skip_startup:
        startup()
