"""A Space of the same shapes as app.py's public endpoints whose handlers do nothing: Gradio's floor.

    .venv/bin/python bench/noop_space.py     # serves it as app.py serves the Space (GRADIO_SERVER_PORT etc.)

Each endpoint has the real one's inputs and outputs (components, api_name, queue settings) and answers
with a canned value of the real answer's size, computed once here, so what a request costs on it is
Gradio's own work: routing, the queue, pre- and post-processing, the event stream. bench/bench_serve.py
and bench/load.py set the real app beside it.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import gradio as gr  # noqa: E402

from dlcourse.quadratic import api  # noqa: E402
from dlcourse.served.images import load_image  # noqa: E402
from dlcourse.pixels.baseline import PixelBaseline  # noqa: E402
from dlcourse.ui import pixel_similarity as pixel_tab  # noqa: E402
from dlcourse.ui.common import Picture  # noqa: E402
from dlcourse.ui.space import LAUNCH_OPTIONS, prepare_process, queued  # noqa: E402

EXAMPLE = ROOT / "examples" / "mnist-test-7.png"


def canned(fn, answer):
    """A handler with `fn`'s signature (so the API lists the same parameters) that returns `answer`."""

    @functools.wraps(fn)
    def handler(*args, **kwargs):
        return answer

    return handler


def build_noop_demo() -> gr.Blocks:
    classes = [str(digit) for digit in range(10)]
    label = {name: (10 - i) / 55 for i, name in enumerate(classes)}
    batch = [{"file": f"digit-{i}.png", "label": "7", "confidences": dict(list(label.items())[:5])} for i in range(4)]
    pixel = pixel_tab.present(PixelBaseline.load().compare_image(load_image(EXAMPLE), "all ten digits", "L2"))
    with gr.Blocks() as demo:
        # The cheapest image input Gradio has: image_mode=None hands the uploaded file's path on unopened.
        image = gr.Image(type="filepath", image_mode=None)
        gr.Button().click(canned(lambda image: None, label), image, gr.Label(num_top_classes=5), api_name="classify")
        gr.Button().click(canned(lambda images: None, batch), gr.File(file_count="multiple"), gr.JSON(),
                          api_name="classify_batch", concurrency_limit=1)
        mode, distance = gr.Radio(list(pixel_tab.MODES)), gr.Radio(pixel_tab.DISTANCE_CHOICES)
        # The real tab's output pictures (a PNG written into Gradio's cache once per distinct picture: cheaper
        # than gr.Image, which rewrites it every time), so the floor is the cheapest way to answer this shape.
        pictures = [Picture(type="pil", format="png", interactive=False) for _ in range(3)]
        outputs = [gr.Label(), gr.Markdown(), gr.BarPlot(x="digit", y="distance"), *pictures, gr.State()]
        gr.Button().click(canned(lambda image, mode, distance: None, (*pixel, "image")), [image, mode, distance],
                          outputs, api_name="pixel_similarity")
        gr.api(canned(api.fit_quadratic, api.fit_quadratic()), api_name="fit_quadratic")
        gr.api(canned(api.evaluate_quadratic, api.evaluate_quadratic()), api_name="quadratic_loss")
    return queued(demo)


if __name__ == "__main__":
    prepare_process()
    build_noop_demo().launch(**LAUNCH_OPTIONS)
