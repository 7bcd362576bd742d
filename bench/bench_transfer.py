"""Transfer learning measured: train.py's fine-tune with and without discriminative learning rates, and
fastai's `fine_tune`, from one checkpoint pretrained here; prints accuracy and time side by side.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_transfer.py            # a few minutes on a CPU

1. Pretrain `--arch` from scratch with train.py on MNIST digits 0-4 (the 5k training subset's, validated on
   the test set's), and save its weights as a timm checkpoint (a state_dict file).
2. Fine-tune from that checkpoint on digits 5-9 with `--shots` training images per class, validated on
   `--valid-per-class` test digits per class, three ways, each with every seed of `--seeds`:
   train.py (`--weights`, the default `--lr-mult 100`), train.py with `--lr-mult 1` (one rate for every
   layer), and fastai's `vision_learner(..., pretrained=False)` with the checkpoint loaded into its body,
   then `learn.fine_tune`. Same images (PNG folders with train/ and valid/), image size, epochs
   (`--freeze-epochs` + `--epochs`), batch size, base learning rate, weight decay and label smoothing; no
   augmentation; one process, no loader workers, one thread each. What still differs is each side's own:
   fastai's head (pooling, BatchNorm, dropout, two linear layers) and its Adam settings.
Time is the fine-tune's epochs (training and validation), in this process, as each side reports them.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

import train as train_script  # noqa: E402
from dlcourse.mnist import load_split, load_training_split  # noqa: E402
from dlcourse.served.modelfile import read_model_file  # noqa: E402

NO_AUGMENT = ["--crop-scale", "0", "--no-flip", "--rotate", "0"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-dir", default=str(ROOT / "data" / "mnist"))
    p.add_argument("--arch", default="resnet10t")
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--pretrain-epochs", type=int, default=4)
    p.add_argument("--shots", type=int, default=20, help="training images per class to fine-tune on (default %(default)s)")
    p.add_argument("--valid-per-class", type=int, default=200)
    p.add_argument("--freeze-epochs", type=int, default=1)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=2e-3, help="base learning rate of every fine-tune (default %(default)s)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    return p.parse_args()


def write_digits(root: Path, images: np.ndarray, labels: np.ndarray, digits: range, per_class: int | None) -> None:
    """PNG files root/<digit>/<n>.png of the first `per_class` images of each digit (all when None)."""
    for digit in digits:
        chosen = np.flatnonzero(labels == digit)[:per_class]
        folder = root / str(digit)
        folder.mkdir(parents=True, exist_ok=True)
        for n, index in enumerate(chosen):
            Image.fromarray(images[index]).save(folder / f"{n}.png")


def ours(data: Path, weights: Path, out: Path, args: argparse.Namespace, seed: int, lr_mult: float) -> tuple[float, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # train.py's table and report lines
        code = train_script.main([
            "--data", str(data), "--arch", args.arch, "--weights", str(weights), "--img-size", str(args.img_size),
            "--freeze-epochs", str(args.freeze_epochs), "--epochs", str(args.epochs), "--batch-size",
            str(args.batch_size), "--lr", str(args.lr), "--lr-mult", str(lr_mult), "--seed", str(seed), "--workers", "0",
            "--device", "cpu", *NO_AUGMENT, "--out", str(out), "--report-dir", str(out.parent / "report"),
        ])
    assert code == 0, code
    info, _ = read_model_file(out)
    return info.metrics["accuracy"], sum(row["seconds"] for row in info.history)


def fastai_fine_tune(data: Path, weights: Path, args: argparse.Namespace, seed: int) -> tuple[float, float]:
    from fastai.vision.all import (CrossEntropyLossFlat, ImageDataLoaders, Normalize, Resize, accuracy,
                                   imagenet_stats, set_seed, vision_learner)

    set_seed(seed, reproducible=True)
    dls = ImageDataLoaders.from_folder(data, train="train", valid="valid", item_tfms=Resize(args.img_size),
                                       batch_tfms=Normalize.from_stats(*imagenet_stats), bs=args.batch_size,
                                       num_workers=0, device=torch.device("cpu"))
    learn = vision_learner(dls, args.arch, pretrained=False, metrics=accuracy,
                           loss_func=CrossEntropyLossFlat(label_smoothing=0.1))
    body = {k: v for k, v in torch.load(weights, weights_only=True).items() if not k.startswith("fc.")}
    learn.model[0].model.load_state_dict(body)
    start = time.perf_counter()
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(args.epochs, base_lr=args.lr, freeze_epochs=args.freeze_epochs)
    seconds = time.perf_counter() - start
    return float(learn.recorder.values[-1][2]), seconds


def main() -> int:
    args = parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        train_images, train_labels = load_training_split(args.mnist_dir)
        test_images, test_labels = load_split(args.mnist_dir, "test")
        write_digits(work / "pre" / "train", train_images, train_labels, range(0, 5), None)
        write_digits(work / "pre" / "valid", test_images, test_labels, range(0, 5), args.valid_per_class)
        write_digits(work / "new" / "train", train_images, train_labels, range(5, 10), args.shots)
        write_digits(work / "new" / "valid", test_images, test_labels, range(5, 10), args.valid_per_class)

        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = train_script.main([
                "--data", str(work / "pre"), "--arch", args.arch, "--no-pretrained", "--img-size", str(args.img_size),
                "--epochs", str(args.pretrain_epochs), "--batch-size", "64", "--lr", "3e-3", "--workers", "0",
                "--device", "cpu", *NO_AUGMENT, "--out", str(work / "pre.pkl"), "--report-dir", str(work / "report"),
            ])
        assert code == 0, code
        info, state = read_model_file(work / "pre.pkl")
        torch.save(state, work / "digits0-4.pth")  # a plain timm state_dict, as --weights takes
        print(f"pretrained {args.arch} on digits 0-4: accuracy {info.metrics['accuracy']:.4f} "
              f"({time.perf_counter() - start:.0f} s)\n", flush=True)

        ways = {
            "train.py, --lr-mult 100 (discriminative)": lambda seed: ours(work / "new", work / "digits0-4.pth",
                                                                          work / f"a{seed}.pkl", args, seed, 100),
            "train.py, --lr-mult 1 (one rate)": lambda seed: ours(work / "new", work / "digits0-4.pth",
                                                                  work / f"b{seed}.pkl", args, seed, 1),
            "fastai fine_tune": lambda seed: fastai_fine_tune(work / "new", work / "digits0-4.pth", args, seed),
        }
        results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
        for seed in args.seeds:  # the three ways take turns
            for name, run in ways.items():
                results[name].append(run(seed))

    print(f"fine-tune on digits 5-9: {args.shots} training images per class, {args.valid_per_class} validation "
          f"per class, {args.arch} at {args.img_size} px, {args.freeze_epochs} frozen + {args.epochs} epochs, "
          f"batch {args.batch_size}, lr {args.lr:g}, seeds {args.seeds}")
    print(f"{'':44}{'accuracy (mean, min-max)':>28}{'seconds (mean)':>16}")
    for name, rows in results.items():
        accuracies, seconds = [a for a, _ in rows], [s for _, s in rows]
        print(f"{name:44}{statistics.mean(accuracies):>14.4f} ({min(accuracies):.4f}-{max(accuracies):.4f})"
              f"{statistics.mean(seconds):>16.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
