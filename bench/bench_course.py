"""Our Space against the course's own lesson-2 app, side by side on the same fastai export; prints a table.

    .venv/bin/python bench/bench_course.py [--rounds 3] [--requests 30] [--clients 8] [--compare-with DIR]

Set-up, in a temporary folder: real photos that ship with installed packages (scikit-image, matplotlib,
scikit-learn: 300 to 1411 px, PNG and JPEG; one is a copy of scikit-image's rocket.jpg with an EXIF
orientation tag added to its bytes, pixels untouched, so it is served rotated), a fastai export made from
them as the lesson makes one (vision_learner, resnet18, Resize(224), one epoch; pretrained=False since
nothing downloads here; fastai in a subprocess of its own), and a `train.py` model file of the same arch and
size (--no-pretrained, one epoch).

Each round serves three apps one after the other, in an order rotated every round so drift of the machine
hits all alike, each alone on the machine:
- course: bench/course_app.py (load_learner + learn.predict in a gr.Interface) on the export;
- ours, export: `python app.py` with MODEL_PATH on the export;
- ours, train.py: `python app.py` with MODEL_PATH on the train.py file;
and measures for each: start-up (process start to its first answer), one client's p50/p95 over --requests
requests, resident memory after those (warm), --clients clients' requests/s and p50/p95 over --clients x
--requests, memory at the end. Every request is what a browser makes: upload the photo, POST the call, read
its event stream to `complete`. Then the limit: bare forward passes of the export's network (batch 1, eager
PyTorch and ONNX Runtime on one thread each, the faster counts) on one thread per core, no server, images per second.
Prints medians over the rounds and the per-round ratios ours / course, and the largest difference between
the two apps' probabilities for the same photo. --compare-with DIR adds a fourth app, DIR's app.py on the
export (another checkout of this project, e.g. `git worktree add DIR main`): a change measured as an A/B ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402

from load import cpu_seconds, rss_mb, stop  # noqa: E402
from support.serving import free_port  # noqa: E402
from support.timing import percentile  # noqa: E402

EXIF_ORIENTATION = 0x0112
ROTATED = 6  # EXIF: the stored picture is to be turned 90 degrees clockwise to be seen upright
# fastai in a subprocess of its own, as a notebook would: is_cat lives in its __main__, as in the lesson.
EXPORT_SCRIPT = """
import sys
from pathlib import Path
from fastai.vision.all import ImageDataLoaders, Resize, error_rate, get_image_files, resnet18, vision_learner
def is_cat(x): return x[0].isupper()
photos, out = Path(sys.argv[1]), Path(sys.argv[2])
dls = ImageDataLoaders.from_name_func(photos, get_image_files(photos), valid_pct=0.2, seed=42, label_func=is_cat,
                                      item_tfms=Resize(224), bs=4, num_workers=0)
learn = vision_learner(dls, resnet18, metrics=error_rate, pretrained=False)
learn.fit(1)
learn.export(out)
"""


def packaged_photos() -> dict[str, Path]:
    """Real photos shipped with installed packages, named as the lesson's is_cat reads them (a capital: a cat)."""
    import matplotlib
    import sklearn
    import skimage

    data, sklearn_images = Path(skimage.__file__).parent / "data", Path(sklearn.__file__).parent / "datasets" / "images"
    return {"Chelsea.png": data / "chelsea.png", "coffee.png": data / "coffee.png", "Astronaut.png": data / "astronaut.png",
            "rocket.jpg": data / "rocket.jpg", "motorcycle.png": data / "motorcycle_left.png",
            "Retina.jpg": data / "retina.jpg",
            "grace_hopper.jpg": Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg",
            "China.jpg": sklearn_images / "china.jpg", "flower.jpg": sklearn_images / "flower.jpg"}


