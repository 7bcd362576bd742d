"""Gradio sessions that start cheap: a session's copy of every block's config is built when it is first read.

Gradio (6.31) starts a session (`SessionState`) for every visitor, and for every plain-HTTP call
(`POST /gradio_api/call/<endpoint>` without a session_hash is a session of its own), and its constructor
builds the config of every block of the Space (`config_for_block`, an `inspect.signature` per component).
This Space has ~190 blocks: 16 ms of CPU on the event loop and ~200 KB kept per session, before the handler
even starts, against ~1 ms for a small app; a raw-HTTP classify took about twice a no-op app's time mostly
for this (bench/bench_serve.py, py-spy). Gradio reads those configs only to serve a deep link
(`SessionState.components`) and updates single entries when a handler changes a component, so here they are
computed on the first full read instead; the entries read are the same as when built eagerly.
"""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from gradio import state_holder

_gradio_init = state_holder.SessionState.__init__


class ConfigsOnDemand(dict):
    """A session's {block id: config}; entries not set yet are built from the session's blocks on the first full read."""

    def __init__(self, blocks_config: Any, ids: list[int]):
        super().__init__()
        self.blocks_config, self.pending = blocks_config, dict.fromkeys(ids)  # ordered, quick to look up

    def fill(self) -> None:
        for key in self.pending:
            self[key]  # builds the entry unless set already
        self.pending = {}

    def __contains__(self, key: object) -> bool:
        return super().__contains__(key) or key in self.pending

    def __getitem__(self, key: int) -> dict:
        if not super().__contains__(key) and key in self.pending:
            self[key] = self.blocks_config.config_for_block(key, [], self.blocks_config.blocks[key])
        return super().__getitem__(key)

    def items(self):
        self.fill()
        return super().items()

    def values(self):
        self.fill()
        return super().values()

    def keys(self):
        self.fill()
        return super().keys()

    def __iter__(self):
        self.fill()
        return super().__iter__()

    def __len__(self) -> int:
        self.fill()
        return super().__len__()


def _session_init(self: state_holder.SessionState, blocks: Any) -> None:
    # Gradio's own constructor with no blocks to copy configs of (it copies those present in `blocks.blocks`).
    _gradio_init(self, SimpleNamespace(default_config=blocks.default_config, blocks={}))
    self.config_values = ConfigsOnDemand(self.blocks_config, [k for k in self.blocks_config.blocks if k in blocks.blocks])


def build_session_configs_on_demand() -> None:
    """Make every Gradio session of this process build its blocks' configs when first read (see the module)."""
    state_holder.SessionState.__init__ = _session_init
