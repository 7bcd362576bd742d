"""The data cleaner on real images, measured; prints figures, judges nothing.

    OMP_NUM_THREADS=1 .venv/bin/python bench/bench_clean.py            # about 10-15 minutes on a 2-core CPU

1. Planted mistakes: MNIST's 5,000 training digits as PNG files in class folders (support/planted.py), 10% of
   them in a wrong class folder, the photos that installed packages ship spread over the classes, 2 broken
   files. train.py trains a small model on them as they are (resnet10t from scratch, 28 px); the cleaner ranks
   them, and per class prints how many of its planted images fall in its top twice-their-number by loss.
2. Cleaned against uncleaned: a reviewer who knows the truth goes through those top images of each class
   (relabels the misplaced digits, deletes the photos and the broken files) and applies it to cleaned.csv;
   train.py retrains with the same seed and recipe on cleaned.csv. Both models are then measured on
   labels known to be right: the validation images of the split (their true digits, photos left out) and
   2,000 digits of MNIST's test set.
3. Speed: ranking 10,000 images (MNIST's test set as PNG files) against one validation pass of train.py
   (`Learner.evaluate`, its loader and recipe) over the same images, interleaved, best of --rounds; then the
   page in Chromium: the first load (which ranks), and a change of page and of class, answered (median, worst),
   beside a Gradio page that changes one text (the floor any answer has on this machine).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from dlcourse import mnist  # noqa: E402
from dlcourse.clean.__main__ import open_model, parse_args  # noqa: E402
from dlcourse.clean.apply import DELETE, apply  # noqa: E402
from dlcourse.clean.items import open_data  # noqa: E402
from dlcourse.clean.ranking import rank  # noqa: E402
from dlcourse.served.modelfile import build_model  # noqa: E402
from dlcourse.served.loading import load_model_file  # noqa: E402
from dlcourse.served.preprocess import create_transform  # noqa: E402
from dlcourse.training import distributed  # noqa: E402
from dlcourse.training.data import ImageFiles  # noqa: E402
from dlcourse.training.evaluate import evaluate_model_file  # noqa: E402
from dlcourse.training.learner import Learner, Recipe  # noqa: E402
from support.planted import make_planted_mnist  # noqa: E402

MNIST_DIR = ROOT / "data" / "mnist"
RECIPE = ["--arch", "resnet10t", "--no-pretrained", "--img-size", "28", "--batch-size", "64", "--lr", "3e-3",
          "--device", "cpu"]


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3, help="train.py --epochs for both models (default %(default)s)")
    p.add_argument("--digits", type=int, default=5000, help="MNIST training digits in the planted folder (default %(default)s)")
    p.add_argument("--wrong-share", type=float, default=0.1, help="share of digits put in a wrong folder (default %(default)s)")
    p.add_argument("--speed-images", type=int, default=10_000, help="images ranked for the speed figures (default %(default)s)")
    p.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the speed figures (default %(default)s)")
    p.add_argument("--page-changes", type=int, default=8, help="page and class changes timed in Chromium (default %(default)s)")
    p.add_argument("--work", type=Path, help="folder for the data and models (default: a temporary one)")
    return p.parse_args()


def train(work: Path, name: str, data_args: list[str], epochs: int) -> Path:
    out = work / f"{name}.pkl"
    command = [sys.executable, str(ROOT / "train.py"), *RECIPE, "--epochs", str(epochs), *data_args, "--out", str(out),
               "--report-dir", str(work / f"report-{name}")]
    print(f"$ {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if run.returncode:
        sys.exit(run.stderr[-3000:])
    accuracy = next(line for line in run.stdout.splitlines() if line.startswith("accuracy "))
    print(f"  {accuracy.split(';')[0]} ({time.perf_counter() - started:.0f} s)", flush=True)
    return out


def digits_folder(root: Path, split: str, count: int) -> Path:
    """`count` digits of an MNIST split as PNG files in class folders, labels right."""
    images, labels = mnist.load_split(MNIST_DIR, split)
    for n in range(min(count, len(images))):
        folder = root / str(int(labels[n]))
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.asarray(images[n])).save(folder / f"{split}-{n:05d}.png")
    return root


def planted_ranks(work: Path, model: Path, planted: dict[str, str]) -> dict[str, str]:
    """Part 1: per class, planted images in the top 2x their number; returns the reviewer's decisions."""
    data = open_data(parse_args(["--data", str(work / "dirty"), "--model", str(model)]))
    ranking = rank(data, open_model(str(model), data), progress=False)
    decisions = {file: DELETE for file, truth in planted.items() if truth == "unreadable"}
    print("\nclass  images  planted (misplaced + photos)  of them in its top 2x planted by loss")
    found_all = planted_all = photos_found = 0
    for label in data.classes:
        rows = ranking.rows(item for item in data.items if item.label == label)
        mine = [file for file, truth in planted.items() if truth != "unreadable" and file.split("/")[0] == label]
        top = rows[: 2 * len(mine)]
        found = [row["file"] for row in top if row["file"] in planted]
        photos = sum(planted[file] == "photo" for file in mine)
        found_photos = sum(planted[file] == "photo" for file in found)
        found_all, planted_all, photos_found = found_all + len(found), planted_all + len(mine), photos_found + found_photos
        print(f"{label:>5}  {len(rows):>6}  {len(mine):>4} ({len(mine) - photos} + {photos}){'':>14}  "
              f"{len(found):>4} ({len(found) - found_photos} + {found_photos}), {len(found) / max(len(mine), 1):.0%}")
        for row in top:  # the reviewer: knows the truth of each image shown
            truth = planted.get(row["file"])
            if truth == "photo":
                decisions[row["file"]] = DELETE
            elif truth is not None:
                decisions[row["file"]] = truth
    photos_all = sum(truth == "photo" for truth in planted.values())
    print(f"  all  {len(data.items):>6}  {planted_all:>4} ({planted_all - photos_all} + {photos_all}){'':>12}  "
          f"{found_all:>4} ({found_all - photos_found} + {photos_found}), {found_all / planted_all:.0%}")
    return decisions