def with_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an EXIF segment saying `orientation` (after JFIF's APP0, if any); its pixels untouched."""
    from PIL import Image

    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    payload = exif.tobytes()  # b"Exif\0\0" and the TIFF structure
    at = 2 + (2 + struct.unpack(">H", jpeg[4:6])[0] if jpeg[2:4] == b"\xff\xe0" else 0)
    return jpeg[:at] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[at:]


def make_photos(folder: Path) -> list[Path]:
    folder.mkdir()
    for name, source in packaged_photos().items():
        shutil.copy(source, folder / name)
    (folder / "Rocket_rotated.jpg").write_bytes(with_orientation((folder / "rocket.jpg").read_bytes(), ROTATED))
    return sorted(folder.iterdir())


def make_models(work: Path, photos: list[Path]) -> tuple[Path, Path]:
    """(the fastai export, the train.py model file), both resnet18 at 224 px, made from `photos`."""
    export, ours = work / "export.pkl", work / "train_py.pkl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, str(photos[0].parent), str(export)], check=True,
                   capture_output=True, env=env)
    classes = work / "classes"  # train.py's ImageFolder layout: a folder per class
    for photo in photos:
        (classes / ("cat" if photo.name[0].isupper() else "dog")).mkdir(parents=True, exist_ok=True)
        (classes / ("cat" if photo.name[0].isupper() else "dog") / photo.name).symlink_to(photo)
    subprocess.run([sys.executable, "train.py", "--data", str(classes), "--arch", "resnet18", "--no-pretrained",
                    "--img-size", "224", "--epochs", "1", "--batch-size", "4", "--workers", "0", "--out", str(ours),
                    "--report-dir", str(work / "report")], cwd=ROOT, check=True, capture_output=True, env=env)
    return export, ours


# ---------------------------------------------------------------- one app, served and measured


@dataclass
class App:
    name: str
    script: Path
    model: Path
    endpoint: str


@dataclass
class Figures:
    startup_s: float = 0.0
    startup_cpu_s: float = 0.0  # the server's CPU time to its first answer: what start-up costs, on a busy machine too
    one_client_ms: list[float] = field(default_factory=list)
    many_clients_ms: list[float] = field(default_factory=list)
    requests_per_s: float = 0.0
    warm_mb: float = 0.0
    end_mb: float = 0.0
    server_cpu_ms: float = 0.0  # the server's CPU time a request, many clients
    clients_cpu_ms: float = 0.0  # this process's (the clients'), likewise
    answers: dict[str, dict[str, float]] = field(default_factory=dict)  # photo -> {label: probability}


def ask(http: httpx.Client, endpoint: str, photo: Path) -> dict[str, float]:
    """What a browser does for one photo: upload it, call the endpoint, read the event stream to the answer:
    {label: probability}, the course app's labels named as ours (the export's vocabulary)."""
    with photo.open("rb") as f:
        uploaded = http.post("gradio_api/upload", files={"files": (photo.name, f)}).raise_for_status().json()[0]
    data = {"data": [{"path": uploaded, "meta": {"_type": "gradio.FileData"}}]}
    event = http.post(f"gradio_api/call/{endpoint}", json=data).raise_for_status().json()["event_id"]
    stream = http.get(f"gradio_api/call/{endpoint}/{event}").text
    if "event: complete" not in stream:
        raise RuntimeError(f"/{endpoint} on {photo.name}: {stream[-300:]}")
    answer = json.loads(stream.split("event: complete\ndata: ", 1)[1].splitlines()[0])[0]
    return {COURSE_CATEGORIES.get(item["label"], item["label"]): item["confidence"] for item in answer["confidences"]}


COURSE_CATEGORIES = {"Dog": "False", "Cat": "True"}  # the lesson's names for is_cat's False and True


def serve(app: App, photos: list[Path], requests: int, clients: int, log: Path) -> Figures:
    figures = Figures()
    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port),
           "GRADIO_ANALYTICS_ENABLED": "False", "MODEL_PATH": str(app.model)}
    env.pop("MODEL_REPO", None)
    env.pop("OMP_NUM_THREADS", None)  # each app sets its own threads, as it would on a Space
    url = f"http://127.0.0.1:{port}/"
    start = time.perf_counter()
    server = subprocess.Popen([sys.executable, str(app.script)], cwd=app.script.parent, env=env, stdout=log.open("w"),
                              stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=url, timeout=120) as http:
            while True:  # start-up: to the first answer
                try:
                    figures.answers[photos[0].name] = ask(http, app.endpoint, photos[0])
                    figures.startup_s = time.perf_counter() - start
                    figures.startup_cpu_s = cpu_seconds(server.pid)
                    break
                except httpx.TransportError:
                    if server.poll() is not None:
                        raise SystemExit(f"{app.name} exited with {server.returncode}; see {log}")
                    time.sleep(0.05)
            for i in range(requests):
                photo = photos[i % len(photos)]
                began = time.perf_counter()
                figures.answers[photo.name] = ask(http, app.endpoint, photo)
                figures.one_client_ms.append((time.perf_counter() - began) * 1000)
        figures.warm_mb = rss_mb(server.pid)
        server_cpu, clients_cpu = cpu_seconds(server.pid), time.process_time()
        figures.many_clients_ms, figures.requests_per_s = many_clients(url, app.endpoint, photos, clients, requests)
        figures.server_cpu_ms = (cpu_seconds(server.pid) - server_cpu) * 1000 / len(figures.many_clients_ms)
        figures.clients_cpu_ms = (time.process_time() - clients_cpu) * 1000 / len(figures.many_clients_ms)
        figures.end_mb = rss_mb(server.pid)
    finally:
        stop(server)
    return figures


