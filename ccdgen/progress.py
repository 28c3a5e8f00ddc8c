"""Progress of long work: notes with a cost estimate before it starts, and bars while it runs.

Notes and bars go to stderr and only for work large enough to be noticed (so tests and small
runs stay quiet); ``CCDGEN_PROGRESS=0`` silences them, ``=1`` shows bars even without a terminal.
"""

from __future__ import annotations

import os
import sys


def enabled() -> bool:
    return os.environ.get("CCDGEN_PROGRESS", "") != "0"


def note(message: str) -> None:
    """One line on stderr: ``ccdgen: <message>``."""
    if enabled():
        print(f"ccdgen: {message}", file=sys.stderr, flush=True)


def bar(total: int, desc: str, unit: str = "it"):
    """A tqdm bar on stderr (shown on a terminal, or always with ``CCDGEN_PROGRESS=1``)."""
    from tqdm.auto import tqdm

    forced = os.environ.get("CCDGEN_PROGRESS", "") == "1"
    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
                disable=not enabled() or (not forced and not sys.stderr.isatty()))


def human_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"
