"""Arguments shared by subcommands that read a spec or an XYZ cluster.

Every option value is checked when the command line is parsed, by ``type=`` functions that
apply the spec's own validators (:mod:`ccdgen.spec`), so ``--sigma nan`` is refused with the
same rule and words as ``sigma = nan`` in a spec, before anything reaches spglib or Numba.
A refused value raises :class:`argparse.ArgumentTypeError`, which the parser prints as one
``ccdgen <command>: error: argument --opt: ...`` line (what, why, fix) and exit code 2.
"""

from __future__ import annotations

import argparse

from ..ccd.metrics import METRICS


def checked(parse, check, key: str, what: str):
    """An argparse ``type=`` function: ``parse(text)`` (a ``ValueError`` means "not
    ``what``"), then ``check(value, key)`` (a spec validator raising ``SpecError``)."""
    from ..errors import SpecError

    def convert(text: str):
        try:
            value = parse(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        try:
            return check(value, key)
        except SpecError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    convert.__name__ = key
    return convert


# --------------------------------------------------------------- plain value types
def positive_int(text: str) -> int:
    """``type=`` for a whole number ≥ 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"{v} must be ≥ 1")
    return v


def number(what: str = "a number", minimum: float | None = None):
    """``type=`` for a finite number (optionally ≥ ``minimum``); ``what`` names its unit/role."""
    import math

    def convert(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number ({what})") from None
        if not math.isfinite(v) or (minimum is not None and v < minimum):
            bound = f" ≥ {minimum:g}" if minimum is not None else ""
            raise argparse.ArgumentTypeError(f"{what} must be a finite number{bound}, got {text}")
        return v

    return convert


def int_list(text: str) -> tuple:
    """``type=`` for whole numbers ≥ 1 separated by commas or spaces (``8`` or ``16,16``)."""
    try:
        vals = tuple(int(t) for t in text.replace(",", " ").split())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of whole numbers (e.g. 8 or 16,16)") from None
    if not vals or any(v < 1 for v in vals):
        raise argparse.ArgumentTypeError(f"the numbers must be ≥ 1, got {text!r}")
    return vals


def json_object(text: str) -> dict:
    """``type=`` for a JSON object, e.g. ``'{"rc": 6.0}'``."""
    import json

    try:
        v = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not JSON ({exc.msg})") from None
    if not isinstance(v, dict):
        raise argparse.ArgumentTypeError(f"{text!r} is not a JSON object like '{{\"rc\": 6.0}}'")
    return v


def _parse_truncate(text: str):
    t = text.strip().lower()
    if t == "auto":
        return "auto"
    if t in ("none", "all", "false"):
        return False
    return int(t)


def _sigma(value, key):
    from ..spec import check_sigma

    return check_sigma(value, key)


def _symprec(value, key):
    from ..spec import check_symprec

    return check_symprec(value, key)


def _truncate(value, key):
    from ..spec import check_truncate

    return check_truncate(value, key)


def _order(value, key):
    from ..spec import check_max_order

    return check_max_order(value, key)


#: ``--sigma``: a number in (0, 1].
sigma_type = checked(float, _sigma, "sigma", "a number")
#: ``--symprec``: a number in (0, 1) Å.
symprec_type = checked(float, _symprec, "symprec", "a number")
#: ``--truncate``: 'auto', 'none'/'all'/'false' (→ False) or an integer ≥ 1.
truncate_type = checked(_parse_truncate, _truncate, "truncate",
                        "'auto', 'none' (keep every CCD) or a whole number of CCDs ≥ 1")
#: ``--order``: an integer in 0..MAX_ORDER.
order_type = checked(int, _order, "order", "a whole number")


def add_source_arguments(p) -> None:
    p.add_argument("source", help="spec file (.toml/.yaml) or a free cluster (.xyz)")
    p.add_argument("--metric", choices=sorted(METRICS), default=None, help="override the pair metric")
    p.add_argument("--sigma", type=sigma_type, default=None,
                   help="override sigma (fraction of the nearest-neighbour distance, 0 < sigma ≤ 1)")
    p.add_argument("--truncate", type=truncate_type, default=None,
                   help="'auto' (3N-6), an integer ≥ 1, or 'none' (keep every CCD)")
    p.add_argument("--symprec", type=symprec_type, default=None,
                   help="override the symmetry tolerance (Å, 0 < symprec < 1)")
    p.add_argument("--cluster", action="append", default=None,
                   help="only these clusters (repeatable)")


def overrides(args) -> dict:
    return {"metric": args.metric, "sigma": args.sigma, "truncate": args.truncate, "symprec": args.symprec}


def check_order(args) -> None:
    """``--order`` of any subcommand, for parsers that did not give it ``type=order_type``."""
    from ..errors import SpecError

    order = getattr(args, "order", None)
    if order is not None:
        try:
            order_type(str(order))
        except argparse.ArgumentTypeError as exc:
            raise SpecError(f"--order: {exc}") from None


def load_problem(args):
    """Stage 1 + 2 for a CLI call: (problem, transforms), filtered by --cluster."""
    from ..errors import SpecError
    from ..pipeline import load, transforms

    check_order(args)
    problem = load(args.source, **overrides(args))
    if args.cluster:
        names = [c.name for c in problem.clusters]
        missing = [n for n in dict.fromkeys(args.cluster) if n not in names]
        if missing:
            entries = {n.rstrip("0123456789") for n in names}
            hint = ("; a [[clusters]] entry that selects several orbits names them with a number "
                    "(pair → pair1, pair2, ...)" if any(m in entries for m in missing) else "")
            raise SpecError(f"--cluster: no cluster named {', '.join(map(repr, missing))}",
                            fix=f"clusters are: {', '.join(names)}{hint}")
        from dataclasses import replace

        problem = replace(problem, clusters=tuple(c for c in problem.clusters if c.name in args.cluster))
    return problem, transforms(problem)
