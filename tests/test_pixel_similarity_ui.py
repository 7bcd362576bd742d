"""The Pixel similarity tab: its API endpoint through gradio_client on a served app, and its wiring."""
from __future__ import annotations

from pathlib import Path

import gradio as gr
import pytest
import timm
from gradio_client import Client, handle_file
from PIL import Image

from conftest import EXAMPLES_DIR, serving
from dlcourse.served.classifier import Classifier
from dlcourse.hub.model_repo import DEFAULT_MODEL_PATH
from dlcourse.served.modelfile import ModelInfo, save_model_file
from dlcourse.ui import pixel_similarity as ui
from support.serving import sketch_value

DIGITS_META = {
    "arch": "test_resnet", "classes": [str(d) for d in range(10)], "in_chans": 1, "img_size": 28,
    "mean": [0.13], "std": [0.31], "preprocessing": "mnist", "metrics": {"accuracy": 0.9876},
    "valid_split": "the MNIST test set (10,000 images)",
}
PHOTO_META = {**DIGITS_META, "classes": ["cat", "dog"], "in_chans": 3, "mean": [0.5] * 3, "std": [0.25] * 3,
              "preprocessing": "photo", "metrics": {"accuracy": 0.93}}


def tiny_classifier(folder: Path, meta: dict) -> Classifier:
    """A real Classifier from a real model file: a random timm `test_resnet`, described by `meta`."""
    model = timm.create_model(meta["arch"], num_classes=len(meta["classes"]), in_chans=meta["in_chans"])
    return Classifier.from_file(save_model_file(folder / "model.pkl", model.state_dict(), ModelInfo.from_dict(meta)))


def by_elem_id(demo: gr.Blocks) -> dict[str, gr.components.Component]:
    return {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}


def handler(demo: gr.Blocks, name: str):
    return next(fn.fn for fn in demo.fns.values() if fn.name == name)


@pytest.fixture(scope="module")
def digits_classifier(tmp_path_factory) -> Classifier:
    return tiny_classifier(tmp_path_factory.mktemp("digits"), DIGITS_META)


@pytest.fixture(scope="module")
def demo(baseline, digits_classifier) -> gr.Blocks:
    return ui.tab(baseline, digits_classifier)


@pytest.fixture(scope="module")
def tab_client(demo):
    with serving(demo) as url:
        yield Client(url, verbose=False)


def distances_of(plot: dict) -> list[tuple[str, float]]:
    assert plot["columns"] == ["digit", "distance"]
    return [(digit, value) for digit, value in plot["data"]]


# -- the API endpoint, as a client sees it ---------------------------------------------------------------


def test_endpoint_compares_an_mnist_3_with_the_ideal_3_and_7(tab_client, baseline):
    label, summary, plot, seen, ideal, heatmap = tab_client.predict(
        handle_file(EXAMPLES_DIR / "mnist-test-3.png"), "3 or 7", "L1", api_name="/pixel_similarity"
    )
    assert label["label"] == "3"
    distances = distances_of(plot)
    assert [digit for digit, _ in distances] == ["3", "7"] and distances[0][1] < distances[1][1]
    assert "ideal 3" in summary and f"{distances[0][1]:.4f}" in summary
    for path in (seen, ideal, heatmap):
        assert Image.open(path).size == (280, 280)
    # the ideal shown is the stored ideal 3, each pixel a 10x10 square
    shown = Image.open(ideal).convert("L").resize((28, 28), Image.Resampling.NEAREST)
    expected = (baseline.ideals[3] * 255).round().byte().numpy()
    assert abs(int(shown.getpixel((14, 14))) - int(expected[14, 14])) <= 1


def test_endpoint_ranks_all_ten_ideals_closest_first(tab_client):
    label, _, plot, *_ = tab_client.predict(
        handle_file(EXAMPLES_DIR / "mnist-test-7.png"), "all ten digits", "L2", api_name="/pixel_similarity"
    )
    distances = distances_of(plot)
    assert sorted(digit for digit, _ in distances) == [str(d) for d in range(10)]
    assert [value for _, value in distances] == sorted(value for _, value in distances)
    assert label["label"] == distances[0][0] == "7"


