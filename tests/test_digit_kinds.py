"""Digits as people bring them (issue 23), through the served /classify: tight crops in both polarities, another
data set's digits as they come, every photo kind of `support/phone_photos.py` (a renderer written apart from
the pipeline), and the notes for a picture that is not one digit, in both tabs.

The pictures come from `support.digit_sources` with a seed of their own (the benchmark's is 0), from its
development digits: MNIST test digits 5000-7499 and scikit-learn digits 0-899 (`bench/digit_sources.py`
measures the same at a larger scale; the held-out digits are left to it).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import skimage.data
from scipy import ndimage
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from test_browser import browser, open_page, upload  # noqa: F401 (browser: the fixture)

from dlcourse.errors import EmptyDrawing
from dlcourse.mnist import load_split
from dlcourse.served.classifier import UNSURE_UNEVEN, _reading
from dlcourse.served.images import (DIGIT_DECODE_SIDE, MAX_DIGITS, NO_DIGIT, NO_DIGIT_NOTE, FoundDigit, find_digit,
                                    load_image)
from support import phone_photos
from support.digit_sources import POLARITIES, in_polarity, mnist_cropped, photo_cases, sklearn_cases, sklearn_digits

SEED = 23
ONE_DIGIT_KINDS = [name for name, kind in phone_photos.KINDS.items() if kind.digits == 1]


@pytest.fixture(scope="module")
def test_digits(mnist_dir):
    return load_split(mnist_dir, "test")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """Writes a case's picture to a file and gives its path (what a visitor uploads)."""
    folder = tmp_path_factory.mktemp("kinds")

    def save(case, n: int) -> str:
        path = folder / f"{n}-{abs(hash((case.source, case.kind)))}{case.suffix}"
        path.write_bytes(case.picture)
        return str(path)

    return save


def classify(client, path: str) -> dict:
    """/classify's answer; a refusal ("No digit stands out ...") as an answer with no label."""
    try:
        return client.predict(handle_file(path), api_name="/classify")
    except AppError as error:
        return {"label": None, "confidences": None, "note": str(error)}


def test_tight_crops_read_as_well_as_with_their_margin_in_both_polarities(client, test_digits, saved):
    images, labels = test_digits
    cases = mnist_cropped(images, labels, 12, SEED, held_out=False)  # 12 digits x 2 polarities x 3 enlargements
    misread = {}
    for n, case in enumerate(cases):
        answer = classify(client, saved(case, n))
        if answer["label"] != str(case.label):
            misread.setdefault(case.kind, []).append((case.label, answer["label"]))
    assert {case.kind for case in cases} >= {"white on black, x4", "dark on white, x4"}
    assert sum(map(len, misread.values())) <= 1, misread  # with their margin the model reads all 72


def test_another_data_sets_digits_are_read_as_they_come(client, saved):
    cases = sklearn_cases(12, SEED, held_out=False)  # scikit-learn's 8x8 digits and x4, both polarities
    right = sum(classify(client, saved(case, n))["label"] == str(case.label) for n, case in enumerate(cases))
    assert right >= 0.9 * len(cases), right  # 78 of 80 on the development part; with MNIST's margin 76 (docs/digits.md)


def test_digits_smaller_than_mnists_are_read_as_well_as_enlarged(client, tmp_path):
    """scikit-learn's 8 px digits as they come: their ink is found once enlarged, as an image editor enlarges them."""
    images, labels = sklearn_digits()
    chosen = range(0, 900, 6)  # 150 development digits
    right = 0
    for polarity in POLARITIES:
        for i in chosen:
            path = tmp_path / f"{i}.png"
            Image.fromarray(in_polarity(images[i], polarity)).save(path)
            right += classify(client, str(path))["label"] == str(labels[i])
    # 286 of the 300 (95%); read at 8 px, where a pixel is an eighth of the digit, 268 (89%)
    assert right >= 0.92 * 2 * len(chosen), right


@pytest.mark.parametrize("kind", ONE_DIGIT_KINDS)
def test_each_photo_kind_is_read_through_the_api(client, test_digits, saved, kind):
    images, labels = test_digits
    cases = photo_cases(images, labels, 4, SEED, held_out=False, kinds=[kind])
    answers = [classify(client, saved(case, n)) for n, case in enumerate(cases)]
    misread = [(case.label, answer["label"]) for case, answer in zip(cases, answers) if answer["label"] != str(case.label)]
    # each kind is read 80-95% of the time on the development part (docs/digits.md): here at least 3 of 4
    assert len(misread) <= 1, (kind, misread)
    noted = [answer for answer in answers if answer.get("note") and "unsure" not in answer["note"]]
    assert len(noted) <= 1, (kind, noted)  # one digit is seldom taken for several (1-3 in 20 on the development part)


