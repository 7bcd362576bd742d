"""The Space as a visitor uses it: a real headless Chromium clicks, uploads, drags and draws.

Debian's Chromium driven by Playwright (sync API); nothing here downloads a browser. Screenshots of each
tab go to tests/screenshots/ for a human to look at. The page may reach only the app on localhost.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Locator, Page, expect, sync_playwright

from conftest import EXAMPLES_DIR, ROOT
from dlcourse.quadratic import fit as q
from dlcourse.quadratic import api
from dlcourse.quadratic import plots

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "tests" / "screenshots"
TIMEOUT_MS = 30_000  # the CI machine is small and shared: a first answer can take seconds
A_SEVEN = [[(0.15, 0.12), (0.85, 0.12), (0.4, 0.92)]]  # strokes, as fractions of the drawing area


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"No Chromium at {CHROMIUM}: the browser tests need Debian's chromium package "
                    "(apt-get install chromium; .ci/run installs it) or CHROMIUM=/path/to/chromium. "
                    "Playwright's own browser download is not used.")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def open_page(browser: Browser, url: str, crashes: list[str] | None = None) -> tuple[BrowserContext, Page]:
    """A new page at `url` that may reach only localhost; JavaScript errors are added to `crashes`."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    local = re.compile(r"^(http://127\.0\.0\.1[:/]|data:|blob:)")
    context.route("**/*", lambda route: route.continue_() if local.match(route.request.url) else route.abort())
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    expect.set_options(timeout=TIMEOUT_MS)
    if crashes is not None:
        page.on("pageerror", lambda error: crashes.append(str(error)))
    page.goto(url)
    return context, page


@pytest.fixture
def page(browser: Browser, app_url: str) -> Iterator[Page]:
    crashes: list[str] = []
    context, page = open_page(browser, app_url, crashes)
    page.locator("#cls-image").wait_for()
    yield page
    context.close()
    assert not crashes, f"JavaScript errors on the page: {crashes}"


# ---------------------------------------------------------------- what a visitor does


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("tab", name=name, exact=True).filter(visible=True).click()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)


def upload(page: Page, elem_id: str, path: Path) -> None:
    page.locator(f"#{elem_id} input[type=file]").set_input_files(path)


def draw(page: Page, sketch_id: str, strokes: list[list[tuple[float, float]]]) -> None:
    """Pick the brush, then draw each stroke with the mouse inside the centre of the canvas."""
    sketch = page.locator(f"#{sketch_id}")
    sketch.locator("button[title='Brush']").click()
    box = sketch.locator("canvas").first.bounding_box()
    side = 240  # the 280 px drawing area is centred in the canvas element; stay inside it
    left, top = box["x"] + box["width"] / 2 - side / 2, box["y"] + box["height"] / 2 - side / 2
    for stroke in strokes:
        (x, y), *rest = stroke
        page.mouse.move(left + x * side, top + y * side)
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(left + x * side, top + y * side, steps=4)
        page.mouse.up()


def click_and_wait(page: Page, button: str, output_id: str) -> None:
    """Click, then wait until the progress shown on an output for that event has come and gone (the answer
    may be the one already shown, so waiting for a new text would not do)."""
    page.evaluate("""id => {
        window.__answered = false;
        let shown = false;
        const tracker = document.querySelector(`#${id} [data-testid='status-tracker']`);
        new MutationObserver((_, observer) => {
            if (!tracker.classList.contains('hide')) shown = true;
            else if (shown) { window.__answered = true; observer.disconnect(); }
        }).observe(tracker, {attributes: true, attributeFilter: ['class']});
    }""", output_id)
    page.locator(button).click()
    page.wait_for_function("() => window.__answered")


def toast(page: Page, words: str) -> None:
    """An error toast with these words appears; then it is closed, as a visitor would."""
    message = page.locator("[data-testid='toast-text']").filter(has_text=words)
    expect(message).to_be_visible()
    close_toasts(page)


