"""The data cleaner's page as a student uses it, in a real headless Chromium: find a planted mistake among a
class's hardest images, relabel it, delete a photo that is no digit, apply with the files moved; then the
files, cleaned.csv and `python -m dlcourse.clean --undo`. Fixtures and helpers are tests/test_browser.py's."""
from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect
from test_browser import browser, open_page, screenshot, toast  # noqa: F401

from conftest import ROOT, PlantedDigits, free_port
from dlcourse.clean.__main__ import open_model, parse_args
from dlcourse.clean.items import open_data
from dlcourse.clean.session import PAGE_SIZE, CleanSession
from dlcourse.ui.clean import launch


@pytest.fixture
def digits(planted_digits: PlantedDigits, tmp_path: Path) -> Path:
    return Path(shutil.copytree(planted_digits.folder, tmp_path / "digits"))


@pytest.fixture
def cleaner(browser, planted_digits: PlantedDigits, digits: Path) -> Iterator[Page]:  # noqa: F811
    """The cleaner's page on a copy of the planted digits, open in Chromium once the ranking is shown."""
    args = parse_args(["--data", str(digits), "--model", str(planted_digits.model)])
    data = open_data(args)
    session = CleanSession(data, open_model(args.model, data), reload=lambda: open_data(args))
    blocks = launch(session, free_port(), block=False)
    crashes: list[str] = []
    context, page = open_page(browser, blocks.local_url, crashes)
    page.locator("#clean-card-0").wait_for(state="visible")
    yield page
    context.close()
    blocks.close()
    assert not crashes, f"JavaScript errors on the page: {crashes}"


def choose(page: Page, elem_id: str, option: str) -> str:
    """Open a dropdown and pick the option shown as `option`, or the first that starts with `option` and a space
    (a class and its count: "3 (31)"), as a visitor does; the option's text."""
    page.locator(f"#{elem_id} input").click()
    options = page.get_by_role("option")
    texts = [text.split("\n")[-1] for text in options.all_inner_texts()]  # the chosen one starts with a tick
    shown = option if option in texts else next(text for text in texts if text.startswith(f"{option} "))
    page.get_by_role("option", name=shown, exact=True).click()
    return shown


def show_class(page: Page, label: str) -> str:
    """Choose a class in the menu and wait until its images show; the menu's text for it ("3 (31)")."""
    shown = choose(page, "clean-class", label)
    expect(page.locator("#clean-caption-0")).to_contain_text(f"{label} →")
    expect(page.locator("#clean-pages")).to_contain_text("page 1 of")
    return shown


def find_card(page: Page, name: str) -> int:
    """The card showing the file `name`, paging forward until it shows."""
    while True:
        for slot in range(PAGE_SIZE):
            caption = page.locator(f"#clean-caption-{slot}")
            if caption.is_visible() and name in caption.inner_text():
                return slot
        pages = page.locator("#clean-pages").inner_text()  # "page i of n · ..."
        current, count = pages.split(" · ")[0].removeprefix("page ").split(" of ")
        assert current != count, f"{name} is on no page"
        page.locator("#clean-next").click()
        expect(page.locator("#clean-pages")).to_contain_text(f"page {int(current) + 1} of")


def test_relabel_delete_apply_with_moves_then_undo(cleaner: Page, planted_digits: PlantedDigits, digits: Path):
    page = cleaner
    wrong, truth = next((file, truth) for file, truth in planted_digits.planted.items() if truth.isdigit())
    given = wrong.split("/")[0]
    photo = next(file for file, what in planted_digits.planted.items()
                 if what == "photo" and file.split("/")[0] not in (given, truth))

    page.get_by_label("Both").check()
    expect(page.locator("#clean-pages")).to_contain_text("page 1 of")
    show_class(page, given)
    slot = find_card(page, Path(wrong).name)
    expect(page.locator(f"#clean-caption-{slot}")).to_contain_text(f"{given} →")
    expect(page.locator(f"#clean-caption-{slot} img")).to_be_visible()  # its thumbnail
    choose(page, f"clean-choice-{slot}", f"→ {truth}")
    expect(page.locator("#clean-status")).to_contain_text("1 change(s) chosen")

    photo_class = show_class(page, photo.split("/")[0])  # "3 (31)"
    slot = find_card(page, Path(photo).name)
    choose(page, f"clean-choice-{slot}", "delete")
    expect(page.locator("#clean-status")).to_contain_text("2 change(s) chosen, not applied yet: 1 to delete, 1 to relabel")
    screenshot(page, "clean-chosen")

    page.get_by_label("move the files too").check()
    page.locator("#clean-apply").click()
    expect(page.locator("#clean-status")).to_contain_text("Applied: 1 deleted; 1 relabelled; 1 moved into removed/, 1 into")

    # The files: relabelled into its class folder, deleted into removed/ beside the data; nothing else moved.
    assert (digits / truth / Path(wrong).name).is_file() and not (digits / wrong).exists()
    assert (digits.parent / "removed" / "digits" / photo).is_file() and not (digits / photo).exists()
    rows = {row["fname"]: row for row in csv.DictReader((digits / "cleaned.csv").open())}
    assert rows[f"{truth}/{Path(wrong).name}"]["label"] == truth
    assert photo not in rows and wrong not in rows
    assert all((digits / name).is_file() for name in rows)
    # The page follows: the deleted photo is gone from its class.
    expect(page.locator("#clean-page input")).to_have_value("1")
    count = int(photo_class.split("(")[1].rstrip(")"))
    assert f"{photo.split('/')[0]} ({count - 1})" in class_options(page)

    undo = subprocess.run([sys.executable, "-m", "dlcourse.clean", "--data", str(digits), "--undo"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert undo.returncode == 0, undo.stderr
    assert (digits / wrong).is_file() and (digits / photo).is_file()
    assert not (digits / truth / Path(wrong).name).exists() and not (digits / "cleaned.csv").exists()

    # Nothing is left to undo: the page says so, and goes on serving.
    page.locator("#clean-undo").click()
    toast(page, "nothing to undo")
    page.locator("#clean-next").click()
    expect(page.locator("#clean-pages")).to_contain_text("page 2 of")


def class_options(page: Page) -> list[str]:
    """The class menu's choices as shown (the menu is opened and closed again)."""
    page.locator("#clean-class input").click()
    options = [text.split("\n")[-1] for text in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    return options