def clean_label_accuracy(work: Path, models: dict[str, Path], planted: dict[str, str]) -> None:
    """Part 2's measure: each model on images whose labels are right."""
    data = open_data(parse_args(["--data", str(work / "dirty"), "--model", "x"]))
    valid = [(data.root / item.file, int(planted.get(item.file, item.label))) for item in data.items
             if item.split == "valid" and planted.get(item.file) != "photo"]
    sets = {
        f"the split's {len(valid):,} validation digits, true labels": ImageFiles(*zip(*valid)),
        "2,000 MNIST test digits": _folder_files(digits_folder(work / "test-2k", "test", 2000)),
    }
    print(f"\n{'model':<34}" + "".join(f"{name:>48}" for name in sets))
    for name, model in models.items():
        scores = [evaluate_model_file(model, dataset, data.classes)["accuracy"] for dataset in sets.values()]
        print(f"{name:<34}" + "".join(f"{score:>48.4f}" for score in scores))


def _folder_files(root: Path) -> ImageFiles:
    paths = sorted(root.glob("*/*.png"))
    return ImageFiles(paths, [int(path.parent.name) for path in paths])


def ranking_speed(work: Path, model: Path, count: int, rounds: int) -> None:
    """Part 3: the cleaner's ranking against a validation pass of train.py over the same images."""
    folder = digits_folder(work / f"speed-{count}", "test", count)
    args = parse_args(["--data", str(folder), "--model", str(model)])
    data = open_data(args)
    classifier = open_model(str(model), data)
    meta, state_dict = load_model_file(model)
    files = ImageFiles([data.root / item.file for item in data.items],
                       [data.classes.index(item.label) for item in data.items])
    procs = distributed.start("cpu")
    workers = distributed.default_workers(1)
    recipe = Recipe(epochs=1, freeze_epochs=0, lr=1e-3, batch_size=64, weight_decay=0.0, label_smoothing=0.1,
                    workers=workers, amp=False, seed=0)
    learner = Learner(build_model(meta, state_dict), files.with_transform(create_transform(meta)),
                      files.with_transform(create_transform(meta)), recipe, procs, log=lambda _: None)
    times: dict[str, list[float]] = {"rank": [], "rank, in-process": [], "validation pass": []}
    for _ in range(rounds):
        for name, run in (("rank", lambda: rank(data, classifier, workers=workers, progress=False)),
                          ("rank, in-process", lambda: rank(data, classifier, workers=0, progress=False)),
                          ("validation pass", learner.evaluate)):
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    started = time.perf_counter()
    open_data(args)
    reading = time.perf_counter() - started
    best = {name: min(values) for name, values in times.items()}
    print(f"\n{len(data.items):,} images, {workers} loader process(es), best of {rounds} interleaved rounds:")
    for name, seconds in best.items():
        print(f"  {name:<20} {seconds:6.1f} s  {seconds / best['validation pass']:.2f}x the validation pass")
    print(f"  (before either, reading the folder as train.py does, every image checked once: {reading:.1f} s)")


