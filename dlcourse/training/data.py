"""Where labelled images come from, and how they split into training and validation sets.

Four sources, one result (`Data`: classes, a training and a validation `Dataset` of uint8 CHW tensors):
- a folder in ImageFolder layout: one sub-folder per class, images anywhere below it;
- a folder of files whose names carry the label, read with a regular expression (first group);
- MNIST IDX files (`dlcourse.mnist`), the official test set as validation when present;
- a CSV of file names and labels, with an optional is_valid column (fastai's `ImageDataLoaders.from_csv`).

Validation is the data's own split when it has one (`train/` + `valid/` or `val/` folders; MNIST's test
files), else a fixed random `valid_pct` share drawn with `seed`, so every run validates on the same images.
Image files are checked before training: unreadable or corrupt ones are skipped and counted.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import io
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from PIL import Image
from torchvision.io import ImageReadMode, decode_jpeg

from .. import mnist
from ..errors import BadInput, shown
from ..served.images import load_image
from .checkpoint import generator_states, set_generator_states

JPEG_SIGNATURE = b"\xff\xd8\xff"
EXIF_ORIENTATION = 0x0112
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
VALID_FOLDER_NAMES = ("valid", "val")


class ImageFiles(torch.utils.data.Dataset):
    """Image files and their class indices; an item is (transform(uint8 RGB tensor), class index)."""

    def __init__(self, paths: Sequence[Path], targets: Sequence[int], transform: Callable | None = None):
        self.paths, self.targets, self.transform = list(paths), list(targets), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = decode_rgb(self.paths[index])
        return (self.transform(image) if self.transform else image), self.targets[index]

    def with_transform(self, transform: Callable | None) -> "ImageFiles":
        return ImageFiles(self.paths, self.targets, transform)


def decode_rgb(path: Path) -> torch.Tensor:
    """An image file already checked by `check_images` as a uint8 RGB tensor (3, H, W). JPEGs go through
    torchvision's decoder (libjpeg-turbo into a tensor, EXIF orientation applied): the training loader
    gives 1.1-1.4x the images per second of the PIL route on 500x375 photos on a CPU (bench/bench_train.py).
    Other formats, and JPEGs that decoder refuses, through `load_image` (PIL)."""
    data = Path(path).read_bytes()
    if data[:3] == JPEG_SIGNATURE:
        try:
            return decode_jpeg(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB,
                               apply_exif_orientation=True)
        except RuntimeError:
            pass
    return torch.from_numpy(np.array(load_image(data))).permute(2, 0, 1)


class EncodedImages(torch.utils.data.Dataset):
    """The files of an `ImageFiles` as their JPEG bytes (1-D uint8 tensors), for `DecodedOnDevice` to decode
    where training runs. Other formats, and JPEGs with an EXIF orientation to apply (the GPU decoder
    ignores it), are decoded here: uint8 RGB (3, H, W). Batch with `collate_encoded`."""

    def __init__(self, files: ImageFiles):
        self.paths, self.targets = files.paths, files.targets

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        data = Path(self.paths[index]).read_bytes()
        if data[:3] == JPEG_SIGNATURE and Image.open(io.BytesIO(data)).getexif().get(EXIF_ORIENTATION, 1) == 1:
            return torch.frombuffer(bytearray(data), dtype=torch.uint8), self.targets[index]
        return decode_rgb(self.paths[index]), self.targets[index]


def collate_encoded(items: list[tuple[torch.Tensor, int]]) -> tuple[list[torch.Tensor], torch.Tensor]:
    """A batch of `EncodedImages` items, which differ in size: (list of tensors, targets)."""
    return [image for image, _ in items], torch.tensor([target for _, target in items])


class DecodedOnDevice:
    """A DataLoader of `EncodedImages` whose batches are decoded on `device` (nvJPEG on CUDA, the whole
    batch in one call) and transformed there, image by image; iterates as (images, targets) like any loader."""

    def __init__(self, loader: torch.utils.data.DataLoader, transform: Callable, device: torch.device):
        self.loader, self.transform, self.device = loader, transform, device
        self.sampler, self.generator = loader.sampler, loader.generator

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, targets in self.loader:
            jpegs = [i for i, image in enumerate(images) if image.ndim == 1]
            decoded = decode_jpeg([images[i] for i in jpegs], mode=ImageReadMode.RGB, device=self.device) if jpegs else []
            on_device = dict(zip(jpegs, decoded))
            yield torch.stack([
                self.transform(on_device[i] if i in on_device else image.to(self.device, non_blocking=True))
                for i, image in enumerate(images)
            ]), targets


class ResumableLoader:
    """A DataLoader whose worker processes can be resumed where an interrupted run left them.

    Persistent workers carry their random generators (the augmentations' draws) from epoch to epoch, out of
    the training process's reach; so each batch brings back its worker's states as they are after making it
    (`worker_states`: the last per worker, those at the epoch's end, since persistent workers wait between
    epochs), and workers starting with `start_states` set take theirs from there. Without workers, the
    augmentations draw from the training process's own generators, which a checkpoint saves directly."""

    def __init__(self, dataset, collate_fn: Callable | None = None, **kwargs):
        self.workers = _WorkerRandomStates(collate_fn or torch.utils.data.default_collate)
        self.worker_states: dict[int, dict] = {}
        self.loader = torch.utils.data.DataLoader(dataset, collate_fn=self.workers.collate,
                                                  worker_init_fn=self.workers.start, **kwargs)
        self.sampler, self.generator = self.loader.sampler, self.loader.generator

    @property
    def start_states(self) -> dict[int, dict]:
        return self.workers.start_states

    @start_states.setter
    def start_states(self, states: dict[int, dict]) -> None:
        self.workers.start_states = dict(states)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch, state in self.loader:
            if state is not None:
                self.worker_states[state[0]] = state[1]
            yield batch


@dataclass
class _WorkerRandomStates:
    """ResumableLoader's side in the worker processes (picklable on its own, for the spawn start method)."""

    collate_batch: Callable
    start_states: dict[int, dict] = field(default_factory=dict)

    def collate(self, items: list) -> tuple[Any, tuple[int, dict] | None]:
        worker = torch.utils.data.get_worker_info()
        batch = self.collate_batch(items)
        return batch, (worker.id, generator_states()) if worker is not None else None

    def start(self, worker_id: int) -> None:
        if worker_id in self.start_states:
            set_generator_states(self.start_states[worker_id])


class ImageArrays(torch.utils.data.Dataset):
    """Images held in memory as uint8 (N, H, W) or (N, C, H, W) with their class indices (e.g. MNIST)."""

    def __init__(self, images: np.ndarray | torch.Tensor, targets: Sequence[int], transform: Callable | None = None):
        images = torch.from_numpy(np.array(images, dtype=np.uint8)) if isinstance(images, np.ndarray) else images
        self.images = images.unsqueeze(1) if images.ndim == 3 else images
        self.targets, self.transform = [int(t) for t in targets], transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        return (self.transform(image) if self.transform else image), self.targets[index]

    def with_transform(self, transform: Callable | None) -> "ImageArrays":
        return ImageArrays(self.images, self.targets, transform)


@dataclass
class Data:
    """A labelled data set, split. `preprocessing` is how the app must prepare images for the model."""

    classes: list[str]
    train: ImageFiles | ImageArrays
    valid: ImageFiles | ImageArrays
    preprocessing: str  # "mnist" (MNIST-style digits) or "photo"
    description: str  # for the model file's `trained_on`
    split: str  # how validation was chosen, in words
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, why) of unreadable images
    ignored: int = 0  # image files whose names did not match --label-re
    bad_rows: list[tuple[str, str]] = field(default_factory=list)  # (CSV row, why) of rows that could not be used

    def summary(self) -> str:
        lines = [
            f"data: {self.description}",
            f"  {len(self.classes)} classes, {len(self.train)} training and {len(self.valid)} validation images"
            f" (validation: {self.split})",
        ]
        if self.ignored:
            lines.append(f"  ignored {self.ignored} image files whose names do not match --label-re")
        if self.bad_rows:
            examples = "; ".join(f"{row}: {why}" for row, why in self.bad_rows[:3])
            rows = "row" if len(self.bad_rows) == 1 else "rows"
            lines.append(f"  skipped {len(self.bad_rows)} CSV {rows} that could not be used (e.g. {examples})")
        if self.skipped:
            examples = "; ".join(f"{name}: {why}" for name, why in self.skipped[:3])
            files = "file" if len(self.skipped) == 1 else "files"
            lines.append(f"  skipped {len(self.skipped)} unreadable image {files} (e.g. {examples})")
        return "\n".join(lines)


