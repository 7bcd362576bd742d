"""The Classify tab: drop, draw, paste or snap an image; get the model's label probabilities."""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any, Sequence

import gradio as gr
import numpy as np
import torch
from PIL import Image

from ..served.classifier import Classifier, Reading, classify_files
from ..served.images import DIGIT_DECODE_SIDE, MIN_SIDE
from ..served.modelfile import ModelInfo
from . import model_report
from .common import (ImageFile, ImageFiles, ReadingLabel, digit_sketchpad, image_from_sketch, image_from_upload,
                     shows_errors)

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "examples"
TOP_K = 5


def model_card_markdown(meta: ModelInfo) -> str:
    """What the visitor should know about the served model, from its own description."""
    accuracy = meta.accuracy
    rows = [
        ("Architecture", f"`{meta.arch}` ({meta.in_chans} input channel{'s' if meta.in_chans > 1 else ''}, {meta.img_size} px)"),
        ("Made with", meta.origin),
        ("Validation accuracy", f"{accuracy:.2%}" if accuracy is not None else "not recorded"),
        ("Trained on", meta.trained_on or "not recorded"),
        ("Validated on", meta.valid_split or "not recorded"),
        ("Trained", meta.created[:10] if meta.created else "not recorded"),
        ("Classes", ", ".join(map(str, meta.classes[:20])) + (" …" if len(meta.classes) > 20 else "")),
    ]
    table = "\n".join(f"| {name} | {value} |" for name, value in rows)
    return f"| About this model | |\n| --- | --- |\n{table}"


def heading_markdown(meta: ModelInfo) -> str:
    """The tab's question and instructions, in the served model's own terms."""
    classes = [str(name) for name in meta.classes]
    if meta.preprocessing == "mnist":
        question, what = "Which digit is it?", "Upload, paste, snap or draw a handwritten digit"
    elif len(classes) <= 6:
        question, what = f"{', '.join(classes[:-1])} or {classes[-1]}?", "Upload, paste or snap a photo"
    else:
        question, what = f"Which of these {len(classes)} classes is it?", "Upload, paste or snap a photo"
    made = "trained with this project's `train.py`" if meta.made_here else f"from a {meta.origin}"
    return (
        f"### {question[:1].upper()}{question[1:]}\n{what}; the model answers with its probability for each class. "
        f"It is a `{meta.arch}` CNN {made}."
    )


def digit_example_files() -> list[str]:
    """The repository's examples: real MNIST test digits and digits re-rendered as photos of handwriting."""
    return sorted(str(path) for path in EXAMPLES_DIR.glob("*.png"))


def model_example_files(meta: ModelInfo, already_shown: Sequence[str] = ()) -> list[str]:
    """The served model's own examples (validation images it gets right), written once as PNG files, less
    those with the very pixels of one of the `already_shown` files (the default model picked MNIST test
    digits that are also the repository's examples)."""
    shown = {pixels_key(_file_pixels(path)) for path in already_shown}
    own = [example for example in meta.examples
           if usable_example(example, meta) and pixels_key(example_pixels(example)) not in shown]
    if not own:
        return []
    folder = Path(tempfile.mkdtemp(prefix="dlcourse-examples-"))
    paths = []
    for n, example in enumerate(own):
        path = folder / f"{n:02d}-{re.sub(r'[^A-Za-z0-9_-]+', '_', str(example['label']))[:40]}.png"
        Image.fromarray(example_pixels(example)).save(path)
        paths.append(str(path))
    return paths


def example_pixels(example: dict) -> np.ndarray:
    """A model file's example as the (H, W) or (H, W, 3) uint8 array its PNG holds."""
    pixels = example["image"].permute(1, 2, 0).numpy()
    return pixels[:, :, 0] if pixels.shape[2] == 1 else pixels


