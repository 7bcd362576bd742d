"""A model file's network built and exported to ONNX in a forked child process, while the server starts.

The serving process then never imports timm or torchvision (with the torch._dynamo they pull in: ~190 MB and
~3 s of start-up on this project's CPU) and never holds the network beside ONNX Runtime's copy of its weights;
and on two cores the child builds and exports while the server imports Gradio (docs/serving-speed.md).

The child's answer is a weights-only torch file, read with `torch.load(weights_only=True)` like a model file:
reading it runs no code. A child that fails answers nothing, and the caller loads the file itself.
"""
from __future__ import annotations

import io
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import torch

from .fast_forward import Exported
from .loading import load_model_file
from .modelfile import ModelInfo, build_model

log = logging.getLogger(__name__)

GIVE_UP_SECONDS = 300  # a child still busy after this is stopped, and the file loaded in process (a big network
# exports in well under a minute here)


class ChildExport:
    """`start(path)` forks; `answer()` waits for the child's (meta, Exported), or None when it failed."""

    def __init__(self, path: Path, pid: int, reader: int):
        self.path, self.pid = path, pid
        self.received = bytearray()
        # The child blocks once the pipe is full: read as it writes, whatever the caller does meanwhile.
        self.reading = threading.Thread(target=self._read, args=(reader,), name="child-export", daemon=True)
        self.reading.start()

    @staticmethod
    def possible() -> bool:
        """On Linux, in a process with no other thread yet (app.py before Gradio; not `gradio app.py` reloading
        it): a thread holding a lock at the fork would leave it held in the child. macOS forbids much after
        fork, Windows has none."""
        return sys.platform.startswith("linux") and threading.active_count() == 1

    @classmethod
    def start(cls, path: str | Path) -> "ChildExport":
        reader, writer = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: answer, then leave without running the parent's exit handlers
            os.close(reader)
            status = 1
            try:
                # One thread: a parent that has already run torch ops in parallel leaves OpenMP's worker threads
                # behind in the fork, and a parallel region in the child would wait for them for ever.
                torch.set_num_threads(1)
                with os.fdopen(writer, "wb") as out:
                    out.write(_answer(Path(path)))
                status = 0
            except BaseException as error:  # noqa: BLE001 - the parent loads the file itself and reports
                log.debug("the model file was not exported in a child process: %s", error)  # the parent says why
            finally:
                os._exit(status)
        os.close(writer)
        return cls(Path(path), pid, reader)

    def _read(self, reader: int) -> None:
        with os.fdopen(reader, "rb") as answer:
            while chunk := answer.read(1 << 20):
                self.received += chunk

    def answer(self) -> tuple[ModelInfo, Exported] | None:
        self.reading.join(GIVE_UP_SECONDS)
        if self.reading.is_alive():
            log.info("the child process exporting %s gave no answer in %d s: stopped", self.path, GIVE_UP_SECONDS)
            os.kill(self.pid, signal.SIGKILL)
        _, status = os.waitpid(self.pid, 0)  # reaped: its CPU time counts as the server's
        if status != 0 or not self.received:
            return None
        record = torch.load(io.BytesIO(self.received), map_location="cpu", weights_only=True)
        self.received = bytearray()
        meta = ModelInfo.from_dict(record["meta"], source=str(self.path))
        return meta, Exported(record["graph"].numpy().tobytes(), record["probe"], record["probabilities"])


def _answer(path: Path) -> bytes:
    meta, state_dict = load_model_file(path)
    network = build_model(meta, state_dict).eval()
    exported = Exported.of(network, meta.in_chans, meta.img_size)
    answer = io.BytesIO()
    torch.save({"meta": meta.to_dict(), "graph": torch.frombuffer(bytearray(exported.graph), dtype=torch.uint8),
                "probe": exported.probe, "probabilities": exported.probabilities}, answer)
    return answer.getvalue()