def test_two_digits_are_read_as_the_larger_one_with_a_note(client, test_digits, saved):
    images, labels = test_digits
    cases = photo_cases(images, labels, 4, SEED, held_out=False, kinds=["two digits on a sticky note"])
    answers = [classify(client, saved(case, n)) for n, case in enumerate(cases)]
    # the larger digit is read 90% of the time on the development part, the note given 16 times in 20 (docs/digits.md)
    assert sum(answer["label"] == str(case.label) for case, answer in zip(cases, answers)) >= 3, answers
    assert sum("2 digits found" in (answer.get("note") or "") for answer in answers) >= 2, answers


def test_a_page_of_text_and_a_cat_get_no_confident_digit(client, test_digits, saved):
    images, labels = test_digits
    cases = photo_cases(images, labels, 3, SEED, held_out=False, kinds=["page of printed text", "cat photo"])
    confident = []
    for n, case in enumerate(cases):
        answer = classify(client, saved(case, n))
        said = answer["note"] and (answer["label"] in (None, NO_DIGIT) or "unsure" in answer["note"]
                                   or "No single digit" in answer["note"])
        if not said:  # a note in the API answer itself, and no confident digit
            confident.append((case.kind, answer))
    assert len(confident) <= 2, confident  # 70-100% of such pictures on the development part (docs/digits.md)


def test_the_api_answer_of_a_clear_digit_has_no_note(client, test_digits, tmp_path):
    images, labels = test_digits
    path = tmp_path / "digit.png"
    Image.fromarray(images[5000]).save(path)
    answer = classify(client, str(path))
    assert answer["label"] == str(labels[5000]) and answer["note"] is None
    assert answer["confidences"][0]["confidence"] >= 0.5


def side_by_side(*digits: np.ndarray, gap: int = 6) -> Image.Image:
    """MNIST digits written next to each other on white paper, each cropped to its ink."""
    crops = [digit[np.flatnonzero(digit.max(1))[0]:np.flatnonzero(digit.max(1))[-1] + 1] for digit in digits]
    height = max(crop.shape[0] for crop in crops) + 2 * gap
    row = [np.zeros((height, gap), np.uint8)]
    for crop in crops:
        row += [np.pad(crop, ((gap, height - gap - crop.shape[0]), (0, 0))), np.zeros((height, gap), np.uint8)]
    return Image.fromarray(255 - np.concatenate(row, axis=1)).resize((10 * sum(part.shape[1] for part in row), 10 * height))


def test_find_digit_counts_digits_side_by_side_and_reads_the_biggest(test_digits, classifier):
    images, labels = test_digits
    small = np.asarray(Image.fromarray(images[5001]).resize((20, 20)))
    small = np.pad(small, 4)
    found = find_digit(side_by_side(images[5000], small).convert("RGB"))
    assert found.marks == 2 and "2 digits found" in found.note
    alone = find_digit(side_by_side(images[5000]).convert("RGB"))
    assert alone.marks == 1 and alone.note is None
    assert np.corrcoef(found.pixels.ravel(), alone.pixels.ravel())[0, 1] > 0.75  # the bigger digit, not both
    assert not find_digit(side_by_side(*images[5000:5000 + MAX_DIGITS + 2]).convert("RGB")).is_digit


def test_of_two_digits_the_one_written_largest_is_read_though_it_holds_less_ink(test_digits, classifier):
    images, labels = test_digits
    one, zero = images[5005], images[5006]
    bold_small_zero = np.pad(ndimage.grey_dilation(np.asarray(Image.fromarray(zero).resize((20, 20))), size=2), 4)
    assert (labels[5005], labels[5006]) == (1, 0) and int(bold_small_zero.sum()) > int(one.sum())  # more ink
    for picture in (side_by_side(one, bold_small_zero), side_by_side(bold_small_zero, one)):
        found = find_digit(picture.convert("RGB"))
        assert found.marks == 2 and next(iter(classifier.predict(Image.fromarray(found.pixels)))) == "1"


