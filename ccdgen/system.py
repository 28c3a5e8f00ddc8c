"""Facts about the machine this process runs on."""

from __future__ import annotations

import os


def cpu_count() -> int:
    """CPUs this process may use (affinity-aware; ``os.cpu_count()`` where there is no affinity)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1
