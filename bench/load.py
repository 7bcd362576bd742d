"""Load: many gradio_client visitors at once against `python app.py`, every answer checked.

    .venv/bin/python bench/load.py [--requests 600] [--clients 20] [--seed 0]

Starts the app as `python app.py` on a free port of 127.0.0.1 (its own process, so its memory is its
own), checks that every public endpoint is listed by the API, warms it up with a short burst from all
clients, then sends a fixed, shuffled mix of requests to all public endpoints from `--clients` threads,
each with its own gradio_client Client. Every answer is checked: the example digits' labels (their file
names), SGD fits and losses equal to the same functions run here, the pixel-similarity baseline's answer
and its three pictures. Prints p50/p95 latency per endpoint and the server's resident memory after the
warm-up and at the end. Exits 1 on any error, any wrong answer, or memory growth over --max-growth-mb.

The floor: the same requests also go, interleaved in --chunks chunks (a chunk to the app, the same chunk to
the other), to a no-op app of the same shapes (bench/noop_space.py: Gradio's own work only, canned answers
not checked), from clients of its own; the server CPU time a request of the two, and their ratio, show what
the Space's own work costs under load. --no-floor leaves it out. All traffic goes to 127.0.0.1.
"""
from __future__ import annotations

import argparse
import json
import os
import queue
import random
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from gradio_client import Client, handle_file  # noqa: E402
from PIL import Image  # noqa: E402

from dlcourse.quadratic import api  # noqa: E402
from dlcourse.served.images import load_image  # noqa: E402
from dlcourse.pixels.baseline import PixelBaseline  # noqa: E402
from support.serving import free_port  # noqa: E402
from support.timing import percentile  # noqa: E402

EXAMPLES = sorted((ROOT / "examples").glob("*.png"))
DIGITS = [path for path in EXAMPLES if path.stem.startswith("mnist-")]
ENDPOINTS = ("/classify", "/classify_batch", "/fit_quadratic", "/quadratic_loss", "/pixel_similarity")
MIX = {"/classify": 3, "/classify_batch": 1, "/fit_quadratic": 2, "/quadratic_loss": 2, "/pixel_similarity": 2}
BATCH = 4
FITS = [  # keyword arguments of /fit_quadratic: the lesson, a steeper one, the roller coaster standardised
    dict(dataset="lesson", loss="mse", lr=0.01, steps=100),
    dict(dataset="lesson", loss="mae", lr=0.05, momentum=0.5, steps=200, a=-2, b=4, c=3),
    dict(dataset="roller_coaster", loss="mse", lr=0.1, momentum=0.9, steps=300, standardise=True, a=1, b=1, c=1),
    dict(dataset="lesson", noise=2.0, points=100, seed=7, loss="mse", lr=0.02, steps=150),
]
GUESSES = [(3, 2, 1), (1.1, 1.1, 1.1), (-1, 0, 5), (0.5, -2, 7)]
PIXEL_SETTINGS = [("3 or 7", "L1"), ("all ten digits", "L2"), ("all ten digits", "L1"), ("3 or 7", "L2")]


def expected_label(path: Path) -> str:
    """"mnist-test-7" -> "7"; "mnist-baseline-says-3-truly-5" -> "5"; "photo-paper-9" -> "9"."""
    return path.stem.rsplit("-", 1)[-1]


# ---------------------------------------------------------------- requests and their checks


@dataclass
class Job:
    endpoint: str
    args: tuple
    kwargs: dict
    check: Callable[[Any], str | None]  # None when the answer is right, else what is wrong


def close(got: float | None, want: float | None, rel: float = 1e-9) -> bool:
    if got is None or want is None:
        return got is want
    return abs(got - want) <= rel * max(1.0, abs(want))


def classify_job(path: Path) -> Job:
    def check(answer: dict) -> str | None:
        confidences = answer.get("confidences") or []
        if str(answer.get("label")) != expected_label(path):
            return f"{path.name}: label {answer.get('label')!r}, expected {expected_label(path)}"
        if len(confidences) != 5 or not 0.5 < confidences[0]["confidence"] <= 1:
            return f"{path.name}: confidences {confidences}"
        return None

    return Job("/classify", (handle_file(path),), {}, check)