def close_toasts(page: Page) -> None:
    for button in page.locator("[data-testid='toast-close']").all():
        button.click()
    expect(page.locator("[data-testid='toast-text']")).to_have_count(0)


def no_error_shown(page: Page) -> None:
    expect(page.locator("[data-testid='toast-text']")).to_have_count(0)
    expect(page.locator("[data-testid='status-tracker'] .error")).to_have_count(0)


def label(page: Page, elem_id: str) -> Locator:
    return page.locator(f"#{elem_id} [data-testid='label-output-value']")


def percent(page: Page, elem_id: str, cls: str) -> int:
    text = page.locator(f"#{elem_id} [data-testid='{cls}-confidence-set'] .confidence").inner_text()
    return int(text.rstrip("%"))


def slider(page: Page, name: str) -> Locator:
    return page.locator(f"#quad-{name} input[type=number]")


def slider_value(page: Page, name: str) -> float:
    return float(slider(page, name).input_value())


def type_into(box: Locator, text: str) -> None:
    box.fill(text)
    box.press("Enter")


def loss_value(page: Page) -> float:
    """The loss in the line under the plot: "mean absolute error (MAE): 2.422 · least squares ..."."""
    text = page.locator("#quad-loss").inner_text()
    return float(re.search(r"\): ([-\d.e+]+)", text).group(1))


def lesson_loss(a: float, b: float, c: float, loss: str = "mae") -> float:
    return q.loss_of([a, b, c], q.make_data("lesson"), loss)


# ---------------------------------------------------------------- Classify


def test_clicking_an_example_shows_its_label_with_a_probability(page):
    examples = page.locator("#cls-examples button img")  # thumbnails, not file names
    expect(examples).to_have_count(len(list(EXAMPLES_DIR.glob("*.png"))))
    page.locator('#cls-examples button img[src$="/mnist-test-7.png"]').click()
    expect(label(page, "cls-label")).to_have_text("7")
    assert percent(page, "cls-label", "7") > 50
    expect(page.locator("#cls-label [data-testid$='-confidence-set']")).to_have_count(5)
    screenshot(page, "classify-example")


def test_uploading_a_file_classifies_it(page):
    upload(page, "cls-image", EXAMPLES_DIR / "photo-paper-9.png")
    expect(label(page, "cls-label")).to_have_text("9")
    expect(page.locator("#cls-image img")).to_be_visible()
    upload(page, "cls-image", EXAMPLES_DIR / "photo-thin-4.png")  # a second file replaces the first
    expect(label(page, "cls-label")).to_have_text("4")
    assert percent(page, "cls-label", "4") > 50
    screenshot(page, "classify-upload")


def test_classify_errors_say_why_and_the_next_action_works(page, tmp_path):
    open_tab(page, "Draw")
    page.locator("#cls-sketch-run").click()
    toast(page, "The sketchpad is empty: draw a digit first.")
    draw(page, "cls-sketch", A_SEVEN)
    page.locator("#cls-sketch-run").click()
    expect(label(page, "cls-label")).to_have_text("7")
    no_error_shown(page)
    screenshot(page, "classify-drawing")

    open_tab(page, "Image")
    notes = tmp_path / "notes.txt"
    notes.write_text("not a picture")
    upload(page, "cls-image", notes)  # the browser itself refuses a file that does not say it is an image
    toast(page, "Invalid file type")
    fake = tmp_path / "holiday.png"
    fake.write_text("a text file dressed as a PNG")
    upload(page, "cls-image", fake)  # this one reaches the server, which says what is wrong
    toast(page, "This file is not an image that can be read")
    upload(page, "cls-image", EXAMPLES_DIR / "mnist-test-3.png")
    expect(label(page, "cls-label")).to_have_text("3")
    no_error_shown(page)


# ---------------------------------------------------------------- Fit a quadratic


