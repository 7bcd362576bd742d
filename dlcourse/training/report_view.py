"""The app's side of a model's validation report: what the Classify tab's "How good is this model?" section
shows, read from the model file alone (train.py writes the report with `dlcourse.training.report`; the Hub's model
card reads it in `dlcourse.hub.model_card`)."""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from PIL import Image

from . import interpretation, plots
from ..served.modelfile import ModelInfo


DISPLAY_PX = 128  # top-loss thumbnails are enlarged (nearest neighbour) to at least this for the gallery
NO_REPORT_NOTE = (
    "This model file carries no validation report (it was written before reports existed), so only its "
    "metrics and training history are shown. Retrain with `python train.py` to see its confusion matrix, "
    "most confused classes and top losses."
)


def for_display(meta: ModelInfo, max_pairs: int = 20) -> dict[str, Any]:
    """Everything the app's "How good is this model?" section shows, from a model file's meta alone.

    {"headline": markdown, "note": markdown or None, "confusion_matrix": RGB array or None,
     "curves": RGB array or None, "most_confused": [[actual, predicted, count]],
     "top_losses": [(RGB array, caption)]}. Figures are rendered here, once.
    """
    classes = list(meta.classes)
    summary = meta.report or None
    view: dict[str, Any] = {"note": None if summary else NO_REPORT_NOTE, "confusion_matrix": None, "curves": None,
                            "most_confused": [], "top_losses": []}
    accuracy, n_valid = meta.accuracy, meta.n_valid
    if accuracy is not None:
        on = f" on {n_valid:,} validation images" if isinstance(n_valid, int) else " on the validation set"
        headline = f"**Validation accuracy: {accuracy:.2%}**{on} (error rate {1 - accuracy:.2%})."
    else:
        headline = "The model file records no validation accuracy."
    if meta.valid_split:
        headline += f" Validated on {meta.valid_split}."
    if meta.kept and meta.recipe.get("keep") == "best":
        headline += f" The weights of {meta.kept}."
    suggestions = ((summary or {}).get("lr_find") or {}).get("suggestions")
    if suggestions:
        headline += " Learning-rate finder: " + ", ".join(f"{k} {v:.1e}" for k, v in suggestions.items()) + "."
    view["headline"] = headline

    curves = (summary or {}).get("curves") or interpretation.curves(meta.history)
    if curves and any(curves.values()):
        view["curves"] = plots.to_array(plots.curves_figure(curves))
    if not summary:
        return view
    title = f"Confusion matrix\n{n_valid:,} validation images, accuracy {accuracy:.2%}"
    view["confusion_matrix"] = plots.to_array(plots.confusion_matrix_figure(summary["confusion_matrix"], classes,
                                                                            title))
    view["most_confused"] = [list(pair) for pair in (summary.get("most_confused") or [])[:max_pairs]]
    images = summary.get("top_loss_images")
    if images is not None:
        for image, item in zip(images, summary.get("top_losses") or []):
            array = plots.as_hwc(image)
            picture = Image.fromarray(array)
            scale = math.ceil(DISPLAY_PX / max(picture.size))
            if scale > 1:
                picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
            caption = f"{item['predicted']} / {item['actual']} / {item['loss']:.2f} / {item['prob_actual']:.2f}"
            view["top_losses"].append((np.asarray(picture.convert("RGB")), caption))
    return view
