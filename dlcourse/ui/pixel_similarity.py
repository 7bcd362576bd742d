"""The Pixel similarity tab: draw a digit, see how far it is from each ideal (mean) digit, and why."""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from ..errors import BadInput
from ..served.images import DIGIT_DECODE_SIDE, NO_DIGIT
from ..served.modelfile import ModelInfo
from ..pixels.baseline import DISTANCE_NAMES, DISTANCES, MODES, Comparison, PixelBaseline, difference_picture, digit_picture
from . import learn_pixels
from .common import ImageFile, Picture, digit_sketchpad, image_from_sketch, image_from_upload, shows_errors

EXAMPLES_DIR = Path(__file__).resolve().parent.parent.parent / "examples"
DISTANCE_CHOICES = [(f"{name}: {DISTANCE_NAMES[name]}", name) for name in DISTANCES]
PICTURE_SCALE = 10  # each of the 28x28 pixels shown as a 10x10 square

INTRO = """### How far is your digit from the "ideal" digits?
Chapter 4 of the book starts with a classifier that learns nothing. Average every training image of a 3
and you get a blurry **ideal 3**; do the same for every digit. A new image is then called whichever
ideal it is closest to, pixel by pixel. Draw a digit (or pick a real MNIST test digit below) and see
the distances, the ideal that won and where your digit differs from it."""

EXPLANATIONS = """**An ideal digit** is the pixel-by-pixel mean of every training image of that digit. Pixels
where most writers put ink are bright, pixels only some writers use are grey: it is a picture of where a 3
*usually* is, not any particular 3.

**L1 or L2.** Both compare the 784 pixels of your digit with those of an ideal. *L1* is the mean absolute
difference: every pixel's error counts as much as it is big. *L2* (root mean squared error) squares each
error before averaging, so a few pixels that are badly off weigh more than many that are slightly off.
On all ten digits L2 does much better: L1 is happy to call almost anything a thin 1, because a 1 has little
ink to disagree with.

**Broadcasting.** The accuracies below come from one tensor expression per mode and distance: the test
images, shaped (10000, 1, 28, 28), minus the ideals, shaped (10, 28, 28). PyTorch stretches the size-1 axis
and the missing axis to (10000, 10, 28, 28) without copying the data, so every image is compared with every
ideal in one operation, in C, with no Python loop over images.

**A baseline, not learning.** Nothing here was adjusted to reduce mistakes: there are no weights, no loss,
no gradient, only averages. That is the point: it is the simplest thing that could work, and it tells us
what a model that *learns* (SGD in chapter 4, the CNN in the Classify tab) has to beat to be worth its cost."""

HEATMAP_LEGEND = (
    "Left to right: your digit as the baseline sees it (cropped, scaled into 20x20 and centred in 28x28 like MNIST), "
    "the ideal it is closest to, and their difference pixel by pixel. **Red**: ink in your digit where the ideal has "
    "little. **Blue**: ink in the ideal that your digit lacks. The distance is the mean of these differences' sizes (L1) "
    "or the root of the mean of their squares (L2)."
)


def example_files() -> list[str]:
    """Real MNIST test digits (examples/mnist-*.png), the ones the baseline gets wrong last."""
    paths = sorted(EXAMPLES_DIR.glob("mnist-*.png"), key=lambda path: ("-says-" in path.stem, path.stem))
    return [str(path) for path in paths]


def example_label(path: str) -> str:
    """"mnist-test-3" -> "a 3"; "mnist-baseline-says-9-truly-4" -> "a 4 the baseline calls 9"."""
    words = Path(path).stem.split("-")
    if "says" in words and "truly" in words:
        return f"a {words[words.index('truly') + 1]} the baseline calls {words[words.index('says') + 1]}"
    return f"a {words[-1]}"


def examples_title(paths: list[str]) -> str:
    """The examples' heading; the pictures show no names, so it says which ones fool the baseline."""
    fooling = [example_label(path) for path in paths if "-says-" in Path(path).stem]
    return "Real MNIST test digits" + (f"; the last {len(fooling)}: {', '.join(fooling)}" if fooling else "")