def batch_job(paths: list[Path]) -> Job:
    def check(answer: list) -> str | None:
        if [r.get("file") for r in answer] != [p.name for p in paths]:
            return f"batch files {[r.get('file') for r in answer]}"
        wrong = [(r["file"], r.get("label")) for r, p in zip(answer, paths) if r.get("label") != expected_label(p)]
        return f"batch labels wrong: {wrong}" if wrong else None

    return Job("/classify_batch", ([handle_file(p) for p in paths],), {}, check)


def fit_job(settings: dict) -> Job:
    want = api.fit_quadratic(**settings)  # deterministic: the server must give exactly this

    def check(answer: dict) -> str | None:
        final, start_loss = answer["final"], answer["trajectory"]["loss"][0]
        if answer["diverged"] or not final["loss"] < start_loss:
            return f"fit {settings}: diverged or the loss did not fall ({start_loss} -> {final['loss']})"
        if not all(close(final[k], want["final"][k]) for k in ("a", "b", "c", "loss")):
            return f"fit {settings}: final {final}, expected {want['final']}"
        if len(answer["trajectory"]["loss"]) != want["settings"]["steps"]:
            return f"fit {settings}: {len(answer['trajectory']['loss'])} steps"
        return None

    return Job("/fit_quadratic", (), settings, check)


def loss_job(abc: tuple[float, float, float], loss: str) -> Job:
    settings = dict(dataset="lesson", a=abc[0], b=abc[1], c=abc[2], loss=loss)
    want = api.evaluate_quadratic(**settings)

    def check(answer: dict) -> str | None:
        if not (close(answer["loss"], want["loss"]) and close(answer["distance"], want["distance"])):
            return f"loss {settings}: {answer['loss']}, expected {want['loss']}"
        return None

    return Job("/quadratic_loss", (), settings, check)


def pixel_job(path: Path, mode: str, distance: str, baseline: PixelBaseline) -> Job:
    want = str(baseline.compare_image(load_image(path), mode, distance).prediction)

    def check(answer: tuple) -> str | None:
        prediction, summary, _bars, *pictures = answer
        if prediction.get("label") != want or f"ideal {want}" not in summary:
            return f"pixel {path.name} {mode} {distance}: {prediction.get('label')!r}, expected {want}"
        sizes = [Image.open(picture).size for picture in pictures]
        return None if sizes == [(280, 280)] * 3 else f"pixel {path.name}: pictures {sizes}"

    return Job("/pixel_similarity", (handle_file(path), mode, distance), {}, check)


