#!/usr/bin/env python
"""Accuracy study: the model variants of the README's accuracy table, on one dataset.

    .venv/bin/python examples/cspbbr3/accuracy.py [--data PATH] [-o DIR] [--only NAME ...]

Trains, on the same 80/20 train/test split (seed 0) of ``--data`` (default: the bundled
4,000 frames), the linear cluster expansion and the neural cluster expansions listed in
``VARIANTS`` (order 2 and 4, energy-only and with forces, cluster- and site-based), and
evaluates each on its held-out 20 %, on the relaxed phases (``endpoints.extxyz``: energies
per formula unit relative to cubic against the labels) and on the PES cuts (``cuts.extxyz``).
Writes ``DIR/accuracy.json`` and ``DIR/accuracy.md`` (a table) and keeps every model in DIR.
A rerun skips finished variants (their runs are reused).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SPEC = HERE / "ccdgen.toml"
DATA = HERE / "data"
N_FU = 8  # formula units in a 2×2×2 cell
PHASES = ("P4mbm", "I4mcm", "Pnma")

VARIANTS = {
    "linear-o2": dict(kind="linear", order=2),
    "linear-o4": dict(kind="linear", order=4),
    "cluster-o2": dict(kind="cluster", order=2, hidden=(8,)),
    "cluster-o2-forces": dict(kind="cluster", order=2, hidden=(8,), force_weight=1e-3),
    "cluster-o4": dict(kind="cluster", order=4, hidden=(8,)),
    "cluster-o4-forces": dict(kind="cluster", order=4, hidden=(8,), force_weight=1e-3),
    "site-o2": dict(kind="site", order=2, hidden=(8,)),
}


def phase_energies(pred, endpoints) -> dict:
    """Relative energies (meV per formula unit) of the relaxed phases vs cubic: model and labels."""
    out = pred.predict(endpoints, forces=False)["energy"]
    names = [str(endpoints.info(i).get("phase", endpoints.info(i).get("name", i))) for i in range(len(endpoints))]
    ref = np.asarray(endpoints.energies)
    cubic = next(i for i, n in enumerate(names) if "cubic" in n.lower() or "pm-3m" in n.lower())
    return {n: {"model": float((out[i] - out[cubic]) / N_FU * 1e3), "label": float((ref[i] - ref[cubic]) / N_FU * 1e3)}
            for i, n in enumerate(names) if i != cubic}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(DATA / "train.extxyz.gz"))
    p.add_argument("-o", "--out", default="out/accuracy")
    p.add_argument("--only", nargs="*", default=None, choices=sorted(VARIANTS))
    p.add_argument("--epochs", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)

    from ccdgen.analysis.metrics import errors
    from ccdgen.crystal.featurizer import CrystalFeaturizer
    from ccdgen.data.features import featurize_dataset
    from ccdgen.data.io import read_dataset
    from ccdgen.data.split import split_frames
    from ccdgen.models.checkpoint import load_model
    from ccdgen.models.train import TrainConfig, train_model

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    ds = read_dataset(args.data, require=("energy", "forces"))
    endpoints = read_dataset(DATA / "endpoints.extxyz", require=("energy",))
    cuts = read_dataset(DATA / "cuts.extxyz", require=("energy",), duplicates="keep")
    print(f"{len(ds)} frames from {args.data} (read in {time.perf_counter() - t0:.1f} s)")
    split = split_frames(len(ds), 0.2, 0.1, 0)
    table = json.loads((out / "accuracy.json").read_text()) if (out / "accuracy.json").exists() else {}
    featurizers, features = {}, {}
    for name, v in VARIANTS.items():
        if args.only and name not in args.only:
            continue
        order = v["order"]
        if order not in featurizers:
            featurizers[order] = CrystalFeaturizer(SPEC, order)
            t1 = time.perf_counter()
            features[order] = featurize_dataset(featurizers[order], ds)
            print(f"featurized at order {order} in {time.perf_counter() - t1:.1f} s")
        cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, seed=0,
                          **{k: val for k, val in v.items()})
        print(f"\n== {name}")
        res = train_model(SPEC, None, cfg, out / f"{name}.ckpt", featurizer=featurizers[order],
                          features=features[order], split=split)
        pred = load_model(res.model_path)
        row = {"config": {k: (list(x) if isinstance(x, tuple) else x) for k, x in v.items()},
               "test": {k: res.metrics["test"].get(k) for k in ("n_frames", "energy_rmse_meV_atom",
                                                                "energy_mae_meV_atom", "force_rmse_meV_A")},
               "train": {k: res.metrics["train"].get(k) for k in ("energy_rmse_meV_atom", "force_rmse_meV_A")},
               "seconds": res.seconds, "epochs": res.extra.get("epochs")}
        pc = pred.predict(cuts)
        row["cuts"] = errors(pc, cuts.energies, cuts.n_atoms_per_frame,
                             [cuts.frame(i).forces for i in range(len(cuts))], None)
        pe = pred.predict(endpoints)
        row["endpoints"] = errors(pe, endpoints.energies, endpoints.n_atoms_per_frame,
                                  [endpoints.frame(i).forces for i in range(len(endpoints))], None)
        row["phases_meV_fu"] = phase_energies(pred, endpoints)
        table[name] = row
        (out / "accuracy.json").write_text(json.dumps(table, indent=1))
        print(json.dumps({k: row[k] for k in ("test", "phases_meV_fu")}, indent=1))
    lines = ["| model | test E RMSE (meV/atom) | test F RMSE (meV/Å) | cuts E RMSE | endpoints F RMSE | "
             "P4/mbm, I4/mcm, Pnma − cubic (meV/f.u.) | time |", "|---|---|---|---|---|---|---|"]
    for name, r in table.items():
        ph = r["phases_meV_fu"]
        phs = ", ".join(f"{ph[k]['model']:.1f}" for k in PHASES if k in ph)
        lines.append(f"| {name} | {r['test']['energy_rmse_meV_atom']:.3f} | {r['test']['force_rmse_meV_A']:.1f} | "
                     f"{r['cuts']['energy_rmse_meV_atom']:.3f} | {r['endpoints'].get('force_rmse_meV_A', float('nan')):.1f} "
                     f"| {phs} | {r['seconds']:.0f} s |")
    if table:
        ph = next(iter(table.values()))["phases_meV_fu"]
        lines.append("\nlabels: " + ", ".join(f"{k} {ph[k]['label']:.1f}" for k in PHASES if k in ph) + " meV/f.u.")
    (out / "accuracy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
