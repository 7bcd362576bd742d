"""Training throughput in images per second; prints figures, judges nothing.

    .venv/bin/python bench/bench_train.py              # CPU defaults: small batch, few steps, a few minutes
    # a GPU, full size (issue 13), timm's train.py from a clone of github.com/huggingface/pytorch-image-models
    # (the timm package on PyPI does not ship it; use the tag of the installed version):
    python bench/bench_train.py --batch-size 256 --steps 50 --warmup 10 --rounds 3 --unique 512 \\
        --timm-train ~/pytorch-image-models/train.py

On a synthetic ImageFolder of JPEG photos (500x375 by default, generated into a temporary folder:
`--unique` distinct pictures, hard-linked to as many files as the steps need), for each model at 224 px:
1. the data loader alone, as train.py builds it (torchvision's JPEG decoder into tensors, random-resized
   crops on tensors, in the loader processes), the same loader decoding with PIL
   (`dlcourse.served.images.load_image`), and train.py's `--decode device` (nvJPEG and crops on the GPU; on a
   CPU, the training process decoding);
2. the model step alone (forward, backward, AdamW) on one batch already on the device;
3. train.py's path: its loader feeding its step (`Learner.train_loader`, `Learner.train_step`);
   2 and 3 with AMP (bf16 where the GPU has it; CUDA only) on and off, channels_last on and off,
   and with torch.compile when `--compile` is given; 3 decoding as `--decode` says;
4. timm's own train.py on the same folder, model, batch, precision and layout, when `--timm-train` names it.
Images per second count the timed steps only, after `--warmup` steps, best of `--rounds` (the two
loaders alternate; timm's train.py runs that many times); random initial weights, nothing downloaded. A path well below its step alone is
bound by its loader.
"""
from __future__ import annotations

import argparse
import itertools
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from dlcourse.served.images import load_image  # noqa: E402
from dlcourse.served.modelfile import ModelInfo  # noqa: E402
from dlcourse.served.preprocess import create_transform  # noqa: E402
from dlcourse.training import distributed  # noqa: E402
from dlcourse.training.data import ImageFiles, load_data  # noqa: E402
from dlcourse.training.learner import Learner, Recipe, amp_dtype, create_model, input_config  # noqa: E402
from dlcourse.training.transforms import PHOTO_AUGMENT  # noqa: E402

