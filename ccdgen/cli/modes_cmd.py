"""``ccdgen modes SPEC|XYZ [-o DIR]``: one PNG of CCD mode pictures per cluster."""

from __future__ import annotations

from pathlib import Path

from .common import add_source_arguments, load_problem


def add_arguments(p) -> None:
    add_source_arguments(p)
    p.add_argument("-o", "--output", default="ccdgen-modes", help="output folder (default: %(default)s)")
    p.add_argument("--truncated-only", action="store_true", help="only the truncated 3N-6 set")


def run(args) -> int:
    from ..plots.modes import plot_modes

    _, ts = load_problem(args)
    out = Path(args.output)
    for t in ts:
        path = plot_modes(t, out / f"{t.cluster.name}_modes.png", args.truncated_only)
        print(f"{t.cluster.name}: {path}")
    return 0
