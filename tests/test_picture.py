"""dlcourse.ui.common's Picture: an output picture that many requests share is written once, whole."""
from __future__ import annotations

import os
import threading
from pathlib import Path

from PIL import Image

from dlcourse.ui.common import Picture


def test_a_picture_many_requests_share_is_written_whole_once():
    """The load run's only failures were pictures fetched while another request rewrote the same file
    (Gradio saves an output picture in place at cache/<hash>/image.png). Picture writes it once, whole."""
    picture = Picture(type="pil", format="png", render=False)
    image = Image.effect_noise((280, 280), 64).convert("L")
    path = picture.postprocess(image).path
    before = os.stat(path)
    seen: list[tuple[int, int]] = []

    def read() -> None:
        for _ in range(200):
            with Image.open(path) as shown:
                seen.append(shown.size)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    paths = {picture.postprocess(image).path for _ in range(100)}
    for thread in readers:
        thread.join()
    after = os.stat(path)
    assert paths == {path} and (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert seen == [(280, 280)] * 400
    assert [p.name for p in Path(path).parent.iterdir()] == ["image.png"]  # no half-written copies left
