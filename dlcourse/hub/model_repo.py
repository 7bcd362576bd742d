"""The model on the Hub: where the app's model file comes from (MODEL_REPO, else MODEL_PATH), and what a push
uploads: the model file, timm's own files (model.safetensors, config.json) and the model card.

    python -m dlcourse.hub stage MODEL_FILE DIR [--repo USER/NAME] [--report-dir DIR]   # the files, no network
    python -m dlcourse.hub push MODEL_FILE USER/NAME [--report-dir DIR]                 # the same files, uploaded
"""
from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .repo_layout import CARD_FILENAME, MODEL_FILENAME, REPORT_FOLDER, TIMM_FILES, timm_cannot_load, write_timm_files

if TYPE_CHECKING:
    from ..served.modelfile import ModelInfo

DEFAULT_MODEL_PATH = Path(__file__).resolve().parents[2] / "model" / "model.pkl"
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


def push_to_hub(repo_id: str, model_path: str | Path, token: str | None = None,
                report_files: dict[str, Path] | None = None) -> str:
    """Create the model repo `repo_id` if needed and upload, in one commit, exactly the files `stage` writes;
    the repo's URL. BadInput, in one line, for a missing token or any Hub failure.

    `report_files` ({name: local path}, from train.py's report) go to the repo's report/ folder and
    their figures into the model card."""
    from ..errors import BadInput
    from ..served.loading import load_model_file

    token = token or hub_token()
    if not token:
        raise BadInput(
            f"--push-to-hub {repo_id}: no Hugging Face token (set HF_TOKEN or run `hf auth login`). "
            f"The model file is kept at {model_path}."
        )
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    info, _ = load_model_file(model_path)
    with tempfile.TemporaryDirectory(prefix="dlcourse-push-") as folder:
        staged = stage(model_path, folder, repo_id, report_files)
        api = HfApi(token=token)
        try:
            url = api.create_repo(repo_id, repo_type="model", exist_ok=True)
            # An earlier push's timm files or figures that this one lacks would describe another model.
            stale = [name for name in api.list_repo_files(repo_id) if name not in staged
                     and (name in TIMM_FILES or name.startswith(f"{REPORT_FOLDER}/"))]
            api.create_commit(
                repo_id,
                [CommitOperationAdd(path_in_repo=name, path_or_fileobj=str(Path(folder) / name)) for name in staged]
                + [CommitOperationDelete(path_in_repo=name) for name in stale],
                commit_message=f"Upload {MODEL_FILENAME} ({info.arch}, accuracy {info.accuracy or 0:.4f})",
            )
        except Exception as error:  # unreachable Hub, bad token, no rights, bad repo name: all said in one line
            detail = " ".join(str(error).split())[:300]
            raise BadInput(
                f"--push-to-hub {repo_id} failed ({type(error).__name__}: {detail}). The model file is kept at {model_path}."
            ) from None
    return str(url)


def stage(model_path: str | Path, folder: str | Path, repo_id: str = "",
          report_files: dict[str, Path] | None = None) -> list[str]:
    """Write into `folder` (new or empty) exactly what a push uploads; their names in the repo, sorted.

    model.pkl (the file itself; a fastai export converted to this project's format), model.safetensors and
    config.json in timm's own layout when timm can build the network alone, README.md (the model card), and
    report/ with `report_files`, or with the figures redrawn from the file's own report summary."""
    from ..errors import BadInput
    from ..served.fastai_export import looks_like_export
    from ..served.modelfile import build_model, save_model_file
    from ..served.loading import load_model_file

    info, state_dict = load_model_file(model_path)
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise BadInput(f"{folder} is not an empty folder: staging writes exactly the files a push uploads, "
                       "so it needs a new or empty one.")
    folder.mkdir(parents=True, exist_ok=True)
    if looks_like_export(model_path):  # a fastai export: uploaded in this project's weights-only format
        save_model_file(folder / MODEL_FILENAME, state_dict, info)
    else:
        shutil.copyfile(model_path, folder / MODEL_FILENAME)
    if timm_cannot_load(info) is None:
        write_timm_files(build_model(info, state_dict), info, folder)
    if report_files is None and info.report:
        from ..training.report import write_report

        report_files = write_report(folder / REPORT_FOLDER, info, info.report)
    in_repo = {}
    for name, path in (report_files or {}).items():
        in_repo[name] = f"{REPORT_FOLDER}/{Path(path).name}"
        if Path(path).resolve() != (folder / in_repo[name]).resolve():
            (folder / REPORT_FOLDER).mkdir(exist_ok=True)
            shutil.copyfile(path, folder / in_repo[name])
    from .model_card import model_card

    (folder / CARD_FILENAME).write_text(model_card(info, repo_id, in_repo), encoding="utf-8")
    return sorted(path.relative_to(folder).as_posix() for path in folder.rglob("*") if path.is_file())
