"""Hostile pickles for the safety tests: unpickling either one runs code that creates `marker`.

Each test loads files made of them and checks that no marker appears (and, under an audit hook, that no
process started), while a plain `pickle.loads` of the same bytes does create the marker.
"""
from __future__ import annotations

import os
from pathlib import Path


class RunsShell:
    """Unpickling it runs a shell command (os.system) that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class RunsExec:
    """Unpickling it calls exec(), which creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').close()",)
