"""The pieces of the training recipe, in process: augmentations, freezing, the split, the learner's figures."""
from __future__ import annotations

import torch
from torchvision.transforms import v2

from dlcourse.served.modelfile import ModelInfo
from dlcourse.served.preprocess import eval_transform
from dlcourse.training.data import ImageArrays, random_split
from dlcourse.training.distributed import start
from dlcourse.training.learner import Learner, Recipe, create_model, freeze_body, input_config
from dlcourse.training.transforms import DIGIT_AUGMENT, PHOTO_AUGMENT, default_augment, train_transform

DIGIT_META = ModelInfo(arch="test_resnet", classes=["0", "1"], img_size=48, in_chans=1, mean=[0.45], std=[0.23])


def test_digit_augmentation_keeps_the_frame_and_never_flips():
    transform = train_transform(DIGIT_META, DIGIT_AUGMENT)
    kinds = [type(step) for step in transform.transforms]
    assert v2.RandomHorizontalFlip not in kinds and v2.RandomResizedCrop not in kinds
    assert v2.RandomAffine in kinds and v2.RandomApply in kinds  # affine moves, elastic distortion
    digit = torch.zeros(1, 28, 28, dtype=torch.uint8)
    digit[0, 6:22, 12:16] = 255  # a "1"
    torch.manual_seed(0)
    out = torch.stack([transform(digit) for _ in range(8)])
    assert out.shape == (8, 1, 48, 48) and out.dtype == torch.float32
    assert not torch.equal(out[0], out[1])  # random
    plain = eval_transform(DIGIT_META)(digit)  # same size, dtype and normalisation as validation
    assert plain.shape == out.shape[1:] and abs(out.mean().item() - plain.mean().item()) < 0.3


def test_photo_augmentation_crops_and_flips_rgb_into_the_model_channels():
    meta = ModelInfo(arch="test_resnet", classes=["a", "b"], img_size=32, in_chans=3, mean=[0.5] * 3, std=[0.25] * 3)
    transform = train_transform(meta, PHOTO_AUGMENT)
    kinds = [type(step) for step in transform.transforms]
    assert v2.RandomResizedCrop in kinds and v2.RandomHorizontalFlip in kinds
    assert transform(torch.randint(0, 255, (3, 60, 80), dtype=torch.uint8)).shape == (3, 32, 32)
    assert transform(torch.randint(0, 255, (1, 60, 80), dtype=torch.uint8)).shape == (3, 32, 32)


def test_augment_overrides():
    assert default_augment("mnist") == DIGIT_AUGMENT and default_augment("photo") == PHOTO_AUGMENT
    assert default_augment("photo", flip=False, crop_scale=False).as_dict()["crop_scale"] is None
    assert default_augment("mnist", rotate=0, elastic=None).rotate == 0
    assert default_augment("mnist", elastic=None).elastic == DIGIT_AUGMENT.elastic


def test_random_split_is_fixed_by_the_seed():
    a, b = random_split(100, 0.2, seed=42), random_split(100, 0.2, seed=42)
    assert all(torch.equal(torch.as_tensor(x), torch.as_tensor(y)) for x, y in zip(a, b))
    assert len(a[1]) == 20 and not set(a[0]) & set(a[1]) and len(set(a[0]) | set(a[1])) == 100
    assert set(random_split(100, 0.2, seed=1)[1]) != set(a[1])


def test_input_config_comes_from_the_model_unless_overridden():
    model = create_model("resnet18", 2, 3, pretrained=False)
    assert input_config(model, 3) == {"img_size": 224, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    gray = input_config(model, 1, img_size=48)
    assert gray["img_size"] == 48 and len(gray["mean"]) == 1 and abs(gray["mean"][0] - 0.449) < 1e-3


def test_frozen_phase_trains_only_the_head_and_norm_layers():
    torch.manual_seed(0)
    model = create_model("test_resnet", 2, 1, pretrained=False)
    freeze_body(model)
    for module in model.modules():
        own = list(module.parameters(recurse=False))
        expected = module is model.fc or isinstance(module, torch.nn.modules.batchnorm._BatchNorm)
        assert all(p.requires_grad == expected for p in own), module

    images = torch.randint(0, 255, (16, 28, 28), dtype=torch.uint8)
    meta = ModelInfo(arch="test_resnet", classes=["a", "b"], img_size=28, in_chans=1, mean=[0.5], std=[0.25])
    data = ImageArrays(images, [i % 2 for i in range(16)], eval_transform(meta))
    conv_before, fc_before = model.conv1[0].weight.clone(), model.fc.weight.clone()
    learner = Learner(model, data, data, Recipe(epochs=0, freeze_epochs=1, batch_size=8, workers=0), start("cpu"),
                      log=lambda line: None)
    history = learner.fit()
    assert [h["phase"] for h in history] == ["head"]
    assert torch.equal(model.conv1[0].weight, conv_before) and not torch.equal(model.fc.weight, fc_before)
    assert set(history[0]) >= {"epoch", "train_loss", "valid_loss", "error_rate", "accuracy", "seconds"}
    logits, targets = learner.predict(data)
    assert logits.shape == (16, 2) and targets.tolist() == [i % 2 for i in range(16)]
    accuracy = (logits.argmax(1) == targets).float().mean().item()
    assert abs(accuracy - history[0]["accuracy"]) < 1e-9


def test_one_cycle_warms_up_then_anneals_and_survives_phases_of_a_few_batches():
    from dlcourse.training.learner import FINAL_DIV, one_cycle

    for steps in range(1, 10):  # a frozen epoch of a tiny data set: PyTorch's OneCycleLR divided by zero here
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        scheduler = one_cycle(optimizer, 0.1, steps)
        rates = []
        for _ in range(steps):
            rates.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        if steps <= 4:
            assert rates == [0.1] * steps
        else:
            assert rates[0] < 0.1 / 10 and max(rates) > 0.09 and rates[-1] < 0.1 / FINAL_DIV * 30