def test_moving_a_slider_changes_the_loss(page):
    open_tab(page, "Fit a quadratic")
    before = page.locator("#quad-loss").inner_text()
    assert loss_value(page) == pytest.approx(lesson_loss(1.1, 1.1, 1.1), rel=1e-3)
    track = page.locator("#quad-a input[type=range]").bounding_box()
    y = track["y"] + track["height"] / 2
    page.mouse.move(track["x"] + track["width"] * (1.1 + 10) / 20, y)  # the thumb, at a = 1.1 of [-10, 10]
    page.mouse.down()
    page.mouse.move(track["x"] + track["width"] * 0.65, y, steps=8)  # drag right, to about a = 3
    page.mouse.up()
    expect(page.locator("#quad-loss")).not_to_have_text(before)
    a = slider_value(page, "a")
    assert 2 < a < 4
    expect(page.locator("#quad-loss")).to_contain_text(f"{lesson_loss(a, 1.1, 1.1):.4g}")
    no_error_shown(page)


def test_run_makes_the_loss_fall_and_the_fitted_values_appear_in_the_sliders(page):
    open_tab(page, "Fit a quadratic")
    start = loss_value(page)
    type_into(slider(page, "steps"), "40")
    expect(page.locator("#quad-run")).to_have_text("Run 40 steps")
    page.locator("#quad-run").click()
    expect(page.locator("#quad-status")).to_contain_text("40 steps: MAE", timeout=60_000)
    fit = api.fit_quadratic("lesson", 1.0, 20, 42, 1.1, 1.1, 1.1, loss="mae", lr=0.01, steps=40)
    final = fit["final"]
    assert loss_value(page) == pytest.approx(final["loss"], rel=1e-3) and final["loss"] < start
    for name in "abc":
        assert slider_value(page, name) == pytest.approx(final[name], abs=1e-3), name
    assert slider_value(page, "a") != pytest.approx(1.1, abs=0.05)
    expect(page.locator("#quad-loss-curve img")).to_be_visible()
    # the trace, newest first: step 39 measured the loss the 40th step started from
    expect(page.locator("#quad-trace")).to_contain_text(f"{fit['trajectory']['loss'][39]:.4g}")
    no_error_shown(page)
    screenshot(page, "quadratic-run")


def test_a_chosen_schedule_runs_and_its_learning_rate_is_drawn_under_the_loss(page):
    """The tab's What to try: MAE at lr 1 under cosine settles, and the rate falls to 0 under the loss curve."""
    open_tab(page, "Fit a quadratic")
    type_into(slider(page, "lr"), "0")
    expect(page.locator("#quad-lr-value")).to_have_text("lr = 1")
    type_into(slider(page, "steps"), "100")
    expect(page.locator("#quad-run")).to_have_text("Run 100 steps")
    page.locator("#quad-schedule").get_by_text("cosine").click()
    page.locator("#quad-run").click()
    expect(page.locator("#quad-status")).to_contain_text("100 steps: MAE", timeout=60_000)
    fit = api.fit_quadratic("lesson", 1.0, 20, 42, 1.1, 1.1, 1.1, loss="mae", lr=1, steps=100, schedule="cosine")
    assert loss_value(page) == pytest.approx(fit["final"]["loss"], rel=1e-3)
    assert fit["final"]["loss"] < fit["least_squares"]["loss"]  # settled at MAE's best
    loss_curve, lr_curve = page.locator("#quad-loss-curve img"), page.locator("#quad-lr-curve img")
    expect(loss_curve).to_be_visible()
    expect(lr_curve).to_be_visible()
    assert lr_curve.get_attribute("src") == plots.data_url(plots.lr_png(fit["trajectory"]["lr"], 100))
    assert lr_curve.bounding_box()["y"] > loss_curve.bounding_box()["y"]  # under the loss curve
    no_error_shown(page)
    screenshot(page, "quadratic-cosine")