def fingerprint(data: Data) -> dict[str, Any]:
    """What identifies the images a run trains and validates on, for a checkpoint to compare: the sizes and a
    SHA-256 over the classes, each item (its file's path below the files' common folder, or its pixels) and
    its label, in order."""
    digest = hashlib.sha256(repr(list(data.classes)).encode())
    files = [path for part in (data.train, data.valid) if isinstance(part, ImageFiles) for path in part.paths]
    common = os.path.commonpath([str(path) for path in files]) if files else ""
    for name, part in (("train", data.train), ("valid", data.valid)):
        digest.update(f"|{name}|".encode())
        if isinstance(part, ImageFiles):
            digest.update(repr([os.path.relpath(path, common) for path in part.paths]).encode())
        else:
            digest.update(part.images.contiguous().numpy())
        digest.update(repr(part.targets).encode())
    return {"train": len(data.train), "valid": len(data.valid), "sha256": digest.hexdigest()}


def load_data(
    source: str,
    *,
    label_re: str | None = None,
    mnist_dir: str | Path = "data/mnist",
    valid_pct: float = 0.2,
    seed: int = 42,
    check_workers: int = 8,
    csv_labels: CsvLabels | None = None,
) -> Data:
    """The data `train.py --data` names: "mnist", or a folder (ImageFolder layout, labels from
    file names through `label_re`, or from a CSV). Raises BadInput with the reason when it cannot be used."""
    if not 0 < valid_pct < 1:
        raise BadInput(f"--valid-pct must be between 0 and 1, not {valid_pct}.")
    if csv_labels is not None and (source == "mnist" or label_re):
        raise BadInput("--csv gives the labels of the images in the --data folder: use it without --label-re "
                       "and with a folder, not 'mnist'.")
    if source == "mnist":
        return mnist_data(mnist_dir, valid_pct, seed)
    root = Path(source)
    if not root.exists():
        raise BadInput(f"no folder {root} (give --data a folder of images, or 'mnist').")
    if not root.is_dir():
        raise BadInput(f"{root} is not a folder (give --data a folder of images, or 'mnist').")
    if csv_labels is not None:
        return csv_data(root, csv_labels, valid_pct, seed, check_workers)
    return folder_data(root, label_re, valid_pct, seed, check_workers)


