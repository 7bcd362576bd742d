"""The Classify tab's "How good is this model?" section, rendered from a model file by a launched server."""
from __future__ import annotations

import io
import json
import urllib.request

import pytest
from PIL import Image

from conftest import serving
from dlcourse.served.modelfile import ModelInfo
from dlcourse.served.loading import load_model_file
from dlcourse.training.report_view import NO_REPORT_NOTE
from dlcourse.ui import model_report
from reportkit import tiny_model_file


def served_components(meta: dict) -> dict[str, dict]:
    """Build the section from `meta`, serve it, and return {elem_id: component config} from /config."""
    with serving(model_report.section(meta)) as url:
        with urllib.request.urlopen(url + "config", timeout=30) as response:
            config = json.load(response)
        components = {
            c["props"]["elem_id"]: c for c in config["components"]
            if str(c["props"].get("elem_id") or "").startswith("report")
        }
        # Fetch every image the page would show while the server is up.
        for component in components.values():
            value = component["props"].get("value")
            files = [value] if component["type"] == "image" else [item["image"] for item in value or []] \
                if component["type"] == "gallery" else []
            component["images"] = [_fetch_image(file["url"]) for file in files]
    return components


def _fetch_image(url: str) -> Image.Image:
    with urllib.request.urlopen(url, timeout=30) as response:
        data = response.read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data))


def test_report_renders_from_a_model_file(tmp_path):
    tiny = tiny_model_file(tmp_path / "model.pkl")
    meta, _ = load_model_file(tiny.path)  # what the app has: the file's meta, no data set
    summary = meta.report
    components = served_components(meta)

    assert components["report"]["type"] == "accordion"
    assert components["report"]["props"]["label"] == "How good is this model?"
    headline = components["report-summary"]["props"]["value"]
    assert f"Validation accuracy: {summary['accuracy']:.2%}" in headline and "on 60 validation images" in headline
    assert "report-note" not in components

    for elem_id in ("report-confusion-matrix", "report-curves"):
        assert components[elem_id]["type"] == "image"
        (image,) = components[elem_id]["images"]
        assert image.width > 200 and image.height > 200

    table = components["report-most-confused"]["props"]["value"]
    assert table["headers"] == ["actual", "predicted", "count"]
    assert table["data"] == summary["most_confused"][:20]

    gallery = components["report-top-losses"]
    assert gallery["type"] == "gallery"
    items = gallery["props"]["value"]
    assert len(items) == len(summary["top_losses"]) == 12
    for item, top, image in zip(items, summary["top_losses"], gallery["images"]):
        assert item["caption"] == f"{top['predicted']} / {top['actual']} / {top['loss']:.2f} / {top['prob_actual']:.2f}"
        assert image.size == (144, 144)  # the 24 px thumbnail, enlarged 6x for the gallery


def test_an_older_model_file_shows_its_metrics_and_history_and_says_what_is_missing(tmp_path):
    tiny = tiny_model_file(tmp_path / "old.pkl", with_report=False)
    meta, _ = load_model_file(tiny.path)
    components = served_components(meta)
    accuracy = meta.metrics["accuracy"]
    assert f"Validation accuracy: {accuracy:.2%}" in components["report-summary"]["props"]["value"]
    assert components["report-note"]["props"]["value"] == NO_REPORT_NOTE
    assert components["report-curves"]["images"][0].width > 200  # from meta.history
    for missing in ("report-confusion-matrix", "report-most-confused", "report-top-losses"):
        assert missing not in components


@pytest.mark.parametrize("metrics, headline", [
    ({}, "The model file records no validation accuracy."),
    ({"error_rate": 0.25}, "**Validation accuracy: 75.00%** on the validation set (error rate 25.00%)."),
])
def test_a_bare_model_file_shows_its_headline_and_the_note_only(metrics, headline):
    """No report and no history: the served section holds the headline and the note, and nothing else."""
    from reportkit import CLASSES

    meta = ModelInfo.from_dict({"arch": "test_resnet", "classes": CLASSES, "in_chans": 1, "img_size": 24,
                                "mean": [0.5], "std": [0.25], "preprocessing": "photo", "metrics": metrics})
    components = served_components(meta)
    assert components["report-summary"]["props"]["value"].startswith(headline + "\n\n")
    assert components["report-note"]["props"]["value"] == NO_REPORT_NOTE
    assert set(components) == {"report", "report-summary", "report-note"}
