#!/usr/bin/env python
"""Benchmark (not a test): the training-set generators and the uniqueness filter.

    .venv/bin/python benchmarks/sampling.py [--sizes 10000 100000] [--dim 26] [--intrinsic 8]
        [--keep 0.5] [--brute 10000] [--featurize 2000] [--source synthetic|features]
        [--json out.json]

Measures, in ONE run on one core (BLAS/OpenMP threads pinned to 1 before numpy loads):

- the uniqueness filter (:mod:`ccdgen.data.sampling.unique`) on ``--sizes`` candidates:
  ``--source synthetic`` points of dimension ``--dim`` near an ``--intrinsic``-dimensional
  subspace, or ``--source features`` the standardized CCD features of n-sphere frames
  of 2×2×2 CsPbBr3 (what ``ccdgen sample --min-distance`` filters), with the threshold
  set so that about ``--keep`` of the largest set is kept; the time ratio between sizes
  is the measured scaling (n log n predicts ×12.5 from 10⁴ to 10⁵, n² ×100).  KD-tree
  queries cost more per point as the intrinsic dimension grows (a ball of the threshold
  radius meets more cells), so the measured ratio lies between the two;
- the same filter done by brute force (each candidate against all kept ones, vectorized)
  on ``--brute`` candidates, and that both keep the same frames;
- symmetry-adapted modes of 2×2×2 and 4×4×4 CsPbBr3, the 15 tilt systems, and n-sphere
  candidates featurized with the example's CCD kernels (``--featurize`` frames; kernels
  compiled once before timing).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"


def candidates(n: int, dim: int, intrinsic: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(dim, intrinsic)))[0]
    return rng.normal(size=(n, intrinsic)) @ basis.T + 0.01 * rng.normal(size=(n, dim))


def ccd_candidates(n: int) -> np.ndarray:
    """Standardized CCD features (as ``ccdgen sample --min-distance`` uses them) of ``n``
    n-sphere candidates of 2×2×2 CsPbBr3: radii 0.1–1.2 Å, strain radius 0.01, around
    the reference and the 15 tilt systems."""
    from ccdgen.crystal.featurizer import CrystalFeaturizer
    from ccdgen.crystal.supercell import Supercell
    from ccdgen.data.sampling import rng_for
    from ccdgen.data.sampling.glazer import glazer_frames
    from ccdgen.data.sampling.nsphere import nsphere_frames
    from ccdgen.data.sampling.unique import frame_features
    from ccdgen.pipeline import load

    p = load(EXAMPLE)
    sc = Supercell.diagonal(p.crystal, (2, 2, 2))
    fz = CrystalFeaturizer(p)
    base = glazer_frames(sc, "all", 8.0)
    radii = np.linspace(0.1, 1.2, 12)
    per = -(-n // len(radii))
    cand = nsphere_frames(base, per, radii, rng_for(0, "nsphere"), strain_radius=0.01)
    f = np.concatenate([frame_features(cand.subset(np.arange(i, min(i + 20000, len(cand)))), fz, sc)
                        for i in range(0, len(cand), 20000)])[:n]
    f = f[np.random.default_rng(0).permutation(len(f))]  # candidates in random order
    scale = np.sqrt(np.mean(f ** 2, axis=0))
    scale[scale == 0] = 1.0
    return f / (scale * np.sqrt(f.shape[1]))


def brute_force(x: np.ndarray, thr: float) -> np.ndarray:
    kept = np.empty((0, x.shape[1]))
    out = []
    for i, v in enumerate(x):
        if len(kept) == 0 or np.min(np.sum((kept - v) ** 2, axis=1)) >= thr * thr:
            kept = np.vstack([kept, v])
            out.append(i)
    return np.array(out)


def timed(fn, repeats=1):
    best, res = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        res = fn()
        best = min(best, time.perf_counter() - t)
    return best, res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", choices=("synthetic", "features"), default="synthetic",
                    help="synthetic points near a subspace, or CCD features of n-sphere frames")
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000])
    ap.add_argument("--dim", type=int, default=26)
    ap.add_argument("--intrinsic", type=int, default=8)
    ap.add_argument("--keep", type=float, default=0.5)
    ap.add_argument("--brute", type=int, default=10_000)
    ap.add_argument("--featurize", type=int, default=2000)
    ap.add_argument("--json", default=None)
    args = ap.parse_args(argv)

    from ccdgen.data.sampling.unique import unique_subset

    out = {"machine": platform.processor() or platform.machine(), "python": platform.python_version(),
           "source": args.source}
    big = max(args.sizes)
    if args.source == "features":
        x_big = ccd_candidates(big)
        print(f"features of {big} n-sphere candidates: {x_big.shape[1]} per frame")
    else:
        x_big = candidates(big, args.dim, args.intrinsic)
    # threshold keeping about --keep of the largest set (bisection on a subsample is not
    # exact; a few filter runs on the full set are cheap)
    lo, hi = 1e-6, 10.0
    for _ in range(20):
        mid = np.sqrt(lo * hi)
        frac = len(unique_subset(x_big, mid)) / big
        lo, hi = (mid, hi) if frac > args.keep else (lo, mid)
    thr = float(np.sqrt(lo * hi))
    out["threshold"] = thr
    what = f"dim {args.dim} (intrinsic {args.intrinsic})" if args.source == "synthetic" else \
        f"CCD features, dim {x_big.shape[1]}"
    print(f"uniqueness filter: {what}, threshold {thr:.4g}")
    rows = []
    for n in sorted(args.sizes):
        x = x_big[:n]
        t, kept = timed(lambda: unique_subset(x, thr), repeats=3 if n <= 20_000 else 1)
        rows.append({"n": n, "seconds": t, "kept": int(len(kept))})
        print(f"  n = {n:>7d}: {t:8.3f} s, kept {len(kept)} ({len(kept) / n:.0%}), {n / t:,.0f} candidates/s")
    for a, b in zip(rows[:-1], rows[1:]):
        r = b["seconds"] / a["seconds"]
        nlogn = b["n"] * np.log(b["n"]) / (a["n"] * np.log(a["n"]))
        print(f"  {a['n']} → {b['n']}: time × {r:.1f} (n log n predicts × {nlogn:.1f}, n² × {(b['n'] / a['n']) ** 2:.0f})")
    out["unique"] = rows
    if args.brute:
        x = x_big[:args.brute]
        tb, kb = timed(lambda: brute_force(x, thr))
        tf, kf = timed(lambda: unique_subset(x, thr))
        same = bool(np.array_equal(kb, kf))
        print(f"  brute force on {args.brute}: {tb:.2f} s vs {tf:.3f} s (× {tb / tf:.0f}); same frames kept: {same}")
        out["brute"] = {"n": args.brute, "seconds": tb, "filter_seconds": tf, "same": same}

    from ccdgen.crystal.supercell import Supercell
    from ccdgen.data.sampling.glazer import glazer_frames
    from ccdgen.data.sampling.modes import displacement_modes
    from ccdgen.pipeline import load

    p = load(EXAMPLE)
    for rep in ((2, 2, 2), (4, 4, 4)):
        sc = Supercell.diagonal(p.crystal, rep)
        t, m = timed(lambda: displacement_modes(p, sc), repeats=2)
        print(f"modes {rep}: {t:.3f} s ({m.n_modes} modes, {len(m.blocks)} blocks)")
        out[f"modes_{'x'.join(map(str, rep))}"] = t
    sc = Supercell.diagonal(p.crystal, (2, 2, 2))
    t, _ = timed(lambda: glazer_frames(sc, "all", 8.0), repeats=3)
    print(f"glazer: 15 tilt systems in {t * 1e3:.1f} ms")
    out["glazer_15"] = t
    if args.featurize:
        from ccdgen.crystal.featurizer import CrystalFeaturizer
        from ccdgen.data.sampling import FrameBatch, rng_for
        from ccdgen.data.sampling.nsphere import nsphere_frames
        from ccdgen.data.sampling.unique import frame_features

        fz = CrystalFeaturizer(p)
        base = glazer_frames(sc, "a0a0a0", 8.0)
        frame_features(FrameBatch.concatenate([base]), fz, sc)  # compile / warm up
        tn, cand = timed(lambda: nsphere_frames(base, args.featurize, [0.5], rng_for(0, "nsphere")))
        tf, f = timed(lambda: frame_features(cand, fz, sc))
        print(f"n-sphere: {args.featurize} candidates in {tn:.3f} s; CCD features ({f.shape[1]} per frame) "
              f"in {tf:.2f} s = {tf / args.featurize * 1e3:.2f} ms/frame")
        out["nsphere"] = {"n": args.featurize, "draw_seconds": tn, "feature_seconds": tf}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
