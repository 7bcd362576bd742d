"""What writing a checkpoint every epoch costs: the write's time against the epoch's, measured in the same run,
on the default digits model; prints figures, judges nothing.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_checkpoint.py            # 2 epochs of the default recipe

The default model's recipe (README: resnet10t from scratch, 1 channel at 32 px, MNIST's 5k training digits,
validated on its 10k test digits, batch 128, lr 3e-3, wd 0.05, the digit augmentations, the default loader
workers), trained for `--epochs` with train.py's own pieces (`Learner`, `checkpoint.Writer`). After each
epoch, the checkpoint is written `--writes` times in a row (the same state each time): the median time
training waits for the snapshot (`blocks`: the processes' states gathered, the tensors copied), the
median time until the file is complete (`written`: in train.py, the next epoch runs meanwhile), and the
epoch's time (training and validation, as the history's seconds).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlcourse.served.modelfile import ModelInfo  # noqa: E402
from dlcourse.served.preprocess import create_transform  # noqa: E402
from dlcourse.training import checkpoint, distributed  # noqa: E402
from dlcourse.training.data import fingerprint, load_data  # noqa: E402
from dlcourse.training.learner import Learner, Recipe, create_model, input_config, seed_everything  # noqa: E402
from dlcourse.training.transforms import default_augment  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mnist-dir", default=str(ROOT / "data" / "mnist"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--writes", type=int, default=3, help="checkpoint writes timed after each epoch (default %(default)s)")
    args = p.parse_args()

    procs = distributed.start("cpu")
    seed_everything(42)
    data = load_data("mnist", mnist_dir=args.mnist_dir, seed=42)
    model = create_model("resnet10t", len(data.classes), 1, pretrained=False)
    meta = ModelInfo(arch="resnet10t", classes=data.classes, in_chans=1, **input_config(model, 1, 32),
                     preprocessing=data.preprocessing)
    augment = default_augment(data.preprocessing)
    recipe = Recipe(epochs=args.epochs, lr=3e-3, batch_size=128, weight_decay=0.05,
                    workers=distributed.default_workers(1), seed=42)
    learner = Learner(model, data.train.with_transform(create_transform(meta, augment)),
                      data.valid.with_transform(create_transform(meta)), recipe, procs)
    settings = checkpoint.settings(meta, recipe, augment, None, 1)
    data_fingerprint = fingerprint(data)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.ckpt"

        writer = checkpoint.Writer(path)

        def timed_writes() -> None:
            blocked, written = [], []
            for _ in range(args.writes):
                start = time.perf_counter()
                writer.write(learner, settings, data_fingerprint)
                blocked.append(time.perf_counter() - start)
                writer.wait()
                written.append(time.perf_counter() - start)
            rows.append((learner.history[-1]["seconds"], statistics.median(blocked), statistics.median(written),
                         path.stat().st_size))

        learner.fit(after_epoch=timed_writes)

    print(f"\ndefault digits model ({recipe.workers} loader workers), checkpoint {rows[-1][3] / 2**20:.1f} MB, "
          f"median of {args.writes} writes after each epoch; 'blocks': training waits for the snapshot, "
          "'written': the whole file, which the next epoch does not wait for:")
    print(f"{'epoch':>5}{'epoch s':>10}{'blocks s':>10}{'written s':>11}{'blocks / epoch':>16}{'written / epoch':>17}")
    for epoch, (epoch_seconds, blocked, written, _) in enumerate(rows, 1):
        print(f"{epoch:>5}{epoch_seconds:>10.2f}{blocked:>10.3f}{written:>11.3f}{blocked / epoch_seconds:>15.2%}"
              f"{written / epoch_seconds:>16.2%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
