"""Arguments shared by subcommands that read a spec or an XYZ cluster."""

from __future__ import annotations

from ..ccd.metrics import METRICS


def add_source_arguments(p) -> None:
    p.add_argument("source", help="spec file (.toml/.yaml) or a free cluster (.xyz)")
    p.add_argument("--metric", choices=sorted(METRICS), default=None, help="override the pair metric")
    p.add_argument("--sigma", type=float, default=None,
                   help="override sigma (fraction of the nearest-neighbour distance)")
    p.add_argument("--truncate", default=None,
                   help="'auto' (3N-6), an integer, or 'none' (keep every CCD)")
    p.add_argument("--symprec", type=float, default=None, help="override the symmetry tolerance (Å)")
    p.add_argument("--cluster", action="append", default=None,
                   help="only these clusters (repeatable)")


def overrides(args) -> dict:
    t = args.truncate
    if t is not None:
        t = False if t.lower() in ("none", "false", "all") else ("auto" if t == "auto" else int(t))
    return {"metric": args.metric, "sigma": args.sigma, "truncate": t, "symprec": args.symprec}


def load_problem(args):
    """Stage 1 + 2 for a CLI call: (problem, transforms), filtered by --cluster."""
    from ..errors import SpecError
    from ..pipeline import load, transforms

    problem = load(args.source, **overrides(args))
    if args.cluster:
        names = [c.name for c in problem.clusters]
        missing = [n for n in args.cluster if n not in names]
        if missing:
            raise SpecError(f"no cluster named {missing}", fix=f"clusters are: {', '.join(names)}")
        from dataclasses import replace

        problem = replace(problem, clusters=tuple(c for c in problem.clusters if c.name in args.cluster))
    return problem, transforms(problem)
