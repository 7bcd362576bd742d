"""Chapter 4 learns: a linear model and simple_net on the pixels of 3s and 7s, trained by SGD.

The book's pieces, written as the book writes them: `mnist_loss` (sigmoid, then how far each prediction
is from its target), `batch_accuracy`, a hand-made optimiser (`BasicOptim`: params -= lr * grad), and the
two models: `linear` (784 weights and a bias) and `simple net` (Linear 784->30, ReLU, Linear 30->1).
The data are the pixel-similarity baseline's: the 3s and 7s of its training split to learn from, those
of the MNIST test set to validate on, so the two accuracies can be set side by side.

Plain values in and out; no Gradio, no work at import (the digits load on first use, once).
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image

from ..errors import BadInput, shown
from ..served.images import MNIST_SIZE
from ..mnist import load_split
from .baseline import MODES, PixelBaseline, difference_picture
from ..quadratic.fit import SEED_RANGE, checked_number

MNIST_DIR = Path(__file__).resolve().parents[2] / "data" / "mnist"
PIXELS = MNIST_SIZE * MNIST_SIZE
THREE, SEVEN = MODES["3 or 7"]  # the book's pair; a 3 is the target 1, a 7 the target 0
HIDDEN = 30  # simple_net's first layer: 30 features
MODEL_NAMES = ("linear", "simple net")
ModelName = Literal["linear", "simple net"]

# ---- limits: values outside are clamped (with a note) so nothing can hang the server ----
LR_RANGE = (1e-4, 10.0)
EPOCHS_RANGE = (1, 200)
# A request runs at most this many batches (epochs x batches per epoch): a few seconds for simple net
# with batches of one image, a fraction of a second with the default batches.
MAX_BATCHES = 10_000


# ---------------------------------------------------------------- the data


@dataclass(frozen=True)
class ThreesAndSevens:
    """Images flattened to rows of 784 floats in [0, 1]; targets 1.0 for a 3, 0.0 for a 7 (shape (n, 1))."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    valid_x: torch.Tensor
    valid_y: torch.Tensor
    train_split: str


