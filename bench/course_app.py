"""The course's own lesson-2 Space, as the lesson writes it: bench/bench_course.py serves it beside ours.

    MODEL_PATH=export.pkl .venv/bin/python bench/course_app.py

fastai's load_learner (which unpickles the whole Learner: `is_cat` must exist here, as in the lesson's app)
and learn.predict, in a gr.Interface. Only MODEL_PATH (the lesson hard-codes 'model.pkl') and the
vocabulary's order are this bench's: the lesson's categories are ('Dog', 'Cat'), is_cat's False and True.
fastai is a dev requirement; the Space never imports it.
"""
import os

from fastai.vision.all import *  # noqa: F403 - the lesson's import
import gradio as gr


def is_cat(x): return x[0].isupper()  # noqa: E704 - the lesson's label function, needed to unpickle the export


learn = load_learner(os.environ.get("MODEL_PATH", "model.pkl"))  # noqa: F405

categories = ('Dog', 'Cat')


def classify_image(img):
    pred, idx, probs = learn.predict(img)
    return dict(zip(categories, map(float, probs)))


image = gr.Image()
label = gr.Label()

intf = gr.Interface(fn=classify_image, inputs=image, outputs=label)
intf.launch(inline=False)
