"""``ccdgen cuts MODEL [--reference cuts.extxyz] [--endpoints endpoints.extxyz] [-o DIR]``.

Energies along the paper's Fig. 9 paths — the R-point anti-phase tilt, the M-point in-phase
tilt, volumetric strain and the cubic → P4/mbm → Pnma interpolation — from the model and,
with ``--reference``, from reference calculations of the same structures (ccdgen builds
them from the model's reference cell; ``--write-structures`` writes them for your own DFT).
Writes ``DIR/cuts.png`` (4 panels) and ``DIR/cuts.json`` (points, maximum deviation per
cut and the relaxed phases' energies), in meV per formula unit relative to the cubic crystal.
"""

from __future__ import annotations

import json
from pathlib import Path


def add_arguments(p) -> None:
    p.add_argument("model", help="model file from `ccdgen train` or `ccdgen cv`")
    p.add_argument("--reference", default=None,
                   help="reference energies of the cuts (extxyz with cut= and x= per frame, e.g. "
                        "examples/cspbbr3/data/cuts.extxyz)")
    p.add_argument("--endpoints", default=None,
                   help="relaxed phases (name=cubic, P4mbm, I4mcm, Pnma) for the interpolation cut and the phase "
                        "energies (default: endpoints.extxyz next to --reference, if there)")
    p.add_argument("--a0", type=float, default=None,
                   help="lattice constant of the cuts, Å (default: the endpoints' cubic cell, else the model's)")
    p.add_argument("-o", "--output", default="runs/cuts", help="output folder (default: %(default)s)")
    p.add_argument("--write-structures", default=None, metavar="FILE",
                   help="also write the generated structures (extxyz) to compute reference energies")
    p.add_argument("--json", action="store_true", help="print the JSON summary")


def run(args) -> int:
    from ..analysis.cuts import (CUTS, Perovskite, cut_structures, cuts_figure, cuts_json, dump_json,
                                 evaluate_cuts, read_endpoints, read_reference, write_structures)
    from ..errors import DataError
    from ..models.checkpoint import load_model

    pred = load_model(args.model)
    endpoints_path = args.endpoints
    if endpoints_path is None and args.reference is not None:
        near = Path(args.reference).with_name("endpoints.extxyz")
        endpoints_path = str(near) if near.is_file() else None
    elif endpoints_path is not None and not Path(endpoints_path).is_file():
        raise DataError(f"endpoints file {endpoints_path} does not exist")
    endpoints = read_endpoints(endpoints_path) if endpoints_path else None
    reference = read_reference(args.reference) if args.reference else None
    result = evaluate_cuts(pred, reference, endpoints, a0=args.a0)
    out = Path(args.output)
    fig = cuts_figure(result, out / "cuts.png", title=f"{Path(args.model).name}"
                      + (f" vs {Path(args.reference).name}" if args.reference else ""))
    js = dump_json(result, out / "cuts.json")
    if args.write_structures:
        p = Perovskite.detect(pred.featurizer.reference)
        if args.a0 is not None:
            p = p.with_lattice_constant(args.a0)
        elif endpoints and "cubic" in endpoints:
            p = p.matched_to(endpoints["cubic"])
        write_structures(cut_structures(p, endpoints), args.write_structures)
    if args.json:
        print(json.dumps(cuts_json(result), indent=1))
        return 0
    print(f"cuts of {args.model} (meV per formula unit, relative to the cubic crystal; "
          f"{result['n_fu']} formula units per cell)")
    for name in CUTS:
        c = result["cuts"].get(name)
        if c is None:
            print(f"  {name:<32} not computed (needs --endpoints with P4mbm and Pnma)")
            continue
        md = c.max_deviation()
        span = f"model {c.model.min():8.2f} … {c.model.max():7.2f}"
        dev = f"   max |model − reference| {md[0]:6.2f} at x = {md[1]:g}" if md else ""
        print(f"  {name:<32} {len(c.x):>3} points  {span}{dev}")
    for k, row in result["phases"].items():
        ref = f", reference {row['reference_meV_fu']:8.2f}, deviation {row['deviation_meV_fu']:+.2f}" \
            if "reference_meV_fu" in row else ""
        print(f"  phase {k:<8} model {row['model_meV_fu']:8.2f}{ref}")
    print(f"figure: {fig}\njson: {js}")
    if args.write_structures:
        print(f"structures: {args.write_structures}")
    return 0
