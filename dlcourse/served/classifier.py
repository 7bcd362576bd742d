"""Load a model file once, then classify one image or a batch, from any thread."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from ..errors import BadInput
from .fast_forward import fastest_forward
from .images import DIGIT_DECODE_SIDE, load_image
from .modelfile import ModelInfo, build_model
from .loading import load_model_file
from .preprocess import create_transform, image_to_uint8_tensor


class Classifier:
    """A model file's network with its own preprocessing; safe to share between request threads."""

    def __init__(self, meta: ModelInfo, model: torch.nn.Module):
        self.meta = meta
        self.classes: list[str] = list(meta.classes)
        self.forward = fastest_forward(model.eval(), meta.in_chans, meta.img_size)  # ONNX Runtime when it answers alike
        self.transform = create_transform(meta)

    @classmethod
    def from_file(cls, path: str | Path) -> "Classifier":
        meta, state_dict = load_model_file(path)
        return cls(meta, build_model(meta, state_dict))

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

    def as_dict(self, probs: torch.Tensor) -> dict[str, float]:
        """{class: probability} for one row of probabilities, most likely first."""
        values = probs.tolist()
        order = sorted(range(len(values)), key=values.__getitem__, reverse=True)
        return {self.classes[i]: values[i] for i in order}


MAX_BATCH_FILES = 64


def classify_files(classifier: Classifier, paths: list[str], top_k: int = 3) -> list[dict[str, Any]]:
    """Classify many image files in one forward pass; one result per file, in order.

    A file that cannot be used gets {"file", "error"} instead of failing the whole batch.
    """
    if not paths:
        raise BadInput("No images were given.")
    if len(paths) > MAX_BATCH_FILES:
        raise BadInput(f"{len(paths)} images were given; one call takes at most {MAX_BATCH_FILES}.")
    results: list[dict[str, Any]] = [{"file": Path(path).name} for path in paths]
    prepared, good = [], []
    at_least = DIGIT_DECODE_SIDE if classifier.meta.preprocessing == "mnist" else None  # as /classify decodes
    for index, path in enumerate(paths):
        try:
            prepared.append(classifier.prepare(load_image(path, at_least)))
            good.append(index)
        except BadInput as error:
            results[index]["error"] = str(error)
    if prepared:
        for index, row in zip(good, classifier.probabilities(classifier.batch_inputs(prepared))):
            confidences = dict(list(classifier.as_dict(row).items())[:top_k])
            results[index].update(label=next(iter(confidences)), confidences=confidences)
    return results
