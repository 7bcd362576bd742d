"""The data as the cleaner sees it: every image file train.py would read, with its label and split, and the
unreadable ones with the reason. Loaded by train.py's own `load_data`, so the split is the same."""
from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..errors import BadInput

if TYPE_CHECKING:
    from ..training.data import Data

SPLITS = ("train", "valid")


@dataclass
class Item:
    """One image file. `file` is relative to the data folder (with / between folders); `key` is the file as
    first loaded, which stays the same while the cleaner moves it. An unreadable file has no split and says
    why in `problem`."""

    file: str
    label: str
    split: str  # "train", "valid", or "" for an unreadable file
    problem: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        self.key = self.key or self.file


@dataclass
class CleanData:
    """The images of a data folder, labelled as train.py labels them. `labels_from` is how: "folders"
    (ImageFolder: a move into another class folder relabels a file), "names" (--label-re) or "csv"."""

    root: Path
    classes: list[str]
    items: list[Item]  # readable images, training ones first, in train.py's order
    unreadable: list[Item] = field(default_factory=list)
    labels_from: str = "folders"
    own_split: bool = False  # train/ and valid/ folders
    description: str = ""

    def by_file(self) -> dict[str, Item]:
        return {item.file: item for item in [*self.items, *self.unreadable]}


def open_data(args: argparse.Namespace) -> CleanData:
    """The data train.py reads with these arguments (--data, --label-re, --csv, --valid-pct, --seed, ...)."""
    if args.data == "mnist":
        raise BadInput("--data mnist reads IDX files, not image files: there is nothing to clean. Give a folder "
                       "of images (see dlcourse/mnist.py or the README to write MNIST as PNG files).")
    from ..training.data import load_data_from_args  # here: --undo needs neither torch nor the data's images

    data = load_data_from_args(args)
    return from_training_data(Path(args.data), data, "csv" if args.csv else "names" if args.label_re else "folders")


def from_training_data(root: Path, data: Data, labels_from: str) -> CleanData:
    """`CleanData` of a `Data` that `load_data` made of the folder `root`."""
    from ..training.data import own_split

    def items(dataset, split: str) -> list[Item]:
        return [Item(relative(path, root), data.classes[target], split)
                for path, target in zip(dataset.paths, dataset.targets)]

    unreadable = [Item(Path(name).as_posix(), "", "", problem=why) for name, why in data.skipped]
    return CleanData(root, list(data.classes), items(data.train, "train") + items(data.valid, "valid"),
                     unreadable, labels_from, own_split(root) is not None, data.description)


def cleaner_command(data_options: list[str], model_file: str | Path) -> str:
    """The command that opens the cleaner on this data with this model (train.py prints it)."""
    return shlex.join(["python", "-m", "dlcourse.clean", *data_options, "--model", str(model_file)])


def relative(path: Path, root: Path) -> str:
    """`path` relative to the data folder, with / between folders (as cleaned.csv and the log keep it)."""
    return Path(path).relative_to(root).as_posix()


def check_model_classes(model_classes: Sequence[str], data_classes: Sequence[str], model_name: str) -> None:
    """BadInput naming the differences when the model was not trained on these classes (any order is fine:
    the cleaner maps them by name)."""
    model, data = [str(c) for c in model_classes], [str(c) for c in data_classes]
    if set(model) == set(data):
        return
    lacking, extra = [c for c in data if c not in model], [c for c in model if c not in data]
    parts = []
    if lacking:
        parts.append(f"the data has {_names(lacking)}, which the model does not know")
    if extra:
        parts.append(f"the model has {_names(extra)}, which the data lacks")
    raise BadInput(f"{model_name} was trained on other classes than this data: {'; '.join(parts)}. "
                   "Clean with a model trained on this data (train.py --data ...).")


def _names(classes: list[str], most: int = 8) -> str:
    shown = ", ".join(repr(c) for c in classes[:most])
    return shown + (f" and {len(classes) - most} more" if len(classes) > most else "")
