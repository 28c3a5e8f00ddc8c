#!/usr/bin/env python
"""Benchmark (not a test): mapping 40-atom CsPbBr3 frames onto the reference crystal.

    .venv/bin/python benchmarks/mapping.py [--frames 2000] [--loop-frames 200]
        [--source data|synthetic] [--data PATH] [--repeats 3] [--json out.json]

Measures, in ONE run on one core (BLAS/OpenMP threads pinned to 1 before numpy loads):

- ``map_frames`` (the vectorized batch path) over ``--frames`` frames, best of
  ``--repeats`` (after one warm-up call, so per-supercell tables are built), in frames/s,
  and the fraction of frames that the fast path handled;
- the per-frame loop ``[map_configuration(atoms, ...) for atoms in frames]`` over
  ``--loop-frames`` of the same frames: the baseline;
- their ratio, and that both give the same sites, deformations and displacements.

Frames: the labelled training frames shipped with the example
(``examples/cspbbr3/data/train.extxyz.gz``, or ``--data``), or ``--source synthetic``:
ideal 2×2×2 supercells with Gaussian displacements (σ 0.1 Å), random strain (≤ 3 %), a random
rotation, translation and atom order (seeded; one shared atom order so the batch has one
species list).  Target (the brief): ≥ 20,000 frames/s on the fast path.
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

from ccdgen.crystal.mapping import map_configuration, map_frames  # noqa: E402
from ccdgen.crystal.supercell import Supercell  # noqa: E402
from ccdgen.pipeline import load  # noqa: E402
from ccdgen.testing import random_rotation  # noqa: E402

SPEC = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
DATA = REPO / "examples" / "cspbbr3" / "data" / "train.extxyz.gz"
TARGET_FPS = 20_000


def data_frames(path: Path, n: int):
    import ase.io

    if not path.exists():
        sys.exit(f"{path} not found: pass --data PATH or use --source synthetic")
    frames = ase.io.read(str(path), f":{n}")
    return (np.array([a.positions for a in frames]), np.array([a.cell.array for a in frames]),
            frames[0].numbers, frames)


def synthetic_frames(reference, n: int, seed: int = 0):
    from ase import Atoms

    rng = np.random.default_rng(seed)
    sc = Supercell.diagonal(reference, 2)
    order = rng.permutation(sc.n_atoms)
    pos = np.empty((n, sc.n_atoms, 3))
    cells = np.empty((n, 3, 3))
    for k in range(n):
        e = rng.uniform(-0.03, 0.03, (3, 3))
        f = random_rotation(rng) @ (np.eye(3) + 0.5 * (e + e.T))
        x = (sc.positions + rng.normal(0, 0.1, (sc.n_atoms, 3))) @ f.T + rng.uniform(-3, 3, 3)
        cells[k] = sc.cell @ f.T
        frac = x[order] @ np.linalg.inv(cells[k])
        pos[k] = (frac - np.floor(frac)) @ cells[k]  # wrapped
    numbers = Atoms([sc.species[s] for s in order]).numbers
    frames = [Atoms(numbers, positions=pos[k], cell=cells[k], pbc=True) for k in range(n)]
    return pos, cells, numbers, frames


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--loop-frames", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", choices=("data", "synthetic"), default="data")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)

    reference = load(SPEC).crystal
    t0 = time.perf_counter()
    if args.source == "data":
        pos, cells, numbers, frames = data_frames(args.data, args.frames)
    else:
        pos, cells, numbers, frames = synthetic_frames(reference, args.frames)
    t_read = time.perf_counter() - t0
    n = len(pos)
    print(f"{n} frames of {pos.shape[1]} atoms ({args.source}, read in {t_read:.1f} s)")

    map_frames(pos[:8], cells[:8], numbers, reference)  # warm-up: tables, gap, max_displacement
    batch_times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        ms = map_frames(pos, cells, numbers, reference)
        batch_times.append(time.perf_counter() - t0)
    t_batch = min(batch_times)
    fast_fraction = float(ms.fast.mean())

    n_loop = min(args.loop_frames, n)
    map_configuration(frames[0], reference)  # warm-up
    t0 = time.perf_counter()
    loop = [map_configuration(frames[i], reference, frame=i) for i in range(n_loop)]
    t_loop = time.perf_counter() - t0

    same_sites = all(np.array_equal(loop[i].site_of_atom, ms.site_of_atom[i]) for i in range(n_loop))
    max_diff = max(max(float(np.abs(loop[i].displacements - ms.displacements[i]).max()),
                       float(np.abs(loop[i].deformation - ms.deformation[i]).max()))
                   for i in range(n_loop))
    fps_batch = n / t_batch
    fps_loop = n_loop / t_loop
    result = {
        "frames": n, "atoms": int(pos.shape[1]), "source": args.source,
        "batch_s": t_batch, "batch_frames_per_s": fps_batch, "fast_fraction": fast_fraction,
        "loop_frames": n_loop, "loop_s": t_loop, "loop_frames_per_s": fps_loop,
        "ratio": fps_batch / fps_loop, "agree_sites": same_sites, "agree_max_abs_diff": max_diff,
        "target_frames_per_s": TARGET_FPS, "pass": bool(fps_batch >= TARGET_FPS and same_sites),
        "machine": platform.processor() or platform.machine(), "python": platform.python_version(),
        "numpy": np.__version__,
    }
    print(f"map_frames (batch, best of {args.repeats}): {fps_batch:,.0f} frames/s "
          f"({1e6 * t_batch / n:.1f} µs/frame; {100 * fast_fraction:.1f} % on the fast path)")
    print(f"map_configuration loop ({n_loop} frames):   {fps_loop:,.0f} frames/s "
          f"({1e3 * t_loop / n_loop:.2f} ms/frame)")
    print(f"ratio batch / loop: {result['ratio']:.0f}×; same sites: {same_sites}; "
          f"largest difference (displacements, F): {max_diff:.1e}")
    print(f"target ≥ {TARGET_FPS:,} frames/s: {'PASS' if result['pass'] else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
