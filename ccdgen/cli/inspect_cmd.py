"""``ccdgen inspect SPEC|XYZ [--json]``: clusters, point groups, irreps, CCDs."""

from __future__ import annotations

import json

from .common import add_source_arguments, load_problem


def add_arguments(p) -> None:
    add_source_arguments(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--exact", action="store_true",
                   help="also print the exact (SymPy) rows of V where symmetry fixes them")


def run(args) -> int:
    from ..report import cluster_report, text_table

    problem, ts = load_problem(args)
    reports = [cluster_report(t) for t in ts]
    if args.json:
        doc = {"source": problem.source, "clusters": reports}
        if problem.spacegroup is not None:
            doc["space_group"] = {"symbol": problem.spacegroup.international,
                                  "number": problem.spacegroup.number}
        print(json.dumps(doc, indent=1, ensure_ascii=False))
        return 0
    print(text_table(problem, reports))
    if args.exact:
        from ..ccd.exact import exact_block_rows
        import sympy as sp

        for t in ts:
            print(f"\n{t.cluster.name}: exact rows of Vᵀ (CCD = λ^-1/2 · row · eps)")
            for b, rows in zip(t.blocks, exact_block_rows(t)):
                if rows is None:
                    print(f"  {b.label}: repeated irrep, mixing from C's eigenvectors (numeric)")
                    continue
                for k in range(rows.shape[0]):
                    print(f"  {b.label},{k + 1}: {sp.sstr(list(rows[k, :]))}")
    return 0