def accuracy_markdown(baseline: PixelBaseline) -> str:
    """The stored test accuracies as a table, with where the ideals come from."""
    accuracy, test = baseline.accuracy, baseline.info.get("test_data", {})
    if not accuracy:
        return "No test accuracies are stored with these ideal digits."
    per_digit = test.get("per_digit")
    header = "| mode | " + " | ".join(f"{name} ({DISTANCE_NAMES[name]})" for name in DISTANCES) + " |"
    rows = [header, "| --- |" + " --- |" * len(DISTANCES)]
    for mode, by_distance in accuracy.items():
        count = f" ({sum(per_digit[d] for d in MODES[mode]):,} test images)" if per_digit else ""
        rows.append(f"| {mode}{count} | " + " | ".join(f"{by_distance[name]:.2%}" for name in DISTANCES) + " |")
    training = baseline.training_data
    source = (
        f"Ideal digits averaged from {training['images']:,} MNIST training images ({training['split']})"
        if training else "Ideal digits of unknown origin"
    )
    built = f", built by `{baseline.built_by}`" if baseline.built_by else ""
    tested = f"the official MNIST test set ({test['images']:,} images)" if test else "the MNIST test set"
    return "\n".join(rows) + f"\n\nAccuracy on {tested}. {source}{built}."


def classifier_markdown(meta: ModelInfo | None) -> str:
    """The Classify tab's model beside the baseline, when it reads digits; otherwise say why not."""
    if not meta:
        return "The Classify tab has no model loaded, so there is nothing to compare with."
    if meta.preprocessing != "mnist":
        classes = ", ".join(map(str, meta.classes[:6])) + (" …" if len(meta.classes) > 6 else "")
        return (
            f"The Classify tab's model is not a digits model (it tells apart photos of: {classes}), "
            "so it has no accuracy on MNIST to set beside the baseline."
        )
    accuracy = meta.accuracy
    where = f" on {meta.valid_split}" if meta.valid_split else ""
    if accuracy is None:
        return f"The Classify tab's model (`{meta.arch}`) reads digits, but its file records no accuracy to compare."
    return (
        f"**The Classify tab's model** (`{meta.arch}`, a CNN that *learned* its features): "
        f"**{accuracy:.2%}** on all ten digits{where}, against the baseline's "
        "all-ten accuracy above. That gap is what learning buys."
    )


def distances_frame(comparison: Comparison) -> pd.DataFrame:
    """One row per candidate digit, closest first."""
    return pd.DataFrame(
        {"digit": [str(digit) for digit in comparison.distances], "distance": list(comparison.distances.values())}
    )


def summary_markdown(comparison: Comparison) -> str:
    (best, best_value), *others = comparison.distances.items()
    text = f"Closest to the **ideal {best}**: {comparison.distance} distance {best_value:.4f}."
    if others:
        runner, runner_value = others[0]
        text += f" Next comes {runner} at {runner_value:.4f}, {runner_value - best_value:.4f} farther."
    return text


def present(comparison: Comparison) -> tuple:
    """Every output of the tab for one comparison, in the order of `outputs` in `build`. A picture that is not one
    clear digit says so first, as the Classify tab does: "no digit found" and no distances when nothing in it
    is digit-like; the note before the summary when several digits were found (the most prominent compared)."""
    note = comparison.found.note if comparison.found is not None else None
    if comparison.found is not None and not comparison.found.is_digit:
        return (NO_DIGIT, note, None, digit_picture(comparison.digit, PICTURE_SCALE), None, None)
    return (
        str(comparison.prediction),
        f"**{note}** {summary_markdown(comparison)}" if note else summary_markdown(comparison),
        distances_frame(comparison),
        digit_picture(comparison.digit, PICTURE_SCALE),
        digit_picture(comparison.ideal, PICTURE_SCALE),
        difference_picture(comparison.difference, PICTURE_SCALE),
    )


NOTHING = (None, "", None, None, None, None)
DRAWING_WAIT_S = 2.0  # how long a click handed an empty sketch waits for the drawing's own change event


