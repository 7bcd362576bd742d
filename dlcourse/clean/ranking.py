"""The model's view of every image, computed once: logits in batches, through the model file's own
preprocessing (`Classifier`), then any class of any split ordered by loss, highest first."""
from __future__ import annotations

import csv
import io
import sys
from dataclasses import dataclass
from typing import Iterable

import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import BadInput
from ..served.classifier import Classifier
from ..served.images import DIGIT_DECODE_SIDE, load_image
from ..training.interpretation import top_losses
from .items import CleanData, Item

BATCH_SIZE = 128
LIST_COLUMNS = ("file", "label", "predicted", "probability", "loss", "split", "problem")


class ModelInputs(Dataset):
    """Image files as the classifier's network takes them: (input, "") or, for a file that cannot be read
    now, (zeros, the reason)."""

    def __init__(self, classifier: Classifier, paths: list):
        self.classifier, self.paths = classifier, paths
        self.at_least = DIGIT_DECODE_SIDE if classifier.meta.preprocessing == "mnist" else None  # as /classify decodes
        meta = classifier.meta
        self.blank = torch.zeros(meta.in_chans, meta.img_size, meta.img_size)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, str]:
        try:
            return self.classifier.to_input(load_image(self.paths[index], self.at_least)), ""
        except BadInput as error:
            return self.blank, str(error)


@dataclass
class Ranking:
    """Logits of every readable image, by the image's key; the model's classes mapped onto the data's."""

    classes: list[str]  # the data's classes, in the data's order
    logits: dict[str, torch.Tensor]  # item key -> (classes,) float32, columns in `classes` order

    def rows(self, items: Iterable[Item]) -> list[dict]:
        """`items` (readable, with a label among the classes) ordered by loss, highest first: one dict each,
        with the columns of `LIST_COLUMNS`."""
        items = [item for item in items if item.key in self.logits]
        if not items:
            return []
        index = {name: i for i, name in enumerate(self.classes)}
        logits = torch.stack([self.logits[item.key] for item in items])
        targets = torch.tensor([index[item.label] for item in items])
        return [
            {"file": items[row["index"]].file, "label": row["actual"], "predicted": row["predicted"],
             "probability": row["prob_predicted"], "loss": row["loss"], "split": items[row["index"]].split,
             "problem": ""}
            for row in top_losses(logits, targets, self.classes)
        ]


def rank(data: CleanData, classifier: Classifier, batch_size: int = BATCH_SIZE, workers: int = 0,
         progress: bool = True) -> Ranking:
    """Run the model once over every readable image of `data`, in batches (a tqdm bar on the terminal,
    which a Gradio page shows too with gr.Progress(track_tqdm=True)). Images that cannot be read now join
    `data.unreadable`."""
    from tqdm.auto import tqdm

    order = [classifier.classes.index(name) for name in data.classes]  # model columns in the data's order
    paths = [data.root / item.file for item in data.items]
    loader = DataLoader(ModelInputs(classifier, paths), batch_size=batch_size, num_workers=workers)
    logits, problems = [], []
    bar = tqdm(loader, desc="ranking by loss", unit="batch", file=sys.stderr, disable=not progress)
    with torch.inference_mode():
        for inputs, reasons in bar:
            logits.append(classifier.logits(inputs)[:, order])
            problems += list(reasons)
    by_key = {}
    for item, row, problem in zip(data.items, torch.cat(logits) if logits else [], problems):
        if problem:
            item.problem, item.split = problem, ""
        else:
            by_key[item.key] = row
    data.unreadable += [item for item in data.items if item.problem]
    data.items = [item for item in data.items if not item.problem]
    return Ranking(list(data.classes), by_key)


def listing(data: CleanData, ranking: Ranking, count: int, split: str | None = None) -> str:
    """--list: the `count` images of the highest loss (of one split, or both) as CSV, then every unreadable
    image with its reason."""
    items = [item for item in data.items if split in (None, item.split)]
    rows = ranking.rows(items)[:count]
    rows += [{"file": item.file, "label": item.label, "predicted": "", "probability": "", "loss": "",
              "split": "", "problem": item.problem} for item in data.unreadable]
    out = io.StringIO()
    writer = csv.DictWriter(out, LIST_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, **{key: f"{row[key]:.4f}" for key in ("probability", "loss")
                                   if isinstance(row[key], float)}})
    return out.getvalue()