def make_jobs(count: int, seed: int) -> list[Job]:
    """A fixed mix over the endpoints (MIX's proportions), cycling through the inputs, then shuffled."""
    baseline = PixelBaseline.load()
    total = sum(MIX.values())
    counts = {endpoint: count * weight // total for endpoint, weight in MIX.items()}
    counts["/classify"] += count - sum(counts.values())
    fits = [fit_job(settings) for settings in FITS]
    pixels = [pixel_job(path, mode, distance, baseline) for path in DIGITS for mode, distance in PIXEL_SETTINGS]
    losses = [loss_job(abc, loss) for abc in GUESSES for loss in ("mae", "mse")]
    jobs = []
    for i in range(counts["/classify"]):
        jobs.append(classify_job(EXAMPLES[i % len(EXAMPLES)]))
    for i in range(counts["/classify_batch"]):
        jobs.append(batch_job([EXAMPLES[(i * BATCH + k) % len(EXAMPLES)] for k in range(BATCH)]))
    jobs += [fits[i % len(fits)] for i in range(counts["/fit_quadratic"])]
    jobs += [losses[i % len(losses)] for i in range(counts["/quadratic_loss"])]
    jobs += [pixels[i % len(pixels)] for i in range(counts["/pixel_similarity"])]
    random.Random(seed).shuffle(jobs)
    return jobs


# ---------------------------------------------------------------- running them


@dataclass
class Result:
    endpoint: str
    seconds: float
    error: str | None = None  # the request failed
    wrong: str | None = None  # it answered, wrongly


@dataclass
class Run:
    results: list[Result] = field(default_factory=list)
    seconds: float = 0.0


def drive(clients: list[Client], jobs: list[Job], check: bool = True) -> Run:
    """Each client takes the next job as soon as it has its previous answer (checked unless `check` is off)."""
    todo: queue.Queue[Job] = queue.Queue()
    for job in jobs:
        todo.put(job)
    run, lock = Run(), threading.Lock()

    def visitor(client: Client) -> None:
        while True:
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            start = time.perf_counter()
            try:
                answer = client.predict(*job.args, api_name=job.endpoint, **job.kwargs)
                result = Result(job.endpoint, time.perf_counter() - start)
                result.wrong = job.check(answer) if check else None
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                result = Result(job.endpoint, time.perf_counter() - start, error=f"{type(error).__name__}: {error}")
            with lock:
                run.results.append(result)

    start = time.perf_counter()
    threads = [threading.Thread(target=visitor, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.seconds = time.perf_counter() - start
    return run


def classify_over_http(http: httpx.Client, url: str, data: bytes, suffix: str) -> tuple[list | None, str]:
    """One picture through /classify as the README's curl example sends it (upload, call, read the event
    stream): (the outputs, "") when it completes, else (None, what the stream said after its first "data: ")."""
    uploaded = http.post(f"{url}gradio_api/upload", files={"files": (f"picture{suffix}", data)}).json()[0]
    body = {"data": [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}]}
    event = http.post(f"{url}gradio_api/call/classify", json=body).json()["event_id"]
    stream = http.get(f"{url}gradio_api/call/classify/{event}").text
    if "event: complete\ndata: " not in stream:
        return None, stream.split("data: ", 1)[-1]
    return json.loads(stream.split("event: complete\ndata: ", 1)[1].split("\n", 1)[0]), ""


def start_app(log_path: Path, app: Path, timeout: float = 300.0) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False"}
    env.pop("MODEL_REPO", None)  # the local model file: no download, no traffic beyond 127.0.0.1
    log = open(log_path, "w")
    server = subprocess.Popen([sys.executable, str(app)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"app.py exited with {server.returncode} before serving; see {log_path}")
        try:
            if httpx.get(url, timeout=5).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    server.terminate()
    raise SystemExit(f"app.py did not serve within {timeout:.0f} s; see {log_path}")


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB: psutil when installed, else /proc/<pid>/status."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"cannot read the memory of process {pid}")


class MemoryWatch:
    """Samples a process's resident memory every `every` seconds while it runs (to tell a leak from a plateau)."""

    def __init__(self, pid: int, every: float = 1.0):
        self.pid, self.every, self.samples = pid, every, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.samples.append(rss_mb(self.pid))

    def __enter__(self) -> "MemoryWatch":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        if not self.samples:
            return "no samples"
        tenths = [self.samples[min(len(self.samples) - 1, len(self.samples) * k // 10)] for k in range(11)]
        return f"min {min(self.samples):.0f}, max {max(self.samples):.0f} MB; by tenths of the run: " + \
            " ".join(f"{value:.0f}" for value in tenths)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far, with that of the children it has waited for (the app's
    model export runs in one: dlcourse/served/child_export.py) (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def report(run: Run, clients: int) -> tuple[int, int]:
    print(f"{'endpoint':<20}{'requests':>9}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'errors':>8}{'wrong':>7}")
    for endpoint in (*ENDPOINTS, "all"):
        results = [r for r in run.results if endpoint in ("all", r.endpoint)]
        if not results:
            continue
        ms = [r.seconds * 1000 for r in results]
        errors, wrong = sum(r.error is not None for r in results), sum(r.wrong is not None for r in results)
        print(f"{endpoint:<20}{len(results):>9}{percentile(ms, 50):>9.0f}{percentile(ms, 95):>9.0f}"
              f"{max(ms):>9.0f}{errors:>8}{wrong:>7}")
    print(f"{len(run.results)} requests from {clients} clients in {run.seconds:.1f} s: "
          f"{len(run.results) / run.seconds:.1f} requests/s")
    failures = [r for r in run.results if r.error or r.wrong]
    for r in failures[:10]:
        print(f"  {r.endpoint}: {r.error or r.wrong}")
    return sum(r.error is not None for r in run.results), sum(r.wrong is not None for r in run.results)


def stop(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=600, help="requests in the measured run (default 600)")
    parser.add_argument("--clients", type=int, default=20, help="concurrent gradio_client clients (default 20)")
    parser.add_argument("--seed", type=int, default=0, help="order of the shuffled requests")
    parser.add_argument("--max-growth-mb", type=float, default=100.0,
                        help="most the server's resident memory may grow after the warm-up (default 100)")
    parser.add_argument("--app", type=Path, default=ROOT / "app.py", help="the script that serves the Space")
    parser.add_argument("--floor", action=argparse.BooleanOptionalAction, default=True,
                        help="also serve the same requests to a no-op app of the same shapes, interleaved (default on)")
    parser.add_argument("--chunks", type=int, default=6, help="chunks the requests are interleaved in (default 6)")
    args = parser.parse_args(argv)

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())  # other work on the machine skews the figures
    jobs = make_jobs(args.requests, args.seed)
    warm_up = make_jobs(2 * args.clients, args.seed + 1)
    log_path = Path(tempfile.gettempdir()) / f"load-app-{os.getpid()}.log"
    server, url = start_app(log_path, args.app)
    floor = None
    try:
        print(f"app.py (pid {server.pid}) serving on {url}; its log: {log_path}")
        print(f"server RSS at start: {rss_mb(server.pid):.1f} MB")
        clients = [Client(url, verbose=False) for _ in range(args.clients)]
        listed = set(clients[0].view_api(print_info=False, return_format="dict")["named_endpoints"])
        missing = set(ENDPOINTS) - listed
        if missing:
            print(f"endpoints missing from the API: {sorted(missing)}")
            return 1
        print(f"public endpoints: {', '.join(sorted(listed))}")
        if args.floor:
            floor, floor_url = start_app(log_path.with_name(f"load-noop-{os.getpid()}.log"), ROOT / "bench" / "noop_space.py")
            floor_clients = [Client(floor_url, verbose=False) for _ in range(args.clients)]
            drive(floor_clients, warm_up, check=False)

        warm = drive(clients, warm_up)
        warm_errors = [r for r in warm.results if r.error or r.wrong]
        after_warm_up = rss_mb(server.pid)
        print(f"warm-up: {len(warm.results)} requests in {warm.seconds:.1f} s, {len(warm_errors)} failed; "
              f"server RSS after warm-up: {after_warm_up:.1f} MB")

        run, floor_run = Run(), Run()
        server_cpu = own_cpu = floor_cpu = 0.0
        size = -(-len(jobs) // (args.chunks if floor else 1))
        with MemoryWatch(server.pid) as memory:
            for start in range(0, len(jobs), size):
                chunk = jobs[start : start + size]
                before, own_before = cpu_seconds(server.pid), cpu_seconds(os.getpid())
                part = drive(clients, chunk)
                server_cpu += cpu_seconds(server.pid) - before
                own_cpu += cpu_seconds(os.getpid()) - own_before
                run.results += part.results
                run.seconds += part.seconds
                if floor:
                    before = cpu_seconds(floor.pid)
                    part = drive(floor_clients, chunk, check=False)
                    floor_cpu += cpu_seconds(floor.pid) - before
                    floor_run.results += part.results
                    floor_run.seconds += part.seconds
        at_end = rss_mb(server.pid)
        errors, wrong = report(run, args.clients)
        per_request = server_cpu / len(run.results) * 1000
        print(f"CPU time during the run: server {server_cpu:.1f} s ({per_request:.0f} ms a request), these clients "
              f"{own_cpu:.1f} s, on {os.cpu_count()} cores; load average before and after: "
              f"{load_before}, {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        if floor:
            floor_ms = [r.seconds * 1000 for r in floor_run.results]
            floor_errors = sum(r.error is not None for r in floor_run.results)
            floor_per_request = floor_cpu / len(floor_run.results) * 1000
            print(f"no-op app of the same shapes, the same requests interleaved in {args.chunks} chunks: p50 "
                  f"{percentile(floor_ms, 50):.0f} ms, p95 {percentile(floor_ms, 95):.0f} ms, {floor_errors} errors, "
                  f"{len(floor_run.results) / floor_run.seconds:.1f} requests/s")
            print(f"server CPU a request: app {per_request:.1f} ms, no-op {floor_per_request:.1f} ms: "
                  f"ratio {per_request / floor_per_request:.2f}")
            errors += floor_errors
        growth = at_end - after_warm_up
        print(f"server RSS: after warm-up {after_warm_up:.1f} MB, at the end {at_end:.1f} MB "
              f"({growth:+.1f} MB; limit +{args.max_growth_mb:.0f} MB)")
        print(f"server RSS during the run: {memory.summary()}")
    finally:
        stop(server)
        if floor:
            stop(floor)
    failed = errors or wrong or warm_errors or growth > args.max_growth_mb
    print("FAILED" if failed else "OK: no errors, every answer right, memory steady")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
