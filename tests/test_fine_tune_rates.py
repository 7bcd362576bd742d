"""train.py's fine-tune against fastai's own (fastai is in the venv for tests): `vision_learner` on the same timm
arch, `fine_tune`, and every layer group's learning rate at the start and the peak of each phase, recorded
while both train on the same tiny data. fastai runs in a process of its own (this file run as a script):
importing it patches Path's repr and more."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dlcourse.served.modelfile import ModelInfo
from dlcourse.served.preprocess import create_transform
from dlcourse.training.data import load_data
from dlcourse.training.distributed import start
from dlcourse.training.learner import Learner, Recipe, create_model, input_config, phases
from trainkit import ROOT, make_image_folder

ARCH, LR, FREEZE_EPOCHS, EPOCHS, BATCH = "resnet10t", 2e-3, 1, 2, 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("shapes"), per_class=12)


class RecordingLearner(Learner):
    """A Learner noting, at every step, each layer group's learning rate and the schedule's peaks."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.phase_rates: list[dict] = []

    def train_step(self, net, optimizer, scaler, inputs, targets):
        if not self.phase_rates or self.phase_rates[-1]["optimizer"] is not optimizer:
            self.phase_rates.append({"optimizer": optimizer, "steps": []})
        by_group = {group["layer_group"]: group for group in optimizer.param_groups}
        self.phase_rates[-1]["steps"].append([by_group[i]["lr"] for i in sorted(by_group)])
        self.phase_rates[-1]["peak"] = [by_group[i]["max_lr"] for i in sorted(by_group)]
        return super().train_step(net, optimizer, scaler, inputs, targets)


def our_rates(folder, lr_mult: float) -> list[dict]:
    torch.manual_seed(0)
    data = load_data(str(folder), seed=42)
    model = create_model(ARCH, len(data.classes), 3, pretrained=False)
    meta = ModelInfo(arch=ARCH, classes=data.classes, in_chans=3, **input_config(model, 3, 32))
    recipe = Recipe(epochs=EPOCHS, freeze_epochs=FREEZE_EPOCHS, lr=LR, batch_size=BATCH, workers=0, pretrained=True,
                    lr_mult=lr_mult)
    learner = RecordingLearner(model, data.train.with_transform(create_transform(meta)),
                               data.valid.with_transform(create_transform(meta)), recipe, start("cpu"),
                               log=lambda line: None)
    learner.fit()
    return [{"start": rates["steps"][0], "peak": rates["peak"], "pct_start": phase.cycle.pct_start}
            for rates, phase in zip(learner.phase_rates, phases(recipe))]


def fastai_rates(folder, lr_mult: float) -> list[dict]:
    from fastai.callback.schedule import ParamScheduler
    from fastai.vision.all import Callback, ImageDataLoaders, Resize, vision_learner

    class Rates(Callback):
        order = ParamScheduler.order + 1  # after the scheduler has set this batch's rates

        def __init__(self):
            self.phases = []

        def before_fit(self):
            schedule = next(cb for cb in self.learn.cbs if isinstance(cb, ParamScheduler)).scheds["lr"]
            grid = np.linspace(0, 1, 10001)
            values = np.stack([schedule(pos) for pos in grid])  # (positions, groups)
            self.phases.append({"steps": [], "peak": values.max(axis=0).tolist(),
                                "pct_start": float(grid[values[:, -1].argmax()])})

        def before_batch(self):
            if self.training:
                self.phases[-1]["steps"].append([hyper["lr"] for hyper in self.opt.hypers])

    dls = ImageDataLoaders.from_folder(folder, valid_pct=0.2, seed=42, item_tfms=Resize(32), bs=BATCH, num_workers=0,
                                       device=torch.device("cpu"))
    learn = vision_learner(dls, ARCH, pretrained=False)  # timm builds the arch; nothing downloaded
    rates = Rates()
    learn.add_cb(rates)
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(EPOCHS, base_lr=LR, freeze_epochs=FREEZE_EPOCHS, lr_mult=lr_mult)
    assert len(learn.opt.param_lists) == 2  # fastai's split of a timm model: body and head
    return [{"start": phase["steps"][0], "peak": phase["peak"], "pct_start": phase["pct_start"]}
            for phase in rates.phases]


def fastai_rates_in_a_process(folder, lr_mult: float) -> list[dict]:
    run = subprocess.run([sys.executable, __file__, str(folder), str(lr_mult)], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env={**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"})
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("lr_mult", [100, 1])
def test_each_layer_groups_rate_at_start_and_peak_is_fastais(folder, lr_mult):
    ours, theirs = our_rates(folder, lr_mult), fastai_rates_in_a_process(folder, lr_mult)
    assert len(ours) == len(theirs) == 2  # the frozen phase, then the unfrozen one
    for our, their in zip(ours, theirs):
        assert our["start"] == pytest.approx(their["start"], rel=1e-9)
        assert our["peak"] == pytest.approx(their["peak"], rel=1e-9)
        assert our["pct_start"] == pytest.approx(their["pct_start"], abs=1e-4)
    body, head = ours[1]["peak"]
    assert head == pytest.approx(LR / 2) and head / body == pytest.approx(lr_mult)  # the unfrozen phase's spread


if __name__ == "__main__":  # python tests/test_fine_tune_rates.py FOLDER LR_MULT: fastai's rates, as JSON
    print(json.dumps(fastai_rates(Path(sys.argv[1]), float(sys.argv[2]))))
