"""Makes export.pkl and predictions.json here with fastai 2.7 (its fastcore.transform layout, which fastai 2.8
itself cannot load). fastai 2.7 is not a requirement of this project; to remake the files:

    pip download --no-deps -d /tmp/fa27 fastai==2.7.19 fastcore==1.7.29 fastprogress==1.0.3
    for w in /tmp/fa27/*.whl; do python -m zipfile -e "$w" /tmp/fa27/site; done
    PYTHONPATH=/tmp/fa27/site .venv/bin/python tests/data/fastai-2.7/make.py
"""
import json
from pathlib import Path

import numpy as np
from fastai.vision.all import ImageDataLoaders, Normalize, Resize, get_image_files, imagenet_stats, vision_learner
from PIL import Image

HERE = Path(__file__).resolve().parent


def is_cat(name: str) -> bool:
    return name[0].isupper()


rng = np.random.default_rng(27)
for i in range(6):
    pixels = (rng.random((30 + 6 * i, 52 - 4 * i, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(HERE / f"{'Cat' if i % 2 else 'dog'}_{i}.png")
images = sorted(HERE.glob("*.png"))
dls = ImageDataLoaders.from_name_func(HERE, images, label_func=is_cat, valid_pct=0.34, seed=42, bs=2, num_workers=0,
                                      item_tfms=Resize(24, method="squish"),
                                      batch_tfms=[Normalize.from_stats(*imagenet_stats)])
learn = vision_learner(dls, "test_resnet", pretrained=False, lin_ftrs=[8])
learn.export(HERE / "export.pkl")
import fastai

(HERE / "predictions.json").write_text(json.dumps({
    "fastai": fastai.__version__, "vocab": [str(v) for v in learn.dls.vocab],
    "probs": {path.name: learn.predict(path)[2].tolist() for path in images}}, indent=1) + "\n")