def _file_pixels(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


def pixels_key(pixels: np.ndarray) -> tuple:
    return pixels.shape, pixels.dtype.str, pixels.tobytes()


def usable_example(example: Any, meta: ModelInfo) -> bool:
    """An example a model file may carry: {"image": uint8 (1 or 3, H, W) tensor, 8-1024 px, "label": a class}."""
    image = example.get("image") if isinstance(example, dict) else None
    return (isinstance(image, torch.Tensor) and image.dtype == torch.uint8 and image.ndim == 3
            and image.shape[0] in (1, 3) and all(MIN_SIDE <= side <= 1024 for side in image.shape[1:])
            and example.get("label") in meta.classes)


def tab(classifier: Classifier) -> gr.Blocks:
    """The tab's components and wiring, a Blocks of its own: space.py renders it; it can also be served alone."""
    meta = classifier.meta
    is_digits = meta.preprocessing == "mnist"

    @shows_errors
    def classify(image: str | None) -> Reading:
        """Classify one image.

        Args:
            image: the image (PNG, JPEG, GIF, WebP, BMP or TIFF): an uploaded file, or over MCP a data: URL (base64, up to ~3 MB) or a public http(s) URL. Digits may be dark on light or light on dark.
        Returns:
            {"label", "confidences", "note"}: the label with the highest probability and the probabilities of the most likely classes; "note" is null for one clear digit, else a sentence: several digits found (the most prominent is read), the model unsure (top probability under 50%), or no digit found (then "label" is "no digit found" and there are no confidences).
        """
        return classifier.read(image_from_upload(image, DIGIT_DECODE_SIDE if is_digits else None))

    def shown(reading: Reading) -> tuple[Reading, str]:
        """The page's two outputs for a reading: the label, and its note under it."""
        return reading, reading.note or ""

    @shows_errors
    def classify_shown(image: str | None) -> tuple[Reading, str]:
        return shown(classify(image))

    @shows_errors
    def classify_drawing(sketch: dict | None) -> tuple[Reading, str]:
        return shown(classifier.read(image_from_sketch(sketch)))

    def note_of(image: str | None) -> str:
        """The note of the image the public /classify just answered (its answer carries it too)."""
        try:
            return classify(image).note or ""
        except gr.Error:
            return ""

    @shows_errors
    def classify_batch(images: list[str] | None) -> list[dict[str, Any]]:
        """Classify many images in one call (at most 64). Over MCP, call classify once per image instead: Gradio's MCP server cannot pass a list of files.

        Args:
            images: the image files, uploaded.
        Returns:
            One result per image, in order: {"file", "label", "confidences"} (and "note" for a picture that is not one clear digit, as /classify's) or {"file", "error"} for an image that could not be used.
        """
        return classify_files(classifier, list(images or []), top_k=TOP_K)

    report = model_report.section(meta)  # a Blocks is built outside any other, then rendered in its place
    with gr.Blocks(title="Classify") as blocks:
        gr.Markdown(heading_markdown(meta), elem_id="cls-heading")
        with gr.Row():
            with gr.Column():
                with gr.Tab("Image"):
                    image = ImageFile(
                        label="Image", type="filepath", sources=["upload", "webcam", "clipboard"],
                        height=320, elem_id="cls-image",
                    )
                    run = gr.Button("Classify", variant="primary", elem_id="cls-run")
                with gr.Tab("Draw", visible=is_digits):
                    sketch = digit_sketchpad(elem_id="cls-sketch")
                    run_sketch = gr.Button("Classify drawing", variant="primary", elem_id="cls-sketch-run")
            with gr.Column():
                label = ReadingLabel(label="Prediction", num_top_classes=TOP_K, elem_id="cls-label")
                note = gr.Markdown(elem_id="cls-note")
                gr.Markdown(model_card_markdown(meta), elem_id="cls-model-info")
        examples_area = gr.Column()
        report.render()
        with gr.Accordion("Many images at once", open=False):
            files = ImageFiles(label="Images", file_count="multiple", elem_id="cls-batch-files")
            run_batch = gr.Button("Classify all", elem_id="cls-batch-run")
            batch_results = gr.JSON(label="One result per image", elem_id="cls-batch-results")

        # The public /classify answers with the label alone (its "note" inside); the page then shows the note
        # under it, read again (only a visitor's click pays for that, not API calls).
        run.click(classify, image, label, api_name="classify").success(
            note_of, image, note, api_visibility="private", show_progress="hidden")
        # One batch at a time (up to 64 images each): big batches cannot take both cores from single images.
        run_batch.click(classify_batch, files, batch_results, api_name="classify_batch", concurrency_limit=1)
        image.upload(classify_shown, image, [label, note], api_visibility="private", show_progress_on=label)
        run_sketch.click(classify_drawing, sketch, [label, note], api_visibility="private", show_progress_on=label)
        # The model's own examples (validation images it gets right); a digits model also shows the repository's
        # digits (real MNIST test digits and photos of handwriting); other models nothing else.
        digits = digit_example_files() if is_digits else []
        galleries = [(model_example_files(meta, already_shown=digits), "Validation images this model gets right",
                      "cls-model-examples"),
                     (digits, "Real MNIST test digits, and digits re-rendered as photos of handwriting", "cls-examples")]
        with examples_area:
            for examples, title, elem_id in galleries:
                if examples:
                    gallery = gr.Examples(examples=examples, inputs=image, label=title, examples_per_page=24,
                                          api_visibility="private", elem_id=elem_id)
                    gallery.load_input_event.then(classify_shown, image, [label, note], api_visibility="private",
                                                  show_progress_on=label)
    return blocks
