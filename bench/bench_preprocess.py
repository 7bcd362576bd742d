"""Digit preprocessing speed: a 12-megapixel phone photo, decode included, and a 28x28 MNIST digit.

    .venv/bin/python bench/bench_preprocess.py [--photos 6] [--repeats 15]

The photos are `dlcourse.served.digit_variants.photograph(..., "12mp-small")` renderings of MNIST test digits
(4000x3000), given a phone's sensor noise and saved at JPEG quality 92 (3-4 MB, as phones write them).
Timed: `load_image(bytes, at_least=DIGIT_DECODE_SIDE)` + `to_mnist_digit`, what /classify does with an
upload. The floor, in the same run: PIL decoding the same file in full, nothing else. The 28x28 digits
are MNIST test digits as PIL images through `to_mnist_digit`, and from PNG bytes with the decode.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from support.timing import percentile, timings_ms  # noqa: E402

from dlcourse.served.digit_variants import photograph  # noqa: E402
from dlcourse.served.images import DIGIT_DECODE_SIDE, load_image, to_mnist_digit  # noqa: E402
from dlcourse.mnist import load_split  # noqa: E402

PHONE_NOISE = 4.0  # grey levels of sensor noise added to the rendering before the phone's JPEG
PHONE_QUALITY = 92


def phone_photo(digit: np.ndarray, rng: np.random.Generator) -> bytes:
    rendered = np.asarray(Image.open(io.BytesIO(photograph(digit, "12mp-small", rng))), np.float32)
    noisy = np.clip(rendered + rng.normal(0, PHONE_NOISE, rendered.shape[:2] + (1,)).astype(np.float32), 0, 255)
    buffer = io.BytesIO()
    Image.fromarray(noisy.astype(np.uint8)).save(buffer, format="JPEG", quality=PHONE_QUALITY)
    return buffer.getvalue()


def full_decode(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=6, help="different 12 MP photos, timed in turn")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each")
    parser.add_argument("--mnist-dir", type=Path, default=ROOT / "data" / "mnist")
    args = parser.parse_args()

    images, labels = load_split(args.mnist_dir, "test")
    rng = np.random.default_rng(0)
    photos = [phone_photo(images[i], rng) for i in rng.choice(len(images), args.photos, replace=False)]
    sizes = [Image.open(io.BytesIO(data)).size for data in photos]
    print(f"{len(photos)} photos, {sizes[0][0]}x{sizes[0][1]} or {sizes[0][1]}x{sizes[0][0]}, "
          f"{min(map(len, photos)) / 1e6:.1f}-{max(map(len, photos)) / 1e6:.1f} MB")

    ours, decode, floor = [], [], []
    for _ in range(args.repeats):  # interleaved, so a change of the machine's speed hits all alike
        for data in photos:
            ours += timings_ms(lambda: to_mnist_digit(load_image(data, at_least=DIGIT_DECODE_SIDE)), 1)
            decode += timings_ms(lambda: load_image(data, at_least=DIGIT_DECODE_SIDE), 1)
            floor += timings_ms(lambda: full_decode(data), 1)
    ours_ms, floor_ms = statistics.median(ours), statistics.median(floor)
    print(f"12 MP JPEG -> 28x28 digit, decode included: p50 {ours_ms:.1f} ms, p95 {percentile(ours, 95):.1f} ms "
          f"(target: p50 under 80 ms)")
    print(f"  of which load_image's decode at 1/4 size: p50 {statistics.median(decode):.1f} ms")
    print(f"  floor, PIL's full decode of the same files alone: p50 {floor_ms:.1f} ms; "
          f"ratio {ours_ms / floor_ms:.2f}")

    digits = [Image.fromarray(images[i]) for i in range(200)]
    pngs = []
    for digit in digits[:50]:
        buffer = io.BytesIO()
        digit.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    small = [t / len(digits) for t in timings_ms(lambda: [to_mnist_digit(d) for d in digits], args.repeats)]
    with_decode = [t / len(pngs) for t in timings_ms(lambda: [to_mnist_digit(load_image(p)) for p in pngs], args.repeats)]
    print(f"28x28 MNIST digit -> 28x28 digit: p50 {statistics.median(small):.3f} ms "
          f"(target: under 1 ms); from PNG bytes, decode included: {statistics.median(with_decode):.3f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
