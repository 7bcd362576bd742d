"""Make real fastai exports, as a student's notebook would, and what learn.predict says about test images.

    python tests/fastai_exports.py OUT_DIR

Run in a subprocess of its own: `is_cat` and the other label functions exist only here, as in a notebook,
so the process that serves the files cannot have them. No training (the file layout is the point): random
weights, seconds each. Writes OUT_DIR/<name>.pkl and OUT_DIR/predictions.json
({name: {"vocab": [...], "probs": {image file: [p, ...]}}}), test images in OUT_DIR/images/.
"""
from __future__ import annotations

import json
import pathlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from fastai.tabular.all import Categorify, TabularDataLoaders, tabular_learner
from fastai.text.all import AWD_LSTM, get_text_classifier
from fastai.vision.all import (AdaptiveConcatPool2d, CrossEntropyLossFlat, DataBlock, DataLoaders, Flatten,
                               ImageBlock, ImageDataLoaders, Learner, MultiCategoryBlock, Normalize, RandomResizedCrop,
                               RandomSplitter, Resize, aug_transforms, create_vision_model, get_image_files,
                               error_rate, imagenet_stats, resnet18, vision_learner)
from huggingface_hub.fastai_utils import _save_pretrained_fastai
from torch import nn


def is_cat(name: str) -> bool:
    """The course's lesson-2 label function: cat photos have capitalised file names."""
    return name[0].isupper()


class WindowsStylePath(pathlib.PosixPath):
    """A path that pickles as pathlib.WindowsPath, as learn.path does in an export made on Windows."""

    def __reduce__(self):
        return pathlib.WindowsPath, ("C:\\Users\\student\\course\\bears",)


def make_images(folder: Path) -> list[Path]:
    """Small random photos of varied shapes (wide, tall, square): cats capitalised, as in the course."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        width, height = 40 + 7 * i, 30 + 5 * (11 - i)
        name = ("Cat" if i % 2 else "dog") + f"_{i}." + ("jpg" if i % 3 else "png")
        pixels = (rng.random((height, width, 3)) * 255).astype(np.uint8)
        pixels[: height // 2] //= 2 + i % 3  # some structure, so classes and positions matter
        paths.append(folder / name)
        Image.fromarray(pixels).save(paths[-1])
    return paths


def image_dls(images: Path, item_tfms, augment=None) -> DataLoaders:
    return ImageDataLoaders.from_name_func(
        images, get_image_files(images), valid_pct=0.25, seed=42, label_func=is_cat, item_tfms=item_tfms,
        batch_tfms=[*(augment or aug_transforms()), Normalize.from_stats(*imagenet_stats)], bs=4, num_workers=0)


def main(out: Path) -> None:
    images = out / "images"
    paths = make_images(images)
    learners = {
        "resnet18_crop": vision_learner(image_dls(images, Resize(32)), resnet18, pretrained=False),
        "lesson_224": vision_learner(image_dls(images, Resize(224)), resnet18, pretrained=False),  # as lesson 2 trains it
        "resnet18_pad": vision_learner(image_dls(images, Resize(40, method="pad", pad_mode="zeros")), resnet18,
                                       pretrained=False, lin_ftrs=[64], ps=0.3),
        "resnet18_rrc": vision_learner(image_dls(images, RandomResizedCrop(32, min_scale=0.5)), resnet18,
                                       pretrained=False),
        # the course's presizing: a big item Resize, then aug_transforms(size=...) resamples the batch
        "presize_rrc": vision_learner(image_dls(images, Resize(80), aug_transforms(size=32, min_scale=0.75)), resnet18,
                                      pretrained=False),
        "presize_affine": vision_learner(image_dls(images, Resize(80), aug_transforms(size=24)), resnet18,
                                         pretrained=False),
        "timm_squish": vision_learner(
            ImageDataLoaders.from_name_re(images, get_image_files(images), pat=r"^(\w+)_\d+", valid_pct=0.25,
                                          seed=42, item_tfms=Resize(36, method="squish"), bs=4, num_workers=0,
                                          batch_tfms=[Normalize.from_stats(*imagenet_stats)]),
            "resnet10t", pretrained=False, metrics=error_rate),
    }
    learners["timm_squish"].fit(1)  # one epoch, so the export carries the recorder's last validation figures
    learners["windows_path"] = vision_learner(image_dls(images, Resize(32)), resnet18, pretrained=False)
    learners["windows_path"].path = WindowsStylePath(out)
    for name, learn in learners.items():
        learn.export(out / f"{name}.pkl")  # before predict, which clears the recorder's last figures
    predictions = {name: {"vocab": [str(v) for v in learn.dls.vocab],
                          "probs": {p.name: learn.predict(p)[2].tolist() for p in paths}}
                   for name, learn in learners.items()}
    (out / "predictions.json").write_text(json.dumps(predictions))

    # push_to_hub_fastai's own layout (model.pkl, README.md, pyproject.toml), as a Hub repo holds it.
    _save_pretrained_fastai(learners["resnet18_crop"], out / "hub_repo")

    # What cannot be served, each as fastai makes it.
    unknown = vision_learner(image_dls(images, Resize(32)), "resnet10t", pretrained=False)
    unknown.arch = "resnet10t_from_a_newer_timm"
    unknown.export(out / "unknown_timm_arch.pkl")
    multi = vision_learner(
        DataBlock(blocks=(ImageBlock, MultiCategoryBlock), get_items=get_image_files, item_tfms=Resize(32),
                  get_y=lambda path: [path.name[0], "photo"], splitter=RandomSplitter(0.25, seed=42),
                  ).dataloaders(images, bs=4, num_workers=0),
        resnet18, pretrained=False)
    multi.export(out / "multi_label.pkl")
    head = nn.Sequential(AdaptiveConcatPool2d(), Flatten(), nn.Linear(1024, 2), nn.Sigmoid())
    vision_learner(image_dls(images, Resize(32)), resnet18, pretrained=False, custom_head=head).export(
        out / "custom_head.pkl")
    custom_body = Learner(image_dls(images, Resize(32)), create_vision_model(resnet18, 2, pretrained=False, cut=-3))
    custom_body.arch = resnet18  # as vision_learner records it (its own `cut` argument does not reach the body)
    custom_body.export(out / "custom_body.pkl")
    frame = pd.DataFrame({"size": np.arange(20.0), "colour": ["red", "blue"] * 10, "label": ["a", "b"] * 10})
    tabular_learner(TabularDataLoaders.from_df(frame, procs=[Categorify], y_names="label", cat_names=["colour"], cont_names=["size"],
                                               bs=4, num_workers=0)).export(out / "tabular.pkl")
    text = Learner(image_dls(images, Resize(32)), get_text_classifier(AWD_LSTM, 10, 2), loss_func=CrossEntropyLossFlat())
    text.export(out / "text.pkl")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
