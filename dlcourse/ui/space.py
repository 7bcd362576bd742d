"""The whole Space: one gr.Blocks with a tab per lesson."""
from __future__ import annotations

import contextlib
import ctypes
import os
from typing import Iterator

import gradio as gr
import torch
from gradio.routes import App

from ..served.classifier import Classifier
from ..served.images import MAX_FILE_BYTES
from ..pixels.baseline import PixelBaseline
from . import classify, pixel_similarity, quadratic
from .sessions import build_session_configs_on_demand

TITLE = "Practical Deep Learning, hands on"
INTRO = (
    "Three ideas from fast.ai's *Practical Deep Learning for Coders*, to try in the browser or call from code: "
    "a fine-tuned CNN, stochastic gradient descent on a quadratic, and the pixel-similarity baseline. "
    "Every tab is also an API endpoint (see *Use via API* at the bottom of the page)."
)
# The Gradio queue: how many requests of one event run at once, and how many may wait. A Space has 2 cores
# and app.py gives each request one torch thread, so 2 of an event at once keep both cores busy; more only
# interleave on them. bench/load.py (20 clients, 600 mixed requests) measured the same throughput with 1, 2
# and 4, and its server needs ~15-25 ms of CPU a request, so 64 waiting requests are a few seconds of work: more
# would be a wait no visitor sits through. Per event: classify_batch (up to 64 images) runs one at a time.
DEFAULT_CONCURRENCY = 2
MAX_QUEUE_SIZE = 64
# How app.py (and the tests' server) launch the Space. show_error: when Gradio itself refuses a request
# before a handler runs (a path that was not uploaded, a value of the wrong type, a missing input), the
# client is told Gradio's reason instead of an error with no message. max_file_size: an upload larger than
# any image the app accepts is refused while it arrives, not stored and then refused.
# css: a 28x28 MNIST digit would show as a speck in the input boxes; show it filling the box, crisp.
# mcp_server: every public endpoint is also an MCP tool, at /gradio_api/mcp/ (Streamable HTTP), described by
# its docstring; an image is passed as a data: URL or a public http(s) URL (local and private ones are refused).
CSS = "#cls-image img, #pix-upload img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }"
# enable_monitoring: off, and with it the summary Gradio rebuilds for it after every event (see `queued`).
LAUNCH_OPTIONS = {"show_error": True, "max_file_size": MAX_FILE_BYTES, "css": CSS, "mcp_server": True,
                  "enable_monitoring": False}
# Gradio 6.31 rebuilds its monitoring dashboard's summary after every event, whether or not the dashboard is
# on: a pandas DataFrame of the last (up to 10,000) events, grouped, with percentiles, in a worker thread
# beside the next request. That is ~1 ms of CPU a request, ~5 ms once 10,000 requests are kept, and it
# slows the requests after it: without it raw-HTTP /classify fell from 10.2-10.5 to 9.5-9.8 ms p50, and
# the no-op app's from 8.2-8.5 to 6.2-6.3 ms (bench/bench_serve.py, docs/serving-speed.md). Gradio reads how
# many events apart to rebuild it from this variable, once, when the queue is made; with the dashboard off
# nothing reads the summary, so it is never rebuilt.
SUMMARY_EVERY_VARIABLE = "GRADIO_ANALYTICS_CACHE_FREQUENCY"
SUMMARY_EVERY = str(2**62)


def prepare_process() -> None:
    """Settings of the serving process, set before the first request (app.py and the tests' server call it).

    Measured on a 2-core CPU with bench/load.py and bench/bench_serve.py (see docs/serving-speed.md):
    - one torch thread per request: requests already run side by side (the queue's concurrency limits), and
      two OpenMP threads per request on two busy cores spin against each other (a batch of 64 digits took
      560 ms with 2 threads, 87 ms with 1; one digit 19-460 ms against 4 ms). ONNX Runtime, which serves the
      model, splits only a photo model's run that has the cores to itself (fast_forward.SPLIT_FROM_MS).
    - sessions that start cheap (dlcourse/ui/sessions.py): Gradio built the config of all ~190 blocks for
      every new session, which every plain-HTTP call is: 16 ms a request of the event loop's time.
    - two malloc arenas: glibc otherwise gives every request thread an arena of its own, each keeping freed
      memory; the server's resident memory grew ~130 MB over 600 requests after warm-up, ~25 MB with two.
    """
    torch.set_num_threads(1)
    build_session_configs_on_demand()
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass  # not glibc: nothing to set


def return_freed_memory() -> None:
    """Give the memory that start-up used and freed back to the system (app.py calls it before serving).

    glibc keeps freed heap memory for the process to reuse, and start-up frees much that serving never needs
    again: the ONNX export's working memory and the network it was exported from (dlcourse/served/fast_forward.py).
    For a resnet18 at 224 px the server then held ~140 MB less (bench/bench_course.py's memory rows)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to return this way


def queued(blocks: gr.Blocks) -> gr.Blocks:
    """`blocks` with the Space's queue (see DEFAULT_CONCURRENCY): the whole Space, or one tab served alone."""
    os.environ.setdefault(SUMMARY_EVERY_VARIABLE, SUMMARY_EVERY)  # read as the queue is made: see SUMMARY_EVERY
    return blocks.queue(default_concurrency_limit=DEFAULT_CONCURRENCY, max_size=MAX_QUEUE_SIZE)


@contextlib.contextmanager
def server_app_built_at_launch() -> Iterator[None]:
    """While inside, Gradio builds no server app for the Blocks made, closed or queued; `launch` builds its own.

    Gradio 6.31 builds a whole FastAPI app (~80 routes, a pydantic model for each parameter) when a Blocks is
    made, again when its `with` closes and when it is queued, and serves only the one `launch` builds. The
    Space composes six Blocks (each tab and section is a Blocks of its own), so it built 13 apps it threw away:
    2.0-2.3 s of build_demo's 4.3-5.9 s on two busy cores. Nothing reads a Blocks' app before it is launched
    (the queue reads the launched Blocks' own), so inside this the Blocks' `app` is None until then."""
    gradios = App.__dict__["create_app"]
    App.create_app = staticmethod(lambda blocks, *args, **kwargs: None)
    try:
        yield
    finally:
        App.create_app = gradios


def build_demo(classifier: Classifier, baseline: PixelBaseline) -> gr.Blocks:
    # Each tab is a Blocks of its own, built before the Space's opens (a Blocks built inside another is not
    # self-contained) and rendered in its gr.Tab: its components, events, API endpoints and MCP tools.
    with server_app_built_at_launch():
        tabs = [
            ("classify", classify.tab(classifier)),
            ("quadratic", quadratic.tab()),
            ("pixels", pixel_similarity.tab(baseline, classifier)),
        ]
        with gr.Blocks(title=TITLE) as demo:
            gr.Markdown(f"# {TITLE}\n{INTRO}")
            for tab_id, tab in tabs:
                with gr.Tab(tab.title, id=tab_id):
                    tab.render()
        return queued(demo)
