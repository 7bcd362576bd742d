"""Where the app's model file comes from: a Hub repo (MODEL_REPO) or a local path (MODEL_PATH)."""
from __future__ import annotations

import logging
import os
from pathlib import Path

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "model" / "model.pkl"
MODEL_FILENAME = "model.pkl"

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
        return Path(hf_hub_download(repo_id=repo, filename=MODEL_FILENAME, token=environ.get("HF_TOKEN")))
    except Exception as error:  # offline, unknown repo, no file: every Hub failure falls back the same way
        log.warning("MODEL_REPO=%s could not be fetched (%s); serving the local %s", repo, type(error).__name__, local)
        return local
