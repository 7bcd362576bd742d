"""The files of a model repo on the Hub: their names, and timm's own (`model.safetensors`, `config.json`),
which the model card and the staging both need."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..served.modelfile import ModelInfo

MODEL_FILENAME = "model.pkl"
CARD_FILENAME = "README.md"
TIMM_FILES = ("model.safetensors", "config.json")  # what timm.create_model("hf-hub:...", pretrained=True) reads
REPORT_FOLDER = "report"  # train.py's report figures, in a pushed model repo
TIMM_CROP_MODES = {"resize-crop": "center"}  # a model file's resize -> timm's crop_mode (at crop_pct 1)
# pretrained_cfg keys that describe the checkpoint training started from, not the weights pushed
SOURCE_CHECKPOINT_KEYS = ("tag", "license", "origin_url", "paper_ids", "paper_name", "notes")


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
