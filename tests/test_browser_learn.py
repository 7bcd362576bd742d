"""Chapter 4 learns, as a visitor sees it: SGD on the pixels of 3s and 7s in the Pixel similarity tab, and
the ReLU fit and the loss landscape in the quadratic tab. A real headless Chromium; fixtures and helpers
are tests/test_browser.py's."""
from __future__ import annotations

import re

from playwright.sync_api import Page, expect
from test_browser import browser, close_toasts, no_error_shown, open_tab, page, screenshot, type_into  # noqa: F401

from dlcourse.pixels import learn as lp
from dlcourse.quadratic import api
from dlcourse.pixels.baseline import PixelBaseline


def watch_text(page: Page, elem_id: str) -> None:
    """Record every text the element shows from now on, in window.__seen[elem_id]."""
    page.evaluate("""id => {
        window.__seen = window.__seen || {};
        const seen = window.__seen[id] = [];
        const element = document.querySelector(`#${id}`);
        new MutationObserver(() => seen.push(element.innerText)).observe(
            element, {childList: true, subtree: true, characterData: true});
    }""", elem_id)


def seen_texts(page: Page, elem_id: str) -> list[str]:
    return page.evaluate("id => window.__seen[id]", elem_id)


def image_source(page: Page, elem_id: str) -> str:
    return page.locator(f"#{elem_id} img").first.get_attribute("src")


def expected_run(**settings) -> lp.Training:
    data = lp.data_for(PixelBaseline.load())
    return lp.train(data, lp.settings(train_images=len(data.train_x), **settings))


# ---------------------------------------------------------------- Now let it learn


def test_train_n_epochs_shows_each_epoch_and_beats_the_baseline(page):
    open_tab(page, "Pixel similarity")
    status = page.locator("#learn-status")
    expect(status).to_contain_text("epoch 0: validation accuracy")
    first_picture = image_source(page, "learn-weights")
    type_into(page.locator("#learn-epochs input[type=number]"), "6")
    watch_text(page, "learn-status")
    page.locator("#learn-run").click()
    expected = expected_run(epochs=6)
    expect(status).to_contain_text(f"epoch 6: validation accuracy {expected.valid_accuracy[-1]:.2%}", timeout=60_000)
    expect(status).to_contain_text("beats the baseline's 95.29%")
    epochs_seen = {int(m.group(1)) for text in seen_texts(page, "learn-status")
                   for m in [re.search(r"epoch (\d+):", text)] if m}
    assert len(epochs_seen - {0}) >= 3, epochs_seen  # the run was shown as it went, not only at its end
    assert image_source(page, "learn-weights") != first_picture  # the weights picture follows the learning
    for series, colour in (("validation accuracy", "#d62728"), ("baseline (pixel similarity)", "#7f7f7f")):
        line = page.locator(f"#learn-accuracy svg path[aria-label*='{series}']").first
        expect(line).to_have_attribute("stroke", colour)  # both lines drawn, in their colours
    no_error_shown(page)
    screenshot(page, "learn-pixels-linear")


def test_step_one_batch_then_finish_the_epoch_then_reset(page):
    open_tab(page, "Pixel similarity")
    status = page.locator("#learn-status")
    page.locator("#learn-batch-step").click()
    expect(status).to_contain_text("epoch 0, batch 1 of 4")
    page.locator("#learn-epoch").click()  # the rest of the epoch
    expected = expected_run(epochs=1)
    expect(status).to_contain_text(f"epoch 1: validation accuracy {expected.valid_accuracy[0]:.2%}")
    page.locator("#learn-reset").click()
    expect(status).to_contain_text("epoch 0: validation accuracy")
    no_error_shown(page)


def test_simple_net_shows_its_30_features(page):
    open_tab(page, "Pixel similarity")
    linear_picture = page.locator("#learn-weights img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=linear_picture.element_handle())
    assert linear_picture.evaluate("img => [img.naturalWidth, img.naturalHeight]") == [224, 224]
    page.locator("#learn-model").get_by_text("simple net").click()
    expect(page.locator("#learn-status")).to_contain_text("simple net, epoch 0")
    page.locator("#learn-epoch").click()
    expect(page.locator("#learn-status")).to_contain_text("simple net, epoch 1: validation accuracy")
    features = page.locator("#learn-weights img")
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=features.element_handle())
    width, height = features.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    assert (width, height) == (2 * (6 * 28 + 5), 2 * (5 * 28 + 4))  # 6 x 5 features, each pixel 2 x 2
    no_error_shown(page)
    screenshot(page, "learn-pixels-simple-net")


def test_bad_settings_are_clamped_with_a_note_or_refused(page):
    open_tab(page, "Pixel similarity")
    status = page.locator("#learn-status")
    type_into(page.locator("#learn-lr input"), "0")
    type_into(page.locator("#learn-batch input"), "0")
    page.locator("#learn-batch-step").click()
    expect(status).to_contain_text("learning rate 0 cannot move the weights downhill: using 0.0001.")
    expect(status).to_contain_text("batch size 0 is outside [1, 1,000]: using 1.")
    expect(status).to_contain_text("batch 1 of 1000")
    type_into(page.locator("#learn-lr input"), "1000000")
    page.locator("#learn-batch-step").click()
    expect(status).to_contain_text("learning rate 1e+06 is outside [0.0001, 10]: using 10.")
    type_into(page.locator("#learn-batch input"), "256")
    type_into(page.locator("#learn-lr input"), "1")
    page.locator("#learn-epoch").click()
    expect(status).to_contain_text("epoch 1: validation accuracy")
    expect(status).not_to_contain_text("outside")
    close_toasts(page)
    no_error_shown(page)


# ---------------------------------------------------------------- Fit a quadratic: ReLUs and the landscape


def test_fit_with_relus_draws_the_sum_and_says_how_it_compares(page):
    open_tab(page, "Fit a quadratic")
    page.locator("#quad-loss-choice").get_by_text("MSE").click()
    type_into(page.locator("#quad-momentum input[type=number]"), "0.9")
    page.locator("#quad-relu-fit").click()
    expected = api.fit_relus("lesson", 8, "mse", 0.01, 0.9, 2000, 42)
    status = page.locator("#quad-relu-status")
    expect(status).to_contain_text("8 ReLUs, 2000 steps: MSE", timeout=60_000)
    expect(status).to_contain_text(f"→ {expected['final']['loss']:.4g} (the least-squares quadratic: 1.692)")
    expect(page.locator("#quad-relu-plot img")).to_be_visible()
    expect(page.locator("#quad-relu-losses img")).to_be_visible()
    type_into(page.locator("#quad-relus input[type=number]"), "32")
    page.locator("#quad-relu-fit").click()
    expect(status).to_contain_text("Chasing the noise", timeout=60_000)
    no_error_shown(page)
    screenshot(page, "quadratic-relus")


def test_the_landscape_shows_sgds_path_after_a_run(page):
    open_tab(page, "Fit a quadratic")
    contours = page.locator("#quad-contours img")
    expect(contours).to_be_visible()
    before = contours.get_attribute("src")
    page.locator("#quad-run").click()
    expect(page.locator("#quad-status")).to_contain_text("10 steps: MAE", timeout=60_000)
    expect(contours).not_to_have_attribute("src", before)
    after_run = contours.get_attribute("src")
    page.locator("#quad-pair").get_by_text("b and c").click()
    expect(contours).not_to_have_attribute("src", after_run)
    no_error_shown(page)
    screenshot(page, "quadratic-landscape")
