"""``ccdgen modes SPEC|XYZ [-o DIR]``: one PNG of CCD mode pictures per cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_source_arguments, load_problem


def output_folder(text: str) -> Path:
    """``-o``: a folder that exists or can be made (no part of it an existing file)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the output folder name is empty")
    path = Path(text)
    for p in (path, *path.parents):
        if p.exists():
            if not p.is_dir():
                raise argparse.ArgumentTypeError(
                    f"{p} is an existing file, not a folder\n  Fix: give a folder for the PNGs "
                    "(it is created if needed)")
            break
    return path


def add_arguments(p) -> None:
    add_source_arguments(p)
    p.add_argument("-o", "--output", type=output_folder, default=Path("ccdgen-modes"),
                   help="output folder, created if needed (default: %(default)s)")
    p.add_argument("--truncated-only", action="store_true", help="only the truncated 3N-6 set")


def run(args) -> int:
    from ..plots.modes import plot_modes

    _, ts = load_problem(args)
    out = Path(args.output)
    for t in ts:
        path = plot_modes(t, out / f"{t.cluster.name}_modes.png", args.truncated_only)
        print(f"{t.cluster.name}: {path}")
    return 0
