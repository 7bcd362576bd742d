""""Now let it learn", in the Pixel similarity tab: SGD on the pixels of 3s and 7s, epoch by epoch.

Components and wiring only: the data, models, loss, optimiser and pictures are in `dlcourse.pixels.learn`.
Public API endpoint: /learn_pixels (a whole training run as JSON).
"""
from __future__ import annotations

import dataclasses
import time
from typing import Literal

import gradio as gr
import numpy as np
import pandas as pd

from ..pixels import learn as lp
from ..pixels.baseline import PixelBaseline
from ..quadratic.fit import checked_number
from .common import Picture, shows_errors

UI_MAX_EPOCHS = 100
FRAME_SECONDS = 0.15  # an animated run shows each epoch for at least this long
MAX_LOSS_POINTS = 1000  # batch losses drawn, at most

INTRO = """### Now let it learn
The baseline above learns nothing. Chapter 4 then lets a model *learn* from the same 3s and 7s: each of the
784 pixels gets a weight, the weighted sum plus a bias says "3" when it is positive, and SGD adjusts the
weights batch by batch to make the loss smaller. **Linear** is exactly that; **simple net** puts 30 of those
sums through a ReLU first and weighs them again (784 → 30 → 1). Both are scored on the MNIST test set's
3s and 7s, the same images the baseline's accuracy comes from."""

EXPLAIN = """\
**Why not use accuracy as the loss?** SGD needs to know which way to nudge each weight. Accuracy only
changes when a prediction crosses from "7" to "3": nudge a weight a little and almost always no prediction
flips, so accuracy stays the same and its gradient is zero. A zero gradient says nothing, and the weights
never move. The loss must change a little for every little change of the weights, even when no answer flips.

**Why the sigmoid?** The model's raw output can be any number. The sigmoid squashes it into (0, 1), read as
"how sure it is a 3". `mnist_loss` is then how far that is from the truth: 1 − p for a 3, p for a 7,
averaged. Without the sigmoid, the model could make the loss smaller forever by pushing already right
outputs further out; with it, a confident right answer is worth almost nothing more, and the gradient goes
where the answers are wrong or unsure.

**The pictures.** For the linear model each pixel's weight is drawn where the pixel is: **red** where ink
pushes towards "3", **blue** towards "7". For simple net each of the 30 small pictures is one first-layer
feature (each scaled to its own largest weight), turned by the sign of its weight in the second layer, so
that there too red pushes the answer towards "3" whenever the feature is active (above 0, past the ReLU).

**The book's first try** starts the weights from a normal distribution with standard deviation 1 and feeds
the batches in order (all the 3s, then all the 7s). It still learns, but more slowly and less well:
every batch of one digit only pulls the model towards that digit. Shuffled batches and small starting
weights (PyTorch's default) are why the default does better."""


def _accuracy_frame(training: lp.Training, baseline: float, last_epoch: int) -> pd.DataFrame:
    """The baseline's line, and the accuracy after each finished epoch, or before learning while no epoch is
    done (once one is, the ~50% start is left out so that the axis zooms in on the few points between the
    model and the baseline). Both series are always there: the plot takes its colours from the first value."""
    epochs, accuracy = ((list(range(1, training.epoch + 1)), training.valid_accuracy) if training.epoch
                        else ([0], [training.start_accuracy]))
    model = pd.DataFrame({"epoch": epochs, "accuracy": accuracy, "series": "validation accuracy"})
    line = pd.DataFrame({"epoch": [0, max(last_epoch, 1)], "accuracy": [baseline] * 2,
                         "series": "baseline (pixel similarity)"})
    return pd.concat([line, model], ignore_index=True)


def _loss_frame(training: lp.Training) -> pd.DataFrame:
    losses = np.asarray(training.batch_losses)
    epochs = np.arange(1, len(losses) + 1) / training.batches_per_epoch
    if len(losses) > MAX_LOSS_POINTS:
        keep = np.unique(np.linspace(0, len(losses) - 1, MAX_LOSS_POINTS).astype(int))
        losses, epochs = losses[keep], epochs[keep]
    return pd.DataFrame({"epoch": epochs, "loss": losses})


