"""The Classify tab's examples come from the served model: train.py keeps a few small validation images per
class that the model gets right; the tab shows them (and the repository's digits for the default model) as
pictures, in a real browser."""
from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from playwright.sync_api import expect

from conftest import EXAMPLES_DIR, MNIST_DIR, serving
from dlcourse import mnist
from dlcourse.served.classifier import Classifier
from dlcourse.hub.model_repo import DEFAULT_MODEL_PATH
from dlcourse.served.modelfile import build_model, save_model_file
from dlcourse.served.loading import load_model_file
from dlcourse.training.data import ImageArrays
from dlcourse.training.export import EXAMPLE_SIDE, pick_examples
from dlcourse.ui import classify
from test_browser import browser, open_page  # noqa: F401 (browser: the fixture)
from trainkit import FAST, SHAPES, run_train, shape_image

BIG = 160  # the training photos' side: larger than a stored example may be


def picture(example: dict) -> Image.Image:
    pixels = example["image"].permute(1, 2, 0).numpy()
    return Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels)


def predict_with(model: torch.nn.Module):
    """`Learner.predict`'s contract, (logits, targets) over a dataset, for a model outside a Learner."""
    def predict(dataset):
        inputs, targets = dataset.tensors
        with torch.inference_mode():
            return model(inputs), targets
    return predict


@pytest.fixture(scope="module")
def shapes_model(tmp_path_factory) -> Path:
    """train.py on 160 px photos of three shapes (the shapes of trainkit, enlarged)."""
    work = tmp_path_factory.mktemp("examples")
    rng = random.Random(0)
    for shape in SHAPES:
        (work / "data" / shape).mkdir(parents=True)
        for n in range(24):
            shape_image(shape, rng).resize((BIG, BIG)).save(work / "data" / shape / f"{n}.png")
    run = run_train(["--data", str(work / "data"), *FAST, "--epochs", "3", "--out", str(work / "shapes.pkl")], cwd=work)
    assert run.returncode == 0, run.stderr[-3000:]
    return work / "shapes.pkl"


def test_train_py_keeps_small_validation_images_the_model_gets_right(shapes_model):
    examples = torch.load(shapes_model, weights_only=True)["meta"]["examples"]  # plain values and tensors
    classifier = Classifier.from_file(shapes_model)
    assert examples and len(examples) <= 2 * len(SHAPES)
    for example in examples:
        assert example["image"].dtype == torch.uint8 and example["image"].shape == (3, EXAMPLE_SIDE, EXAMPLE_SIDE)
        assert next(iter(classifier.predict(picture(example)))) == example["label"]  # as the app sees it
    labels = [example["label"] for example in examples]
    assert all(labels.count(name) <= 2 for name in SHAPES)


def test_the_default_models_picks_are_real_test_digits_it_reads_right():
    images, labels = mnist.load_split(MNIST_DIR, "test")
    valid = ImageArrays(images[:300], labels[:300])
    classifier = Classifier.from_file(DEFAULT_MODEL_PATH)
    network = build_model(*load_model_file(DEFAULT_MODEL_PATH))
    examples = pick_examples(valid, classifier.meta, predict_with(network))
    assert [example["label"] for example in examples] == [str(d) for d in range(10)] * 2  # classes take turns
    originals = {images[i].tobytes() for i in range(300)}
    for example in examples:
        assert example["image"].shape == (1, 28, 28) and example["image"].numpy().tobytes() in originals
        assert next(iter(classifier.predict(picture(example).convert("RGB")))) == example["label"]
    few = pick_examples(valid, classifier.meta, predict_with(network), limit=4)
    assert [example["label"] for example in few] == ["0", "1", "2", "3"]  # a turn each, as far as the limit goes


def test_unusable_examples_in_a_model_file_are_left_out(tmp_path):
    info, state_dict = load_model_file(DEFAULT_MODEL_PATH)
    good = {"image": torch.full((1, 28, 28), 200, dtype=torch.uint8), "label": "3"}
    info.examples = [good, {"image": torch.zeros(1, 28, 28), "label": "3"},  # not uint8
                     {"image": torch.zeros(2, 28, 28, dtype=torch.uint8), "label": "3"},  # two channels
                     {"image": torch.zeros(1, 4, 4, dtype=torch.uint8), "label": "3"},  # too small to classify
                     {"image": good["image"], "label": "bear"}, "not a dict"]
    save_model_file(tmp_path / "odd.pkl", state_dict, info)
    (path,) = classify.model_example_files(load_model_file(tmp_path / "odd.pkl")[0])
    assert re.search(r"/00-3\.png$", path) and (Image.open(path).getpixel((0, 0)) == 200)


