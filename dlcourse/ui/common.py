"""Pieces several tabs share: the digit sketchpad, reading its value, and user-facing errors."""
from __future__ import annotations

import asyncio
import functools
import hashlib
import inspect
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlsplit

import gradio as gr
from gradio.components.label import LabelConfidence, LabelData
from gradio.processing_utils import PUBLIC_HOSTNAME_WHITELIST, is_public_ip
from gradio.utils import get_upload_folder, is_in_or_equal
from PIL import Image

from ..errors import BadInput, EmptyDrawing
from ..served.classifier import Reading
from ..served.images import load_image

# A 280x280 canvas drawn with a 12 px radius brush: reduced to MNIST's 20x20 box the stroke is
# about 2 px wide, like MNIST ink.
SKETCH_CANVAS = (280, 280)
SKETCH_BRUSH_RADIUS = 12
NOT_UPLOADED = (
    "Only files uploaded to this app can be used: upload the image first (POST /gradio_api/upload, or "
    "gradio_client's handle_file), then pass the path it returns."
)


class NotedLabelData(LabelData):
    note: str | None = None


class ReadingLabel(gr.Label):
    """A Label showing a `Reading`: its label and probabilities, and beside them in the answer a "note" (null
    for one clear digit; the page shows it in a Markdown of its own)."""

    data_model = NotedLabelData

    def get_block_name(self) -> str:
        return "label"  # Gradio's own Label in the page: no custom component to load

    def postprocess(self, value: Any) -> NotedLabelData | LabelData | dict | None:
        if not isinstance(value, Reading):
            return super().postprocess(value)
        ranked = list(value.probabilities.items())[: self.num_top_classes]
        confidences = [LabelConfidence(label=label, confidence=probability) for label, probability in ranked]
        return NotedLabelData(label=value.label, confidences=confidences or None, note=value.note)


class FetchesPublicUrlsOnly:
    """For input components: a file given as an http(s) URL that points to this machine or a private
    network is refused, with a message, and never fetched (Gradio fetches such URLs for API and MCP clients).

    Gradio's own check would refuse it too, but only after asking dns.google's web API about the name.
    """

    async def async_move_resource_to_block_cache(self, url_or_file_path: str | Path | None) -> str | None:
        if isinstance(url_or_file_path, str) and url_or_file_path.startswith(("http://", "https://")):
            await _refuse_private_url(url_or_file_path)
        return await super().async_move_resource_to_block_cache(url_or_file_path)  # type: ignore[misc]


class ImageFile(FetchesPublicUrlsOnly, gr.Image):
    """A gr.Image that hands its handler the uploaded file's path without opening it.

    Gradio's own preprocessing decodes the image first, so a text file or a decompression bomb would
    fail inside Gradio with a generic error; `load_image` checks the file and says what is wrong.
    """

    def get_block_name(self) -> str:
        return "image"

    def preprocess(self, payload: Any) -> str | None:
        if payload is None:
            return None
        if (payload.url or "").startswith("data:"):
            try:
                return super().preprocess(payload)  # an inline base64 image: Gradio writes it to a file
            except Exception:
                raise gr.Error("The image data could not be decoded: send a PNG, JPEG, GIF, WebP, BMP or TIFF file.", print_exception=False) from None
        # Gradio checks that a file came from its upload folder only when the request marks it as a file
        # ({"path": ..., "meta": {"_type": "gradio.FileData"}}); without "meta" any server path would reach us.
        if not payload.path or not is_in_or_equal(payload.path, get_upload_folder()):
            raise gr.Error(NOT_UPLOADED, print_exception=False)
        return payload.path


class ImageFiles(FetchesPublicUrlsOnly, gr.File):
    """A gr.File for many images, under the same URL rule as ImageFile."""

    def get_block_name(self) -> str:
        return "file"


class DigitSketchpad(FetchesPublicUrlsOnly, gr.Sketchpad):
    """gr.Sketchpad under the same URL rule as ImageFile (a client can send any file as the drawing)."""

    def get_block_name(self) -> str:
        return "imageeditor"


async def _refuse_private_url(url: str) -> None:
    """gr.Error unless the URL's host resolves to a public address (or is one of the Hub's, which Gradio trusts)."""
    host = urlsplit(url).hostname or ""
    if any(host == name or (name.startswith("*.") and host.endswith(name[1:])) for name in PUBLIC_HOSTNAME_WHITELIST):
        return
    try:
        found = await asyncio.get_running_loop().getaddrinfo(host, None)
    except (OSError, UnicodeError):
        raise gr.Error(f"The image URL's host {host[:60]!r} could not be found.", print_exception=False) from None
    if not any(is_public_ip(address[4][0]) for address in found):
        raise gr.Error(f"The image URL points to this machine or a private network ({host[:60]}), which this app "
                       "does not fetch: give a public http(s) URL, or send the image itself.", print_exception=False)


class Picture(gr.Image):
    """An output gr.Image whose PIL pictures reach Gradio's cache whole, even when two requests make the same one.

    Gradio saves an output picture in place at cache/<hash of its bytes>/image.png, so when two visitors get
    the same picture at once (the same example digit), one may fetch the file while the other rewrites it,
    and receive an empty or cut-off image. Here the file is written under a temporary name and renamed into
    place, which readers never see half done.
    """

    def get_block_name(self) -> str:
        return "image"

    def postprocess(self, value: Any) -> Any:
        if isinstance(value, Image.Image):
            buffer = io.BytesIO()
            value.save(buffer, format=self.format or "png")
            data = buffer.getvalue()
            folder = Path(self.GRADIO_CACHE) / hashlib.sha256(data).hexdigest()
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"image.{self.format or 'png'}"
            if not path.exists():
                fd, staging = tempfile.mkstemp(dir=folder, prefix=".image.")
                with os.fdopen(fd, "wb") as file:
                    file.write(data)
                os.replace(staging, path)
            value = str(path)
        return super().postprocess(value)


def digit_sketchpad(label: str = "Draw a digit", **kwargs: Any) -> gr.Sketchpad:
    """A square black-ink sketchpad whose drawings reduce to MNIST-like digits."""
    return DigitSketchpad(
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


def image_from_upload(path: str | None, at_least: int | None = None) -> Image.Image:
    """An uploaded file, decoded (a big JPEG only to `at_least` pixels, see `load_image`); BadInput when
    there is none or it is not a usable image."""
    if not path:
        raise BadInput("No image was given: upload, paste or draw one first.")
    return load_image(path, at_least)


def shows_errors(fn: Callable) -> Callable:
    """Turn the logic's BadInput into a gr.Error the visitor sees (and an API client receives)."""
    if inspect.isgeneratorfunction(fn):  # a streaming handler: errors surface while it is iterated

        @functools.wraps(fn)
        def streaming(*args: Any, **kwargs: Any) -> Any:
            try:
                yield from fn(*args, **kwargs)
            except BadInput as error:
                raise gr.Error(str(error), print_exception=False) from None

        return streaming

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BadInput as error:
            raise gr.Error(str(error), print_exception=False) from None

    return wrapper
