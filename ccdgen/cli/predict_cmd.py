"""``ccdgen predict MODEL IN.extxyz -o OUT.extxyz``: energy, forces and stress of every frame.

Any frame order, atom order, rotation or integer supercell of the model's reference.  The
output keeps the input's frames, atoms and ``info`` and carries the predictions as ASE
results (``energy``, ``forces``, ``stress`` in ASE's units and sign convention).
"""

from __future__ import annotations

import time


def add_arguments(p) -> None:
    p.add_argument("model", help="model file from `ccdgen train`")
    p.add_argument("data", help="configurations (extxyz or anything ASE reads)")
    p.add_argument("-o", "--output", required=True, help="output extxyz")
    p.add_argument("--index", default=":", help="frames to read (ASE slice)")
    p.add_argument("--no-forces", action="store_true", help="energies only (faster)")


def run(args) -> int:
    import numpy as np

    from ..data.dataset import Dataset
    from ..data.io import read_dataset, write_dataset
    from ..models.checkpoint import load_model

    t0 = time.perf_counter()
    pred = load_model(args.model)
    ds = read_dataset(args.data, index=args.index, require=(), duplicates="keep")
    t1 = time.perf_counter()
    out = pred.predict(ds, forces=not args.no_forces)
    t2 = time.perf_counter()
    frames = []
    for i in range(len(ds)):
        fr = ds.frame(i)
        frames.append({"numbers": fr.numbers, "positions": fr.positions, "cell": fr.cell, "pbc": fr.pbc,
                       "energy": out["energy"][i],
                       "forces": None if out["forces"] is None else np.asarray(out["forces"][i]),
                       "stress": None if out["stress"] is None else out["stress"][i], "info": dict(fr.info),
                       "source_id": 0, "index": i})
    write_dataset(args.output, Dataset.from_records(frames, [str(args.output)]))
    print(f"predicted {len(ds)} frames in {t2 - t1:.2f} s ({len(ds) / max(t2 - t1, 1e-9):.0f} frames/s; "
          f"model load {t1 - t0:.1f} s); wrote {args.output}")
    return 0
