"""examples/web/index.html, the static page on @gradio/client, as a visitor uses it: headless Chromium opens
the page from its own little web server (another origin, as on GitHub Pages) with ?space= naming the Space
served on localhost. The page may reach only its own folder and that Space: every other request is refused
and recorded, and none may be made."""
from __future__ import annotations

import base64
import functools
import http.server
import io
import threading
from pathlib import Path
from typing import Callable, Iterator

import pytest
from gradio_client import handle_file
from PIL import Image
from playwright.sync_api import Browser, Page, expect, sync_playwright

from conftest import EXAMPLES_DIR, free_port
from test_browser import CHROMIUM, CHROMIUM_ARGS, SCREENSHOTS, TIMEOUT_MS

WEB_DIR = EXAMPLES_DIR / "web"
DEFAULT_SPACE = "your-name/your-space"
CAMERA_SEES = EXAMPLES_DIR / "photo-paper-9.png"  # a photo of a handwritten 9 on paper


def fake_camera(folder: Path) -> list[str]:
    """Chromium flags for a camera that films a photo (an MJPEG file of it), allowed without asking."""
    photo = Image.open(CAMERA_SEES).convert("RGB")
    canvas = Image.new("RGB", (640, 480), photo.getpixel((0, 0)))  # the photo on paper of its own colour
    canvas.paste(photo, ((640 - photo.width) // 2, (480 - photo.height) // 2))
    frame = io.BytesIO()
    canvas.save(frame, format="JPEG", quality=95)
    video = folder / "camera.mjpeg"
    video.write_bytes(frame.getvalue() * 30)
    return ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={video}"]


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """examples/web/ served as GitHub Pages would serve it: static files, on an origin of its own."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(WEB_DIR)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def browser(tmp_path_factory) -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(f"No Chromium at {CHROMIUM}: apt-get install chromium, or CHROMIUM=/path/to/chromium.")
    with sync_playwright() as playwright:
        camera = fake_camera(tmp_path_factory.mktemp("camera"))
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS + camera)
        yield browser
        browser.close()


class Visit:
    """One visitor's tab on the page: what it asked of other places (refused) and the errors it threw."""

    def __init__(self, page: Page):
        self.page = page
        self.refused: list[str] = []
        self.crashes: list[str] = []


@pytest.fixture
def visit(browser: Browser, site: str, app_url: str) -> Iterator[Callable[..., Visit]]:
    """Open the page with ?space= (the served Space unless given, none if None), letting it reach only its own
    folder and that Space."""
    contexts = []

    def open_page(space: str | None = app_url) -> Visit:
        context = browser.new_context(viewport={"width": 1000, "height": 900})
        contexts.append(context)
        page = context.new_page()
        visit = Visit(page)
        allowed = (site, "data:", "blob:") + ((space,) if space else ())  # the page's folder and the Space

        def route(route):
            if route.request.url.startswith(allowed):
                route.continue_()
            else:
                visit.refused.append(route.request.url)
                route.abort()

        context.route("**/*", route)
        page.set_default_timeout(TIMEOUT_MS)
        expect.set_options(timeout=TIMEOUT_MS)
        page.on("pageerror", lambda error: visit.crashes.append(str(error)))
        page.goto(site + "index.html" + (f"?space={space}" if space else ""))
        return visit

    yield open_page
    for context in contexts:
        context.close()


def answered(visit: Visit, label: str) -> list[tuple[str, float]]:
    """Wait for the top label; return the bars as (label, probability), and check the page is clean."""
    page = visit.page
    expect(page.locator("#label")).to_have_text(label)
    expect(page.locator("#error")).to_be_hidden()
    bars = page.locator("#bars li")
    expect(bars).to_have_count(5)
    shown = [(item.get_attribute("data-label"), float(item.get_attribute("data-confidence"))) for item in bars.all()]
    assert not visit.refused, f"the page asked for {visit.refused}"
    assert not visit.crashes, visit.crashes
    return shown


def choose(page: Page, path: Path) -> None:
    page.locator("#file").set_input_files(path)


def paste(page: Page, content: bytes | str, mime: str, name: str = "pasted.png") -> None:
    """Paste as a browser does: a paste event whose clipboard holds this file (or this text)."""
    page.evaluate("""([data, mime, name, isText]) => {
        const transfer = new DataTransfer();
        if (isText) transfer.setData(mime, data);
        else transfer.items.add(new File([Uint8Array.from(atob(data), c => c.charCodeAt(0))], name, {type: mime}));
        document.dispatchEvent(new ClipboardEvent("paste", {clipboardData: transfer, bubbles: true}));
    }""", [content if isinstance(content, str) else base64.b64encode(content).decode(), mime, name,
           isinstance(content, str)])


def test_a_chosen_file_gets_the_top_label_and_the_top_five_bars(visit, client):
    current = visit()
    page = current.page
    expect(page.locator("#space")).to_have_text(page.url.split("?space=")[1])
    expect(page.locator("#status")).to_contain_text("Ready")
    choose(page, EXAMPLES_DIR / "mnist-test-7.png")
    bars = answered(current, "7")
    expected = client.predict(handle_file(EXAMPLES_DIR / "mnist-test-7.png"), api_name="/classify")
    assert [label for label, _ in bars] == [item["label"] for item in expected["confidences"]][:5]
    assert bars[0][1] == pytest.approx(expected["confidences"][0]["confidence"], abs=1e-6)
    assert bars == sorted(bars, key=lambda bar: -bar[1])
    width = page.locator("#bars li .fill").first.evaluate("e => e.getBoundingClientRect().width / e.parentElement.getBoundingClientRect().width")
    assert width == pytest.approx(bars[0][1], abs=0.02)
    expect(page.locator("#preview")).to_be_visible()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "web-page.png", full_page=True)


def test_a_pasted_image_is_classified(visit):
    current = visit()
    paste(current.page, (EXAMPLES_DIR / "photo-paper-9.png").read_bytes(), "image/png")
    answered(current, "9")


def test_bad_input_is_said_clearly_and_the_next_image_works(visit, tmp_path):
    current = visit()
    page, error = current.page, current.page.locator("#error")
    disguised = tmp_path / "passwd.png"  # a text file named like a picture: the Space says what is wrong
    disguised.write_text("root:x:0:0:root:/root:/bin/sh\n")
    choose(page, disguised)
    expect(error).to_have_text("The Space could not classify this image: This file is not an image that can be "
                               "read. Please upload a PNG, JPEG, GIF, WebP, BMP or TIFF file.")
    expect(page.locator("#label")).to_have_text("")
    notes = tmp_path / "notes.txt"  # not an image by its type: the page says so without asking
    notes.write_text("hello")
    choose(page, notes)
    expect(error).to_have_text("“notes.txt” is not an image (text/plain): choose a PNG, JPEG, GIF, WebP, BMP or TIFF file.")
    paste(page, "https://example.com/seven.png", "text/plain")
    expect(error).to_contain_text("The clipboard holds no image")
    choose(page, EXAMPLES_DIR / "mnist-test-7.png")
    answered(current, "7")


def test_a_space_that_cannot_be_reached_is_named_in_the_error(visit):
    nowhere = f"http://127.0.0.1:{free_port()}/"
    current = visit(nowhere)
    expect(current.page.locator("#error")).to_contain_text(f"Could not connect to the Space {nowhere}")
    choose(current.page, EXAMPLES_DIR / "mnist-test-7.png")
    expect(current.page.locator("#error")).to_contain_text(f"Could not connect to the Space {nowhere}")
    assert not current.crashes and not current.refused


def test_without_a_space_parameter_the_page_calls_its_default_space(visit):
    """The default is a placeholder id: the page asks the Hub where that Space lives (refused here, offline)."""
    current = visit(None)
    expect(current.page.locator("#space")).to_have_text(DEFAULT_SPACE)
    expect(current.page.locator("#error")).to_contain_text(f"Could not connect to the Space {DEFAULT_SPACE}")
    assert current.refused and all(url.startswith("https://huggingface.co/api/spaces/") and DEFAULT_SPACE in url
                                   for url in current.refused), current.refused


def test_the_camera_snaps_and_classifies(visit):
    current = visit()
    page = current.page
    page.locator("#camera-start").click()
    page.wait_for_function("() => document.getElementById('video').videoWidth > 0")
    page.locator("#snap").click()
    answered(current, "9")
    page.locator("#camera-stop").click()
    expect(page.locator("#camera")).to_be_hidden()
    assert not current.refused and not current.crashes