def test_endpoint_errors_say_what_is_wrong(tab_client, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    blank = tmp_path / "blank.png"
    Image.new("RGB", (100, 100), "white").save(blank)
    for file, message in ((notes, "not an image"), (blank, "empty: draw or upload a digit")):
        with pytest.raises(Exception, match=message):
            tab_client.predict(handle_file(file), "3 or 7", "L1", api_name="/pixel_similarity")
    with pytest.raises(Exception, match="five"):
        tab_client.predict(handle_file(EXAMPLES_DIR / "mnist-test-3.png"), "five", "L1", api_name="/pixel_similarity")


def test_api_page_shows_one_documented_endpoint(tab_client):
    api = tab_client.view_api(print_info=False, return_format="dict")
    assert set(api["named_endpoints"]) == {"/pixel_similarity", "/learn_pixels"}  # the UI-only events stay private
    endpoint = api["named_endpoints"]["/pixel_similarity"]
    assert [p["parameter_name"] for p in endpoint["parameters"]] == ["image", "mode", "distance"]
    assert len(endpoint["returns"]) == 6  # the state that remembers the last input is not part of the API
    assert "root mean squared error" in endpoint["description"] and "all ten digits" in endpoint["description"]
    choices = {p["parameter_name"]: p["python_type"]["type"] for p in endpoint["parameters"]}
    assert choices["mode"] == "Literal['3 or 7', 'all ten digits']" and choices["distance"] == "Literal['L1', 'L2']"


# -- the wiring the browser uses --------------------------------------------------------------------------


def test_an_empty_sketch_gets_a_clear_message(demo, tmp_path):
    compare_drawing = handler(demo, "compare_drawing")
    for empty in (None, {"background": None, "layers": [], "composite": None}, sketch_value(tmp_path, drawn=False)):
        with pytest.raises(gr.Error, match="empty: draw"):
            compare_drawing(empty, "3 or 7", "L1")


def test_a_drawing_is_compared_and_followed_quietly_while_drawing(demo, tmp_path):
    label, summary, frame, seen, ideal, heatmap, source = handler(demo, "compare_drawing")(
        sketch_value(tmp_path, drawn=True), "3 or 7", "L2"
    )
    assert label == "7" and source == "sketch" and list(frame["digit"]) == ["7", "3"]
    follow = handler(demo, "follow_drawing")
    assert follow(sketch_value(tmp_path, drawn=False), "3 or 7", "L2") == (*ui.NOTHING, "sketch")  # cleared: no error
    recompare = handler(demo, "recompare")
    assert recompare(None, None, None, "all ten digits", "L1") == (*ui.NOTHING, None)  # nothing shown yet: no error
    again = recompare("sketch", sketch_value(tmp_path, drawn=True), None, "all ten digits", "L2")
    assert len(again[2]) == 10 and again[-1] == "sketch"


def test_components_have_ids_for_browser_tests(demo):
    ids = set(by_elem_id(demo))
    wanted = {"pix-sketch", "pix-sketch-run", "pix-upload", "pix-run", "pix-mode", "pix-distance", "pix-prediction",
              "pix-summary", "pix-distances", "pix-seen", "pix-ideal", "pix-heatmap", "pix-ideals", "pix-accuracy",
              "pix-classifier-accuracy", "pix-explanations"}
    assert wanted <= ids, wanted - ids


def test_gallery_shows_the_ten_ideals(demo):
    gallery = by_elem_id(demo)["pix-ideals"]
    assert [item["caption"] for item in gallery.value] == [f"ideal {d}" for d in range(10)]
    first = Image.open(gallery.value[0]["image"]["path"])
    assert first.size == (112, 112)  # 28x28, each pixel 4x4


def test_accuracies_come_from_the_artifact_beside_a_digits_model(demo, baseline):
    blocks = by_elem_id(demo)
    table = blocks["pix-accuracy"].value
    assert f"{baseline.accuracy['3 or 7']['L1']:.2%}" in table and f"{baseline.accuracy['all ten digits']['L2']:.2%}" in table
    assert "2,038 test images" in table and "10,000 test images" in table and baseline.built_by in table
    assert "98.76%" in blocks["pix-classifier-accuracy"].value and "MNIST test set" in blocks["pix-classifier-accuracy"].value


def test_a_photo_model_is_said_not_to_be_a_digits_model(baseline, tmp_path):
    demo = ui.tab(baseline, tiny_classifier(tmp_path, PHOTO_META))
    text = by_elem_id(demo)["pix-classifier-accuracy"].value
    assert "not a digits model" in text and "93" not in text
    assert "records no accuracy" in ui.classifier_markdown(ModelInfo.from_dict({**DIGITS_META, "metrics": {}}))


def test_examples_are_real_mnist_digits_with_readable_labels():
    files = ui.example_files()
    assert files and all(Path(f).name.startswith("mnist-") for f in files)
    assert ui.example_label(str(EXAMPLES_DIR / "mnist-test-3.png")) == "a 3"
    assert ui.example_label("mnist-baseline-says-9-truly-4.png") == "a 4 the baseline calls 9"
    assert ui.examples_title(files) == ("Real MNIST test digits; the last 2: a 5 the baseline calls 3, "
                                         "a 4 the baseline calls 9")
    assert all("-says-" in Path(f).stem for f in files[-2:])  # the pictures show no names: the title says which


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="no default model/model.pkl yet")
def test_the_whole_space_serves_the_endpoint(client):
    label, *_ = client.predict(handle_file(EXAMPLES_DIR / "mnist-test-3.png"), "3 or 7", "L2", api_name="/pixel_similarity")
    assert label["label"] == "3"
