"""The model card (the README.md of a pushed model repo), its "Use with timm" part and its share of the
validation report, in Markdown (train.py writes the report with `dlcourse.training.report`; the app shows it with
`dlcourse.training.report_view`; `dlcourse.hub` stages and uploads the card)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..training import interpretation
from .repo_layout import MODEL_FILENAME, timm_cannot_load

if TYPE_CHECKING:
    from ..served.modelfile import ModelInfo


def model_card(meta: ModelInfo, repo_id: str = "", report_files: dict[str, str] | None = None) -> str:
    """The README.md of a pushed model repo: what it is, how it was trained, how well it does.

    With meta.report, the validation report too (most confused, per class, top losses), and the
    figures `report_files` names ({"confusion_matrix": "report/confusion_matrix.png", ...})."""
    metrics = meta.metrics
    classes = meta.classes
    shown = ", ".join(f"`{c}`" for c in classes[:40]) + (f" and {len(classes) - 40} more" if len(classes) > 40 else "")
    with_timm = timm_cannot_load(meta) is None  # else no library the Hub knows loads it: no "Use in timm" button
    lines = [
        "---",
        *(["library_name: timm"] if with_timm else []),
        "pipeline_tag: image-classification",
        "tags:",
        "- image-classification",
        *(["- timm"] if with_timm else []),
        "- fastai-course",
        "---",
        "",
        f"# {repo_id.split('/')[-1] or meta.arch}",
        "",
        (f"A `{meta.arch}` image classifier ({len(classes)} classes) trained with `train.py` of the "
         "*Practical Deep Learning, hands on* Space, on " + (meta.trained_on or "its own data") + "."
         if meta.made_here else
         f"A `{meta.arch}` image classifier ({len(classes)} classes) from a {meta.origin}, converted for the "
         "*Practical Deep Learning, hands on* Space."),
        "",
        "| | |",
        "| --- | --- |",
        f"| validation accuracy | {meta.accuracy if meta.accuracy is not None else float('nan'):.4f} |",
        f"| validation error rate | {metrics.get('error_rate', float('nan')):.4f} |",
        f"| validation loss | {metrics.get('valid_loss', float('nan')):.4f} |",
        *([f"| kept weights | {meta.kept} |"] if meta.kept else []),
        f"| validation set | {meta.valid_split or ''} ({meta.valid_size or '?'} images) |",
        f"| training images | {meta.train_size or '?'} |",
        f"| architecture | `{meta.arch}` ({'pretrained' if meta.pretrained else 'from scratch'}) |",
        f"| input | {meta.in_chans} channel(s), {meta.img_size} px, preprocessing `{meta.preprocessing}` |",
        f"| made with | {meta.origin} |",
        f"| created | {meta.created or ''} |",
        "",
        f"Classes: {shown}.",
        "",
    ]
    history = meta.history
    if history:
        lines += ["## Training", "", "| epoch | phase | train_loss | valid_loss | error_rate | seconds |",
                  "| --- | --- | --- | --- | --- | --- |"]
        lines += [
            f"| {h['epoch']} | {h.get('phase', '')} | {h['train_loss']:.4f} | {h['valid_loss']:.4f} | "
            f"{h['error_rate']:.4f} | {h['seconds']:.0f} |"
            for h in history
        ]
        lines.append("")
    if meta.command:
        lines += ["Trained with:", "", "```", meta.command, "```", ""]
    if meta.report:
        lines.append(model_card_section(meta.report, classes, report_files))
    lines += timm_usage(meta, repo_id)
    lines += [
        "## Use in the Space",
        "",
        f"Serve it in the Space by setting the variable `MODEL_REPO={repo_id or '<this repo>'}`. In Python:",
        "",
        "```python",
        "from huggingface_hub import hf_hub_download",
        "from dlcourse.served.classifier import Classifier",
        "",
        f"classifier = Classifier.from_file(hf_hub_download({repo_id or '<this repo>'!r}, {MODEL_FILENAME!r}))",
        "print(classifier.predict(image))  # a PIL image",
        "```",
        "",
        f"`{MODEL_FILENAME}` holds only tensors and plain values: it loads with `torch.load(weights_only=True)`.",
        "",
    ]
    return "\n".join(lines)


def timm_usage(info: ModelInfo, repo_id: str = "") -> list[str]:
    """The model card's "Use with timm" section: the code that loads and runs the model, or why timm cannot."""
    why_not = timm_cannot_load(info)
    if why_not:
        return ["## Use with timm", "",
                f"timm cannot load this model alone: {why_not}. So this repo has no `config.json` or "
                f"`model.safetensors` for timm; load `{MODEL_FILENAME}` with this project's `Classifier` (below).", ""]
    mode, picture = ("L", "digit.png") if info.in_chans == 1 else ("RGB", "picture.jpg")
    lines = ["## Use with timm", "",
             f"`model.safetensors` and `config.json` are timm's own format: timm builds the network ({info.in_chans} "
             f"input channel{'s' if info.in_chans > 1 else ''}, {len(info.classes)} classes), loads the weights and "
             f"knows the preprocessing ({info.img_size} px, its mean and std) and the class names.", ""]
    if info.preprocessing == "mnist":
        lines += ["It reads MNIST-style digits: white on black, the digit fitted into 20x20 and centred in 28x28. "
                  "The Space turns any picture of a digit into one first (`dlcourse.served.images.to_mnist_digit`); "
                  "with timm alone, give it such a digit.", ""]
    lines += [
        "```python",
        "import timm",
        "import torch",
        "from PIL import Image",
        "",
        f'model = timm.create_model("hf-hub:{repo_id or "<this repo>"}", pretrained=True).eval()',
        "transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))",
        f'image = Image.open("{picture}").convert("{mode}")',
        "with torch.inference_mode():",
        "    probabilities = model(transform(image).unsqueeze(0)).softmax(dim=1)[0]",
        'top5 = sorted(zip(probabilities.tolist(), model.pretrained_cfg["label_names"]), reverse=True)[:5]',
        "print(top5)",
        "```",
        "",
    ]
    return lines


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