def add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """train.py's data options (--data, --label-re, --csv, --valid-pct, --seed, ...), which every command that
    reads a data set as training does takes alike: `load_data_from_args` reads them."""
    d = parser.add_argument_group("data")
    d.add_argument("--data", required=True,
                   help="'mnist' (IDX files in --mnist-dir), or a folder of images in ImageFolder layout (one "
                        "sub-folder per class, nested folders allowed), or labelled by --label-re or --csv. A folder "
                        "holding train/ and valid/ (or val/) is validated on its own split.")
    d.add_argument("--label-re", metavar="REGEX",
                   help="read labels from file names: the first group of this regular expression, searched in each "
                        r"file name, is the label (e.g. Oxford-IIIT Pets: '^(.+)_\d+\.(jpg|jpeg|png)$'); "
                        "files that do not match are ignored and counted")
    d.add_argument("--csv", metavar="FILE",
                   help="read labels from this CSV, as fastai's ImageDataLoaders.from_csv: a header row, then one row "
                        "per image; file names relative to --data; an is_valid column (true/false, 1/0), when "
                        "present, marks the validation images. Rows that cannot be used are skipped and counted")
    d.add_argument("--fn-col", default="0", metavar="COLUMN",
                   help="--csv column of the file names: its header or 0-based index (default %(default)s)")
    d.add_argument("--label-col", default="1", metavar="COLUMN",
                   help="--csv column of the labels: its header or 0-based index (default %(default)s)")
    d.add_argument("--valid-col", metavar="COLUMN",
                   help="--csv column marking validation rows (default: is_valid when the CSV has it, else "
                        "--valid-pct at random)")
    d.add_argument("--mnist-dir", default="data/mnist",
                   help="folder of the MNIST IDX files for --data mnist: train-* (60k) or train-5k-*, and t10k-* "
                        "as the validation set when present (default %(default)s)")
    d.add_argument("--valid-pct", type=float, default=0.2,
                   help="share held out for validation when the data has no split of its own (default %(default)s)")
    d.add_argument("--seed", type=int, default=42,
                   help="seed of the validation split, the initial weights and the augmentations; runs on CPU "
                        "with the same seed give the same model (default %(default)s)")


