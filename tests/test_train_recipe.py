"""The pieces of the training recipe, in process: transforms, augmentations, freezing, the split, the learner's figures."""
from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from dlcourse.served.modelfile import ModelInfo, save_model_file

from dlcourse.served.loading import load_model_file
from dlcourse.mnist import load_split
from dlcourse.served.augment import INK_STEPS, Augment, BrokenStrokes, EdgeClutter, Fade, StrokeWidth
from dlcourse.served.preprocess import FastaiBatchResize, NetworkInput, ResizeCrop, create_transform
from dlcourse.training.data import ImageArrays, random_split
from dlcourse.training.distributed import start
from dlcourse.training.learner import Learner, Recipe, create_model, freeze_body, input_config
from dlcourse.training.transforms import DIGIT_AUGMENT, PHOTO_AUGMENT, default_augment

DIGIT_META = ModelInfo(arch="test_resnet", classes=["0", "1"], img_size=48, in_chans=1, mean=[0.45], std=[0.23])
# A model file's description of each kind: train.py's photos (resize + centre crop on tensors), train.py's MNIST
# digits, and fastai exports (their Resize ran on the PIL image; with presizing the batch is resampled too).
DESCRIPTIONS = {
    "train.py photo": ModelInfo(arch="resnet18", classes=["a", "b"], in_chans=3, img_size=40,
                                mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
    "MNIST digit": ModelInfo(arch="resnet18", classes=["0", "1"], in_chans=1, img_size=28, mean=[0.13], std=[0.31],
                             preprocessing="mnist"),
    "fastai crop, presized": ModelInfo(arch="resnet18", classes=["a", "b"], in_chans=3, img_size=32, mean=[0.5] * 3,
                                       std=[0.25] * 3, resize="crop", presize=80),
    "fastai squish": ModelInfo(arch="resnet18", classes=["a", "b"], in_chans=3, img_size=32, mean=[0.4] * 3,
                               std=[0.2] * 3, resize="squish"),
}
# What each kind hands the transform: (C, H, W) uint8 images, RGB and grayscale (fastai's: already sized).
INPUT_SHAPES = {"train.py photo": [(3, 90, 120), (1, 90, 120), (3, 30, 200)], "MNIST digit": [(1, 28, 28), (3, 28, 28)],
                "fastai crop, presized": [(3, 80, 80), (1, 80, 80)], "fastai squish": [(3, 32, 32), (1, 32, 32)]}
NO_RANDOM_STEPS = Augment(crop_scale=None, flip=False, rotate=0, translate=0, zoom=0, shear=0, elastic=0)


def images_for(name: str) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(len(name))
    return [torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator) for shape in INPUT_SHAPES[name]]


def evaluation_by_hand(info: ModelInfo, image: torch.Tensor) -> torch.Tensor:
    """The evaluation steps read off the model description, one functional call each."""
    if info.resize == "resize-crop":
        image = F.center_crop(F.resize(image, [info.img_size], antialias=True), [info.img_size])
    image = F.to_dtype(image, torch.float32, scale=True)
    if info.presize:
        image = FastaiBatchResize(info.img_size)(image)
    if image.shape[-3] != info.in_chans:
        image = image.mean(dim=-3, keepdim=True) if info.in_chans == 1 else image.repeat(info.in_chans, 1, 1)
    return F.normalize(image, info.mean, info.std)


@pytest.mark.parametrize("name", DESCRIPTIONS)
def test_evaluation_transform_is_sizing_dtype_channels_and_normalisation(name):
    info = DESCRIPTIONS[name]
    transform = create_transform(info)
    for image in images_for(name):
        out = transform(image)
        assert out.shape == (info.in_chans, info.img_size, info.img_size) and out.dtype == torch.float32
        assert torch.equal(out, evaluation_by_hand(info, image)), image.shape


@pytest.mark.parametrize("name", DESCRIPTIONS)
def test_training_with_every_random_step_off_is_the_evaluation_transform(name):
    """Training and evaluation share their steps, so they cannot drift apart."""
    info = DESCRIPTIONS[name]
    training, evaluation = create_transform(info, NO_RANDOM_STEPS), create_transform(info)
    assert [type(step) for step in training] == [type(step) for step in evaluation]
    for image in images_for(name):
        assert torch.equal(training(image), evaluation(image))
        assert torch.equal(training(torch.stack([image, image.flip(-1)])), evaluation(torch.stack([image, image.flip(-1)])))