def many_clients(url: str, endpoint: str, photos: list[Path], clients: int, requests: int) -> tuple[list[float], float]:
    """`clients` threads, each with its own connection, each asking `requests` photos back to back."""
    times: list[float] = []
    lock = threading.Lock()

    def visitor(offset: int) -> None:
        with httpx.Client(base_url=url, timeout=300) as http:
            for i in range(requests):
                began = time.perf_counter()
                ask(http, endpoint, photos[(offset + i) % len(photos)])
                with lock:
                    times.append((time.perf_counter() - began) * 1000)

    threads = [threading.Thread(target=visitor, args=(n,)) for n in range(clients)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    if len(times) != clients * requests:
        raise SystemExit(f"{endpoint}: {clients * requests - len(times)} requests failed")
    return times, len(times) / elapsed


# ---------------------------------------------------------------- the limit: bare forward passes


def forward_limit(model: Path, photos: list[Path], seconds: float) -> tuple[str, float, float]:
    """(which forward, images/s, CPU ms an image): the faster of eager PyTorch and ONNX Runtime (the served
    graph), batch 1, one thread per core, each with one torch / ONNX Runtime thread, for `seconds` each; no server."""
    import torch

    from dlcourse.served.classifier import Classifier
    from dlcourse.served.fast_forward import OnnxForward
    from dlcourse.served.images import load_image
    from dlcourse.served.loading import load_model_file
    from dlcourse.served.modelfile import build_model

    torch.set_num_threads(1)
    classifier = Classifier.from_file(model)
    inputs = [classifier.to_input(load_image(photo)).unsqueeze(0) for photo in photos]
    network = build_model(*load_model_file(model)).eval()
    # the served graph on one thread (the Space splits a run alone over both cores: SPLIT_FROM_MS)
    forwards = {"ONNX Runtime": OnnxForward.from_network(network, inputs[0]),
                "eager PyTorch": network.to(memory_format=torch.channels_last)}  # as served eagerly
    rates, cpu_ms = {}, {}
    for name, forward in forwards.items():
        done = [0] * (os.cpu_count() or 1)

        @torch.inference_mode()
        def work(slot: int) -> None:
            end = time.perf_counter() + seconds
            while time.perf_counter() < end:
                forward(inputs[done[slot] % len(inputs)])
                done[slot] += 1

        work(0)  # warm
        done = [0] * len(done)
        threads = [threading.Thread(target=work, args=(slot,)) for slot in range(len(done))]
        start, cpu = time.perf_counter(), time.process_time()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rates[name] = sum(done) / (time.perf_counter() - start)
        cpu_ms[name] = (time.process_time() - cpu) * 1000 / sum(done)
    best = max(rates, key=rates.get)
    return best, rates[best], cpu_ms[best]


# ---------------------------------------------------------------- the table


ROWS = [  # (label, figure of one app's Figures, digits)
    ("start-up to first answer, s", lambda f: f.startup_s, 2),
    ("start-up, server CPU time, s", lambda f: f.startup_cpu_s, 2),
    ("one client p50, ms", lambda f: statistics.median(f.one_client_ms), 0),
    ("one client p95, ms", lambda f: percentile(f.one_client_ms, 95), 0),
    ("{clients} clients, requests/s", lambda f: f.requests_per_s, 2),
    ("{clients} clients p50, ms", lambda f: statistics.median(f.many_clients_ms), 0),
    ("{clients} clients p95, ms", lambda f: percentile(f.many_clients_ms, 95), 0),
    ("{clients} clients: server CPU a request, ms", lambda f: f.server_cpu_ms, 0),
    ("{clients} clients: clients' CPU a request, ms", lambda f: f.clients_cpu_ms, 0),
    ("memory after warm-up, MB", lambda f: f.warm_mb, 0),
    ("memory at the end, MB", lambda f: f.end_mb, 0),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the three apps, interleaved (default 3)")
    parser.add_argument("--requests", type=int, default=30, help="one client's requests, and each of the many "
                        "clients' (default 30)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (default 8)")
    parser.add_argument("--limit-seconds", type=float, default=5.0, help="seconds of bare forward passes a round")
    parser.add_argument("--compare-with", type=Path, help="another checkout of this project: its app.py on the "
                        "export, as a fourth app")
    args = parser.parse_args(argv)

    load_before = " ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory(prefix="bench-course-") as folder:
        work = Path(folder)
        photos = make_photos(work / "photos")
        export, ours_file = make_models(work, photos)
        apps = [App("course", ROOT / "bench" / "course_app.py", export, "classify_image"),
                App("ours, export", ROOT / "app.py", export, "classify"),
                App("ours, train.py", ROOT / "app.py", ours_file, "classify")]
        if args.compare_with:
            apps.append(App("other, export", args.compare_with.resolve() / "app.py", export, "classify"))
        results: dict[str, list[Figures]] = {app.name: [] for app in apps}
        limits: list[float] = []
        limit_cpu: list[float] = []
        for round_ in range(args.rounds):
            order = apps[round_ % len(apps):] + apps[:round_ % len(apps)]
            for app in order:
                log = work / f"{app.name.replace(', ', '-').replace('.', '')}-{round_}.log"
                results[app.name].append(serve(app, photos, args.requests, args.clients, log))
            limit_name, limit, cpu = forward_limit(export, photos, args.limit_seconds)
            limits.append(limit)
            limit_cpu.append(cpu)
            print(f"round {round_ + 1}: " + ", ".join(
                f"{name} {figures[-1].requests_per_s:.2f} requests/s" for name, figures in results.items())
                + f"; bare forward {limit:.2f} images/s", flush=True)

    course, ours = results["course"], results["ours, export"]
    compared = [("ours / course", ours, course)]
    if args.compare_with:
        compared.append(("ours / other", ours, results["other, export"]))
    print(f"\nresnet18 at 224 px; {len(photos)} photos ({', '.join(p.name for p in photos)}); {args.rounds} rounds, "
          f"interleaved; one client {args.requests} requests, {args.clients} clients {args.requests} each; "
          f"{os.cpu_count()} cores; load average before and after: {load_before}, "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'':<40}" + "".join(f"{name.split(', ')[0]:>10}" for name in results)
          + "".join(f"{title:>26}" for title, *_ in compared))
    print(f"{'':<40}" + "".join(f"{name.split(', ')[1] if ', ' in name else 'export':>10}" for name in results)
          + "".join(f"{'median (each round)':>26}" for _ in compared))
    for label, figure, digits in ROWS:
        medians = [statistics.median(figure(f) for f in runs) for runs in results.values()]
        line = f"{label.format(clients=args.clients):<40}" + "".join(f"{m:>10.{digits}f}" for m in medians)
        for _, mine, theirs in compared:
            ratios = [figure(a) / figure(b) if figure(b) else float("nan") for a, b in zip(mine, theirs)]
            line += f"{statistics.median(ratios):>8.2f} ({' '.join(f'{r:.2f}' for r in ratios)})".rjust(26)
        print(line)
    difference = max(abs(probs[label] - c.answers[photo][label]) for o, c in zip(ours, course)
                     for photo, probs in o.answers.items() for label in probs)
    print(f"largest difference between the two apps' probabilities, all photos and rounds: {difference:.1e}")
    limit = statistics.median(limits)
    shares = [o.requests_per_s / l for o, l in zip(ours, limits)]
    print(f"limit: bare forward passes ({limit_name}), batch 1, {os.cpu_count()} threads of one: {limit:.2f} "
          f"images/s; ours with {args.clients} clients {statistics.median(shares):.0%} of it "
          f"({' '.join(f'{s:.0%}' for s in shares)})")
    forward_ms = statistics.median(limit_cpu)
    cpu_shares = [forward_ms / (o.server_cpu_ms + o.clients_cpu_ms) for o in ours]
    print(f"in CPU time, what a busy machine does not skew: a bare forward pass {forward_ms:.0f} ms an image, ours "
          f"{statistics.median(o.server_cpu_ms for o in ours):.0f} ms a request in the server and "
          f"{statistics.median(o.clients_cpu_ms for o in ours):.0f} ms in the clients: the forward pass is "
          f"{statistics.median(cpu_shares):.0%} of it ({' '.join(f'{s:.0%}' for s in cpu_shares)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
