"""Where the app's model file comes from: a Hub repo (MODEL_REPO) or a local path (MODEL_PATH)."""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .modelfile import ModelInfo

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "model" / "model.pkl"
MODEL_FILENAME = "model.pkl"
REPORT_FOLDER = "report"  # train.py's report figures, in a pushed model repo

log = logging.getLogger(__name__)


def model_file_path(environ: dict[str, str] = os.environ) -> Path:
    """The model file the app serves.

    With MODEL_REPO set, the Hub copy (downloaded once, then cached); when the Hub cannot be reached,
    one log line and the local file. Otherwise MODEL_PATH, else model/model.pkl.
    """
    local = Path(environ.get("MODEL_PATH") or DEFAULT_MODEL_PATH)
    repo = environ.get("MODEL_REPO")
    if not repo:
        return local
    from huggingface_hub import hf_hub_download

    try:
        return Path(
            hf_hub_download(
                repo_id=repo, filename=MODEL_FILENAME, token=environ.get("HF_TOKEN"), endpoint=environ.get("HF_ENDPOINT")
            )
        )
    except Exception as error:  # offline, unknown repo, no file: every Hub failure falls back the same way
        log.warning("MODEL_REPO=%s could not be fetched (%s); serving the local %s", repo, type(error).__name__, local)
        return local


def hub_token(environ: dict[str, str] = os.environ) -> str | None:
    """The Hugging Face token: HF_TOKEN, else the one `hf auth login` cached; None when there is none."""
    if environ.get("HF_TOKEN"):
        return environ["HF_TOKEN"]
    from huggingface_hub import get_token

    return get_token()


def push_to_hub(repo_id: str, model_path: str | Path, meta: ModelInfo, token: str | None = None,
                report_files: dict[str, Path] | None = None) -> str:
    """Create the model repo `repo_id` if needed and upload the model file and a model card in one
    commit; the repo's URL. BadInput, in one line, for a missing token or any Hub failure.

    `report_files` ({name: local path}, from train.py's report) go to the repo's report/ folder and
    their figures into the model card."""
    from .errors import BadInput

    token = token or hub_token()
    if not token:
        raise BadInput(
            f"--push-to-hub {repo_id}: no Hugging Face token (set HF_TOKEN or run `hf auth login`). "
            f"The model file is kept at {model_path}."
        )
    from huggingface_hub import CommitOperationAdd, HfApi

    in_repo = {name: f"{REPORT_FOLDER}/{Path(path).name}" for name, path in (report_files or {}).items()}
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, repo_type="model", exist_ok=True)
        api.create_commit(
            repo_id,
            [
                CommitOperationAdd(path_in_repo=MODEL_FILENAME, path_or_fileobj=str(model_path)),
                CommitOperationAdd(path_in_repo="README.md",
                                   path_or_fileobj=model_card(meta, repo_id, in_repo).encode()),
                *(CommitOperationAdd(path_in_repo=in_repo[name], path_or_fileobj=str(path))
                  for name, path in (report_files or {}).items()),
            ],
            commit_message=f"Upload {MODEL_FILENAME} ({meta.arch}, accuracy {meta.accuracy or 0:.4f})",
        )
    except Exception as error:  # unreachable Hub, bad token, no rights, bad repo name: all said in one line
        detail = " ".join(str(error).split())[:300]
        raise BadInput(
            f"--push-to-hub {repo_id} failed ({type(error).__name__}: {detail}). The model file is kept at {model_path}."
        ) from None
    return str(url)


def model_card(meta: ModelInfo, repo_id: str = "", report_files: dict[str, str] | None = None) -> str:
    """The README.md of a pushed model repo: what it is, how it was trained, how well it does.

    With meta.report, the validation report too (most confused, per class, top losses), and the
    figures `report_files` names ({"confusion_matrix": "report/confusion_matrix.png", ...})."""
    metrics = meta.metrics
    classes = meta.classes
    shown = ", ".join(f"`{c}`" for c in classes[:40]) + (f" and {len(classes) - 40} more" if len(classes) > 40 else "")
    lines = [
        "---",
        "library_name: timm",
        "pipeline_tag: image-classification",
        "tags:",
        "- image-classification",
        "- timm",
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
        from .report import model_card_section

        lines.append(model_card_section(meta.report, classes, report_files))
    lines += [
        "## Use",
        "",
        f"Serve it in the Space by setting the variable `MODEL_REPO={repo_id or '<this repo>'}`. In Python:",
        "",
        "```python",
        "from huggingface_hub import hf_hub_download",
        "from dlcourse.classifier import Classifier",
        "",
        f"classifier = Classifier.from_file(hf_hub_download({repo_id!r}, {MODEL_FILENAME!r}))",
        "print(classifier.predict(image))  # a PIL image",
        "```",
        "",
        f"`{MODEL_FILENAME}` holds only tensors and plain values: it loads with `torch.load(weights_only=True)`.",
        "",
    ]
    return "\n".join(lines)