def test_a_pen_held_over_evenly_lit_paper_is_no_part_of_the_digit(test_digits):
    """Paper a phone overexposes to pure white is evenly lit, as a scan is: what runs off the picture there (a pen,
    a finger) is no more the digit than in any other photo."""
    images, _ = test_digits
    alone = side_by_side(images[5000]).convert("RGB")
    with_pen = alone.copy()
    with_pen.paste((20, 20, 30), (alone.width - 70, alone.height // 3, alone.width - 20, alone.height))  # more ink than the digit
    assert find_digit(with_pen).marks == 1
    assert np.corrcoef(find_digit(with_pen).pixels.ravel(), find_digit(alone).pixels.ravel())[0, 1] > 0.95


def test_a_ruling_that_runs_to_the_edge_of_a_card_is_no_part_of_the_digit_under_it(test_digits):
    """On a sheet in view, its edge is the page's edge: what runs off it (a card's rulings) is no more the digit than a
    line running off the photo."""
    images, _ = test_digits

    def card(digit: np.ndarray, ruled: bool) -> Image.Image:
        photo = np.clip(np.random.default_rng(0).normal(70, 10, (600, 800, 3)), 0, 255)  # a dark desk, grainy
        photo[150:450, 150:650] = (245, 245, 240)  # an index card on it
        if ruled:
            photo[245:250, 150:650] = (90, 110, 200)  # its first ruling, edge to edge, just over the digit
        ink = 255 - np.asarray(Image.fromarray(digit).resize((168, 168)), dtype=np.float64)
        photo[232:400, 316:484] = np.minimum(photo[232:400, 316:484], ink[..., None])
        return Image.fromarray(photo.astype(np.uint8))

    for digit in images[5000:5005]:
        ruled, plain = find_digit(card(digit, True)), find_digit(card(digit, False))
        assert ruled.marks == 1 and np.corrcoef(ruled.pixels.ravel(), plain.pixels.ravel())[0, 1] > 0.95


def test_a_solid_shape_is_no_digit(test_digits):
    blob = Image.new("RGB", (300, 300), "white")
    blob.paste((30, 30, 30), (90, 80, 210, 220))  # a dark solid block on paper
    found = find_digit(blob)
    assert found.marks == 0 and not found.is_digit and found.note.startswith("No digit found")


def test_more_holes_than_a_digit_has_is_no_digit_and_a_looped_8_still_is(test_digits, classifier):
    images, labels = test_digits
    board = Image.fromarray(skimage.data.checkerboard())  # a real picture scikit-image ships: 8x8 squares
    grid = Image.new("L", (300, 300), 255)
    for at in range(40, 261, 55):  # squared paper's lines with nothing written on them: 16 squares
        grid.paste(20, (at, 40, at + 4, 264))
        grid.paste(20, (40, at, 264, at + 4))
    for picture in (board, grid):
        found = find_digit(picture)
        assert found.marks == 0 and found.note == NO_DIGIT_NOTE
    looped = find_digit(Image.fromarray(images[431]))  # an 8 looped where its strokes cross: three holes
    assert labels[431] == 8 and looped.marks == 1
    assert next(iter(classifier.predict(Image.fromarray(looped.pixels)))) == "8"


def test_shaded_ink_on_plain_paper_needs_a_surer_model(client):
    """An evenly lit picture is measured for uneven strokes too: a photo of an eye on black, not a digit."""
    answer = classify(client, str(Path(skimage.data.__file__).parent / "retina.jpg"))
    assert answer["note"].startswith("The model is unsure") and "no pen's do" in answer["note"], answer


def test_a_mark_much_wider_than_tall_is_no_digit():
    rng = np.random.default_rng(0)
    photo = np.clip(205 + 25 * np.linspace(0, 1, 300)[:, None, None] + rng.normal(0, 5, (300, 300, 3)), 0, 255)
    for page in (Image.new("RGB", (300, 300), "white"), Image.fromarray(photo.astype(np.uint8))):  # a scan, a photo
        page.paste((30, 30, 30), (60, 140, 240, 152))  # a dash, 15 times wider than tall
        found = find_digit(page)
        assert found.marks == 0 and found.note.startswith("No digit found")
        page.paste((30, 30, 30), (144, 60, 156, 240))  # the same turned upright: a 1
        assert find_digit(page).marks == 1


def test_lines_of_text_too_far_away_for_their_letters_to_part_are_no_digit(test_digits):
    """A page a step away: its lines of words are each one piece of ink, and stacked they look like a digit to the
    model (an 8 or a 0, confidently). A 5 or a 7 has one such bar, a 7 crossed two."""
    page = Image.new("RGB", (400, 400), "white")
    for top in range(100, 300, 40):
        page.paste((40, 40, 40), (100, top, 300 - top % 3 * 20, top + 12))  # lines 12 px high, 140-200 px long
    found = find_digit(page)
    assert found.marks == 0 and found.note == NO_DIGIT_NOTE
    crossed_7 = Image.new("RGB", (400, 400), "white")
    crossed_7.paste((40, 40, 40), (120, 100, 280, 112))  # its bar
    crossed_7.paste((40, 40, 40), (150, 190, 250, 200))  # its cross, apart from its stroke
    ImageDraw.Draw(crossed_7).line([(275, 112), (190, 300)], fill=(40, 40, 40), width=12)
    assert find_digit(crossed_7).marks == 1
    images, labels = test_digits
    pages = photo_cases(images, labels, 40, 1, held_out=False, kinds=["page of printed text"])
    assert [find_digit(load_image(pages[n].picture, DIGIT_DECODE_SIDE)).marks for n in (0, 15, 26)] == [0, 0, 0]
    ruled = photo_cases(images, labels, 20, 0, held_out=False, kinds=["sheet on a dark desk"])[10]  # rulings in bits
    assert ruled.label == 3 and find_digit(load_image(ruled.picture, DIGIT_DECODE_SIDE)).marks == 1


def test_blank_paper_in_uneven_light_is_refused_as_empty(client, tmp_path):
    """No ink, only light falling off across the paper: darkness all at one level once the light divides out (Otsu's
    split of it failed with a ValueError), or a few edge effects of the closing with no paper-and-ink split behind
    them (they were taken for ink measured against noiseless paper: a confident 1)."""
    for low, high in ((200, 230), (60, 250)):
        light = np.tile(np.linspace(low, high, 400), (300, 1)).astype(np.uint8)
        with pytest.raises(EmptyDrawing, match="empty"):
            find_digit(Image.fromarray(light).convert("RGB"))
    Image.fromarray(light).save(tmp_path / "blank.png")
    answer = classify(client, str(tmp_path / "blank.png"))
    assert answer["label"] is None and "empty" in answer["note"], answer


def test_a_thin_1_cropped_tight_in_a_photo_is_read(test_digits, classifier):
    """Its paper shows only in a sliver beside the stroke: the wider second look, for a digit filling the picture,
    finds nothing there, and the first look's digit stands (it was refused). The development part's 12th photo
    of its kind, 23x247 pixels."""
    images, labels = test_digits
    case = photo_cases(images, labels, 20, 0, held_out=False, kinds=["crop to the ink, every edge"])[12]
    picture = load_image(case.picture, DIGIT_DECODE_SIDE)
    assert case.label == 1 and picture.size == (23, 247)
    assert classifier.read(picture).label == "1"


def test_a_thick_marker_digit_cropped_tight_in_a_photo_is_read(test_digits, classifier):
    """A marker's strokes fill a third of the crop or more: the picture's median darkness and its spread are then
    the ink's, not the paper's, and the ink was cut at a level only its darkest grain reached (read as a 1, or
    refused as six marks). Three such photos of the development part (seed 2): an 8 in black, a 0 in red, a 0 in
    blue."""
    images, labels = test_digits
    cases = photo_cases(images, labels, 40, 2, held_out=False, kinds=["crop to the ink, every edge"])
    thick = [cases[31], cases[38], cases[9]]
    assert [case.label for case in thick] == [8, 0, 0]
    readings = [classifier.read(load_image(case.picture, DIGIT_DECODE_SIDE)) for case in thick]
    assert [(reading.label, reading.note) for reading in readings] == [("8", None), ("0", None), ("0", None)]


def test_a_chalk_digit_lighter_than_its_board_is_no_sheet(test_digits, classifier):
    """Its strokes, their gaps filled, once passed for a sheet in view and the ink was looked for in the dark
    board between the grains. A sheet is wide: the widest disc in it spans half its size, in a chalk 5 a stroke's
    width. The development part's photos of chalk that were misread so (2, 8, 11 and 12 of 20) are read right."""
    images, labels = test_digits
    cases = photo_cases(images, labels, 20, 0, held_out=False, kinds=["chalk on a blackboard"])
    for case in (cases[2], cases[8], cases[11], cases[12]):
        assert classifier.read(load_image(case.picture, DIGIT_DECODE_SIDE)).label == str(case.label)


def test_a_photo_whose_ink_all_goes_is_answered_no_digit_found(client, test_digits, saved):
    """A coffee photo of the development part (seed 3, the 29th) leaves no ink to centre once the pieces that are no
    digit are dropped (the only one of 640 photos with no digit at seeds 0-3; two of seed 1 did before the paper was
    measured on the paper alone). Without the rule that such a picture holds no digit, /classify answered it with an
    error (a NaN centre of mass), or here with a confident 1 (96%)."""
    images, labels = test_digits
    coffee = photo_cases(images, labels, 29, 3, held_out=False, kinds=["cup of coffee photo"])[28]
    assert not find_digit(load_image(coffee.picture, DIGIT_DECODE_SIDE)).pixels.any()
    answer = classify(client, saved(coffee, 28))
    assert answer["label"] == NO_DIGIT and answer["note"] == NO_DIGIT_NOTE, answer


def test_the_edge_of_a_blank_note_is_no_digit(test_digits):
    """A blank note lies wholly in view with no ink in it: the ink found on its rim is its edge or its shadow, no
    digit (4, 5, 17 and 18 of the development part's 20 were read as a 1 or a 2 at 72-93%). Glare on a whiteboard
    is such a region too, and the marker's digit away from its rim is still found (2 and 11 of 20)."""
    images, labels = test_digits
    notes = photo_cases(images, labels, 20, 0, held_out=False, kinds=["blank sticky note"])
    for case in (notes[4], notes[5], notes[17], notes[18]):
        found = find_digit(load_image(case.picture, DIGIT_DECODE_SIDE))
        assert found.marks == 0 and found.note == NO_DIGIT_NOTE
    boards = photo_cases(images, labels, 20, 0, held_out=False, kinds=["marker on a whiteboard, glare"])
    assert all(find_digit(load_image(boards[n].picture, DIGIT_DECODE_SIDE)).marks == 1 for n in (2, 11))


def test_strokes_of_uneven_width_need_a_surer_model(test_digits, saved):
    images, labels = test_digits
    cats = photo_cases(images, labels, 6, SEED, held_out=False, kinds=["cat photo"])
    sheets = photo_cases(images, labels, 6, SEED, held_out=False, kinds=["sheet on a light desk"])
    # on the development part: 18 cats in 20 have uneven strokes, no sheet on a desk (docs/digits.md)
    assert sum(find_digit(load_image(case.picture, DIGIT_DECODE_SIDE)).uneven_strokes for case in cats) >= 4
    assert not any(find_digit(load_image(case.picture, DIGIT_DECODE_SIDE)).uneven_strokes for case in sheets)
    digit = np.zeros((28, 28), np.uint8)
    fairly_sure = {"3": 0.8, "8": 0.2}
    uneven, even = FoundDigit(digit, 1, unevenness=0.7), FoundDigit(digit, 1, unevenness=0.2)
    assert _reading(fairly_sure, uneven).note == ("The model is unsure: its best guess, 3, has 80%, and the strokes "
                                                  "vary in width as no pen's do.")
    assert _reading(fairly_sure, even).note is None
    assert _reading({"3": UNSURE_UNEVEN, "8": 1 - UNSURE_UNEVEN}, uneven).note is None
    assert _reading({"3": 0.4, "8": 0.35}, uneven).note == "The model is unsure: its best guess, 3, has 40%."


def test_pixel_similarity_says_the_same_as_classify(client, test_digits, tmp_path):
    images, _ = test_digits
    two = tmp_path / "two.png"
    side_by_side(images[5000], np.pad(np.asarray(Image.fromarray(images[5001]).resize((20, 20))), 4)).save(two)
    prediction, summary, *_ = client.predict(handle_file(str(two)), "all ten digits", "L2", api_name="/pixel_similarity")
    assert "2 digits found" in summary and classify(client, str(two))["note"].startswith("2 digits found")
    blob = tmp_path / "blob.png"
    page = Image.new("RGB", (300, 300), "white")
    page.paste((30, 30, 30), (90, 80, 210, 220))
    page.save(blob)
    prediction, summary, bars, *_ = client.predict(handle_file(str(blob)), "all ten digits", "L2", api_name="/pixel_similarity")
    assert prediction["label"] == NO_DIGIT and summary.startswith("No digit found") and bars is None
    assert classify(client, str(blob)) == {"label": NO_DIGIT, "confidences": None, "note": summary}


def test_the_page_shows_the_note_in_both_tabs(browser, app_url, test_digits, tmp_path):
    images, _ = test_digits
    two = tmp_path / "two.png"
    side_by_side(images[5000], np.pad(np.asarray(Image.fromarray(images[5001]).resize((20, 20))), 4)).save(two)
    context, page = open_page(browser, app_url)
    upload(page, "cls-image", two)  # the upload event classifies and shows the note under the label
    expect(page.locator("#cls-note")).to_contain_text("2 digits found")
    page.locator("#cls-run").click()  # the public /classify, then its note
    expect(page.locator("#cls-note")).to_contain_text("2 digits found")
    page.get_by_role("tab", name="Pixel similarity", exact=True).filter(visible=True).click()
    page.get_by_role("tab", name="Image", exact=True).filter(visible=True).click()
    upload(page, "pix-upload", two)
    expect(page.locator("#pix-summary")).to_contain_text("2 digits found")
    context.close()
