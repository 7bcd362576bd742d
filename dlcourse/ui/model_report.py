"""The Classify tab's "How good is this model?" section, read from the model file alone.

Validation accuracy, training curves, the confusion matrix, the most confused pairs and the top
losses, as train.py recorded them in the model file's report. Everything is rendered once, when the page is
built; no request computes anything here.
"""
from __future__ import annotations

import gradio as gr

from ..served.modelfile import ModelInfo
from ..training.report_view import for_display

TITLE = "How good is this model?"
INTRO = (
    "Measured on the validation set when the model was trained (images it never learned from). "
    "The **confusion matrix** counts, for each actual class (row), what the model predicted (column); "
    "the **most confused** pairs are its commonest mistakes; the **top losses** are the validation images it "
    "got most confidently wrong, often mislabelled or ambiguous ones."
)


def section(meta: ModelInfo, *, open: bool = False) -> gr.Blocks:
    """The section as a Blocks of its own (elem_ids start with "report-"): the Classify tab renders it."""
    view = for_display(meta)
    with gr.Blocks(title=TITLE) as section:
        with gr.Accordion(TITLE, open=open, elem_id="report"):
            gr.Markdown(f"{view['headline']}\n\n{INTRO}", elem_id="report-summary")
            if view["note"]:
                gr.Markdown(view["note"], elem_id="report-note")
            if view["curves"] is not None:
                gr.Image(view["curves"], label="Training curves (per epoch)", show_label=False, format="png",
                         height=320, interactive=False, buttons=["fullscreen", "download"], elem_id="report-curves")
            if not meta.report:
                return section
            with gr.Row(equal_height=False):
                gr.Image(view["confusion_matrix"], label="Confusion matrix", show_label=False, format="png",
                         interactive=False, buttons=["fullscreen", "download"], elem_id="report-confusion-matrix")
                if view["most_confused"]:
                    gr.Dataframe(view["most_confused"], headers=["actual", "predicted", "count"],
                                 datatype=["str", "str", "number"], label="Most confused (actual → predicted)",
                                 interactive=False, elem_id="report-most-confused")
                else:
                    gr.Markdown("No validation image was misclassified.", elem_id="report-most-confused")
            if view["top_losses"]:
                gr.Gallery(view["top_losses"], label="Top losses: predicted / actual / loss / probability of actual",
                           columns=6, object_fit="contain", format="png", interactive=False,
                           elem_id="report-top-losses")
    return section
