"""What this machine lends the process."""
from __future__ import annotations

import os


def usable_cores() -> int:
    """The CPU cores this process may run on (a container or `taskset` may allow fewer than the machine has)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
