"""What the cleaner's page shows and does, as plain values: one data folder and one model, the ranking made
once, a page of a class at a time, thumbnails made when shown, apply and undo."""
from __future__ import annotations

import math
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from PIL import Image

from ..errors import BadInput
from ..served.classifier import Classifier
from ..served.images import load_image
from . import apply as applying
from .items import CleanData
from .ranking import Ranking, rank

PAGE_SIZE = 12
THUMBNAIL_PX = 160
UNREADABLE = "<unreadable>"  # the class choice that lists the files that cannot be read
BOTH = "both"


class CleanSession:
    """One data folder and one model; safe to share between the page's request threads."""

    def __init__(self, data: CleanData, classifier: Classifier, reload: Callable[[], CleanData], workers: int = 0):
        self.data, self.classifier, self.reload, self.workers = data, classifier, reload, workers
        self._ranking: Ranking | None = None
        self._rows: dict[tuple[str, str], list[dict]] = {}
        self._lock = threading.Lock()
        self._thumbnails = ThreadPoolExecutor(max_workers=4)

    def ranking(self) -> Ranking:
        """The model's logits for every image: computed by the first caller, once."""
        with self._lock:
            if self._ranking is None:
                self._ranking = rank(self.data, self.classifier, workers=self.workers)
            return self._ranking

    @property
    def classes(self) -> list[str]:
        return self.data.classes

    def class_choices(self, split: str) -> list[tuple[str, str]]:
        """(label shown, class) for the class menu: each class with its number of images in `split`, then
        the unreadable files when there are any."""
        counts = {name: 0 for name in self.classes}
        for item in self.data.items:
            if split in (BOTH, item.split):
                counts[item.label] += 1
        choices = [(f"{name} ({count:,})", name) for name, count in counts.items()]
        if self.data.unreadable:
            choices.append((f"unreadable files ({len(self.data.unreadable):,})", UNREADABLE))
        return choices

    def rows(self, split: str, label: str) -> list[dict]:
        """The images of one class in one split (or both), highest loss first; or the unreadable files."""
        if label == UNREADABLE:
            return [{"file": item.file, "label": item.label, "problem": item.problem} for item in self.data.unreadable]
        key = (split, label)
        if key not in self._rows:
            self._rows[key] = self.ranking().rows(
                item for item in self.data.items if item.label == label and split in (BOTH, item.split))
        return self._rows[key]

    def page(self, split: str, label: str, number: int) -> tuple[list[dict], int, int]:
        """(the rows of page `number`, counted from 1 and kept within range, that page's number, pages)."""
        rows = self.rows(split, label)
        pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
        number = min(max(1, int(number or 1)), pages)
        return rows[(number - 1) * PAGE_SIZE: number * PAGE_SIZE], number, pages

    def thumbnails(self, rows: list[dict]) -> list[Image.Image | None]:
        """Small pictures of the rows' images, decoded now (in threads); None where a file cannot be read."""
        return list(self._thumbnails.map(self.thumbnail, [row["file"] for row in rows]))

    def thumbnail(self, file: str) -> Image.Image | None:
        try:
            image = load_image(self.data.root / file, THUMBNAIL_PX)
        except BadInput:
            return None
        image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
        return image

    def apply(self, decisions: dict[str, str], move: bool) -> applying.Outcome:
        """Apply the page's decisions; the page then shows the files where they are now."""
        with self._lock:
            outcome = applying.apply(self.data, decisions, move)
            self._rows.clear()
            return outcome

    def undo(self) -> applying.Outcome:
        """Undo the last apply, then read the data folder again (the files are back where they were)."""
        with self._lock:
            outcome = applying.undo(self.data.root)
            self.data = self.reload()
            self._rows.clear()
            return outcome

    @property
    def root(self) -> Path:
        return self.data.root