def _threes_and_sevens(images: np.ndarray, labels: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """All the 3s, then all the 7s, as the book stacks them (which only matters when batches are not shuffled)."""
    threes, sevens = images[labels == THREE], images[labels == SEVEN]
    x = torch.from_numpy(np.concatenate([threes, sevens]).reshape(-1, PIXELS).astype(np.float32) / 255)
    y = torch.cat([torch.ones(len(threes), 1), torch.zeros(len(sevens), 1)])
    return x, y


@functools.lru_cache(maxsize=2)
def load_data(mnist_dir: str | Path = MNIST_DIR, train_split: str = "train-5k") -> ThreesAndSevens:
    """The 3s and 7s of `train_split` (the split the baseline's ideals were averaged from) and of the test set."""
    train_x, train_y = _threes_and_sevens(*load_split(mnist_dir, train_split))
    valid_x, valid_y = _threes_and_sevens(*load_split(mnist_dir, "test"))
    return ThreesAndSevens(train_x, train_y, valid_x, valid_y, train_split)


def data_for(baseline: PixelBaseline, mnist_dir: str | Path = MNIST_DIR) -> ThreesAndSevens:
    """The data the baseline was built and scored on."""
    return load_data(str(mnist_dir), baseline.training_data.get("split", "train-5k"))


def baseline_accuracy(baseline: PixelBaseline) -> float:
    """The pixel-similarity baseline's stored accuracy on the test 3s and 7s (the book's L1 distance)."""
    try:
        return float(baseline.accuracy["3 or 7"]["L1"])
    except (KeyError, TypeError):
        raise BadInput("These ideal digits carry no '3 or 7' accuracy to compare with: rebuild them.") from None


# ---------------------------------------------------------------- the book's pieces


def mnist_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The book's loss: squash to (0, 1) with a sigmoid, then how far each is from its target, averaged."""
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def batch_accuracy(predictions: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of predictions on the right side of 0.5 after the sigmoid (the book's `batch_accuracy`)."""
    return float(((predictions.sigmoid() > 0.5) == (targets == 1)).float().mean())


class BasicOptim:
    """The book's hand-made optimiser: step moves each parameter against its gradient, zero_grad forgets it."""

    def __init__(self, params: list[torch.Tensor], lr: float):
        self.params, self.lr = list(params), lr

    def step(self) -> None:
        for p in self.params:
            p.data -= p.grad.data * self.lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None


def _layer(fan_in: int, fan_out: int, book_start: bool, generator: torch.Generator) -> list[torch.Tensor]:
    """Weights (fan_in, fan_out) and bias of one linear layer, drawn from `generator`.

    By default nn.Linear's own (kaiming_uniform with a = sqrt(5): uniform in +-1/sqrt(fan_in), the bias
    too); with `book_start` the book's first `init_params`: torch.randn(size) * 1.
    """
    if book_start:
        return [torch.randn(fan_in, fan_out, generator=generator), torch.randn(fan_out, generator=generator)]
    bound = 1 / math.sqrt(fan_in)
    return [(torch.rand(fan_in, fan_out, generator=generator) * 2 - 1) * bound,
            (torch.rand(fan_out, generator=generator) * 2 - 1) * bound]


def init_params(model: str, book_start: bool, generator: torch.Generator) -> list[torch.Tensor]:
    """The model's parameters, ready for autograd: [w, b] for linear, [w1, b1, w2, b2] for simple net."""
    if model == "linear":
        params = _layer(PIXELS, 1, book_start, generator)
    else:
        params = _layer(PIXELS, HIDDEN, book_start, generator) + _layer(HIDDEN, 1, book_start, generator)
    return [p.requires_grad_() for p in params]


def forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """linear: x @ w + b. simple net: relu(x @ w1 + b1) @ w2 + b2."""
    if len(params) == 2:
        w, b = params
        return x @ w + b
    w1, b1, w2, b2 = params
    return (x @ w1 + b1).relu() @ w2 + b2


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    model: str
    lr: float
    epochs: int
    batch_size: int
    seed: int
    book_start: bool = False  # the book's first try: weights ~ N(0, 1), batches not shuffled
    notes: tuple[str, ...] = ()


def model_name(model: Any) -> str:
    key = " ".join(str(model).strip().lower().replace("_", " ").split()) if model is not None else ""
    if key not in MODEL_NAMES:
        raise BadInput(f"Unknown model {shown(model)}: choose 'linear' or 'simple net'.")
    return key


def settings(model: Any = "linear", lr: Any = 1.0, epochs: Any = 20, batch_size: Any = 256, seed: Any = 42,
             book_start: Any = False, *, train_images: int) -> Settings:
    """Checked and clamped training settings; each clamp leaves a note."""
    notes: list[str] = []
    model = model_name(model)
    lr_value = checked_number("learning rate", lr, -math.inf, math.inf, notes)
    if lr_value <= 0:
        notes.append(f"learning rate {lr_value:g} cannot move the weights downhill: using {LR_RANGE[0]:g}.")
        lr_value = LR_RANGE[0]
    lr_value = checked_number("learning rate", lr_value, *LR_RANGE, notes)
    epochs = int(checked_number("epochs", epochs, *EPOCHS_RANGE, notes, integer=True))
    batch_size = int(checked_number("batch size", batch_size, 1, train_images, notes, integer=True))
    seed = int(checked_number("seed", seed, *SEED_RANGE, notes, integer=True))
    batches = math.ceil(train_images / batch_size)
    if epochs * batches > MAX_BATCHES:
        fewer = max(1, MAX_BATCHES // batches)
        notes.append(f"{epochs} epochs of {batches:,} batches is more than {MAX_BATCHES:,} batches: "
                     f"using {fewer} epochs.")
        epochs = fewer
    if not isinstance(book_start, bool):
        raise BadInput(f"book_start must be true or false, not {shown(book_start)}.")
    return Settings(model, lr_value, epochs, batch_size, seed, book_start, tuple(notes))


# ---------------------------------------------------------------- training


@dataclass
class Training:
    """A model being trained: its parameters, where it is in the current epoch, and what it has done.

    Everything random (the initial weights, each epoch's order) comes from one generator seeded with
    `settings.seed`, so the same settings always give the same numbers.
    """

    data: ThreesAndSevens
    settings: Settings
    params: list[torch.Tensor]
    generator: torch.Generator
    order: torch.Tensor  # this epoch's order of the training images
    batch: int = 0  # batches done in this epoch
    epoch_losses: list[float] = field(default_factory=list)  # this epoch's batch losses
    batch_losses: list[float] = field(default_factory=list)  # every batch loss so far
    train_loss: list[float] = field(default_factory=list)  # per finished epoch: mean batch loss
    valid_accuracy: list[float] = field(default_factory=list)  # per finished epoch
    start_accuracy: float = 0.0  # before any training

    @classmethod
    def start(cls, data: ThreesAndSevens, settings: Settings) -> "Training":
        generator = torch.Generator().manual_seed(settings.seed)
        params = init_params(settings.model, settings.book_start, generator)
        training = cls(data, settings, params, generator, torch.arange(len(data.train_x)))
        training.order = training._next_order()
        training.start_accuracy = training.accuracy()
        return training

    @property
    def epoch(self) -> int:
        """Finished epochs."""
        return len(self.valid_accuracy)

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.data.train_x) / self.settings.batch_size)

    def _next_order(self) -> torch.Tensor:
        n = len(self.data.train_x)
        return torch.arange(n) if self.settings.book_start else torch.randperm(n, generator=self.generator)

    def step(self) -> float:
        """One batch: loss, gradient, step. Returns the batch's loss; closes the epoch after its last batch."""
        size = self.settings.batch_size
        rows = self.order[self.batch * size:(self.batch + 1) * size]
        # index_select: a few times faster than x[rows] for a batch of rows
        loss = mnist_loss(forward(self.params, self.data.train_x.index_select(0, rows)),
                          self.data.train_y.index_select(0, rows))
        loss.backward()
        optimiser = BasicOptim(self.params, self.settings.lr)
        optimiser.step()
        optimiser.zero_grad()
        value = loss.item()
        self.epoch_losses.append(value)
        self.batch_losses.append(value)
        self.batch += 1
        if self.batch == self.batches_per_epoch:
            self._end_epoch()
        return value

    def train_epoch(self) -> None:
        """The rest of the current epoch (all of it when none of it is done)."""
        start = self.epoch
        while self.epoch == start:
            self.step()

    def _end_epoch(self) -> None:
        self.train_loss.append(sum(self.epoch_losses) / len(self.epoch_losses))
        self.valid_accuracy.append(self.accuracy())
        self.epoch_losses, self.batch = [], 0
        self.order = self._next_order()

    def accuracy(self) -> float:
        """Validation accuracy now (every test 3 and 7 at once)."""
        with torch.no_grad():
            return batch_accuracy(forward(self.params, self.data.valid_x), self.data.valid_y)

    def first_layer(self) -> torch.Tensor:
        """The first layer's weights as images: (1, 28, 28) for linear, (30, 28, 28) for simple net."""
        return self.params[0].detach().T.reshape(-1, MNIST_SIZE, MNIST_SIZE)


def train(data: ThreesAndSevens, settings: Settings) -> Training:
    """Train from scratch for `settings.epochs` epochs."""
    training = Training.start(data, settings)
    for _ in range(settings.epochs):
        training.train_epoch()
    return training


# ---------------------------------------------------------------- words and pictures


SHADES = 255  # weights drawn in this many shades, from most "7" (blue) through white to most "3" (red)


@functools.lru_cache(maxsize=1)
def _palette() -> list[int]:
    """The pixel-similarity heat map's colours for SHADES values from -1 to 1, as a PNG palette."""
    ramp = torch.linspace(-1, 1, SHADES).reshape(1, SHADES)
    return list(difference_picture(ramp, 1).tobytes())


def _shades(weights: torch.Tensor) -> np.ndarray:
    """Weights scaled to their largest size, as palette indices (SHADES // 2, white, for 0)."""
    peak = float(weights.abs().max())
    scaled = weights / peak if peak > 0 else weights
    return ((scaled.clamp(-1, 1) + 1) * ((SHADES - 1) / 2)).round().to(torch.uint8).numpy()


def _paletted(indices: np.ndarray, scale: int) -> Image.Image:
    # A palette picture: its PNG is a few times quicker to write than RGB (it is written every epoch).
    picture = Image.fromarray(indices, "P")
    picture.putpalette(_palette())
    return picture.resize((indices.shape[1] * scale, indices.shape[0] * scale), Image.Resampling.NEAREST)


def weights_picture(weights: torch.Tensor, scale: int = 8) -> Image.Image:
    """(28, 28) weights as a picture: red where ink pushes towards "3", blue towards "7", white near 0."""
    return _paletted(_shades(weights), scale)


def features_picture(features: torch.Tensor, columns: int = 6, scale: int = 2, gap: int = 1) -> Image.Image:
    """Each first-layer feature (n, 28, 28) drawn like `weights_picture` (each scaled to its own largest
    weight), in a grid on white with `gap` pixels (before scaling) between them."""
    rows = math.ceil(len(features) / columns)
    step = MNIST_SIZE + gap
    sheet = np.full((rows * step - gap, columns * step - gap), SHADES // 2, np.uint8)
    for i, feature in enumerate(features):
        top, left = (i // columns) * step, (i % columns) * step
        sheet[top:top + MNIST_SIZE, left:left + MNIST_SIZE] = _shades(feature)
    return _paletted(sheet, scale)


def layer_picture(training: Training) -> Image.Image:
    """What the first layer looks for: the linear model's 784 weights, or simple net's 30 features, each
    turned by the sign of its weight in the second layer, so that in both red pushes the answer towards
    "3" (for a feature: while it is active; the ReLU passes it on unchanged in sign)."""
    layer = training.first_layer()
    if len(layer) == 1:
        return weights_picture(layer[0])
    return features_picture(layer * training.params[2].detach().sign().view(-1, 1, 1))


def status(training: Training, baseline: float) -> str:
    """Where training stands, in one line, against the baseline."""
    s = training.settings
    where = f"epoch {training.epoch}" + (f", batch {training.batch} of {training.batches_per_epoch}"
                                         if training.batch else "")
    if not training.valid_accuracy:
        return (f"**{s.model}**, {where}: validation accuracy {training.accuracy():.2%} before learning "
                f"(baseline {baseline:.2%}).")
    accuracy = training.valid_accuracy[-1]
    verdict = "beats" if accuracy > baseline else "has not yet beaten"
    return (f"**{s.model}**, {where}: validation accuracy **{accuracy:.2%}**, training loss "
            f"{training.train_loss[-1]:.4f}; it {verdict} the baseline's {baseline:.2%}.")


def report(training: Training, baseline: float) -> dict:
    """The JSON the /learn_pixels endpoint returns."""
    s = training.settings
    data = training.data
    best = max(training.valid_accuracy)
    return {
        "valid_accuracy": [round(v, 6) for v in training.valid_accuracy],
        "train_loss": [round(v, 6) for v in training.train_loss],
        "start_accuracy": round(training.start_accuracy, 6),
        "baseline_accuracy": round(baseline, 6),
        "beats_baseline": best > baseline,
        "train_images": len(data.train_x),
        "valid_images": len(data.valid_x),
        "message": status(training, baseline).replace("**", ""),
        "notes": list(s.notes),
        "settings": {"model": s.model, "lr": s.lr, "epochs": s.epochs, "batch_size": s.batch_size,
                     "seed": s.seed, "book_start": s.book_start, "train_split": data.train_split},
    }
