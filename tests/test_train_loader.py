"""The training loader's decoding (torchvision for JPEGs, PIL for the rest; in the loader processes or on the
device), channels_last, and the opt-in torch.compile."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dlcourse.served.images import load_image
from dlcourse.served.modelfile import ModelInfo
from dlcourse.served.loading import load_model_file
from dlcourse.served.preprocess import create_transform
from dlcourse.errors import BadInput
from dlcourse.training.data import EncodedImages, ImageArrays, ImageFiles, decode_rgb
from dlcourse.training.distributed import start
from dlcourse.training.learner import Learner, Recipe, create_model, seed_everything
from dlcourse.training.transforms import default_augment
from trainkit import FAST, make_image_folder, run_train

INFO = ModelInfo(arch="test_convnext", classes=["a", "b"], in_chans=3, img_size=32, mean=[0.5] * 3, std=[0.25] * 3)


def photo(width: int = 120, height: int = 90) -> Image.Image:
    rng = np.random.default_rng(0)
    coarse = Image.fromarray((rng.random((4, 5, 3)) * 255).astype(np.uint8)).resize((width, height), Image.BICUBIC)
    return Image.fromarray((np.asarray(coarse) + rng.normal(0, 8, (height, width, 3))).clip(0, 255).astype(np.uint8))


def pil_tensor(path) -> torch.Tensor:
    return torch.from_numpy(np.array(load_image(path))).permute(2, 0, 1)


@pytest.mark.parametrize("kind", ["rgb", "exif-rotated", "gray", "cmyk", "png-with-alpha"])
def test_training_images_decode_as_the_app_decodes_them(tmp_path, kind):
    image = photo()
    path = tmp_path / ("image.png" if kind == "png-with-alpha" else "image.jpg")
    if kind == "exif-rotated":
        exif = Image.Exif()
        exif[0x0112] = 6  # the camera was turned: show rotated 90 degrees clockwise
        image.save(path, quality=90, exif=exif)
    elif kind == "gray":
        image.convert("L").save(path, quality=90)
    elif kind == "cmyk":
        image.convert("CMYK").save(path, quality=90)
    elif kind == "png-with-alpha":
        image.convert("RGBA").save(path)
    else:
        image.save(path, quality=90)

    decoded, expected = decode_rgb(path), pil_tensor(path)
    assert decoded.dtype == torch.uint8 and decoded.shape == expected.shape and decoded.shape[0] == 3
    if kind == "exif-rotated":
        assert decoded.shape[1:] == (120, 90)
    # libjpeg-turbo both ways; the two may upsample colour differently by a level or two
    assert (decoded.float() - expected.float()).abs().mean() < 2.0


def test_image_files_give_transformed_tensors_and_their_class(tmp_path):
    photo().save(tmp_path / "a.jpg", quality=90)
    photo(60, 80).save(tmp_path / "b.png")
    files = ImageFiles([tmp_path / "a.jpg", tmp_path / "b.png"], [0, 1], create_transform(INFO))
    assert [(x.shape, x.dtype, y) for x, y in files] == [((3, 32, 32), torch.float32, 0), ((3, 32, 32), torch.float32, 1)]


def tiny_learner(channels_last: bool) -> Learner:
    seed_everything(0)
    images = torch.randint(0, 255, (16, 3, 32, 32), dtype=torch.uint8)
    data = ImageArrays(images, [i % 2 for i in range(16)], create_transform(INFO))
    model = create_model("test_convnext", 2, 3, pretrained=False)
    recipe = Recipe(epochs=1, batch_size=8, workers=0, channels_last=channels_last)
    return Learner(model, data, data, recipe, start("cpu"), log=lambda line: None)


def test_channels_last_is_a_layout_not_a_different_model():
    plain, last = tiny_learner(channels_last=False), tiny_learner(channels_last=True)
    assert last.model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not plain.model.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    initial = {k: v.clone() for k, v in plain.model.state_dict().items()}
    plain.fit()
    last.fit()
    trained, reference = plain.model.state_dict(), last.model.state_dict()
    assert max((trained[k] - initial[k]).abs().max().item() for k in trained) > 1e-3
    assert max((trained[k] - reference[k]).abs().max().item() for k in trained) < 1e-4


def test_train_py_compile_trains_the_same_model_as_eager(tmp_path):
    """--compile on the CPU: torch.compile (inductor, C++) compiles the training steps of a tiny network;
    after two steps its weights are those eager mode gives, up to float rounding (eval stays eager)."""
    data = make_image_folder(tmp_path / "data", per_class=6)  # 14 training images: one step of 8 an epoch
    weights = {}
    for name, extra in (("eager", []), ("compiled", ["--compile"])):
        out = tmp_path / f"{name}.pkl"
        run = run_train(["--data", str(data), *FAST, "--arch", "test_convnext", "--epochs", "2", *extra, "--out", str(out)],
                        cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-3000:]
        weights[name] = load_model_file(out)
    (eager_info, eager), (compiled_info, compiled) = weights["eager"], weights["compiled"]
    assert compiled_info.recipe["compile"] is True and eager_info.recipe["compile"] is False
    seed_everything(42)  # as train.py does before it builds the model
    initial = create_model("test_convnext", 3, 3, pretrained=False).state_dict()
    assert max((eager[k] - initial[k]).abs().max().item() for k in eager) > 1e-3  # it trained
    assert max((compiled[k] - eager[k]).abs().max().item() for k in eager) < 1e-4


def test_decoding_on_the_device_gives_the_batches_the_loader_processes_give(tmp_path):
    """--decode device, tried on the CPU (a GPU decodes with nvJPEG): plain JPEGs travel as bytes, an
    EXIF-rotated JPEG and a PNG are decoded by the loader process; with fixed augmentation every batch
    equals the one decoding in the loader processes gives, and training runs on it."""
    paths = []
    for i in range(6):
        paths.append(tmp_path / f"plain_{i}.jpg")
        photo(100 + 10 * i, 90).save(paths[-1], quality=90)
    exif = Image.Exif()
    exif[0x0112] = 6
    paths.append(tmp_path / "rotated.jpg")
    photo().save(paths[-1], quality=90, exif=exif)
    paths.append(tmp_path / "drawing.png")
    photo(64, 64).convert("RGBA").save(paths[-1])
    fixed = default_augment("photo", crop_scale=False, flip=False, rotate=0)
    files = ImageFiles(paths, [i % 2 for i in range(len(paths))], create_transform(INFO, fixed))

    encoded = EncodedImages(files)
    assert [encoded[i][0].ndim for i in range(len(paths))] == [1] * 6 + [3, 3]  # bytes, or decoded here

    def learner(decode: str, transform_files=files) -> Learner:
        recipe = Recipe(epochs=1, batch_size=4, workers=1, decode=decode)
        return Learner(create_model("test_resnet", 2, 3, pretrained=False), transform_files, files, recipe,
                       start("cpu"), log=lambda line: None)

    workers, device = list(learner("workers").train_loader), list(learner("device").train_loader)
    assert len(workers) == len(device) == 2
    for (images, targets), (images_d, targets_d) in zip(workers, device):
        assert images.shape == (4, 3, 32, 32) and torch.equal(images, images_d) and torch.equal(targets, targets_d)

    augmented = files.with_transform(create_transform(INFO, default_augment("photo")))
    history = learner("device", augmented).fit()
    assert len(history) == 1 and history[0]["train_images_per_second"] > 0


def test_decoding_on_the_device_needs_image_files():
    data = ImageArrays(torch.zeros(4, 1, 8, 8, dtype=torch.uint8), [0, 1, 0, 1])
    with pytest.raises(BadInput, match="--decode device"):
        Learner(create_model("test_resnet", 2, 1, pretrained=False), data, data, Recipe(decode="device", workers=0),
                start("cpu"), log=lambda line: None)
