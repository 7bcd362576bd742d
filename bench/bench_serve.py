"""The served Space against Gradio's floor: raw-HTTP latency of `python app.py` and of a no-op app of the same
shapes (bench/noop_space.py), interleaved request by request; prints medians and their ratios.

    .venv/bin/python bench/bench_serve.py [--requests 200]

Both servers run as their own processes on 127.0.0.1, set up as the Space is (`prepare_process`, the launch
options, the queue). Each request is what the README's curl example makes: `POST /gradio_api/call/<endpoint>`,
then `GET` its event stream to the `complete` event (the image is uploaded once, before timing). Requests
alternate between the two servers, and between endpoints, so drift of the machine's speed hits both alike.

It also times the handlers' own work: `Classifier.read` (what /classify calls) and `fit_quadratic` inside the served app's
requests (the server is started with a timer around each) against the same calls in this plain process: between
the requests (interleaved), then with the servers stopped back to back and each after a pause as long as a
request (what a pause alone costs, with nothing else running); and app.py's memory over its sessions.
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402

from load import rss_mb  # noqa: E402
from support.serving import free_port  # noqa: E402
from support.timing import percentile, timings_ms  # noqa: E402

EXAMPLE = ROOT / "examples" / "mnist-test-7.png"
TIMINGS_ENV = "BENCH_SERVE_TIMINGS"  # where the timed real app writes its handlers' times on SIGUSR1
FIT = {"dataset": "lesson", "noise": 1.0, "points": 20, "seed": 42, "a": 1.1, "b": 1.1, "c": 1.1, "loss": "mse",
       "lr": 0.01, "momentum": 0.0, "steps": 100, "standardise": False,
       "schedule": "constant"}  # fit_quadratic's defaults: 100 SGD steps
TARGETS = {"classify": 1.3, "pixel_similarity": 1.5, "fit_quadratic": 1.5}
PAUSE_S = 0.01  # about a request's round trip: how long a handler's code and data sit idle between requests


def timed(fn, times: list):
    """`fn`, appending (wall ms, its thread's CPU ms) of every call to `times`."""

    def call(*args, **kwargs):
        wall, cpu = time.perf_counter(), time.thread_time()
        try:
            return fn(*args, **kwargs)
        finally:
            times.append(((time.perf_counter() - wall) * 1000, (time.thread_time() - cpu) * 1000))

    return functools.wraps(fn)(call)


def serve_timed_app() -> None:
    """Run app.py as `python app.py` does, with Classifier.read and fit_quadratic timed."""
    import runpy

    from dlcourse.quadratic import api as quadratic_api
    from dlcourse.served.classifier import Classifier

    times: dict[str, list] = {"read": [], "fit_quadratic": []}
    Classifier.read = timed(Classifier.read, times["read"])
    quadratic_api.fit_quadratic = timed(quadratic_api.fit_quadratic, times["fit_quadratic"])  # before the tab registers it

    def dump(*_) -> None:  # written whole, then named: the bench reads the file as soon as it exists
        target = Path(os.environ[TIMINGS_ENV])
        partial = target.with_name(target.name + ".partial")
        partial.write_text(json.dumps(times))
        partial.replace(target)

    signal.signal(signal.SIGUSR1, dump)
    sys.argv = [str(ROOT / "app.py")]
    runpy.run_path(str(ROOT / "app.py"), run_name="__main__")


class Server:
    """One of the two servers, its own process on a free port of 127.0.0.1."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str]):
        self.name, self.port = name, free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = Path(tempfile.gettempdir()) / f"bench-serve-{name}-{os.getpid()}.log"
        env = {**os.environ, **env, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port),
               "GRADIO_ANALYTICS_ENABLED": "False"}
        env.pop("MODEL_REPO", None)  # the local model file: no traffic beyond 127.0.0.1
        self.process = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdout=self.log.open("w"),
                                        stderr=subprocess.STDOUT)
        self.http = httpx.Client(base_url=self.url, timeout=60)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}; see {self.log}")
            try:
                if self.http.get("/").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} did not serve within {timeout:.0f} s; see {self.log}")

    def upload(self, path: Path) -> dict:
        with path.open("rb") as f:
            uploaded = self.http.post("gradio_api/upload", files={"files": f}).json()[0]
        return {"path": uploaded, "meta": {"_type": "gradio.FileData"}}

    def call(self, endpoint: str, data: list) -> str:
        """POST the call, GET its event stream to the end; the stream's text."""
        event = self.http.post(f"gradio_api/call/{endpoint}", json={"data": data}).json()["event_id"]
        answer = self.http.get(f"gradio_api/call/{endpoint}/{event}").text
        if "event: complete" not in answer:
            raise SystemExit(f"{self.name} /{endpoint}: {answer[:300]}")
        return answer

    def stop(self) -> None:
        self.http.close()
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def requests_for(server: Server) -> dict[str, list]:
    """Each endpoint's request data on this server (the example digit uploaded to it once)."""
    image = server.upload(EXAMPLE)
    return {"classify": [image], "pixel_similarity": [image, "all ten digits", "L2"], "fit_quadratic": list(FIT.values())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per endpoint and server")
    parser.add_argument("--serve-timed-app", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_timed_app:
        serve_timed_app()
        return 0

    import torch

    from dlcourse.served.classifier import Classifier
    from dlcourse.hub.model_repo import model_file_path
    from dlcourse.served.images import load_image
    from dlcourse.quadratic.api import fit_quadratic
    from dlcourse.ui.space import prepare_process

    timings_file = Path(tempfile.gettempdir()) / f"bench-serve-timings-{os.getpid()}.json"
    real = Server("app.py", [__file__, "--serve-timed-app"], {TIMINGS_ENV: str(timings_file)})
    noop = Server("no-op", [str(ROOT / "bench" / "noop_space.py")], {})
    prepare_process()  # the plain process computes as the served one does: one torch thread
    classifier = Classifier.from_file(model_file_path({}))
    plain: dict[str, list[float]] = {"read": [], "fit_quadratic": []}
    image = load_image(EXAMPLE)
    calls = {"read": lambda: classifier.read(image), "fit_quadratic": lambda: fit_quadratic(**FIT)}

    def plain_call(name: str) -> None:
        start = time.perf_counter()
        calls[name]()
        plain[name].append((time.perf_counter() - start) * 1000)

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    try:
        real.wait_ready()
        noop.wait_ready()
        data = {server.name: requests_for(server) for server in (real, noop)}
        latency: dict[tuple[str, str], list[float]] = {}
        rss_before = rss_mb(real.process.pid)
        for i in range(args.requests + 5):  # the first 5 rounds warm up
            for endpoint in TARGETS:
                pair = (real, noop) if i % 2 else (noop, real)
                for server in pair:
                    start = time.perf_counter()
                    server.call(endpoint, data[server.name][endpoint])
                    if i >= 5:
                        latency.setdefault((server.name, endpoint), []).append((time.perf_counter() - start) * 1000)
                if endpoint in ("classify", "fit_quadratic"):
                    plain_call("read" if endpoint == "classify" else "fit_quadratic")
        rss_after = rss_mb(real.process.pid)
        real.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not timings_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        served = json.loads(timings_file.read_text())
    finally:
        real.stop()
        noop.stop()
        timings_file.unlink(missing_ok=True)

    print(f"{args.requests} requests per endpoint and server, interleaved; torch threads {torch.get_num_threads()}; "
          f"load average before and after: {load_before}, {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'endpoint':<20}{'app p50':>9}{'no-op p50':>11}{'ratio':>7}{'target':>8}{'app p95':>9}{'no-op p95':>11}")
    for endpoint, target in TARGETS.items():
        app, floor = latency[("app.py", endpoint)], latency[("no-op", endpoint)]
        ratio = statistics.median(app) / statistics.median(floor)
        print(f"/{endpoint:<19}{statistics.median(app):>9.1f}{statistics.median(floor):>11.1f}{ratio:>7.2f}"
              f"{target:>7.1f}x{percentile(app, 95):>9.1f}{percentile(floor, 95):>11.1f}")
    for name, target in (("read", 1.1), ("fit_quadratic", None)):
        walls, cpus = [w for w, _ in served[name][5:]], [c for _, c in served[name][5:]]  # after the warm-up rounds
        interleaved = statistics.median(plain[name][5:])
        back_to_back = statistics.median(timings_ms(calls[name], 100))
        after_a_pause = statistics.median(timings_ms(calls[name], 100, pause_s=PAUSE_S))
        print(f"{name} inside the served requests: p50 {statistics.median(walls):.2f} ms (its thread's CPU "
              f"{statistics.median(cpus):.2f} ms) over {len(walls)} calls; the same call in this plain process "
              f"between the requests {interleaved:.2f} ms, back to back {back_to_back:.2f} ms, each "
              f"{PAUSE_S * 1000:.0f} ms after the last (servers stopped) {after_a_pause:.2f} ms; ratios "
              f"{statistics.median(walls) / interleaved:.2f} and {statistics.median(walls) / back_to_back:.2f}"
              + (f" (target {target}x)" if target else ""))
    print(f"app.py's resident memory: {rss_before:.0f} MB after the warm-up, {rss_after:.0f} MB after "
          f"{3 * args.requests} more calls, each a new Gradio session ({rss_after - rss_before:+.0f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