def _view(training: lp.Training, baseline: float, last_epoch: int, notes: list[str]):
    """Accuracy plot, loss plot, first-layer picture, status, state."""
    text = lp.status(training, baseline)
    if notes:
        text += "\n\n" + " ".join(notes)
    return (
        gr.update(value=_accuracy_frame(training, baseline, last_epoch), x_lim=[0, max(last_epoch, 1)]),
        _loss_frame(training),
        lp.layer_picture(training),
        text,
        training,
    )


def section(baseline: PixelBaseline) -> gr.Blocks:
    """The section's components and wiring, a Blocks of its own: the Pixel similarity tab renders it."""
    data = lp.data_for(baseline)
    reference = lp.baseline_accuracy(baseline)
    train_images = len(data.train_x)

    def learn_pixels(model: Literal["linear", "simple net"] = "linear", lr: float = 1.0, epochs: int = 20,
                     batch_size: int = 256, seed: int = 42, book_start: bool = False) -> dict:
        """Train a linear model or simple_net by SGD on the pixels of MNIST 3s and 7s, with the book's mnist_loss.

        Trains on the 3s and 7s of the pixel-similarity baseline's training digits and scores every epoch on
        the MNIST test set's 3s and 7s, beside the baseline's accuracy. Same seed, same result.

        Args:
            model: "linear" (784 weights and a bias) or "simple net" (Linear 784->30, ReLU, Linear 30->1).
            lr: learning rate of plain SGD (1e-4 to 10; out-of-range values are clamped and noted).
            epochs: passes over the training images (1 to 200; at most 10,000 batches in all).
            batch_size: images per SGD step (1 to the number of training images).
            seed: random seed of the starting weights and of each epoch's shuffle.
            book_start: the book's first try: weights drawn with standard deviation 1 and batches in order (all 3s, then all 7s).
        Returns:
            A dict: "valid_accuracy" and "train_loss" (one value per epoch), "start_accuracy" (before training), "baseline_accuracy", "beats_baseline", "train_images", "valid_images", "message", "notes" (clamped inputs), "settings" (the values used).
        """
        settings = lp.settings(model, lr, epochs, batch_size, seed, book_start, train_images=train_images)
        return lp.report(lp.train(data, settings), reference)

    def training_for(state, model, lr, batch_size, seed, book_start, notes: list[str]) -> lp.Training:
        """The training in progress when only the learning rate changed, else a fresh one."""
        settings = lp.settings(model, lr, 1, batch_size, seed, book_start, train_images=train_images)
        notes += settings.notes
        if isinstance(state, lp.Training) and dataclasses.replace(state.settings, lr=settings.lr,
                                                                  notes=settings.notes) == settings:
            state.settings = settings
            return state
        return lp.Training.start(data, settings)

    @shows_errors
    def reset(model, lr, batch_size, seed, book_start, epochs):
        notes: list[str] = []
        return _view(training_for(None, model, lr, batch_size, seed, book_start, notes), reference, int(epochs), notes)

    @shows_errors
    def settings_changed(model, lr, batch_size, seed, book_start, epochs, state):
        """A fresh training for new settings, unless a step already started one with them: a visitor who types a
        batch size and clicks at once gets the step, whichever of the two events the server handles first."""
        notes: list[str] = []
        training = training_for(state, model, lr, batch_size, seed, book_start, notes)
        return _view(training, reference, max(training.epoch + 1, int(epochs)), notes)

    @shows_errors
    def step_batch(model, lr, batch_size, seed, book_start, epochs, state):
        notes: list[str] = []
        training = training_for(state, model, lr, batch_size, seed, book_start, notes)
        training.step()
        return _view(training, reference, max(training.epoch + 1, int(epochs)), notes)

    @shows_errors
    def train_epochs(model, lr, batch_size, seed, book_start, epochs, state, count=None):
        """Train `count` epochs (N from the slider when None), showing each as it ends."""
        notes: list[str] = []
        training = training_for(state, model, lr, batch_size, seed, book_start, notes)
        count = int(checked_number("epochs", epochs if count is None else count, 1, UI_MAX_EPOCHS, notes,
                                   integer=True))
        last = training.epoch + count
        for _ in range(count):
            began = time.monotonic()
            training.train_epoch()
            yield _view(training, reference, max(last, int(epochs)), notes)
            if training.epoch < last:
                time.sleep(max(0.0, FRAME_SECONDS - (time.monotonic() - began)))

    def train_one_epoch(*args):
        yield from train_epochs(*args, count=1)

    with gr.Blocks(title="Now let it learn") as blocks:
        gr.Markdown(INTRO)
        first = lp.Training.start(data, lp.settings(train_images=train_images))
        state = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=320):
                model = gr.Radio(list(lp.MODEL_NAMES), value="linear", label="Model", elem_id="learn-model")
                with gr.Row():
                    lr = gr.Number(1.0, label="learning rate", elem_id="learn-lr", min_width=90)
                    batch_size = gr.Number(256, precision=0, label="batch size", elem_id="learn-batch", min_width=90)
                    seed = gr.Number(42, precision=0, label="seed", elem_id="learn-seed", min_width=80)
                epochs = gr.Slider(1, UI_MAX_EPOCHS, value=20, step=1, label="N (epochs per run)", elem_id="learn-epochs")
                book_start = gr.Checkbox(False, label="the book's first try: weights with std 1, batches unshuffled",
                                         elem_id="learn-book-start")
                with gr.Row():
                    epoch_btn = gr.Button("Train an epoch", elem_id="learn-epoch")
                    run_btn = gr.Button("Train N epochs", variant="primary", elem_id="learn-run")
                with gr.Row():
                    batch_btn = gr.Button("Step one batch", elem_id="learn-batch-step")
                    reset_btn = gr.Button("Reset", elem_id="learn-reset")
                status = gr.Markdown(lp.status(first, reference), elem_id="learn-status")
                picture = Picture(lp.layer_picture(first), label="first layer: red pushes towards 3, blue towards 7", type="pil",
                                  format="png", image_mode=None, interactive=False, height=260, buttons=["download"],
                                  elem_id="learn-weights")
            with gr.Column(scale=3, min_width=380):
                accuracy = gr.LinePlot(_accuracy_frame(first, reference, 20), x="epoch", y="accuracy", color="series", x_lim=[0, 20],
                                       color_map={"validation accuracy": "#d62728",
                                                  "baseline (pixel similarity)": "#7f7f7f"},
                                       label=f"validation accuracy per epoch (grey: the baseline's {reference:.2%})", height=250, elem_id="learn-accuracy")
                loss = gr.LinePlot(_loss_frame(first), x="epoch", y="loss", label="training loss (mnist_loss) per batch",
                                   height=200, elem_id="learn-loss")
        with gr.Accordion("Why a loss, not accuracy? Why the sigmoid?", open=False):
            gr.Markdown(EXPLAIN, elem_id="learn-explanations")

        settings = [model, lr, batch_size, seed, book_start, epochs]
        outputs = [accuracy, loss, picture, status, state]
        private = {"api_visibility": "private", "show_progress": "hidden"}
        run_event = run_btn.click(train_epochs, [*settings, state], outputs, **private)
        # one training per visitor at a time: a click on another button stops an animated run first
        epoch_event = epoch_btn.click(train_one_epoch, [*settings, state], outputs, cancels=[run_event], **private)
        batch_event = batch_btn.click(step_batch, [*settings, state], outputs, cancels=[run_event], **private)
        running = [run_event, epoch_event, batch_event]
        reset_btn.click(reset, settings, outputs, cancels=running, **private)
        # a running animation stops when the settings change; a single batch step is short and is kept
        gr.on([model.input, seed.input, batch_size.input, book_start.input], settings_changed, [*settings, state],
              outputs, cancels=[run_event, epoch_event], trigger_mode="always_last", **private)

        gr.api(shows_errors(learn_pixels), api_name="learn_pixels")
    return blocks
