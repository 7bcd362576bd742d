"""Load a model file once, then classify one image or a batch, from any thread."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import BadInput
from .child_export import ChildExport
from .fast_forward import Forward, fastest_forward, onnx_forward
from .images import DIGIT_DECODE_SIDE, NO_DIGIT, FoundDigit, find_digit, load_image
from .modelfile import ModelInfo, build_model
from .loading import load_model_file
from .preprocess import create_transform, image_to_uint8_tensor

log = logging.getLogger(__name__)

UNSURE = 0.5  # a top probability under this is no confident reading: the answer says so
UNSURE_UNEVEN = 0.85  # ... and under this, when the strokes vary in width as no pen's do (fur, a landscape)


@dataclass(frozen=True)
class Reading:
    """One picture's answer for people: the label, the model's probabilities, and a note when the picture
    is not one clear digit (several digits, nothing digit-like, the model unsure); None otherwise."""

    label: str  # the most likely class, or NO_DIGIT (then `probabilities` is empty)
    probabilities: dict[str, float]  # class -> probability, most likely first
    note: str | None = None


class Classifier:
    """A model file's network with its own preprocessing; safe to share between request threads."""

    def __init__(self, meta: ModelInfo, forward: Forward):
        self.meta = meta
        self.classes: list[str] = list(meta.classes)
        self.forward = forward
        self.transform = create_transform(meta)

    @classmethod
    def from_network(cls, meta: ModelInfo, network: torch.nn.Module) -> "Classifier":
        """Served by ONNX Runtime when it answers as `network` does, else by `network` itself."""
        return cls(meta, fastest_forward(network.eval(), meta.in_chans, meta.img_size))

    @classmethod
    def from_file(cls, path: str | Path) -> "Classifier":
        meta, state_dict = load_model_file(path)
        return cls.from_network(meta, build_model(meta, state_dict))

    @classmethod
    def loading(cls, path: str | Path) -> "Loading":
        """Start loading `path` while the caller does other work; `Loading.result()` is the Classifier.

        Where it can (Linux), a child process builds the network and exports it (`child_export`): this
        process never imports timm or torchvision nor holds the network, and start-up runs on both cores."""
        return Loading(Path(path), ChildExport.start(path) if ChildExport.possible() else None)

    def prepare(self, image: Image.Image) -> torch.Tensor:
        """The model's uint8 view of one decoded image, before resizing (raises EmptyDrawing, BadInput)."""
        return image_to_uint8_tensor(image, self.meta)

    def to_input(self, image: Image.Image) -> torch.Tensor:
        """The normalised tensor the network sees for one decoded image."""
        return self.transform(self.prepare(image))

    def batch_inputs(self, prepared: list[torch.Tensor]) -> torch.Tensor:
        """Normalised inputs for many prepared images; same-size ones (digits always) in one transform call."""
        if all(tensor.shape == prepared[0].shape for tensor in prepared):
            return self.transform(torch.stack(prepared))
        return torch.stack([self.transform(tensor) for tensor in prepared])

    @torch.inference_mode()
    def logits(self, inputs: torch.Tensor) -> torch.Tensor:
        """The network's float32 outputs for a batch of prepared inputs (N, C, H, W)."""
        return self.forward(inputs).float()

    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """Softmax over classes for a batch of prepared inputs (N, C, H, W)."""
        return self.logits(inputs).softmax(dim=1)

    def predict(self, image: Image.Image) -> dict[str, float]:
        """Probability of every class for one image, most likely first."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[Image.Image]) -> list[dict[str, float]]:
        """One forward pass for many images; one {class: probability} dict per image, in order."""
        if not images:
            return []
        inputs = self.batch_inputs([self.prepare(image) for image in images])
        return [self.as_dict(row) for row in self.probabilities(inputs)]

    def look(self, image: Image.Image) -> tuple[torch.Tensor, FoundDigit | None]:
        """`prepare`, and for a digits model what `images.find_digit` saw: how many digits, if any."""
        if self.meta.preprocessing != "mnist":
            return self.prepare(image), None
        found = find_digit(image)
        return torch.from_numpy(found.pixels).unsqueeze(0), found

    def read(self, image: Image.Image) -> Reading:
        """`predict`, with what a person should know beside it (`Reading`)."""
        return self.read_looked([self.look(image)])[0]

    def read_looked(self, looked: list[tuple[torch.Tensor, FoundDigit | None]]) -> list[Reading]:
        """One forward pass for many `look` results; one Reading each: several digits are read as the most
        prominent one, with a note; nothing digit-like is no reading (NO_DIGIT); the model unsure says so."""
        rows = self.probabilities(self.batch_inputs([prepared for prepared, _ in looked]))
        return [_reading(self.as_dict(row), found) for row, (_, found) in zip(rows, looked)]

    def as_dict(self, probs: torch.Tensor) -> dict[str, float]:
        """{class: probability} for one row of probabilities, most likely first."""
        values = probs.tolist()
        order = sorted(range(len(values)), key=values.__getitem__, reverse=True)
        return {self.classes[i]: values[i] for i in order}


class Loading:
    """A model file being loaded (`Classifier.loading`)."""

    def __init__(self, path: Path, child: ChildExport | None):
        self.path, self.child = path, child

    def result(self) -> Classifier:
        """The Classifier, served by ONNX Runtime from the child's export when it answers as eager PyTorch did
        there; otherwise loaded here (BadInput for an unusable file, as `from_file`)."""
        try:
            answer = self.child.answer() if self.child is not None else None
            forward = onnx_forward(answer[1]) if answer is not None else None
        except Exception as error:  # noqa: BLE001 - whatever went wrong there, the file can still be loaded here
            log.info("the child process's export of %s was not used: %s", self.path, error)
            forward = None
        if forward is None:
            return Classifier.from_file(self.path)
        return Classifier(answer[0], forward)


def _reading(probabilities: dict[str, float], found: FoundDigit | None) -> Reading:
    note = found.note if found is not None else None
    if found is not None and not found.is_digit:
        return Reading(NO_DIGIT, {}, note)
    label, top = next(iter(probabilities.items()))
    uneven = found is not None and found.uneven_strokes
    if top < UNSURE or (uneven and top < UNSURE_UNEVEN):
        why = ", and the strokes vary in width as no pen's do" if top >= UNSURE else ""
        unsure = f"The model is unsure: its best guess, {label}, has {top:.0%}{why}."
        note = f"{note} {unsure}" if note else unsure
    return Reading(str(label), probabilities, note)


MAX_BATCH_FILES = 64


def classify_files(classifier: Classifier, paths: list[str], top_k: int = 3) -> list[dict[str, Any]]:
    """Classify many image files in one forward pass; one result per file, in order.

    A file that cannot be used gets {"file", "error"} instead of failing the whole batch; a picture that is not
    one clear digit also gets a "note" (`Reading`), and "label": "no digit found" with no confidences when
    nothing in it is digit-like.
    """
    if not paths:
        raise BadInput("No images were given.")
    if len(paths) > MAX_BATCH_FILES:
        raise BadInput(f"{len(paths)} images were given; one call takes at most {MAX_BATCH_FILES}.")
    results: list[dict[str, Any]] = [{"file": Path(path).name} for path in paths]
    looked, good = [], []
    at_least = DIGIT_DECODE_SIDE if classifier.meta.preprocessing == "mnist" else None  # as /classify decodes
    for index, path in enumerate(paths):
        try:
            looked.append(classifier.look(load_image(path, at_least)))
            good.append(index)
        except BadInput as error:
            results[index]["error"] = str(error)
    if looked:
        for index, reading in zip(good, classifier.read_looked(looked)):
            confidences = dict(list(reading.probabilities.items())[:top_k])
            results[index].update(label=reading.label, confidences=confidences)
            if reading.note:
                results[index]["note"] = reading.note
    return results
