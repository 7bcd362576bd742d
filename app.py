"""The Space. `python app.py` serves it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured);
`gradio app.py` serves it with reload. Artifacts load once, here, at start-up."""
import logging

from dlcourse.classifier import Classifier
from dlcourse.hub import model_file_path
from dlcourse.pixel_similarity import PixelBaseline
from dlcourse.ui.space import LAUNCH_OPTIONS, build_demo, prepare_process

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

prepare_process()  # threads, memory and the like for serving on a small CPU: see its docstring
demo = build_demo(Classifier.from_file(model_file_path()), PixelBaseline.load())

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)