def test_quadratic_nonsense_values_say_why_and_the_next_action_works(page):
    open_tab(page, "Fit a quadratic")
    # a number typed beyond a slider's range: Gradio refuses it and says so
    type_into(slider(page, "a"), "500")
    toast(page, "Value 500 is greater than maximum value 10")
    # steps 0 and a learning rate of 1e-30: the labels show the values that will really be used
    type_into(slider(page, "steps"), "0")
    expect(page.locator("#quad-run")).to_have_text("Run 1 step")
    type_into(slider(page, "lr"), "-30")
    expect(page.locator("#quad-lr-value")).to_have_text("lr = 1.0e-6")
    page.locator("#quad-run").click()
    expect(page.locator("#quad-status")).to_contain_text("1 step: MAE")
    # an extreme learning rate: SGD diverges, the tab says why and puts the parameters back
    page.locator("#quad-loss-choice").get_by_text("MSE").click()
    type_into(slider(page, "lr"), "1")
    expect(page.locator("#quad-lr-value")).to_have_text("lr = 10")
    a_before = slider_value(page, "a")
    page.locator("#quad-run").click()
    expect(page.locator("#quad-status")).to_contain_text("too high")
    assert slider_value(page, "a") == pytest.approx(a_before)
    screenshot(page, "quadratic-diverged")
    # no seed at all
    type_into(page.locator("#quad-seed input"), "")
    toast(page, "seed is missing: give a number.")
    # the next action works
    before = page.locator("#quad-loss").inner_text()
    type_into(page.locator("#quad-seed input"), "7")
    expect(page.locator("#quad-loss")).not_to_have_text(before)
    close_toasts(page)
    type_into(slider(page, "b"), "2")
    expect(page.locator("#quad-loss")).to_contain_text("mean squared error")
    no_error_shown(page)


# ---------------------------------------------------------------- Pixel similarity


def test_a_drawn_digit_is_compared_with_the_ideal_digits(page):
    open_tab(page, "Pixel similarity")
    draw(page, "pix-sketch", A_SEVEN)
    # The tab follows the drawing as it takes shape; the button then compares it again. (Pressed within
    # ~0.5 s of the last stroke, before that first answer, Gradio's sketchpad can send an event whose
    # drawing it never uploads, and the visitor is told the sketchpad is empty: see DRAWING_WAIT_S in
    # dlcourse/ui/pixel_similarity.py.)
    expect(label(page, "pix-prediction")).to_have_text("7")
    click_and_wait(page, "#pix-sketch-run", "pix-prediction")
    expect(label(page, "pix-prediction")).to_have_text("7")
    expect(page.locator("#pix-summary")).to_contain_text("Closest to the ideal 7")
    heatmap = page.locator("#pix-heatmap img")
    expect(heatmap).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=heatmap.element_handle())
    assert heatmap.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [280, 280]
    expect(page.locator("#pix-distances")).to_contain_text("distance")
    no_error_shown(page)
    screenshot(page, "pixel-similarity-drawing")


def test_pixel_similarity_errors_say_why_and_the_next_action_works(page, tmp_path):
    open_tab(page, "Pixel similarity")
    page.locator("#pix-sketch-run").click()
    toast(page, "The sketchpad is empty: draw a digit first.")
    open_tab(page, "Image")
    expect(page.locator("#pix-run")).to_be_visible()
    damaged = tmp_path / "digit.png"
    damaged.write_bytes((EXAMPLES_DIR / "mnist-test-3.png").read_bytes()[:60])
    upload(page, "pix-upload", damaged)
    toast(page, "The image is damaged")
    upload(page, "pix-upload", EXAMPLES_DIR / "mnist-test-3.png")
    expect(label(page, "pix-prediction")).to_have_text("3")
    page.locator("#pix-mode").get_by_text("all ten digits").click()
    page.locator("#pix-distance").get_by_text("L2").click()
    page.locator("#pix-run").click()
    expect(page.locator("#pix-summary")).to_contain_text("Closest to the ideal 3: L2 distance")
    no_error_shown(page)
    screenshot(page, "pixel-similarity-image")
