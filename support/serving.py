"""Real Gradio servers on localhost for tests and benchmarks: free ports, serving a Blocks as app.py does,
and the value a sketchpad sends."""
from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    import gradio as gr

ROOT = Path(__file__).resolve().parent.parent
MNIST_DIR = ROOT / "data" / "mnist"
EXAMPLES_DIR = ROOT / "examples"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(demo: gr.Blocks) -> Iterator[str]:
    """Launch a Blocks (the Space, or one of its tabs alone) on a free localhost port with the Space's queue,
    as app.py launches the Space; yield its URL; close it afterwards."""
    from dlcourse.ui.space import LAUNCH_OPTIONS, prepare_process, queued

    prepare_process()  # the process settings app.py serves with (torch threads, Gradio sessions, malloc)
    port = free_port()
    queued(demo).launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        **LAUNCH_OPTIONS)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def sketch_value(folder: Path, drawn: bool = True, digit: Path = EXAMPLES_DIR / "mnist-test-7.png") -> dict:
    """What a sketchpad sends: a 280x280 RGBA PNG, transparent, with `digit` in black strokes when `drawn`."""
    from PIL import Image

    canvas = Image.new("RGBA", (280, 280), (0, 0, 0, 0))  # what an untouched sketchpad sends
    if drawn:
        ink = Image.open(digit).convert("L").resize((200, 200))
        canvas.paste(Image.new("RGBA", (200, 200), (0, 0, 0, 255)), (40, 40), ink)  # as a brush would leave it
    path = Path(folder) / f"sketch-{drawn}.png"
    canvas.save(path)
    return {"background": None, "layers": [], "composite": str(path)}
