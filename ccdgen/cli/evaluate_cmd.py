"""``ccdgen evaluate MODEL IN.extxyz [--json]``: errors against the labels of a dataset.

Energy RMSE/MAE per atom (meV/atom) and force RMSE (meV/Å), overall and by
``info["family"]`` where frames have one; ``--plot DIR`` writes a parity plot.
"""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    p.add_argument("model", help="model file from `ccdgen train`")
    p.add_argument("data", nargs="+", help="labelled configurations")
    p.add_argument("--index", default=":", help="frames to read from each file (ASE slice)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", default=None, help="write a parity plot into this folder")


def run(args) -> int:
    import numpy as np

    from ..analysis.metrics import errors
    from ..data.io import read_dataset
    from ..models.checkpoint import load_model
    from .report import print_metrics

    pred = load_model(args.model)
    results = {}
    for path in args.data:
        ds = read_dataset(path, index=args.index, require=("energy",), duplicates="keep")
        out = pred.predict(ds, forces=ds.forces is not None)
        fam = ds.info_values("family")
        forces = None if ds.forces is None else [ds.frame(i).forces for i in range(len(ds))]
        results[path] = errors(out, ds.energies, ds.n_atoms_per_frame, forces, ds.stresses,
                               fam if any(f is not None for f in fam) else None)
        if args.plot:
            from ..analysis.plots import parity_plot

            parity_plot(out["energy"] / ds.n_atoms_per_frame, np.asarray(ds.energies) / ds.n_atoms_per_frame,
                        args.plot, name=f"parity_{len(results)}", title=str(path))
    if args.json:
        print(json.dumps(results, indent=1))
    else:
        print_metrics(f"model {args.model}", results)
    return 0