def test_digit_augmentation_keeps_the_frame_and_never_flips():
    transform = create_transform(DIGIT_META, DIGIT_AUGMENT)
    kinds = [type(step) for step in transform]
    assert kinds == [ResizeCrop, v2.RandomAffine, v2.RandomApply,  # affine moves, elastic distortion
                     NetworkInput]
    digit = torch.zeros(1, 28, 28, dtype=torch.uint8)
    digit[0, 6:22, 12:16] = 255  # a "1"
    torch.manual_seed(0)
    out = torch.stack([transform(digit) for _ in range(8)])
    assert out.shape == (8, 1, 48, 48) and out.dtype == torch.float32
    assert not torch.equal(out[0], out[1])  # random
    torch.manual_seed(0)
    assert torch.equal(transform(digit), out[0])  # and drawn from the seed
    plain = create_transform(DIGIT_META)(digit)  # same size, dtype and normalisation as validation
    assert plain.shape == out.shape[1:] and abs(out.mean().item() - plain.mean().item()) < 0.3


def test_photo_augmentation_crops_and_flips_rgb_into_the_model_channels():
    meta = ModelInfo(arch="test_resnet", classes=["a", "b"], img_size=32, in_chans=3, mean=[0.5] * 3, std=[0.25] * 3)
    transform = create_transform(meta, PHOTO_AUGMENT)
    kinds = [type(step) for step in transform]
    assert kinds == [v2.RandomResizedCrop, v2.RandomHorizontalFlip, v2.RandomAffine,  # the crop replaces the sizing
                     NetworkInput]
    assert transform(torch.randint(0, 255, (3, 60, 80), dtype=torch.uint8)).shape == (3, 32, 32)
    assert transform(torch.randint(0, 255, (1, 60, 80), dtype=torch.uint8)).shape == (3, 32, 32)


def test_model_files_store_the_augmentations_as_the_same_plain_dict(tmp_path):
    stored = {"crop_scale": None, "flip": False, "rotate": 10, "translate": 0.1, "zoom": 0.1, "shear": 10, "elastic": 34}
    assert DIGIT_AUGMENT.as_dict() == stored
    assert PHOTO_AUGMENT.as_dict() == {"crop_scale": [0.35, 1.0], "flip": True, "rotate": 10, "translate": 0,
                                       "zoom": 0, "shear": 0, "elastic": 0}
    info = ModelInfo(arch="test_resnet", classes=["0", "1"], img_size=28, in_chans=1, mean=[0.5], std=[0.25],
                     augment=DIGIT_AUGMENT.as_dict())
    path = save_model_file(tmp_path / "model.pkl", create_model("test_resnet", 2, 1, pretrained=False).state_dict(), info)
    assert load_model_file(path)[0].augment == stored


@pytest.fixture(scope="module")
def mnist_digit(mnist_dir) -> torch.Tensor:
    """A real MNIST test digit (a 7), (1, 28, 28) uint8, white on black."""
    return torch.from_numpy(load_split(mnist_dir, "test")[0][0].copy()).unsqueeze(0)


def draws(step: torch.nn.Module, digit: torch.Tensor, count: int = 40) -> list[torch.Tensor]:
    torch.manual_seed(0)
    return [step(digit) for _ in range(count)]


def test_stroke_width_makes_strokes_wider_or_narrower(mnist_digit):
    ink = mnist_digit > 0
    wider = narrower = 0
    for out in draws(StrokeWidth(1.0), mnist_digit):
        assert out.shape == mnist_digit.shape and out.dtype == torch.uint8
        if (out > 0).sum() > ink.sum():
            assert (out >= mnist_digit).all()  # a dilation keeps every stroke and adds around it
            wider += 1
        else:
            assert not (out > 0)[~ink].any() and (out > 0).sum() < 0.9 * ink.sum()  # an erosion takes from the strokes
            narrower += 1
    assert wider >= 10 and narrower >= 10


def test_fade_greys_the_ink_where_it_was(mnist_digit):
    for out in draws(Fade(1.0), mnist_digit):
        assert (out <= mnist_digit).all() and (out[mnist_digit > 100] > 0).all()  # the same strokes, greyer
        assert 0.3 * 255 <= out.max() <= 0.8 * 255