def load_data_from_args(args: argparse.Namespace) -> Data:
    """The `Data` that the options of `add_data_arguments` name."""
    csv_labels = CsvLabels(Path(args.csv), args.fn_col, args.label_col, args.valid_col) if args.csv else None
    return load_data(args.data, label_re=args.label_re, mnist_dir=args.mnist_dir, valid_pct=args.valid_pct,
                     seed=args.seed, csv_labels=csv_labels)


def data_options(args: argparse.Namespace) -> list[str]:
    """The data options of `args` as a command line gives them (those left at their defaults left out), for
    printing a command that reads the same data."""
    parser = argparse.ArgumentParser()
    add_data_arguments(parser)
    options = []
    for action in parser._actions:
        value = getattr(args, action.dest, None)
        if action.option_strings and value is not None and value != action.default:
            options += [action.option_strings[0], str(value)]
    return options


def mnist_data(mnist_dir: str | Path, valid_pct: float, seed: int) -> Data:
    """MNIST digits from IDX files: the 60k training set when present, else the 5k subset;
    the 10k test set as validation when present, else a `valid_pct` random split."""
    if not Path(mnist_dir).is_dir():
        raise BadInput(f"no MNIST folder {mnist_dir} (set --mnist-dir to the folder of the IDX files).")
    images, labels = mnist.load_training_split(mnist_dir)
    classes = [str(digit) for digit in range(10)]
    name = f"MNIST {len(images):,} training digits"
    if mnist.find_split(mnist_dir, "test"):
        valid_images, valid_labels = mnist.load_split(mnist_dir, "test")
        train = ImageArrays(images, labels)
        valid = ImageArrays(valid_images, valid_labels)
        split = f"the MNIST test set, {len(valid_images):,} images"
    else:
        train_idx, valid_idx = random_split(len(images), valid_pct, seed)
        train = ImageArrays(images[train_idx], labels[train_idx])
        valid = ImageArrays(images[valid_idx], labels[valid_idx])
        split = f"{valid_pct:.0%} of the training digits at random, seed {seed}"
    _check_classes(classes, train.targets, "the MNIST training files")
    return Data(classes, train, valid, "mnist", name, split)


