#!/usr/bin/env python
"""Benchmark of crystal features (not a test): whole configurations of the CsPbBr3 spec.

    .venv/bin/python benchmarks/crystal.py [--frames 10000] [--json out.json]

Everything is measured in one run; every ratio is against a baseline measured in the same run:
the per-cluster kernels (``CompiledCluster.features`` / ``features_and_vjp``) called orbit by
orbit on coordinates gathered with NumPy, and scattered back with ``np.add.at`` — what a user
would write without the crystal kernels.

A. Featurize N 40-atom configurations (2×2×2, bundled data cycled, mapping included, file
   reading not) at orders 2 and 4, features only and features + VJP (forces and stress for
   given dE/dφ), on 1 and 2 threads.  Target: ≥ 5,000 configurations/s at order 2 on 2 threads.
B. Energy + forces + stress of ONE 40-atom configuration given dE/dφ (fused VJP, site-ordered
   positions ready: the MD inner loop).  Target: ≤ 60 µs.
C. A 10×10×10 supercell (5,000 atoms): features, and features + VJP, per atom.  Target:
   features ≤ 1.5 µs per atom.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
SPEC = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
DATA = REPO / "examples" / "cspbbr3" / "data" / "train.extxyz.gz"


def best(fn, repeat: int = 5) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def naive(fz, x, cells, lay, weights=None):
    """The baseline: per orbit, gather with NumPy, call the per-cluster kernel, scatter."""
    out, grad, vir = {}, np.zeros_like(x), np.zeros((len(x), 3, 3))
    for name in fz.orbits:
        k = fz.kernels[name]
        sc = lay.supercell.clusters(fz.clusters[name])
        xc = (x[:, sc.atoms] + np.einsum("kse,fed->fksd", sc.images.astype(float), cells)).reshape(-1, k.n_sites, 3)
        if weights is None:
            out[name] = k.features(xc)
            continue
        f, g, w = k.features_and_vjp(xc, weights[name].reshape(-1, k.n_features))
        out[name] = f
        g = g.reshape(len(x), -1, k.n_sites, 3)
        idx = np.broadcast_to(sc.atoms[None], g.shape[:3])
        fr = np.broadcast_to(np.arange(len(x))[:, None, None], g.shape[:3])
        np.add.at(grad, (fr, idx), g)
        vir += w.reshape(len(x), -1, 3, 3).sum(axis=1)
    return out, grad, vir


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=10000)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("CCDGEN_CACHE_DIR", tempfile.mkdtemp(prefix="ccdgen-bench-"))
    from ccdgen.codegen.compiled import set_num_threads
    from ccdgen.crystal.featurizer import CrystalFeaturizer
    from ccdgen.crystal.supercell import Supercell
    from ccdgen.data.io import read_dataset

    ds = read_dataset(DATA, index=":2000")
    reps = -(-args.frames // len(ds))
    pos = np.tile(ds.positions, (reps, 1, 1))[: args.frames]
    cells = np.tile(ds.cells, (reps, 1, 1))[: args.frames]
    nums = ds.numbers[0]
    results = {"frames": args.frames, "cpu": os.cpu_count()}
    print(f"crystal features benchmark: {args.frames} frames of 40 atoms (bundled data cycled), "
          f"{os.cpu_count()} CPUs\n")
    for order in (2, 4):
        fz = CrystalFeaturizer(SPEC, order)
        maps = fz.map(pos[:64], cells[:64], nums)
        lay = fz.layout(maps.supercells[0])
        xs0 = maps.site_positions(pos[:64], cells[:64])
        w0 = {n: np.ones((64, lay.n_clusters(n), len(fz.feature_names[n]))) for n in fz.orbits}
        fz.compute(xs0, cells[:64], lay), fz.vjp(xs0, cells[:64], lay, w0, with_features=True)  # JIT
        naive(fz, xs0[:2], cells[:2], lay, {n: v[:2] for n, v in w0.items()})
        n_cl = sum(lay.n_clusters(n) for n in fz.orbits)
        n_f = sum(lay.n_clusters(n) * len(fz.feature_names[n]) for n in fz.orbits)
        print(f"order {order}: {n_cl} clusters, {n_f} feature values per configuration")
        for threads in (1, 2):
            set_num_threads(threads)

            def featurize(grad: bool):
                m = fz.map(pos, cells, nums)
                xs = m.site_positions(pos, cells)
                if not grad:
                    return fz.compute(xs, cells, lay)
                w = {n: np.ones((len(xs), lay.n_clusters(n), len(fz.feature_names[n]))) for n in fz.orbits}
                return fz.vjp(xs, cells, lay, w, with_features=True)

            t_map = best(lambda: fz.map(pos, cells, nums), 3)
            t_f = best(lambda: featurize(False), 3)
            t_g = best(lambda: featurize(True), 3)
            sub = slice(0, min(1000, args.frames))
            xs = fz.map(pos[sub], cells[sub], nums).site_positions(pos[sub], cells[sub])
            ws = {n: np.ones((len(xs), lay.n_clusters(n), len(fz.feature_names[n]))) for n in fz.orbits}
            t_nf = best(lambda: naive(fz, xs, cells[sub], lay), 3) * args.frames / len(xs)
            t_ng = best(lambda: naive(fz, xs, cells[sub], lay, ws), 2) * args.frames / len(xs)
            key = f"order{order}_{threads}t"
            results[key] = {"map_per_s": args.frames / t_map, "features_per_s": args.frames / t_f,
                            "features_vjp_per_s": args.frames / t_g, "naive_features_per_s": args.frames / t_nf,
                            "naive_features_vjp_per_s": args.frames / t_ng}
            r = results[key]
            print(f"  {threads} thread(s): mapping {r['map_per_s']:8.0f}/s | features {r['features_per_s']:8.0f}/s "
                  f"({t_nf / t_f:4.1f}× the per-orbit baseline) | features + forces + stress "
                  f"{r['features_vjp_per_s']:8.0f}/s ({t_ng / t_g:4.1f}×)")
        if order == 2:
            set_num_threads(1)
            x1, c1 = xs0[:1], cells[:1]
            w1 = {n: v[:1] for n, v in w0.items()}
            t1 = best(lambda: [fz.vjp(x1, c1, lay, w1, with_features=True) for _ in range(200)], 5) / 200
            tn = best(lambda: [naive(fz, x1, c1, lay, w1) for _ in range(20)], 3) / 20
            results["one_config_efs_us"] = t1 * 1e6
            results["one_config_efs_naive_us"] = tn * 1e6
            print(f"\none 40-atom configuration, energy + forces + stress given dE/dφ (1 thread): "
                  f"{t1 * 1e6:.1f} µs (target ≤ 60; per-orbit baseline {tn * 1e6:.0f} µs, {tn / t1:.1f}×)")
            big = Supercell.diagonal(fz.reference, 10)
            lb = fz.layout(big)
            rng = np.random.default_rng(0)
            xb = (big.positions + 0.05 * rng.standard_normal(big.positions.shape))[None]
            cb = big.cell[None]
            wb = {n: np.ones((1, lb.n_clusters(n), len(fz.feature_names[n]))) for n in fz.orbits}
            for threads in (1, 2):
                set_num_threads(threads)
                fz.compute(xb, cb, lb)
                tf = best(lambda: fz.compute(xb, cb, lb), 5)
                tg = best(lambda: fz.vjp(xb, cb, lb, wb, with_features=True), 5)
                results[f"supercell_5000_{threads}t"] = {"features_us_per_atom": tf / big.n_atoms * 1e6,
                                                        "features_vjp_us_per_atom": tg / big.n_atoms * 1e6}
                print(f"10×10×10 supercell (5,000 atoms), {threads} thread(s): features {tf / big.n_atoms * 1e6:.2f} "
                      f"µs/atom (target ≤ 1.5), + forces + stress {tg / big.n_atoms * 1e6:.2f} µs/atom")
            set_num_threads(os.cpu_count() or 1)
            print()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
