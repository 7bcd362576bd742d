"""Load a model file once, then classify one image or a batch, from any thread."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from .modelfile import build_model, load_model_file
from .preprocess import eval_transform, image_to_uint8_tensor


class Classifier:
    """A model file's network with its own preprocessing; safe to share between request threads."""

    def __init__(self, meta: dict[str, Any], model: torch.nn.Module):
        self.meta = meta
        self.classes: list[str] = list(meta["classes"])
        self.model = model.eval()
        self.transform = eval_transform(meta)

    @classmethod
    def from_file(cls, path: str | Path) -> "Classifier":
        meta, state_dict = load_model_file(path)
        return cls(meta, build_model(meta, state_dict))

    def to_input(self, image: Image.Image) -> torch.Tensor:
        """The normalised tensor the network sees for one decoded image (raises EmptyDrawing, BadInput)."""
        return self.transform(image_to_uint8_tensor(image, self.meta))

    @torch.inference_mode()
    def probabilities(self, inputs: torch.Tensor) -> torch.Tensor:
        """Softmax over classes for a batch of prepared inputs (N, C, H, W)."""
        return self.model(inputs).float().softmax(dim=1)

    def predict(self, image: Image.Image) -> dict[str, float]:
        """Probability of every class for one image, most likely first."""
        return self.predict_batch([image])[0]

    def predict_batch(self, images: list[Image.Image]) -> list[dict[str, float]]:
        """One forward pass for many images; one {class: probability} dict per image, in order."""
        if not images:
            return []
        probs = self.probabilities(torch.stack([self.to_input(image) for image in images]))
        return [self._as_dict(row) for row in probs]

    def _as_dict(self, probs: torch.Tensor) -> dict[str, float]:
        order = probs.argsort(descending=True).tolist()
        values = probs.tolist()
        return {self.classes[i]: values[i] for i in order}
