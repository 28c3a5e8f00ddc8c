"""``ccdgen inspect SPEC|XYZ``: clusters, point groups, irreps, CCDs and invariants.

``--json`` gives ``{"clusters": [...]}`` (with the correlation matrix ``C`` and the
eigenvalues at full precision, and notes on near-degenerate CCD blocks).  ``--order N``
adds the invariants up to degree N, counted per degree next to the Molien series:

* default (``--basis irreps``): the irrep-product form — per degree, one group of
  invariants per block multidegree (sector), labelled by irrep content (``T1u²``,
  ``Eg(1)·Eg(2)``), each written in the CCDs in reduced row echelon form;
* ``--basis orbits``: the compiled functions ``<cluster>_d<degree>_<k>`` (Reynolds orbit
  averages) in pair metrics (``--in pairs``, the default there; ``--expand`` for whole
  orbit sums) or expanded in the CCDs (``--in ccd``; long — every function is dense in
  its sectors).

``--format pretty|latex|json`` chooses how functions are written (``latex``: rows of a
tabular, ``degree & content & polynomial \\\\``).
"""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    from .common import add_source_arguments, order_type

    add_source_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (same as --format json)")
    p.add_argument("--order", type=order_type, default=None,
                   help="highest invariant degree, and list the invariants (default: the spec's max_order, "
                   "counts only)")
    p.add_argument("--format", choices=("pretty", "latex", "json"), default="pretty",
                   help="how to print the invariants (with --order)")
    p.add_argument("--basis", choices=("irreps", "orbits"), default=None,
                   help="irreps (default): invariants by irrep content, built from the CCD blocks; "
                   "orbits: the compiled functions (Reynolds orbit averages) — implied by --in pairs "
                   "or --expand")
    p.add_argument("--in", dest="variables", choices=("ccd", "pairs"), default=None,
                   help="with --basis orbits: write the compiled functions in pair metrics (default) or "
                   "expanded in the CCDs (long)")
    p.add_argument("--expand", action="store_true", help="with --in pairs: write whole orbit sums")
    p.add_argument("--exact", action="store_true",
                   help="also print the exact (SymPy) rows of V where symmetry fixes them")


def _resolve_view(args) -> tuple[str, str | None]:
    """(basis, variables) after defaults and implications; bad combinations → SpecError."""
    from ..errors import SpecError

    basis = args.basis
    if basis is None:
        basis = "orbits" if (args.variables == "pairs" or args.expand) else "irreps"
    variables = args.variables
    if basis == "irreps":
        if variables == "pairs" or args.expand:
            raise SpecError("--in pairs / --expand apply to the compiled functions",
                            why="the irrep-product invariants are written in the CCDs η",
                            fix="add --basis orbits (or drop --in pairs / --expand)")
        return basis, "ccd"
    variables = variables or "pairs"
    if variables == "ccd" and args.expand:
        raise SpecError("--expand applies to pair metrics (--in pairs)",
                        fix="drop --expand, or use --in pairs --expand for whole orbit sums")
    return basis, variables


def run(args) -> int:
    from ..invariants.cached import invariant_basis
    from ..invariants.display import basis_report, molien_table, sector_invariants, sector_rows
    from ..report import cluster_report, text_table
    from .common import load_problem

    as_json = args.json or args.format == "json"
    basis_kind, variables = _resolve_view(args)
    problem, ts = load_problem(args)
    order = problem.options.max_order if args.order is None else args.order
    show = args.order is not None
    style = "latex" if args.format == "latex" else "pretty"
    reports, bases, sectors = [], [], []
    for t in ts:
        r = cluster_report(t)
        b = invariant_basis(t, order)
        bases.append(b)
        orbits = show and basis_kind == "orbits"
        sb = None
        if show and (basis_kind == "irreps" or variables == "ccd"):
            sb = sector_invariants(t, order, b.truncated is not None, b.molien)
        sectors.append(sb)
        r["invariants"] = basis_report(b, t, style, functions=orbits, expand_pairs=args.expand,
                                       in_ccd=orbits and variables == "ccd", sectors=sb)
        if show and basis_kind == "irreps":
            r["invariants"]["irrep_basis"] = sector_rows(t, sb, style)
            r["invariants"]["irrep_basis_per_degree"] = {str(d): n for d, n in sb.per_degree.items()}
        reports.append(r)
    if as_json:
        doc = {"source": problem.source, "clusters": reports}
        if problem.spacegroup is not None:
            doc["space_group"] = {"symbol": problem.spacegroup.international,
                                  "number": problem.spacegroup.number,
                                  "symmetrize_shift_angstrom": problem.symmetrize_shift}
        print(json.dumps(doc, indent=1, ensure_ascii=False))
        return 0
    lines = [text_table(problem, reports), "",
             f"invariant polynomials up to degree {order} (count = Molien series, per degree)"]
    for t, b in zip(ts, bases):
        cells = "  ".join(f"d{d}: {n}/{m}" for d, n, m in molien_table(b))
        used = f"truncated {b.truncated} CCDs" if b.truncated else f"all {t.n_ccd} CCDs"
        lines.append(f"  {t.cluster.name:<10} {b.n_features:>6} functions ({used})   {cells}")
    if show and basis_kind == "irreps":
        for t, b, r in zip(ts, bases, reports):
            lines += _irrep_lines(t, b, r["invariants"]["irrep_basis"], style)
    elif show:
        for t, r in zip(ts, reports):
            where = "pair metrics" if variables == "pairs" else "the CCDs (expanded; long)"
            lines.append(f"\n{t.cluster.name}: compiled basis functions (Reynolds orbit averages) in {where}")
            for fn in r["invariants"]["functions"]:
                lines.append(f"  {fn['name']} = {fn['pairs'] if variables == 'pairs' else fn['ccd']}")
    print("\n".join(lines))
    if args.exact:
        _print_exact(ts)
    return 0


def _irrep_lines(t, b, rows: list[dict], style: str) -> list[str]:
    used = f"the truncated {b.truncated} CCDs" if b.truncated else \
        (f"all {t.n_ccd} CCDs" if t.n_ccd > 1 else "its one CCD")
    out = [f"\n{t.cluster.name}: invariants by irrep content, in {used} (one sector per block "
           "multidegree; per degree as many as the Molien series)"]
    if not rows:
        return out + ["  (none: --order 0)"]
    if style == "latex":
        out.append("% degree & irrep content & invariant \\\\")
    degree = None
    for row in rows:
        if style == "latex":
            out.append(f"  {row['degree']} & ${row['content_latex']}$ & ${row['ccd']}$ \\\\")
            continue
        if row["degree"] != degree:
            degree = row["degree"]
            n = sum(1 for x in rows if x["degree"] == degree)
            out.append(f"  degree {degree}: {n} invariant{'s' if n != 1 else ''}")
        tag = row["content"] + (f" #{row['index']}" if row["of"] > 1 else "")
        out.append(f"    d{row['degree']} [{tag}] = {row['ccd']}")
    return out


def _print_exact(ts) -> None:
    import sympy as sp

    from ..ccd.exact import exact_block_rows

    for t in ts:
        print(f"\n{t.cluster.name}: exact rows of Vᵀ (CCD = λ^-1/2 · row · eps)")
        for b, rows in zip(t.blocks, exact_block_rows(t)):
            if rows is None:
                print(f"  {b.label}: repeated irrep, mixing from C's eigenvectors (numeric)")
                continue
            for k in range(rows.shape[0]):
                print(f"  {b.label},{k + 1}: {sp.sstr(list(rows[k, :]))}")