def galleries(model_file: Path) -> dict[str, int]:
    """{elem_id: number of examples} of the Classify tab built for a model file."""
    config = classify.tab(Classifier.from_file(model_file)).config
    return {c["props"]["elem_id"]: len(c["props"]["samples"]) for c in config["components"]
            if c.get("props", {}).get("elem_id") in ("cls-examples", "cls-model-examples")}


def test_a_photo_model_without_examples_shows_no_digits(shapes_model, tmp_path):
    info, state_dict = load_model_file(shapes_model)
    assert galleries(shapes_model) == {"cls-model-examples": len(info.examples)}
    info.examples = []
    save_model_file(tmp_path / "bare.pkl", state_dict, info)
    assert galleries(tmp_path / "bare.pkl") == {}


def test_a_digits_model_shows_its_own_examples_and_the_repositorys_digits(tmp_path):
    digits = len(list(EXAMPLES_DIR.glob("*.png")))
    info, state_dict = load_model_file(DEFAULT_MODEL_PATH)
    assert [example["label"] for example in info.examples] == [str(d) for d in range(10)] * 2  # train.py's picks
    # its first ten picks are the very MNIST test digits of the repository's examples: those show once
    repeated = [example for example in info.examples
                if any(np.array_equal(classify.example_pixels(example), np.asarray(Image.open(path)))
                       for path in EXAMPLES_DIR.glob("mnist-test-*.png"))]
    assert len(repeated) == 10
    assert galleries(DEFAULT_MODEL_PATH) == {"cls-model-examples": 10, "cls-examples": digits}
    shown = classify.model_example_files(info, already_shown=classify.digit_example_files())
    assert [Path(path).name[3:] for path in shown] == [f"{d}.png" for d in range(10)]  # the other ten, in turn
    info.examples = []
    save_model_file(tmp_path / "bare.pkl", state_dict, info)
    assert galleries(tmp_path / "bare.pkl") == {"cls-examples": digits}  # without its own: the repository's digits


def test_the_served_models_examples_are_thumbnails_that_classify_as_their_class(browser, shapes_model, baseline):
    from dlcourse.ui.space import build_demo

    examples = load_model_file(shapes_model)[0].examples
    with serving(build_demo(Classifier.from_file(shapes_model), baseline)) as url:
        context, page = open_page(browser, url)
        thumbnails = page.locator("#cls-model-examples button img")
        expect(thumbnails).to_have_count(len(examples))
        expect(page.locator("#cls-model-examples")).to_contain_text("Validation images this model gets right")
        expect(page.locator("#cls-examples")).to_have_count(0)  # no MNIST digits for a shapes model
        assert not any("mnist" in (thumbnails.nth(i).get_attribute("src") or "") for i in range(len(examples)))
        for index in (0, len(examples) - 1):
            thumbnails.nth(index).click()
            expect(page.locator("#cls-label [data-testid='label-output-value']")).to_have_text(examples[index]["label"])
        context.close()


def test_both_image_tabs_show_the_repositorys_digits_as_pictures(browser, app_url):
    context, page = open_page(browser, app_url)
    expect(page.locator("#cls-examples button img")).to_have_count(len(list(EXAMPLES_DIR.glob("*.png"))))
    page.get_by_role("tab", name="Pixel similarity", exact=True).filter(visible=True).click()
    pictures = page.locator("#pix-examples button img")
    expect(pictures).to_have_count(len(list(EXAMPLES_DIR.glob("mnist-*.png"))))
    expect(page.locator("#pix-examples")).not_to_contain_text("mnist-")  # no file names
    page.locator('#pix-examples button img[src$="/mnist-test-7.png"]').click()
    expect(page.locator("#pix-prediction [data-testid='label-output-value']")).to_have_text("7")
    context.close()
