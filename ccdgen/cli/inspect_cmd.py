"""``ccdgen inspect SPEC|XYZ``: clusters, point groups, irreps, CCDs and invariants.

``--json`` gives ``{"clusters": [...]}``; ``--order N`` adds the invariant basis (counts
per degree side by side with the Molien series, and the functions in ``--format
pretty|latex|json``, in CCD symbols or, with ``--in pairs``, in pair metrics).
"""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    from .common import add_source_arguments

    add_source_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (same as --format json)")
    p.add_argument("--order", type=int, default=None,
                   help="highest invariant degree (default: the spec's max_order)")
    p.add_argument("--format", choices=("pretty", "latex", "json"), default="pretty",
                   help="how to print basis functions (with --order)")
    p.add_argument("--in", dest="variables", choices=("ccd", "pairs"), default="ccd",
                   help="write basis functions in CCD symbols (default) or pair metrics with site labels")
    p.add_argument("--expand", action="store_true", help="with --in pairs: write whole orbit sums")
    p.add_argument("--basis", choices=("orbits", "irreps"), default="orbits",
                   help="orbits: the compiled basis (Reynolds orbit averages, default); irreps: a "
                   "reduced basis of the same span in CCDs, ordered by irrep content (display "
                   f"only, degree ≤ 4)")
    p.add_argument("--exact", action="store_true",
                   help="also print the exact (SymPy) rows of V where symmetry fixes them")


def run(args) -> int:
    from ..invariants.cached import invariant_basis
    from ..invariants.display import basis_report, molien_table, pair_form, ccd_form, render, feature_names
    from ..report import cluster_report, text_table
    from .common import load_problem

    as_json = args.json or args.format == "json"
    problem, ts = load_problem(args)
    order = problem.options.max_order if args.order is None else args.order
    show_functions = args.order is not None
    reports = []
    bases = []
    for t in ts:
        r = cluster_report(t)
        b = invariant_basis(t, order)
        bases.append(b)
        r["invariants"] = basis_report(b, t, "pretty", functions=show_functions and as_json,
                                       expand_pairs=args.expand)
        if show_functions and args.basis == "irreps":
            r["invariants"]["irrep_basis"] = _irrep_rows(b, t, "latex" if args.format == "latex" else "pretty")
        reports.append(r)
    if as_json:
        doc = {"source": problem.source, "clusters": reports}
        if problem.spacegroup is not None:
            doc["space_group"] = {"symbol": problem.spacegroup.international,
                                  "number": problem.spacegroup.number,
                                  "symmetrize_shift_angstrom": problem.symmetrize_shift}
        print(json.dumps(doc, indent=1, ensure_ascii=False))
        return 0
    print(text_table(problem, reports))
    print(f"\ninvariant polynomials up to degree {order} (count = Molien series, per degree)")
    for t, b in zip(ts, bases):
        cells = "  ".join(f"d{d}: {n}/{m}" for d, n, m in molien_table(b))
        used = f"truncated {b.truncated} CCDs" if b.truncated else f"all {t.n_ccd} CCDs"
        print(f"  {t.cluster.name:<10} {b.n_features:>6} functions ({used})   {cells}")
    if show_functions and args.basis == "irreps":
        for t, b, r in zip(ts, bases, reports):
            print(f"\n{t.cluster.name}: invariants in CCDs by irrep content (same span as the compiled "
                  "basis; row = Σ_f T[row, f] φ_f)")
            for row in r["invariants"]["irrep_basis"]:
                print(f"  d{row['degree']} [{row['content']}] = {row['ccd']}")
    elif show_functions:
        style = args.format
        for t, b in zip(ts, bases):
            print(f"\n{t.cluster.name}: basis functions "
                  f"({'pair metrics' if args.variables == 'pairs' else 'CCDs'})")
            names = feature_names(b, t.cluster.name)
            for f in range(b.n_features):
                if args.variables == "pairs":
                    text = pair_form(b, t, f, style, args.expand)
                else:
                    text = render(ccd_form(b, t, f, style), style)
                print(f"  {names[f]} = {text}")
    if args.exact:
        _print_exact(ts)
    return 0


def _irrep_rows(b, t, style: str) -> list[dict]:
    from ..invariants.display import MAX_CCD_DEGREE, irrep_ordered_basis, poly_expr, render

    out = []
    for d in range(1, min(b.max_degree, MAX_CCD_DEGREE) + 1):
        rows, trans, names = irrep_ordered_basis(b, t, d)
        for row, comb, name in zip(rows, trans, names):
            out.append({"degree": d, "content": name,
                        "ccd": render(poly_expr(row, t, b.truncated or t.n_ccd, style), style),
                        "combination": [float(f"{v:.12g}") for v in comb]})
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