def folder_data(root: Path, label_re: str | None, valid_pct: float, seed: int, check_workers: int = 8) -> Data:
    """Images below `root`, labelled by folder (ImageFolder) or by file name (`label_re`)."""
    split_folders = own_split(root)
    parts = split_folders or {"all": root}
    labelled = {name: _labelled_files(folder, label_re) for name, folder in parts.items()}
    ignored = sum(ignored for _, ignored in labelled.values())

    paths = [path for part in labelled.values() for path, _ in part[0]]
    readable, skipped = check_images(paths, check_workers)
    kept = {name: [(p, label) for p, label in part[0] if p in readable] for name, part in labelled.items()}
    if not any(kept.values()):
        raise BadInput(f"none of the {len(paths)} image files in {root} could be read ({_why(skipped)}).")

    train_labels = {label for _, label in kept.get("train", kept.get("all", []))}
    classes = sorted(train_labels)
    _check_classes(classes, classes, f"{root}" + (" (train/)" if split_folders else ""))
    index = {label: i for i, label in enumerate(classes)}
    how = f"labels from file names matching {label_re!r}" if label_re else "one folder per class"
    if split_folders:
        unknown = sorted({label for _, label in kept["valid"]} - train_labels)
        if unknown:
            raise BadInput(f"the validation folder has classes the training folder lacks: {', '.join(unknown[:5])}.")
        train_items, valid_items = kept["train"], kept["valid"]
        if not valid_items:
            raise BadInput(f"the validation folder of {root} has no readable images.")
        split = f"the data's own {parts['valid'].name}/ folder"
    else:
        items = kept["all"]
        train_idx, valid_idx = random_split(len(items), valid_pct, seed)
        train_items, valid_items = [items[i] for i in train_idx], [items[i] for i in valid_idx]
        split = f"{valid_pct:.0%} of the images at random, seed {seed}"

    def dataset(items: list[tuple[Path, str]]) -> ImageFiles:
        return ImageFiles([p for p, _ in items], [index[label] for _, label in items])

    description = f"{len(train_items) + len(valid_items):,} images in {root.name or root} ({how})"
    return Data(classes, dataset(train_items), dataset(valid_items), "photo", description, split,
                skipped=[(_relative(p, root), why) for p, why in skipped], ignored=ignored)


@dataclass(frozen=True)
class CsvLabels:
    """Where a CSV keeps each image's file name, label and (optionally) validation flag.

    As fastai's `from_csv`: the first row is the header; a column is named by its header or its 0-based
    index; file names are relative to the data folder. `valid_col` None: the column `is_valid` when the
    CSV has one, else a random split.
    """

    file: Path
    fn_col: str | int = 0
    label_col: str | int = 1
    valid_col: str | int | None = None


TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "y", "t"), ("0", "false", "no", "n", "f", "")


