"""The Hub's side of a model's validation report: the model card's "How good is this model?" part, in
Markdown (train.py writes the report with `dlcourse.report`; the app shows it with `dlcourse.report_view`)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from . import interpretation


def model_card_section(summary: dict[str, Any], classes: Sequence[str], images: dict[str, str] | None = None,
                       top_n: int = 10) -> str:
    """Markdown for the model card: figures, most confused pairs, per-class accuracy, top losses.

    `images`: {"confusion_matrix": "report/confusion_matrix.png", ...}, paths as uploaded to the repo.
    """
    images = images or {}
    lines = ["## How good is this model?", ""]
    lines.append(f"On {summary['n_valid']:,} validation images: accuracy **{summary['accuracy']:.2%}** "
                 f"(error rate {summary['error_rate']:.2%}).")
    lines.append("")
    for key, alt in (("curves", "Training curves"), ("confusion_matrix", "Confusion matrix"),
                     ("top_losses", "Top losses"), ("lr_find", "Learning-rate finder")):
        if key in images:
            lines += [f"![{alt}]({images[key]})", ""]
    if "json" in images:
        lines += [f"Every figure of this report, as JSON: [{Path(images['json']).name}]({images['json']}).", ""]
    pairs = summary.get("most_confused") or []
    lines += ["### Most confused", ""]
    if pairs:
        lines += ["| actual | predicted | count |", "| --- | --- | ---: |"]
        lines += [f"| {_md(a)} | {_md(p)} | {c} |" for a, p, c in pairs[:top_n]]
    else:
        lines.append("No validation image was misclassified.")
    lines += ["", "### Per class", "", "| class | images | correct | recall | precision |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for row in interpretation.per_class(summary["confusion_matrix"], classes):
        lines.append(f"| {_md(row['class'])} | {row['n']} | {row['correct']} | {_pct(row['recall'])} | "
                     f"{_pct(row['precision'])} |")
    top = (summary.get("top_losses") or [])[:top_n]
    if top:
        lines += ["", "### Top losses", "", "| predicted | actual | loss | probability of actual |",
                  "| --- | --- | ---: | ---: |"]
        lines += [f"| {_md(t['predicted'])} | {_md(t['actual'])} | {t['loss']:.3f} | {t['prob_actual']:.3f} |"
                  for t in top]
    return "\n".join(lines) + "\n"


def _md(text: Any) -> str:
    return str(text).replace("|", "\\|")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"
