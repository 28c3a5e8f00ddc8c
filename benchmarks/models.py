#!/usr/bin/env python
"""Benchmark of trained models (not a test): training epochs, prediction, the ASE calculator.

    .venv/bin/python benchmarks/models.py [--frames 25000] [--json out.json]

A. One Lightning training epoch over N 40-atom frames (the bundled frames cycled) of the
   paper's best model (order 2, 8 tanh) — energy only, and with forces and stress (through the
   kernels' VJP and JVP) — batch 32 and 256.
B. ``Predictor.predict``: frames per second with energies, forces and stress (mapping included).
C. The ASE calculator, energy + forces + stress, for a 40-atom cell and a 10×10×10 supercell
   (5,000 atoms): per call and per atom.  Target: ≤ 3 µs/atom at 5,000 atoms.  The split of
   that time (features + VJP in the kernels vs the torch net) is the measured path to 1 µs/atom.
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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=25000)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    os.environ.setdefault("CCDGEN_CACHE_DIR", tempfile.mkdtemp(prefix="ccdgen-bench-"))
    import logging

    import pytorch_lightning as pl
    import torch

    from ccdgen.crystal.featurizer import CrystalFeaturizer
    from ccdgen.data.dataset import Dataset
    from ccdgen.data.features import featurize_dataset
    from ccdgen.data.io import read_dataset
    from ccdgen.data.split import Split
    from ccdgen.models import torch_threads
    from ccdgen.models.data import BatchSchedule, FeatureDataModule
    from ccdgen.models.train import TrainConfig, train_model

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    torch_threads()
    results = {}
    fz = CrystalFeaturizer(SPEC, 2)
    base = read_dataset(DATA)
    reps = -(-args.frames // len(base))
    idx = np.tile(np.arange(len(base)), reps)[: args.frames]
    frames = [base.to_atoms(int(i)) for i in idx[:200]]
    ds = Dataset.concatenate([base] * reps)[np.arange(args.frames)]
    t0 = time.perf_counter()
    fs = featurize_dataset(fz, ds, cache=False)
    print(f"featurized {args.frames} frames in {time.perf_counter() - t0:.1f} s")
    tmp = Path(tempfile.mkdtemp())
    res = train_model(SPEC, None, TrainConfig(kind="cluster", order=2, epochs=2, seed=0), tmp / "m.ckpt",
                      featurizer=fz, features=featurize_dataset(fz, base[:400], cache=False), progress=False,
                      log=lambda *a: None)
    from ccdgen.models.checkpoint import load_model

    pred = load_model(res.model_path)
    split = Split(np.arange(args.frames), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    print(f"\nA. one training epoch over {args.frames} frames (order 2, 8 tanh; 1 torch thread)")
    for forces in (False, True):
        for bs in (32, 256):
            from ccdgen.models.module import EnergyModel

            hp = dict(pred.module.hparams)
            hp.update(force_weight=1e-3 if forces else 0.0, stress_weight=1.0 if forces else 0.0, monitor="train_loss")
            model = EnergyModel(**hp).attach(fz)
            dm = FeatureDataModule(fs, fz, "cluster", split, BatchSchedule.constant(bs), 0, need_geometry=forces)
            tr = pl.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            num_sanity_val_steps=0)
            t0 = time.perf_counter()
            tr.fit(model, datamodule=dm)
            dt = time.perf_counter() - t0
            key = f"epoch_{'forces' if forces else 'energy'}_bs{bs}_s"
            results[key] = dt
            print(f"  {'energy + forces + stress' if forces else 'energy only':<25} batch {bs:>4}: {dt:7.1f} s "
                  f"({dt / args.frames * 1e6:6.0f} µs per frame)")
    sub = ds[np.arange(min(4000, args.frames))]
    pred.predict(sub[np.arange(10)])
    t0 = time.perf_counter()
    pred.predict(sub)
    dt = time.perf_counter() - t0
    results["predict_frames_per_s"] = len(sub) / dt
    print(f"\nB. predict (energy, forces, stress, mapping included): {len(sub) / dt:.0f} frames/s")
    from ccdgen import Calculator

    calc = Calculator(pred)
    print("\nC. ASE calculator, energy + forces + stress per call")
    for name, atoms in (("40 atoms", frames[3].copy()), ("10×10×10 (5,000 atoms)", None)):
        if atoms is None:
            from ccdgen.crystal.supercell import Supercell

            big = Supercell.diagonal(fz.reference, 10).to_atoms()
            big.positions += 0.05 * np.random.default_rng(0).standard_normal(big.positions.shape)
            atoms = big
        atoms.calc = calc
        atoms.get_forces()  # map + JIT
        times = []
        for k in range(5):
            atoms.positions[0, 0] += 1e-4  # a new configuration, same sites: the MD path
            t0 = time.perf_counter()
            atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
            times.append(time.perf_counter() - t0)
        t = min(times)
        # the split: kernels (features + fused VJP) vs the rest (torch net, mapping check)
        m, xs = calc._map(atoms)
        lay = fz.layout(m.supercell)
        c = atoms.cell.array[None]
        w = {n: np.ones((1, lay.n_clusters(n), len(fz.feature_names[n]))) for n in fz.orbits}
        tk = min(_time(lambda: (fz.compute(xs[None], c, lay), fz.vjp(xs[None], c, lay, w))) for _ in range(5))
        results[f"calculator_{len(atoms)}_us"] = t * 1e6
        results[f"calculator_{len(atoms)}_us_per_atom"] = t / len(atoms) * 1e6
        results[f"calculator_{len(atoms)}_kernels_us"] = tk * 1e6
        print(f"  {name:<24} {t * 1e3:8.2f} ms ({t / len(atoms) * 1e6:.2f} µs/atom; kernels {tk / t * 100:.0f} %, "
              f"{tk / len(atoms) * 1e6:.2f} µs/atom)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