class LiveDrawings:
    """The drawing each visitor's live answer (the sketchpad's change event) was last computed from.

    Gradio's sketchpad, when it also has a change listener, uploads each new drawing for that change event,
    and "Compare drawing" pressed while this is under way can be handed an empty sketch: the visitor would
    be told the sketchpad is empty right after drawing. Such a click takes the drawing of the change event
    instead, waiting for it when it has not arrived yet.
    """

    def __init__(self, keep: int = 1000):
        self._latest: OrderedDict[str, tuple[float, str | None]] = OrderedDict()  # session -> (when, composite)
        self._arrived = threading.Condition()
        self._keep = keep

    def record(self, session: str, sketch: dict | None) -> None:
        with self._arrived:
            self._latest[session] = (time.monotonic(), (sketch or {}).get("composite"))
            self._latest.move_to_end(session)
            while len(self._latest) > self._keep:
                self._latest.popitem(last=False)
            self._arrived.notify_all()

    def fill(self, session: str, sketch: dict | None, wait: float = DRAWING_WAIT_S) -> dict | None:
        """The sketch if it holds a drawing; else the drawing of a change event that arrives within `wait`
        seconds, or failing that the last one seen (None after a cleared canvas)."""
        if (sketch or {}).get("composite"):
            return sketch
        clicked = time.monotonic()
        with self._arrived:
            self._arrived.wait_for(lambda: self._latest.get(session, (0.0, None))[0] >= clicked, timeout=wait)
            composite = self._latest.get(session, (0.0, None))[1]
        return {"composite": composite} if composite else sketch


