"""The Space. `python app.py` serves it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured);
`gradio app.py` serves it with reload. Artifacts load once, here, at start-up."""
import ctypes
import logging

import torch

from dlcourse.classifier import Classifier
from dlcourse.hub import model_file_path
from dlcourse.pixel_similarity import PixelBaseline
from dlcourse.ui.space import LAUNCH_OPTIONS, build_demo

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

# Serving on a small CPU (a Space has 2 cores), as measured with bench/load.py (see the README):
# - one torch thread per request: requests already run side by side (the queue's concurrency limits), and
#   two OpenMP threads per request on two busy cores spin against each other (a batch of 64 digits took
#   560 ms with 2 threads, 87 ms with 1; one digit 19-460 ms against 4 ms).
# - two malloc arenas: glibc otherwise gives every request thread an arena of its own, each keeping freed
#   memory; the server's resident memory grew ~130 MB over 600 requests after warm-up, ~25 MB with two.
torch.set_num_threads(1)
try:
    ctypes.CDLL("libc.so.6").mallopt(-8, 2)  # M_ARENA_MAX
except (OSError, AttributeError):
    pass  # not glibc: nothing to set

demo = build_demo(Classifier.from_file(model_file_path()), PixelBaseline.load())

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)
