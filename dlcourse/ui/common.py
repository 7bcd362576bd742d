"""Pieces several tabs share: the digit sketchpad, reading its value, and user-facing errors."""
from __future__ import annotations

import functools
from typing import Any, Callable

import gradio as gr
from PIL import Image

from ..errors import BadInput, EmptyDrawing
from ..images import load_image

# A 280x280 canvas drawn with a 12 px radius brush: reduced to MNIST's 20x20 box the stroke is
# about 2 px wide, like MNIST ink.
SKETCH_CANVAS = (280, 280)
SKETCH_BRUSH_RADIUS = 12


def digit_sketchpad(label: str = "Draw a digit", **kwargs: Any) -> gr.Sketchpad:
    """A square black-ink sketchpad whose drawings reduce to MNIST-like digits."""
    return gr.Sketchpad(
        label=label,
        type="filepath",
        image_mode="RGBA",
        format="png",
        canvas_size=SKETCH_CANVAS,
        fixed_canvas=True,
        brush=gr.Brush(default_size=SKETCH_BRUSH_RADIUS, colors=["#000000"], color_mode="fixed"),
        layers=False,
        **kwargs,
    )


def image_from_sketch(value: dict | None) -> Image.Image:
    """The drawing in a sketchpad value ({"background", "layers", "composite"}), decoded."""
    composite = (value or {}).get("composite")
    if not composite:
        raise EmptyDrawing("The sketchpad is empty: draw a digit first.")
    return load_image(composite)


def image_from_upload(path: str | None) -> Image.Image:
    """An uploaded file, decoded; BadInput when there is none or it is not a usable image."""
    if not path:
        raise BadInput("No image was given: upload, paste or draw one first.")
    return load_image(path)


def shows_errors(fn: Callable) -> Callable:
    """Turn the logic's BadInput into a gr.Error the visitor sees (and an API client receives)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BadInput as error:
            raise gr.Error(str(error), print_exception=False) from None

    return wrapper