def csv_data(root: Path, labels: CsvLabels, valid_pct: float, seed: int, check_workers: int = 8) -> Data:
    """Images below `root` labelled by a CSV. Rows that cannot be used (no such file, no label, a bad
    validation flag, a short row) are skipped and counted, and so are unreadable images."""
    rows = _read_csv(root, labels.file)
    header, body = rows[0], rows[1:]
    fn_at, label_at = _csv_column(header, labels.fn_col, "--fn-col"), _csv_column(header, labels.label_col, "--label-col")
    valid_col = labels.valid_col if labels.valid_col is not None else (
        "is_valid" if "is_valid" in [name.strip() for name in header] else None)
    valid_at = _csv_column(header, valid_col, "--valid-col") if valid_col is not None else None
    needed = max(at for at in (fn_at, label_at, valid_at) if at is not None) + 1

    items, flags, bad_rows = [], [], []
    for line, row in enumerate(body, start=2):  # line 1 is the header
        where = f"line {line}"
        if not any(cell.strip() for cell in row):
            continue  # blank lines are not rows
        if len(row) < needed:
            bad_rows.append((where, f"{len(row)} columns, {needed} needed"))
            continue
        name, label = row[fn_at].strip(), row[label_at].strip()
        if not name or not label:
            bad_rows.append((where, "no file name" if not name else "no label"))
            continue
        path = root / name
        if not path.is_file():
            bad_rows.append((where, f"no file {name}"))
            continue
        if valid_at is not None:
            flag = row[valid_at].strip().lower()
            if flag not in TRUE_WORDS + FALSE_WORDS:
                bad_rows.append((where, f"{header[valid_at]} is {shown(row[valid_at])}, not true or false"))
                continue
            flags.append(flag in TRUE_WORDS)
        items.append((path, label))
    if not items:
        detail = "; ".join(f"{where}: {why}" for where, why in bad_rows[:3]) or "it has no rows"
        raise BadInput(f"no row of {labels.file} names an image in {root} with a label ({detail}).")

    readable, skipped = check_images([path for path, _ in items], check_workers)
    kept = [(item, flag) for item, flag in zip(items, flags or [False] * len(items)) if item[0] in readable]
    if not kept:
        raise BadInput(f"none of the {len(items)} image files {labels.file} names could be read ({_why(skipped)}).")
    if valid_at is not None:
        train_items = [item for item, is_valid in kept if not is_valid]
        valid_items = [item for item, is_valid in kept if is_valid]
        if not valid_items or not train_items:
            raise BadInput(f"the {header[valid_at]} column of {labels.file} marks "
                           f"{'no' if not valid_items else 'every'} usable image for validation.")
        split = f"the rows marked in its {header[valid_at]} column"
    else:
        all_items = [item for item, _ in kept]
        train_idx, valid_idx = random_split(len(all_items), valid_pct, seed)
        train_items, valid_items = [all_items[i] for i in train_idx], [all_items[i] for i in valid_idx]
        split = f"{valid_pct:.0%} of the images at random, seed {seed}"

    classes = sorted({label for _, label in train_items})
    _check_classes(classes, classes, f"{labels.file} (training rows)")
    unknown = sorted({label for _, label in valid_items} - set(classes))
    if unknown:
        raise BadInput(f"the validation rows of {labels.file} have labels no training row has: {', '.join(unknown[:5])}.")
    index = {label: i for i, label in enumerate(classes)}

    def dataset(chosen: list[tuple[Path, str]]) -> ImageFiles:
        return ImageFiles([p for p, _ in chosen], [index[label] for _, label in chosen])

    description = (f"{len(train_items) + len(valid_items):,} images in {root.name or root} "
                   f"(labels from {labels.file.name}, column {header[label_at]!r})")
    return Data(classes, dataset(train_items), dataset(valid_items), "photo", description, split,
                skipped=[(_relative(p, root), why) for p, why in skipped], bad_rows=bad_rows)


def _read_csv(root: Path, file: Path) -> list[list[str]]:
    """The CSV's rows, the header first; the file as given, else relative to the data folder."""
    path = file if file.is_file() else root / file
    if not path.is_file():
        raise BadInput(f"no CSV file {file} (looked in the working folder and in {root}).")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            try:  # the separator, told from the header line as pandas does for fastai (sep=None)
                dialect = csv.Sniffer().sniff(handle.readline())
            except csv.Error:
                dialect = csv.excel  # one column: commas
            handle.seek(0)
            rows = list(csv.reader(handle, dialect))
    except (UnicodeDecodeError, csv.Error) as error:
        raise BadInput(f"{file} cannot be read as a CSV file ({error}).") from None
    if len(rows) < 2:
        raise BadInput(f"{file} has {'no rows' if not rows else 'a header and no rows'}: nothing to train on.")
    return rows


