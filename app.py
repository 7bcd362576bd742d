"""The Space. `python app.py` serves it (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT are honoured);
`gradio app.py` serves it with reload. Artifacts load once, here, at start-up."""
import logging
import sys

from dlcourse.errors import BadInput
from dlcourse.hub.model_repo import model_file_path
from dlcourse.served.classifier import Classifier

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
# Started before Gradio is imported: a child process builds and exports the network meanwhile (its docstring).
loading = Classifier.loading(model_file_path())

from dlcourse.pixels.baseline import PixelBaseline  # noqa: E402
from dlcourse.ui.space import LAUNCH_OPTIONS, build_demo, prepare_process, return_freed_memory  # noqa: E402

prepare_process()  # threads, memory and the like for serving on a small CPU: see its docstring
try:
    classifier = loading.result()
except BadInput as error:  # an unusable model file: one line saying why, not a traceback
    sys.exit(f"error: {error}")
demo = build_demo(classifier, PixelBaseline.load())
return_freed_memory()  # what start-up freed: see its docstring

if __name__ == "__main__":
    demo.launch(**LAUNCH_OPTIONS)