def test_broken_strokes_take_grains_out_of_the_ink_and_add_none(mnist_digit):
    ink = (mnist_digit > 0).sum().item()
    for out in draws(BrokenStrokes(1.0), mnist_digit):
        assert (out <= mnist_digit).all()
        assert 0.03 * ink <= ink - (out > 0).sum().item() <= 0.5 * ink


def test_edge_clutter_adds_ink_at_the_edge_and_keeps_the_digit(mnist_digit):
    inner = torch.zeros(28, 28, dtype=torch.bool)
    inner[5:-5, 5:-5] = True
    sides = set()
    for out in draws(EdgeClutter(1.0), mnist_digit):
        added = (out > mnist_digit)[0]
        assert (out >= mnist_digit).all() and added.any() and not added[inner].any()
        edges = {"top": added[0].any(), "bottom": added[-1].any(), "left": added[:, 0].any(), "right": added[:, -1].any()}
        assert any(edges.values())  # it touches the picture's edge
        sides |= {side for side, touches in edges.items() if touches}
    assert sides == {"top", "bottom", "left", "right"}


@pytest.mark.parametrize("step", INK_STEPS.values())
def test_ink_steps_happen_with_their_probability_and_repeat_with_the_seed(step, mnist_digit):
    changed = sum(not torch.equal(out, mnist_digit) for out in draws(step(0.25), mnist_digit, 400))
    assert 60 <= changed <= 140
    assert all(torch.equal(a, b) for a, b in zip(draws(step(1.0), mnist_digit), draws(step(1.0), mnist_digit)))
    assert torch.equal(step(0.0)(mnist_digit), mnist_digit)


def test_ink_steps_are_off_unless_an_augment_sets_them_and_then_vary_the_digit_before_sizing():
    """Models trained without them, and their model files, are trained and stored as they were."""
    assert all(getattr(augment, name) == 0 for augment in (NO_RANDOM_STEPS, PHOTO_AUGMENT, DIGIT_AUGMENT) for name in INK_STEPS)
    assert not set(INK_STEPS) & set(DIGIT_AUGMENT.as_dict())
    with_ink = replace(DIGIT_AUGMENT, stroke_width=0.25, fade=0.15, broken_strokes=0.1, edge_clutter=0.1)
    assert with_ink.as_dict() == DIGIT_AUGMENT.as_dict() | {"stroke_width": 0.25, "fade": 0.15, "broken_strokes": 0.1,
                                                            "edge_clutter": 0.1}
    kinds = [type(step) for step in create_transform(DIGIT_META, with_ink)]
    assert kinds == [StrokeWidth, Fade, BrokenStrokes, EdgeClutter,  # on the 28 px digit, before sizing
                     ResizeCrop, v2.RandomAffine, v2.RandomApply, NetworkInput]


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
    data = ImageArrays(images, [i % 2 for i in range(16)], create_transform(meta))
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
    from dlcourse.training.schedules import ONE_CYCLE, one_cycle

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
            assert rates[0] < 0.1 / 10 and max(rates) > 0.09 and rates[-1] < 0.1 / ONE_CYCLE.final_div_factor * 30


@pytest.mark.parametrize("pad_mode", ["zeros", "border", "reflection"])
@pytest.mark.parametrize("image_mode", ["RGB", "L"])
def test_fastai_crop_pad_pads_as_torchvision_does(pad_mode, image_mode):
    """fastai pads with torchvision's `pad`; the app pads with numpy (it does not import torchvision)."""
    from PIL import Image
    from torchvision.transforms.functional import pad

    from dlcourse.served.preprocess import NUMPY_PAD_MODES, _crop_pad

    pixels = torch.randint(0, 256, (23, 37, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    image = Image.fromarray(pixels.numpy()).convert(image_mode)
    ours = _crop_pad(image, (45, 50), (-4, -9), pad_mode, None, Image.Resampling.BILINEAR)
    theirs = pad(image, [4, 9, 4, 18], padding_mode={"zeros": "constant"}.get(pad_mode, NUMPY_PAD_MODES[pad_mode]))
    assert ours.mode == theirs.mode and ours.size == theirs.size == (45, 50)
    assert ours.tobytes() == theirs.tobytes()