def _csv_column(header: list[str], column: str | int, option: str) -> int:
    """The index of a column named by its header or its 0-based index."""
    names = [name.strip() for name in header]
    if isinstance(column, str) and column.strip() in names:
        return names.index(column.strip())
    if isinstance(column, int) or column.strip().isdigit():
        at = int(column)
        if 0 <= at < len(header):
            return at
    raise BadInput(f"{option} {column}: the CSV has no such column (its header: {', '.join(map(shown, names[:8]))}).")


def find_images(folder: Path) -> list[Path]:
    """Image files anywhere below `folder` (by extension, any case), hidden files and folders left out."""
    found = []
    for directory, subdirs, files in os.walk(folder):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        found += [Path(directory) / f for f in sorted(files)
                  if not f.startswith(".") and f.lower().endswith(IMAGE_EXTENSIONS)]
    return found


def check_images(paths: list[Path], workers: int = 8) -> tuple[set[Path], list[tuple[Path, str]]]:
    """Decode every image once (in threads): (the readable ones, [(unreadable, why)])."""

    def why_unreadable(path: Path) -> str | None:
        try:
            load_image(path)
        except BadInput as error:
            return str(error)
        except Exception as error:  # a decoder bug on a hostile file is still just an unreadable file
            return f"{type(error).__name__}: {error}"
        return None

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        reasons = list(pool.map(why_unreadable, paths))
    skipped = [(path, why) for path, why in zip(paths, reasons) if why is not None]
    return {path for path, why in zip(paths, reasons) if why is None}, skipped


def random_split(n: int, valid_pct: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, valid indices): a fixed share at random, the same for the same n and seed."""
    n_valid = max(1, round(n * valid_pct))
    if n - n_valid < 1:
        raise BadInput(f"only {n} usable images: too few to hold {valid_pct:.0%} out for validation.")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])


def own_split(root: Path) -> dict[str, Path] | None:
    """{"train": its train/ folder, "valid": its valid/ (or val/) folder} when the data has both, else None."""
    train = root / "train"
    valid = next((root / name for name in VALID_FOLDER_NAMES if (root / name).is_dir()), None)
    return {"train": train, "valid": valid} if train.is_dir() and valid is not None else None


def _labelled_files(folder: Path, label_re: str | None) -> tuple[list[tuple[Path, str]], int]:
    """([(image, label)], how many image files the regex ignored)."""
    if label_re:
        return _labels_from_names(folder, label_re)
    classes = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    items = [(path, d.name) for d in classes for path in find_images(d)]
    if not items:
        loose = find_images(folder)
        hint = (
            f" It holds {len(loose)} images directly: give --label-re to read labels from their names."
            if loose else ""
        )
        raise BadInput(f"no images in class sub-folders of {folder} (one folder per class expected).{hint}")
    return items, 0


def _labels_from_names(folder: Path, label_re: str) -> tuple[list[tuple[Path, str]], int]:
    try:
        pattern = re.compile(label_re)
    except re.error as error:
        raise BadInput(f"--label-re {label_re!r} is not a valid regular expression: {error}.") from None
    if pattern.groups < 1:
        raise BadInput(f"--label-re {label_re!r} needs a group in parentheses: the first group is the label.")
    images = find_images(folder)
    if not images:
        raise BadInput(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in {folder}.")
    items = []
    for path in images:
        match = pattern.search(path.name)
        if match and match.group(1):
            items.append((path, match.group(1)))
    if not items:
        examples = ", ".join(p.name for p in images[:3])
        raise BadInput(f"--label-re {label_re!r} matches none of the {len(images)} file names in {folder} (e.g. {examples}).")
    return items, len(images) - len(items)


def _check_classes(classes: Sequence[str], present: Sequence, where: str) -> None:
    if len(set(present)) < 2:
        found = f"only the class {list(classes)[0]!r}" if classes else "no class"
        raise BadInput(f"{where}: found {found}; a classifier needs at least two classes.")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _why(skipped: list[tuple[Path, str]]) -> str:
    return "; ".join(f"{p.name}: {why}" for p, why in skipped[:3]) or "no files"
