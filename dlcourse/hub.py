"""The model on the Hub: where the app's model file comes from (MODEL_REPO, else MODEL_PATH), and what a push
uploads: the model file, timm's own files (model.safetensors, config.json) and the model card.

    python -m dlcourse.hub stage MODEL_FILE DIR [--repo USER/NAME] [--report-dir DIR]   # the files, no network
    python -m dlcourse.hub push MODEL_FILE USER/NAME [--report-dir DIR]                 # the same files, uploaded
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .served.modelfile import ModelInfo

DEFAULT_MODEL_PATH = Path(__file__).resolve().parent.parent / "model" / "model.pkl"
MODEL_FILENAME = "model.pkl"
CARD_FILENAME = "README.md"
TIMM_FILES = ("model.safetensors", "config.json")  # what timm.create_model("hf-hub:...", pretrained=True) reads
REPORT_FOLDER = "report"  # train.py's report figures, in a pushed model repo
TIMM_CROP_MODES = {"resize-crop": "center"}  # a model file's resize -> timm's crop_mode (at crop_pct 1)
# pretrained_cfg keys that describe the checkpoint training started from, not the weights pushed
SOURCE_CHECKPOINT_KEYS = ("tag", "license", "origin_url", "paper_ids", "paper_name", "notes")

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
    from .errors import BadInput
    from .served.modelfile import load_model_file

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
    from .errors import BadInput
    from .served.fastai_export import looks_like_export
    from .served.modelfile import build_model, load_model_file, save_model_file

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
        from .report import write_report

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


def timm_cannot_load(info: ModelInfo) -> str | None:
    """Why `timm.create_model(..., pretrained=True)` could not rebuild this model from config.json; None when it can."""
    if info.body != "timm" or info.head.get("kind") != "timm":
        return (f"its network is a {info.body} body under a {info.head.get('kind')} head ({info.origin}), "
                "which timm.create_model cannot build from an architecture name")
    if info.resize not in TIMM_CROP_MODES:
        return f"its images are resized by {info.resize!r}, which timm's data config cannot describe"
    return None


def write_timm_files(model, info: ModelInfo, folder: Path) -> None:
    """model.safetensors and config.json as timm writes them (`timm.models.save_for_hf`), with the model file's
    classes and preprocessing: input size and channels, mean, std, bilinear resize of the short side, centre crop."""
    from timm.models import save_for_hf

    data_config = {"input_size": (info.in_chans, info.img_size, info.img_size), "mean": tuple(info.mean),
                   "std": tuple(info.std), "interpolation": "bilinear", "crop_pct": 1.0,
                   "crop_mode": TIMM_CROP_MODES[info.resize]}
    save_for_hf(model, folder, model_config={"label_names": list(info.classes)}, safe_serialization=True,
                data_config=data_config)
    config_path = folder / "config.json"
    config = json.loads(config_path.read_text())
    for key in SOURCE_CHECKPOINT_KEYS:
        config["pretrained_cfg"].pop(key, None)
    config_path.write_text(json.dumps(config, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """`stage MODEL_FILE DIR`: write what a push uploads; `push MODEL_FILE USER/NAME`: upload it."""
    import argparse

    from .errors import BadInput

    parser = argparse.ArgumentParser(prog="python -m dlcourse.hub", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    staging = commands.add_parser("stage", help="write into DIR exactly the files a push uploads (no network)")
    staging.add_argument("model_file")
    staging.add_argument("dir", help="a new or empty folder")
    staging.add_argument("--repo", default="", metavar="USER/NAME", help="the repo the model card names")
    pushing = commands.add_parser("push", help="upload those files to a Hub model repo (created if needed)")
    pushing.add_argument("model_file")
    pushing.add_argument("repo", metavar="USER/NAME")
    for command in (staging, pushing):
        command.add_argument("--report-dir", metavar="DIR",
                             help="the report figures to include (train.py's reports/<model>/); default: redrawn "
                                  "from the model file's own report")
    args = parser.parse_args(argv)
    report_files = None
    if args.report_dir:
        from .report import FILES

        report_files = {name: Path(args.report_dir) / file for name, file in FILES.items()
                        if (Path(args.report_dir) / file).is_file()}
    try:
        if args.command == "stage":
            for name in stage(args.model_file, args.dir, args.repo, report_files):
                print(Path(args.dir) / name)
        else:
            print(push_to_hub(args.repo, args.model_file, report_files=report_files))
    except BadInput as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