def page_speed(work: Path, model: Path, changes: int) -> None:
    """Part 3: the page's answer to a change of page and of class, in Chromium, beside the floor: a Gradio page
    whose button changes one text (what any answer costs on this machine, browser included)."""
    import gradio as gr
    from playwright.sync_api import sync_playwright

    from dlcourse.clean.session import CleanSession
    from dlcourse.ui.clean import launch
    from dlcourse.ui.space import queued
    from support.serving import free_port

    args = parse_args(["--data", str(work / "dirty"), "--model", str(model)])
    data = open_data(args)
    session = CleanSession(data, open_model(str(model), data), reload=lambda: open_data(args))
    blocks = launch(session, free_port(), block=False)
    with gr.Blocks() as floor:
        count = gr.Markdown("0", elem_id="floor-text")
        gr.Button("+1", elem_id="floor-button").click(lambda n: str(int(n) + 1), count, count, queue=False)
    queued(floor).launch(server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True)

    def timed(page, action, changed: str, arg) -> float:
        started = time.perf_counter()
        action()
        page.wait_for_function(changed, arg=arg)
        return time.perf_counter() - started

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=["--headless", "--no-sandbox"])
        page, other = (browser.new_page(viewport={"width": 1280, "height": 1000}) for _ in range(2))
        page.set_default_timeout(120_000)
        started = time.perf_counter()
        page.goto(blocks.local_url)
        page.locator("#clean-card-0").wait_for(state="visible")
        first = time.perf_counter() - started
        other.goto(floor.local_url)
        other.locator("#floor-button").wait_for()
        times: dict[str, list[float]] = {"next page": [], "another class": [], "floor": []}
        for n in range(changes):
            caption = "t => document.querySelector('#clean-caption-0').innerText !== t"
            times["next page"].append(timed(page, page.locator("#clean-next").click, caption,
                                            page.locator("#clean-caption-0").inner_text()))
            label = str((n + 1) % 10)
            page.locator("#clean-class input").click()
            option = page.get_by_role("option").filter(has_text=f"{label} (").first
            times["another class"].append(timed(
                page, option.click, "l => document.querySelector('#clean-caption-0').innerText.startsWith(l + ' →')", label))
            times["floor"].append(timed(other, other.locator("#floor-button").click,
                                        "n => document.querySelector('#floor-text').innerText === n", str(n + 1)))
        browser.close()
    blocks.close()
    floor.close()
    print(f"\nthe page on {len(data.items):,} images in Chromium: first load (ranks them) {first:.1f} s; "
          f"{changes} of each, interleaved:")
    for name, values in times.items():
        print(f"  {name:<14} {statistics.median(values) * 1000:5.0f} ms median, {max(values) * 1000:5.0f} ms worst")


def main() -> None:
    options = parse()
    work = options.work or Path(tempfile.mkdtemp(prefix="bench-clean-"))
    torch.manual_seed(0)
    print(f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores, "
          f"torch threads {torch.get_num_threads()}; work folder {work}")
    planted = make_planted_mnist(work / "dirty", MNIST_DIR, count=options.digits, wrong_share=options.wrong_share, photos=20, unreadable=2)
    counts = {kind: sum((truth == kind) if kind != "misplaced" else truth.isdigit() for truth in planted.values())
              for kind in ("misplaced", "photo", "unreadable")}
    print(f"planted: {counts}")

    dirty = train(work, "uncleaned", ["--data", str(work / "dirty")], options.epochs)
    decisions = planted_ranks(work, dirty, planted)
    outcome = apply(open_data(parse_args(["--data", str(work / "dirty"), "--apply", "x"])), decisions)
    print(f"\nthe reviewer's decisions: {outcome.summary()}")
    cleaned = train(work, "cleaned", ["--data", str(work / "dirty"), "--csv", "cleaned.csv"], options.epochs)
    clean_label_accuracy(work, {"uncleaned labels (train.py --data)": dirty,
                                "cleaned labels (--csv cleaned.csv)": cleaned}, planted)

    ranking_speed(work, dirty, options.speed_images, options.rounds)
    page_speed(work, dirty, options.page_changes)


if __name__ == "__main__":
    main()
