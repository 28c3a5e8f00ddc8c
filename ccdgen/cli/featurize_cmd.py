"""``ccdgen featurize SPEC DATA... --order N -o OUT.npz``: cluster and site features of a dataset.

Writes one array per cluster orbit ``<name>`` (n_frames, n_clusters, F), one per site orbit
``site/<name>`` (n_frames, n_sites, F_site) and ``feature_names/<name>``, plus ``energy``,
``frames`` and the featurizer's ``signature``.  Frames are mapped onto the spec's reference
(any atom order, rotation, translation, integer supercell), featurized in parallel with a
progress bar, and cached (a killed run keeps the chunks it finished).
"""

from __future__ import annotations

import time


def add_arguments(p) -> None:
    from .common import order_type

    p.add_argument("spec", help="spec file (.toml/.yaml)")
    p.add_argument("data", nargs="+", help="labelled configurations (extxyz or anything ASE reads)")
    p.add_argument("--order", type=order_type, default=None, help="invariant degree (default: spec max_order)")
    p.add_argument("--index", default=":", help="frames to read from each file (ASE slice, default all)")
    p.add_argument("--cluster", action="append", default=None, help="only these cluster orbits (repeatable)")
    p.add_argument("-o", "--output", required=True, help="output .npz")
    p.add_argument("--no-cache", action="store_true", help="do not keep features in the cache")
    p.add_argument("--no-site", action="store_true", help="skip the site-centric features")


def run(args) -> int:
    import numpy as np

    from ..crystal.featurizer import CrystalFeaturizer, write_npz
    from ..data.features import featurize_dataset
    from ..data.io import read_dataset
    from ..errors import DataError

    t0 = time.perf_counter()
    fz = CrystalFeaturizer(args.spec, args.order, clusters=args.cluster)
    ds = read_dataset(args.data, index=args.index, require=())
    fs = featurize_dataset(fz, ds, cache=not args.no_cache)
    if len(fs.blocks) != 1:
        raise DataError(f"the frames come in {len(fs.blocks)} different supercells; one .npz holds one",
                        fix="featurize the frames of each supercell separately (--index or separate files)")
    b = fs.blocks[0]
    order = np.argsort(b.frames)
    feats = {n: v[order] for n, v in b.clusters.items()}
    site = None if args.no_site else fz.site_features(feats, b.layout)
    path = write_npz(args.output, feats, site, fz.feature_names, None if args.no_site else fz.site_feature_names,
                     {"energy": b.energy[order], "frames": b.frames[order], "signature": np.array(fz.signature())})
    dt = time.perf_counter() - t0
    print(f"featurized {b.n_frames} frames ({b.n_atoms} atoms, supercell {b.layout.supercell.matrix.tolist()}) "
          f"at order {fz.order} in {dt:.1f} s")
    for n in fz.orbits:
        print(f"  {n:<10} {feats[n].shape}")
    for n, v in (site or {}).items():
        print(f"  site/{n:<5} {v.shape}")
    print(f"wrote {path}")
    return 0
