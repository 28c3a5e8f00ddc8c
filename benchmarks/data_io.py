#!/usr/bin/env python
"""Dataset I/O benchmark (not a test): ccdgen's reader against ``ase.io.read``.

    .venv/bin/python benchmarks/data_io.py [--pool PATH] [--ase-frames N] [--ase-all] [--json out.json]

For the bundled CsPbBr3 file (examples/cspbbr3/data/train.extxyz.gz) and, with ``--pool``,
any larger extxyz(.gz) file (e.g. the full 31,836-frame training pool), measured in one run
on this machine:

- ``ase.io.read`` of the first N frames of a decompressed copy (``--ase-all``: of every
  frame), and of N/5 and 2N/5 frames of the .gz itself, whose cost per frame grows with the
  count (ASE seeks back to each frame it builds; in a .gz a backward seek restarts
  decompression); times per frame are extrapolated linearly to the whole file and labelled
  as extrapolations (for the .gz a lower bound);
- ccdgen ``read_dataset``: the parse alone (``cache=False``), the first read with an empty
  cache (parse + cache write), and the cached read (hash + load + validation);
- ``write_dataset`` (extxyz.gz) and ``Dataset.content_hash``.

Every ccdgen result is checked against ASE on the frames ASE read.  The cache is a fresh
temporary folder (never the repository's ``generated/``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUNDLED = REPO / "examples" / "cspbbr3" / "data" / "train.extxyz.gz"


def timed(fn, repeat=1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def check_against_ase(ds, images) -> None:
    import numpy as np

    for i, a in enumerate(images):
        fr = ds[i]
        ok = (np.array_equal(fr.numbers, a.numbers) and np.array_equal(fr.positions, a.positions)
              and np.array_equal(fr.cell, a.cell.array) and fr.energy == a.get_potential_energy()
              and np.array_equal(fr.forces, a.get_forces())
              and np.array_equal(fr.stress, a.get_stress(voigt=False)))
        if not ok:
            raise SystemExit(f"MISMATCH with ase.io.read at frame {i}")


def bench_file(path: Path, n_ase: int, work: Path, ase_all: bool = False) -> dict:
    import ase.io

    from ccdgen.data.io import read_dataset, write_dataset

    size = path.stat().st_size
    row = {"file": path.name, "bytes": size}
    plain = path
    if path.suffix == ".gz":
        plain = work / path.with_suffix("").name
        plain.write_bytes(gzip.decompress(path.read_bytes()))
    t_parse, ds = timed(lambda: read_dataset(path, cache=False))
    n = ds.n_frames
    row.update(n_frames=n, parse_s=t_parse)
    t_first, ds1 = timed(lambda: read_dataset(path))
    t_cached, ds2 = timed(lambda: read_dataset(path), repeat=3)
    assert ds.content_hash() == ds1.content_hash() == ds2.content_hash()
    row.update(first_read_s=t_first, cached_read_s=t_cached)
    k = min(n_ase, n)
    for label, src in (("ase_gz", path), ("ase_plain", plain)):
        if label == "ase_gz" and path.suffix != ".gz":
            continue
        kk = max(1, k // 5) if label == "ase_gz" else k
        t, images = timed(lambda: ase.io.read(src, f":{kk}"))
        check_against_ase(ds, images)
        row[f"{label}_frames"] = kk
        row[f"{label}_s"] = t
        row[f"{label}_s_per_frame"] = t / kk
        row[f"{label}_extrapolated_s"] = t / kk * n
        if label == "ase_gz" and 2 * kk <= n:  # the cost per frame grows with the count
            t2, _ = timed(lambda: ase.io.read(src, f":{2 * kk}"))
            row["ase_gz_double_frames_s"] = t2
    if ase_all:
        t, images = timed(lambda: ase.io.read(plain, ":"))
        check_against_ase(ds, images)
        row["ase_plain_all_s"] = t
    fresh = ds.subset(slice(None))  # a copy whose hash is not computed yet
    t_hash, _ = timed(fresh.content_hash)
    out = work / "rewrite.extxyz.gz"
    t_write, _ = timed(lambda: write_dataset(out, ds))
    row.update(content_hash_s=t_hash, write_gz_s=t_write, written_bytes=out.stat().st_size)
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--pool", type=Path, help="a larger extxyz(.gz) file to time as well")
    ap.add_argument("--ase-frames", type=int, default=500,
                    help="frames ase.io.read reads for its timing (default 500)")
    ap.add_argument("--ase-all", action="store_true",
                    help="also time ase.io.read of every frame of the decompressed copy")
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="ccdgen-bench-data-"))
    os.environ["CCDGEN_CACHE_DIR"] = str(work / "cache")
    sys.path.insert(0, str(REPO))
    try:
        rows = [bench_file(BUNDLED, args.ase_frames, work, args.ase_all)]
        if args.pool:
            rows.append(bench_file(args.pool, args.ase_frames, work, args.ase_all))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for r in rows:
        print(f"\n{r['file']}: {r['n_frames']} frames, {r['bytes'] / 1e6:.1f} MB on disk")
        print(f"  ccdgen parse only (cache=False)   {r['parse_s']:8.2f} s "
              f"({r['n_frames'] / r['parse_s']:,.0f} frames/s)")
        print(f"  ccdgen first read (empty cache)   {r['first_read_s']:8.2f} s")
        print(f"  ccdgen cached read                {r['cached_read_s']:8.2f} s")
        for label, what in (("ase_plain", "decompressed copy"), ("ase_gz", "the .gz")):
            if f"{label}_s" in r:
                print(f"  ase.io.read {r[f'{label}_frames']:>5} frames, {what:<17} "
                      f"{r[f'{label}_s']:8.2f} s ({1e3 * r[f'{label}_s_per_frame']:.1f} ms/frame; "
                      f"all frames extrapolated: {r[f'{label}_extrapolated_s']:,.0f} s)")
        if "ase_gz_double_frames_s" in r:
            print(f"  ase.io.read {2 * r['ase_gz_frames']:>5} frames, {'the .gz':<17} "
                  f"{r['ase_gz_double_frames_s']:8.2f} s (twice the frames: "
                  f"{r['ase_gz_double_frames_s'] / r['ase_gz_s']:.1f}x the time, so the "
                  "extrapolation above is a lower bound)")
        if "ase_plain_all_s" in r:
            print(f"  ase.io.read every frame, decompressed copy  {r['ase_plain_all_s']:8.2f} s (measured)")
        speedup = r["ase_plain_extrapolated_s"] / r["first_read_s"]
        print(f"  first read vs ASE (plain, extrapolated): {speedup:,.0f}x; cached: "
              f"{r['ase_plain_extrapolated_s'] / r['cached_read_s']:,.0f}x")
        print(f"  content_hash {r['content_hash_s']:.3f} s; write_dataset .gz {r['write_gz_s']:.2f} s "
              f"({r['written_bytes'] / 1e6:.1f} MB)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
