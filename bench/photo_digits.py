"""Phone photos of real MNIST test digits, one difficulty at a time, through the served app's /classify.

    .venv/bin/python bench/photo_digits.py [--per-condition 200] [--seed 2026]

Renders --per-condition MNIST *test* digits (indices 5000-9999, drawn with --seed; the preprocessing was
tuned on photos of digits 0-4999 made with other seeds) as JPEG photos of a page for every condition of
`dlcourse.served.digit_variants.PHOTO_CONDITIONS`, and the same number of plain 28x28 test digits as PNG ("clean").
Starts `python app.py` on a free port of 127.0.0.1, sends every picture as a visitor's program would
(POST /gradio_api/upload, POST /gradio_api/call/classify, GET the answer), and prints the share read right
per condition and overall. Exits 1 when overall is under 97% or any condition under 93%.
The renderings are kept in the system's temporary folder, named by the seed, the count and a digest of
the renderer's source, so a second run with the same settings skips rendering.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from load import classify_over_http, start_app, stop  # noqa: E402

from dlcourse.served import digit_variants  # noqa: E402
from dlcourse.served.digit_variants import PHOTO_CONDITIONS, photograph  # noqa: E402
from dlcourse.mnist import load_split  # noqa: E402

HELD_OUT = slice(5000, 10000)  # test digits never looked at while the preprocessing was tuned
TARGET_OVERALL, TARGET_EACH = 0.97, 0.93


def pictures(mnist_dir: Path, per_condition: int, seed: int) -> dict[str, list[tuple[bytes, str, int]]]:
    """condition -> [(file bytes, file suffix, true digit)], reproducible from the seed."""
    images, labels = load_split(mnist_dir, "test")
    images, labels = images[HELD_OUT], labels[HELD_OUT]
    rng = np.random.default_rng(seed)
    made: dict[str, list[tuple[bytes, str, int]]] = {}
    chosen = rng.choice(len(images), per_condition, replace=False)
    made["clean"] = [(png(images[i]), ".png", int(labels[i])) for i in chosen]
    for condition in PHOTO_CONDITIONS:
        chosen = rng.choice(len(images), per_condition, replace=False)
        made[condition] = [(photograph(images[i], condition, rng), ".jpg", int(labels[i])) for i in chosen]
    return made


def cached_pictures(mnist_dir: Path, per_condition: int, seed: int) -> dict[str, list[tuple[bytes, str, int]]]:
    """`pictures`, from the temporary folder when this renderer already made them with these settings."""
    source = hashlib.sha256(Path(digit_variants.__file__).read_bytes()).hexdigest()[:12]
    cache = Path(tempfile.gettempdir()) / f"dlcourse-photo-digits-{seed}-{per_condition}-{source}"
    index = cache / "index.json"  # condition -> [[file name, true digit]]
    if index.is_file():
        return {condition: [((cache / name).read_bytes(), Path(name).suffix, digit) for name, digit in items]
                for condition, items in json.loads(index.read_text()).items()}
    made = pictures(mnist_dir, per_condition, seed)
    cache.mkdir(exist_ok=True)
    names = {}
    for condition, items in made.items():
        names[condition] = []
        for n, (data, suffix, digit) in enumerate(items):
            (cache / f"{condition}-{n}{suffix}").write_bytes(data)
            names[condition].append([f"{condition}-{n}{suffix}", digit])
    index.write_text(json.dumps(names))
    return made


def png(digit: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(digit).save(buffer, format="PNG")
    return buffer.getvalue()


def classify(http: httpx.Client, url: str, data: bytes, suffix: str) -> str:
    """The label /classify gives one picture, through Gradio's plain HTTP routes (or the error it says)."""
    outputs, error = classify_over_http(http, url, data, suffix)
    if outputs is None:
        return f"error: {error.strip()[:80]}"
    return str(outputs[0]["label"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-condition", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--mnist-dir", type=Path, default=ROOT / "data" / "mnist")
    parser.add_argument("--clients", type=int, default=2, help="requests in flight at once")
    args = parser.parse_args()

    started = time.monotonic()
    made = cached_pictures(args.mnist_dir, args.per_condition, args.seed)
    total = sum(len(items) for items in made.values())
    print(f"rendered {total} pictures ({args.per_condition} per condition, seed {args.seed}) "
          f"in {time.monotonic() - started:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as logs:
        server, url = start_app(Path(logs) / "app.log", ROOT / "app.py")
        try:
            with httpx.Client(timeout=120) as http, concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                answers = {
                    condition: list(pool.map(lambda item: classify(http, url, item[0], item[1]), items))
                    for condition, items in made.items()
                }
        finally:
            stop(server)

    print("\n| condition | pictures | read right | accuracy |\n| --- | ---: | ---: | ---: |")
    right_all = 0
    shares = {}
    for condition, items in made.items():
        right = sum(answer == str(digit) for answer, (_, _, digit) in zip(answers[condition], items))
        errors = sum(answer.startswith("error") for answer in answers[condition])
        shares[condition] = right / len(items)
        right_all += right if condition != "clean" else 0
        note = f" ({errors} refused)" if errors else ""
        print(f"| {condition} | {len(items)} | {right}{note} | {shares[condition]:.1%} |")
    photos = total - len(made["clean"])
    overall = right_all / photos
    print(f"| **all photos** | {photos} | {right_all} | **{overall:.1%}** |")
    worst = min((share, condition) for condition, share in shares.items())
    met = overall >= TARGET_OVERALL and worst[0] >= TARGET_EACH
    print(f"\noverall {overall:.1%} (target {TARGET_OVERALL:.0%}); lowest {worst[1]} {worst[0]:.1%} "
          f"(target {TARGET_EACH:.0%} each): {'met' if met else 'NOT met'}; {time.monotonic() - started:.0f} s in all")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