def tab(baseline: PixelBaseline, classifier: Any) -> gr.Blocks:
    """The tab's components and wiring, a Blocks of its own: space.py renders it; it can also be served alone.

    `classifier` is the Classify tab's (only its `meta` is read)."""

    @shows_errors
    def pixel_similarity(image: str | None, mode: str, distance: str):
        """Compare a picture of one handwritten digit with the ideal (mean) digits; the closest one is the answer.

        mode: "3 or 7" (the book's baseline) or "all ten digits". distance: "L1" (mean absolute difference)
        or "L2" (root mean squared error). Returns the closest digit, a one-line summary, every candidate's
        distance closest first (rows of [digit, distance]), and three 280x280 pictures: the 28x28 input as
        the baseline sees it, the closest ideal digit, and the per-pixel difference as a heat map.

        Args:
            image: the image of one handwritten digit (PNG, JPEG, GIF, WebP, BMP or TIFF), dark on light or light on dark: an uploaded file, or over MCP a data: URL (base64) or a public http(s) URL.
            mode: "3 or 7" (the book's baseline: is it a 3 or a 7?) or "all ten digits".
            distance: "L1" (mean absolute difference) or "L2" (root mean squared error).
        Returns:
            The closest digit ("no digit found" when nothing in the picture is digit-like: then no distances); a sentence with its distance and the runner-up, after a note when the picture is not one clear digit (several digits found: the most prominent is compared); every candidate's distance, closest first (a bar plot's data: rows of [digit, distance]); the 28x28 input as the baseline sees it; the ideal digit it is closest to; the per-pixel difference (input minus ideal) as a heat map.
        """
        return present(baseline.compare_image(image_from_upload(image, DIGIT_DECODE_SIDE), mode, distance))

    live_drawings = LiveDrawings()

    @shows_errors
    def compare_drawing(sketch: dict | None, mode: str, distance: str, request: gr.Request | None = None):
        if request is not None:
            sketch = live_drawings.fill(request.session_hash, sketch)
        return (*present(baseline.compare_image(image_from_sketch(sketch), mode, distance)), "sketch")

    def follow_drawing(sketch: dict | None, mode: str, distance: str, request: gr.Request | None = None):
        """While drawing: update as the digit takes shape; an empty or cleared canvas just clears."""
        if request is not None:
            live_drawings.record(request.session_hash, sketch)
        try:
            return (*present(baseline.compare_image(image_from_sketch(sketch), mode, distance)), "sketch")
        except BadInput:
            return (*NOTHING, "sketch")

    def recompare(source: str | None, sketch: dict | None, image: str | None, mode: str, distance: str):
        """A new mode or distance: compare the last input again; nothing to compare is not an error."""
        try:
            picture = (image_from_sketch(sketch) if source == "sketch"
                       else image_from_upload(image, DIGIT_DECODE_SIDE) if source == "image" else None)
        except BadInput:
            picture = None
        if picture is None:
            return (*NOTHING, source)
        try:
            return (*present(baseline.compare_image(picture, mode, distance)), source)
        except BadInput:
            return (*NOTHING, source)

    learning = learn_pixels.section(baseline)  # a Blocks is built outside any other, then rendered in its place
    with gr.Blocks(title="Pixel similarity") as blocks:
        gr.Markdown(INTRO)
        source = gr.State(None)  # which input the shown result came from: "sketch" or "image"
        with gr.Row():
            with gr.Column():
                with gr.Row():
                    mode = gr.Radio(list(MODES), value="3 or 7", label="Choose between", elem_id="pix-mode")
                    distance = gr.Radio(DISTANCE_CHOICES, value="L1", label="Distance", elem_id="pix-distance")
                with gr.Tabs(elem_id="pix-input-tabs") as input_tabs:
                    with gr.Tab("Draw", id="pix-draw-tab"):
                        sketch = digit_sketchpad(elem_id="pix-sketch")
                        run_sketch = gr.Button("Compare drawing", variant="primary", elem_id="pix-sketch-run")
                    with gr.Tab("Image", id="pix-image-tab"):
                        image = ImageFile(
                            label="Image of a digit", type="filepath", sources=["upload", "clipboard"], height=280,
                            elem_id="pix-upload",
                        )
                        run = gr.Button("Compare image", variant="primary", elem_id="pix-run")
                examples_column = gr.Column()
            with gr.Column():
                prediction = gr.Label(label="Closest ideal digit", elem_id="pix-prediction")
                summary = gr.Markdown(label="Summary", elem_id="pix-summary")
                bars = gr.BarPlot(
                    x="digit", y="distance", sort="y", y_lim=[0, None], label="Distance to each ideal, closest first",
                    x_title="ideal digit", height=220, elem_id="pix-distances",
                )
                with gr.Row():
                    picture = dict(type="pil", format="png", image_mode=None, interactive=False, height=240, buttons=["download"])
                    seen = Picture(label="Your digit, 28x28", elem_id="pix-seen", **picture)
                    ideal = Picture(label="Closest ideal", elem_id="pix-ideal", **picture)
                    heatmap = Picture(label="Difference", elem_id="pix-heatmap", **picture)
                gr.Markdown(HEATMAP_LEGEND, elem_id="pix-heatmap-legend")

        gr.Markdown("### The ten ideal digits")
        gr.Gallery(
            value=[(digit_picture(baseline.ideals[digit], 4), f"ideal {digit}") for digit in range(10)],
            columns=10, height=130, allow_preview=False, object_fit="contain", format="png", show_label=False, elem_id="pix-ideals",
        )
        gr.Markdown("### How good is it?")
        gr.Markdown(accuracy_markdown(baseline), elem_id="pix-accuracy")
        gr.Markdown(classifier_markdown(getattr(classifier, "meta", None)), elem_id="pix-classifier-accuracy")
        with gr.Accordion("How it works", open=False):
            gr.Markdown(EXPLANATIONS, elem_id="pix-explanations")
        learning.render()

        shown = [prediction, summary, bars, seen, ideal, heatmap]
        outputs = [*shown, source]

        def compare_image_on(event: Any, **api: Any) -> Any:
            """The public comparison of an image, then (privately) the note of where the answer came from.
            The State is not an output of the endpoint itself: Gradio 6.31's MCP server, called without a
            progress token, drops a State output by position and answers "pop index out of range"."""
            compared = event(pixel_similarity, [image, mode, distance], shown, **api)
            return compared.success(lambda: "image", None, source, api_visibility="private", queue=False,
                                    show_progress="hidden")

        compare_image_on(run.click, api_name="pixel_similarity")
        compare_image_on(image.upload, api_visibility="private")
        run_sketch.click(compare_drawing, [sketch, mode, distance], outputs, api_visibility="private")
        sketch.change(follow_drawing, [sketch, mode, distance], outputs, api_visibility="private",
                      trigger_mode="always_last", show_progress="hidden")
        gr.on([mode.change, distance.change], recompare, [source, sketch, image, mode, distance], outputs,
              api_visibility="private", show_progress="hidden")
        examples = example_files()
        if examples:
            with examples_column:
                gallery = gr.Examples(
                    examples=examples, inputs=image, label=examples_title(examples), examples_per_page=12,
                    api_visibility="private", elem_id="pix-examples",
                )
            loaded = gallery.load_input_event.then(lambda: gr.Tabs(selected="pix-image-tab"), None, input_tabs,
                                                   api_visibility="private", show_progress="hidden")
            compare_image_on(loaded.then, api_visibility="private")
    return blocks
