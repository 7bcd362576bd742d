"""Opening a fastai export against opening the same network in this project's own format; prints figures.

    .venv/bin/python bench/bench_fastai_load.py [--arch resnet34] [--repeats 15]

fastai (a dev requirement) makes the export in a subprocess of its own (random weights, pretrained=False:
the layout and the size are what matter); `python -m dlcourse.served.fastai_export convert` writes the same
network in our format. Then, interleaved, in this process (which never imports fastai):
1. file to network: load_model_file + build_model, export vs converted file (target: ratio <= 1.2);
2. Classifier.from_file, the whole start-up the app does with the file;
3. one prediction of each classifier afterwards (target: the same cost).
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from dlcourse.served.classifier import Classifier  # noqa: E402
from dlcourse.served.images import load_image  # noqa: E402
from dlcourse.served.modelfile import build_model  # noqa: E402
from dlcourse.served.loading import load_model_file
from support.timing import timings_ms  # noqa: E402

EXPORT_SCRIPT = """
import sys
from pathlib import Path
import numpy as np
from PIL import Image
from fastai.vision.all import ImageDataLoaders, Normalize, Resize, get_image_files, imagenet_stats, vision_learner
import torchvision
out = Path(sys.argv[1]); images = out / "images"; images.mkdir()
for i in range(8):
    Image.fromarray((np.random.default_rng(i).random((48, 64, 3)) * 255).astype(np.uint8)).save(images / f"{'ab'[i % 2]}_{i}.png")
dls = ImageDataLoaders.from_name_re(images, get_image_files(images), pat=r"^(\\w)_", item_tfms=Resize(224), bs=4,
                                    batch_tfms=[Normalize.from_stats(*imagenet_stats)], num_workers=0)
arch = getattr(torchvision.models, sys.argv[2]) if sys.argv[2].startswith("resnet") and sys.argv[2][6:].isdigit() else sys.argv[2]
vision_learner(dls, arch, pretrained=False).export(out / "export.pkl")
"""


def opening(path: Path) -> None:
    build_model(*load_model_file(path))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", default="resnet34", help="torchvision resnet18/34/50 or a timm arch name")
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    torch.set_num_threads(1)  # as app.py serves
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, str(folder), args.arch], check=True, capture_output=True)
        export, ours = folder / "export.pkl", folder / "ours.pkl"
        subprocess.run([sys.executable, "-m", "dlcourse.served.fastai_export", "convert", str(export), str(ours)], cwd=ROOT,
                       check=True, capture_output=True)
        print(f"{args.arch}: export {export.stat().st_size / 2**20:.1f} MB, our format {ours.stat().st_size / 2**20:.1f} MB; "
              f"torch threads {torch.get_num_threads()}; medians of {args.repeats}, interleaved")
        for title, step in (("file to network (load_model_file + build_model)", opening),
                            ("Classifier.from_file", Classifier.from_file)):
            times: dict[Path, list[float]] = {ours: [], export: []}
            for path in (ours, export):
                step(path)  # warm: imports, page cache
            for _ in range(args.repeats):
                for path in (ours, export):
                    start = time.perf_counter()
                    step(path)
                    times[path].append((time.perf_counter() - start) * 1000)
            floor, measured = statistics.median(times[ours]), statistics.median(times[export])
            print(f"{title}: our format {floor:.0f} ms, fastai export {measured:.0f} ms, ratio {measured / floor:.2f}")
        image = load_image(sorted((folder / "images").iterdir())[0])
        served = {path: Classifier.from_file(path) for path in (ours, export)}
        per_call = {path: statistics.median(timings_ms(lambda c=served[path]: c.predict(image), args.repeats * 4))
                    for path in (ours, export)}
        print(f"one prediction afterwards: our format {per_call[ours]:.1f} ms, fastai export {per_call[export]:.1f} ms, "
              f"ratio {per_call[export] / per_call[ours]:.2f}")


if __name__ == "__main__":
    main()
