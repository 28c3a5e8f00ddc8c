"""``ccdgen compile SPEC|XYZ --order N [--json]``: generate and JIT the feature kernels.

Prints, per cluster, the generated module's path, the number of features, the cache key
and whether it was a cache hit, with per-stage timings.
"""

from __future__ import annotations

import argparse
import json
import time


def tile_type(text: str) -> int:
    """``--tile``: the rule of :class:`ccdgen.codegen.compiled.CodeOptions` (1..4096)."""
    from ..codegen.compiled import CodeOptions
    from ..errors import SpecError

    try:
        tile = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    try:
        CodeOptions(tile=tile)
    except SpecError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return tile


def add_arguments(p) -> None:
    from .common import add_source_arguments, order_type

    add_source_arguments(p)
    p.add_argument("--order", type=order_type, default=None,
                   help="highest invariant degree (default: spec max_order)")
    p.add_argument("--tile", type=tile_type, default=None, help="clusters per SIMD tile, 1..4096 (default: 64)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--show-code", metavar="CLUSTER", default=None, help="print the generated source of one cluster")


def run(args) -> int:
    from ..codegen.compiled import CodeOptions, DEFAULT_TILE, compile_transform
    from .common import load_problem

    t0 = time.perf_counter()
    problem, ts = load_problem(args)
    if args.show_code and args.show_code not in [t.cluster.name for t in ts]:
        from ..errors import SpecError

        raise SpecError(f"--show-code: no cluster named {args.show_code!r}",
                        fix=f"clusters are: {', '.join(t.cluster.name for t in ts)}")
    order = problem.options.max_order if args.order is None else args.order
    options = CodeOptions(tile=DEFAULT_TILE if args.tile is None else args.tile)
    rows = []
    compiled = {}
    for t in ts:
        cc = compile_transform(t, order, options=options)
        compiled[t.cluster.name] = cc
        rows.append({"cluster": t.cluster.name, "module": str(cc.path), "n_features": cc.n_features,
                     "cache_key": cc.key, "cache_hit": cc.cache_hit,
                     "ccd_set": "truncated" if cc.basis.truncated else "full",
                     "timings_s": {k: round(v, 4) for k, v in cc.timings.items()}})
    total = time.perf_counter() - t0
    if args.json:
        print(json.dumps({"source": problem.source, "order": order, "clusters": rows,
                          "total_s": round(total, 3)}, indent=1))
    else:
        print(f"{'cluster':<10} {'features':>8}  {'cache':<5} {'key':<16} module")
        for r in rows:
            print(f"{r['cluster']:<10} {r['n_features']:>8}  {'hit' if r['cache_hit'] else 'new':<5} "
                  f"{r['cache_key'][:16]} {r['module']}")
        print(f"\ncompiled {len(rows)} cluster(s) to order {order} in {total:.2f} s")
    if args.show_code:
        from ..codegen.compiled import show_code

        show_code(compiled[args.show_code])
    return 0
