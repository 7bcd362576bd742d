"""Pixel similarity's "Compare drawing" pressed right after the last stroke compares the drawing.

Gradio's sketchpad, when it also has a change listener (the tab's live answer), uploads each new drawing
for that change event; a click made while that upload is under way can be handed an empty sketch, and the
visitor was told "The sketchpad is empty" right after drawing. The click now takes the drawing of the
change event. Checked on the handlers (the click arriving first, empty) and in a real headless Chromium
(draw, click at once). Browser fixtures are tests/test_browser.py's.
"""
from __future__ import annotations

import concurrent.futures
import time

import gradio as gr
import pytest
from playwright.sync_api import expect
from test_browser import A_SEVEN, browser, draw, label, no_error_shown, open_tab, page  # noqa: F401
from test_pixel_similarity_ui import handler

from dlcourse.ui import pixel_similarity as ui
from support.serving import sketch_value

EMPTY = {"background": None, "layers": [], "composite": None}  # what the click can be handed


def test_a_click_handed_an_empty_sketch_takes_the_drawing_of_the_change_event(baseline, classifier, tmp_path):
    demo = ui.tab(baseline, classifier)
    compare, follow = handler(demo, "compare_drawing"), handler(demo, "follow_drawing")
    visitor = gr.Request(session_hash="visitor")
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        clicked = pool.submit(compare, EMPTY, "3 or 7", "L2", visitor)  # the click arrives first, empty
        time.sleep(0.3)
        assert not clicked.done()  # waiting for the drawing, not saying the sketchpad is empty
        follow(sketch_value(tmp_path, drawn=True), "3 or 7", "L2", visitor)  # the change event, with the drawing
        prediction, *_, source = clicked.result(timeout=ui.DRAWING_WAIT_S + 5)
    assert prediction == "7" and source == "sketch"

    # another visitor's click does not get this visitor's drawing, and a truly empty sketchpad is still empty
    started = time.monotonic()
    with pytest.raises(gr.Error, match="sketchpad is empty"):
        compare(EMPTY, "3 or 7", "L2", gr.Request(session_hash="someone else"))
    assert time.monotonic() - started < ui.DRAWING_WAIT_S + 1
    follow(sketch_value(tmp_path, drawn=False), "3 or 7", "L2", visitor)  # the visitor clears the canvas
    with pytest.raises(gr.Error, match="empty"):
        compare(EMPTY, "3 or 7", "L2", visitor)


def test_compare_drawing_pressed_right_after_the_last_stroke_compares_the_drawing(page):
    for attempt in range(3):
        if attempt:
            page.reload()
        open_tab(page, "Pixel similarity")
        draw(page, "pix-sketch", A_SEVEN)
        page.locator("#pix-sketch-run").click()  # at once: no waiting for the live answer
        expect(label(page, "pix-prediction")).to_have_text("7")
        page.wait_for_timeout(ui.DRAWING_WAIT_S * 1000 + 500)  # an error toast from the click would have come by now
        no_error_shown(page)