CLASSES = ("grizzly", "teddy")
LR = 1e-3


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["resnet50", "convnext_tiny"], help="timm names (default %(default)s)")
    p.add_argument("--img-size", type=int, default=224, help="training crop, pixels (default %(default)s)")
    p.add_argument("--photo-size", type=int, nargs=2, default=(500, 375), metavar=("W", "H"),
                   help="size of the JPEG photos (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="default %(default)s (CPU); 256 on a GPU")
    p.add_argument("--steps", type=int, default=3, help="timed steps per figure (default %(default)s; 50 on a GPU)")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first (default %(default)s; 10 on a GPU)")
    p.add_argument("--unique", type=int, default=64, help="distinct photos generated (default %(default)s; 512 on a GPU)")
    p.add_argument("--rounds", type=int, default=1, help="each figure is the best of this many (default %(default)s; 3 on a GPU)")
    p.add_argument("--workers", type=int, help="loader processes (default: as train.py, cores - 1, at most 8)")
    p.add_argument("--device", choices=("auto", "cuda", "cpu"), default="auto")
    p.add_argument("--decode", choices=("workers", "device"), default="workers",
                   help="train.py's --decode for the train.py path rows (default %(default)s)")
    p.add_argument("--compile", action="store_true", help="also measure steps through torch.compile (slow to start)")
    p.add_argument("--timm-train", metavar="PATH", help="timm's train.py, to run on the same data (default: not run)")
    return p.parse_args()


def make_photos(root: Path, unique: int, count: int, size: tuple[int, int]) -> Path:
    """root/{train,val}/<class>/*.jpg: `unique` photo-like JPEGs (smooth colour fields, texture, edges,
    quality 90, ~70 KB at 500x375), hard-linked until train/ holds `count` files and val/ a few."""
    rng = np.random.default_rng(0)
    width, height = size
    originals = []
    for i in range(unique):
        coarse = Image.fromarray((rng.random((6, 8, 3)) * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
        pixels = np.asarray(coarse, dtype=np.float32) + rng.normal(0, 12, (height, width, 3))
        x, y = rng.integers(0, width // 2), rng.integers(0, height // 2)
        pixels[y : y + height // 3, x : x + width // 3] *= 0.5  # an object with edges
        path = root / "originals" / f"photo_{i}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        originals.append(path)
    for split, n in (("train", count), ("val", max(2 * len(CLASSES), count // 20))):
        for i in range(n):
            folder = root / split / CLASSES[i % len(CLASSES)]
            folder.mkdir(parents=True, exist_ok=True)
            os.link(originals[i % unique], folder / f"{split}_{i}.jpg")
    return root


class PilImageFiles(ImageFiles):
    """The same files decoded the PIL way (load_image, then a tensor), for comparison."""

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = torch.from_numpy(np.array(load_image(self.paths[index]))).permute(2, 0, 1)
        return self.transform(image), self.targets[index]


def cycle(loader, n: int):
    """n batches from a loader, epoch after epoch."""
    while True:
        for batch in loader:
            if n == 0:
                return
            n -= 1
            yield batch


def rate(batches, work, batch_size: int, warmup: int, steps: int) -> float:
    """Images per second of work(batch) over `steps` batches after `warmup` untimed ones."""
    iterator = iter(batches)
    for _ in range(warmup):
        work(next(iterator))
    start = time.perf_counter()
    for _ in range(steps):
        work(next(iterator))
    if torch.cuda.is_available():
        torch.cuda.synchronize()  # batches decoded on the GPU are ready only now
    return steps * batch_size / (time.perf_counter() - start)


def learner_for(arch: str, data, args, procs, *, amp: bool, channels_last: bool, compile: bool, decode: str,
                dataset_type=ImageFiles, augment=PHOTO_AUGMENT) -> Learner:
    model = create_model(arch, len(data.classes), 3, pretrained=False)
    info = ModelInfo(arch=arch, classes=data.classes, in_chans=3, **input_config(model, 3, args.img_size))
    train = dataset_type(data.train.paths, data.train.targets, create_transform(info, augment))
    recipe = Recipe(batch_size=args.batch_size, workers=args.workers, amp=amp, channels_last=channels_last,
                    compile=compile, decode=decode, lr=LR)
    return Learner(model, train, data.valid, recipe, procs, log=lambda line: None)


def loader_rate(learner: Learner, args) -> float:
    return rate(cycle(learner.train_loader, args.warmup + args.steps), lambda batch: None,
                args.batch_size, args.warmup, args.steps)


def best_loader_rates(learners: list[Learner], args) -> list[float]:
    """The best of `--rounds` for each loader, taking turns, so that a busy moment hits them alike."""
    rounds = [[loader_rate(learner, args) for learner in learners] for _ in range(args.rounds)]
    return [max(column) for column in zip(*rounds)]


def step_rates(learner: Learner, args) -> tuple[float, float]:
    """(model step alone on a batch already on the device, train.py's loader + step) images per second."""
    net = learner.training_network()
    optimizer, scaler = learner.optimizer((LR,))
    net.train()
    size = args.img_size
    inputs = torch.randn(args.batch_size, 3, size, size, device=learner.device)
    targets = torch.randint(0, len(CLASSES), (args.batch_size,), device=learner.device)

    def step(batch) -> None:
        learner.train_step(net, optimizer, scaler, *batch).item()  # .item(): waits for the device, as fit does

    alone = path = 0.0
    for _ in range(args.rounds):
        alone = max(alone, rate(itertools.repeat((inputs, targets)), step, args.batch_size, args.warmup, args.steps))
        path = max(path, rate(cycle(learner.train_loader, args.warmup + args.steps), step, args.batch_size,
                              args.warmup, args.steps))
    return alone, path


def timm_rate(timm_train: str, data_root: Path, arch: str, args, device: torch.device, amp: bool,
              channels_last: bool, out: Path) -> tuple[float | None, str]:
    """timm's train.py for one epoch on the same data; images per second of its logged updates after the
    warm-up ones, and the command."""
    command = [
        sys.executable, timm_train, "--data-dir", str(data_root), "--train-split", "train", "--val-split", "val",
        "--model", arch, "--num-classes", str(len(CLASSES)), "--img-size", str(args.img_size),
        "--batch-size", str(args.batch_size), "--epochs", "1", "--opt", "adamw", "--lr", str(LR),
        "--weight-decay", "0.01", "--smoothing", "0.1", "--scale", *map(str, PHOTO_AUGMENT.crop_scale),
        "--hflip", "0.5", "--color-jitter", "0", "--train-interpolation", "bilinear",
        "--workers", str(args.workers), "--log-interval", "1", "--device", device.type, "--output", str(out),
    ]
    if device.type == "cuda":
        command += ["--pin-mem"]
    else:
        command += ["--no-prefetcher"]  # its prefetcher is CUDA's
    if amp and device.type == "cuda":
        command += ["--amp", "--amp-dtype", "bfloat16" if torch.cuda.is_bf16_supported() else "float16"]
    if channels_last:
        command += ["--channels-last"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=3600)
    updates = re.findall(r"Time: ([\d.]+)s, +[\d.]+/s", run.stdout + run.stderr)
    times = [float(t) for t in updates][args.warmup : args.warmup + args.steps]
    shown = " ".join(command[1:]).replace(str(data_root), "DATA")
    if run.returncode != 0 or not times:
        tail = (run.stderr or run.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"{shown}\n    failed ({run.returncode}): {tail[0][:300]}"
    return len(times) * args.batch_size / sum(times), shown


def main() -> None:
    args = parse_args()
    if args.workers is None:
        args.workers = distributed.default_workers(1)
    procs = distributed.start(args.device)
    device = procs.device
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    images = (args.warmup + args.steps) * args.batch_size
    precisions = [True, False] if amp_dtype(device, True) else [False]
    compiles = [False, True] if args.compile else [False]

    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        root = make_photos(Path(tmp) / "photos", args.unique, images, tuple(args.photo_size))
        data = load_data(str(root))
        kb = np.mean([p.stat().st_size for p in (root / "originals").iterdir()]) / 1024
        print(f"bench_train {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: "
              f"{gpu or platform.processor() or platform.machine()} ({len(os.sched_getaffinity(0))} cores), "
              f"torch {torch.__version__}, timm {__import__('timm').__version__}")
        print(f"data: {len(data.train)} training JPEGs {args.photo_size[0]}x{args.photo_size[1]} ({args.unique} distinct, "
              f"{kb:.0f} KB each on average), {len(CLASSES)} classes; crops {args.img_size} px, batch {args.batch_size}, "
              f"{args.workers} loader workers, {args.steps} timed steps after {args.warmup}; device {device}; "
              f"train.py path decoding in the {'loader processes' if args.decode == 'workers' else 'training process'}")
        if not amp_dtype(device, True):
            print("AMP: CUDA only (train.py trains in float32 on the CPU), so no AMP rows here")
        print(f"command: {' '.join(['python', 'bench/bench_train.py', *sys.argv[1:]])}\n")

        print("data loader alone, images/s (train.py's augmentations: random-resized crop, flip, rotation):")
        ours, pil, unrotated, on_device = best_loader_rates(
            [learner_for(args.models[0], data, args, procs, amp=False, channels_last=True, compile=False, decode=decode,
                         dataset_type=kind, augment=augment)
             for kind, decode, augment in ((ImageFiles, "workers", PHOTO_AUGMENT), (PilImageFiles, "workers", PHOTO_AUGMENT),
                                           (ImageFiles, "workers", replace(PHOTO_AUGMENT, rotate=0)),
                                           (ImageFiles, "device", PHOTO_AUGMENT))], args)
        for label, figure, ratio in (
            ("train.py's loader (torchvision decode_jpeg, crops on tensors)", ours, ""),
            ("the same decoding with PIL (load_image)", pil, f"ours / PIL {ours / pil:.2f}x"),
            ("train.py's loader with --rotate 0 (no per-image rotation)", unrotated, f"/ ours {unrotated / ours:.2f}x"),
            (f"train.py --decode device (decode, crops on {device.type})", on_device, f"device / ours {on_device / ours:.2f}x"),
        ):
            print(f"  {label:<62} {figure:8.1f}   {ratio}".rstrip())
        print()

        print(f"{'model':<15} {'amp':<5} {'layout':<15} {'compile':<8} {'step alone':>10} {'train.py':>9} "
              f"{'path/step':>9} {'timm':>8} {'ours/timm':>9}")
        timm_commands = []
        for arch in args.models:
            for amp in precisions:
                for channels_last in (True, False):
                    for compiled in compiles:
                        learner = learner_for(arch, data, args, procs, amp=amp, channels_last=channels_last,
                                              compile=compiled, decode=args.decode)
                        alone, path = step_rates(learner, args)
                        timm = None
                        if args.timm_train and not compiled:
                            runs = [timm_rate(args.timm_train, root, arch, args, device, amp, channels_last,
                                              Path(tmp) / "timm_out") for _ in range(args.rounds)]
                            timm = max((r for r, _ in runs if r), default=None)
                            timm_commands.append(runs[-1][1])
                        dtype = str(learner.dtype).replace("torch.", "") if learner.dtype else "off"
                        layout = "channels_last" if channels_last else "contiguous"
                        timm_cells = f"{timm:8.1f} {path / timm:8.2f}x" if timm else f"{'-':>8} {'-':>9}"
                        print(f"{arch:<15} {dtype:<5} {layout:<15} {'yes' if compiled else 'no':<8} {alone:10.1f} "
                              f"{path:9.1f} {path / alone:8.2f}x {timm_cells}", flush=True)
                        del learner
        for command in timm_commands:
            print(f"timm: train.py {command}")


if __name__ == "__main__":
    main()
