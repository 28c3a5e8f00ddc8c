"""``ccdgen sample SPEC --supercell 2 2 2 -o OUT.extxyz [--seed S] GENERATORS...``

Writes training configurations of one supercell of the spec's reference crystal, each
tagged in ``info`` with its ``family`` and parameters.  Generators (any combination, in
this order in the output):

- ``--glazer all|PATTERN[,PATTERN]``: octahedral tilt systems at ``--amplitude`` degrees
  (``--ratios`` for the second and third distinct letters), optionally relaxed with
  ``--relax CALC`` (ASE optimizers and cell filters, space group held by FixSymmetry)
- ``--modes all|LABEL[,LABEL]``: symmetry-adapted displacement modes (e.g. ``R4+,M3+``)
  at ``--mode-amplitudes`` Å, around the reference, the tilt frames or any structures
- ``--strain all|IRREP[,IRREP]``: strains by irrep at ``--strain-amplitudes``;
  ``--random-strains N --strain-sigma S`` random strains
- ``--nsphere N --radii R...``: random displacement (and ``--nsphere-strain``) directions,
  kept only ``--min-distance`` apart in feature space from everything kept before
- ``--interpolate FILE[@i,j] ...``: interpolation between structures, with extrapolation

``--list`` prints the tilt systems, displacement-mode labels and strain irreps and exits.
The output is written atomically; a fixed ``--seed`` gives byte-identical files.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def add_arguments(p) -> None:
    from .common import json_object, number, order_type, positive_int

    p.add_argument("source", help="spec file (.toml/.yaml) with the reference crystal")
    p.add_argument("-o", "--output", default=None, help="output extxyz file (written atomically)")
    p.add_argument("--supercell", nargs="+", type=int, default=[2, 2, 2], metavar="N",
                   help="3 integers (diagonal) or 9 (a matrix, row by row); default 2 2 2")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--list", action="store_true", help="print tilt systems, mode labels and strain irreps, then exit")
    g = p.add_argument_group("Glazer tilt systems")
    g.add_argument("--glazer", action="append", default=None, metavar="PATTERN",
                   help="'all' (the 15 systems) or Glazer notation, e.g. a-a-c+ (repeatable, comma-separated)")
    g.add_argument("--amplitude", nargs="+", type=number("degrees"), default=[8.0], metavar="DEG",
                   help="tilt of the first distinct tilted letter, degrees (several: one frame each); default 8")
    g.add_argument("--ratios", nargs=3, type=number("ratio"), default=[1.0, 0.75, 0.5], metavar="R",
                   help="amplitude ratios of the 1st, 2nd, 3rd distinct letter (default 1 0.75 0.5)")
    g.add_argument("--tilt-model", choices=("rigid", "displacive"), default="rigid",
                   help="rigid octahedra (default) or the displacive cut definition (vertices moved "
                        "by d·tanθ, cell fixed)")
    g.add_argument("--relax", default=None, metavar="CALC",
                   help="relax each tilt frame with this calculator (a built-in name or module:factory)")
    g.add_argument("--relax-kwargs", type=json_object, default=None, metavar="JSON")
    g.add_argument("--fmax", type=float, default=0.01, help="relaxation force criterion, eV/Å (0.01)")
    g.add_argument("--relax-steps", type=positive_int, default=200)
    g.add_argument("--cell-filter", choices=("frechet", "exp", "unit", "none"), default="frechet")
    g.add_argument("--optimizer", choices=("BFGS", "FIRE", "LBFGS", "BFGSLineSearch"), default="BFGS")
    g.add_argument("--no-fix-symmetry", action="store_true", help="let the relaxation break the space group")
    m = p.add_argument_group("symmetry-adapted displacement modes")
    m.add_argument("--modes", action="append", default=None, metavar="LABELS",
                   help="'all' or irrep labels, e.g. R4+,M3+ (see --list)")
    m.add_argument("--mode-amplitudes", nargs="+", type=number("Å"), default=[-0.1, 0.1], metavar="A",
                   help="mode amplitudes, Å (norm of the displacement field); default -0.1 0.1")
    m.add_argument("--modes-around", default="reference", metavar="reference|glazer|FILE",
                   help="displace the reference supercell (default), each tilt frame, or the frames of "
                        "a structure file (any atom order; mapped onto the supercell)")
    s = p.add_argument_group("strains")
    s.add_argument("--strain", action="append", default=None, metavar="IRREPS",
                   help="'all' or strain irreps of the point group, e.g. A1g,Eg (see --list)")
    s.add_argument("--strain-amplitudes", nargs="+", type=number("strain"), default=[-0.02, 0.02],
                   metavar="E", help="strain norms (dimensionless); default -0.02 0.02")
    s.add_argument("--strain-directions", type=int, default=0, metavar="N",
                   help="N directions per multi-dimensional irrep, reduced to the irreducible wedge "
                        "(default 0: its basis directions)")
    s.add_argument("--random-strains", type=positive_int, default=None, metavar="N")
    s.add_argument("--strain-sigma", type=float, default=0.01, help="random strain σ per component (0.01)")
    n = p.add_argument_group("n-sphere sampling")
    n.add_argument("--nsphere", type=positive_int, default=None, metavar="N", help="candidates per radius")
    n.add_argument("--radii", nargs="+", type=number("Å"), default=[0.5], metavar="R",
                   help="displacement norms, Å (default 0.5)")
    n.add_argument("--nsphere-strain", type=float, default=0.0, metavar="S", help="strain radius (default 0)")
    n.add_argument("--nsphere-modes", default=None, metavar="LABELS",
                   help="draw directions in these modes' span only (default: all but translations)")
    n.add_argument("--nsphere-around", default="reference", metavar="reference|glazer|FILE",
                   help="draw around the reference (default), the tilt frames or a structure file's frames")
    n.add_argument("--min-distance", type=float, default=None, metavar="D",
                   help="uniqueness filter: drop a candidate within D (RMS of standardized features) of a "
                        "frame kept before")
    n.add_argument("--unique-features", choices=("ccd", "displacement"), default="ccd")
    n.add_argument("--unique-against", nargs="+", default=None, metavar="FILE",
                   help="existing pools the candidates must also be unique against")
    n.add_argument("--order", type=order_type, default=None, help="invariant degree of the ccd features (spec's)")
    i = p.add_argument_group("interpolation")
    i.add_argument("--interpolate", nargs="+", default=None, metavar="FILE[@i,j]",
                   help="structures in path order (a file's frames in order, or the frames @i,j)")
    i.add_argument("--interp-step", type=float, default=0.05)
    i.add_argument("--extrapolate", type=float, default=0.2, help="path extension past each end (0.2)")


def _supercell(problem, ints):
    import numpy as np

    from ..crystal.supercell import Supercell
    from ..errors import SpecError

    if len(ints) == 3:
        return Supercell.diagonal(problem.crystal, ints)
    if len(ints) == 9:
        return Supercell(problem.crystal, np.array(ints).reshape(3, 3))
    raise SpecError(f"--supercell takes 3 integers (diagonal) or 9 (a matrix), got {len(ints)}",
                    fix="e.g. --supercell 2 2 2")


def _read_structures(items):
    import re

    from ..data.io import read_dataset
    from ..errors import SpecError

    atoms, names = [], []
    for item in items:
        m = re.match(r"^(.*?)(?:@([\d,\s]+))?$", item)
        path, sel = m.group(1), m.group(2)
        idx = [int(x) for x in sel.split(",") if x.strip()] if sel else ":"
        ds = read_dataset(path, index=idx, require=(), duplicates="keep", check_composition=False)
        for k in range(ds.n_frames):
            a = ds.to_atoms(k)
            atoms.append(a)
            nm = next((a.info[key] for key in ("name", "phase", "glazer") if isinstance(a.info.get(key), str)), None)
            names.append(nm or f"{Path(path).name}@{ds.frame(k).index}")
    if len(atoms) < 2:
        raise SpecError("--interpolate needs at least two structures", fix="give two or more files or frames")
    return atoms, names


def run(args) -> int:
    import numpy as np

    from ..data.io import write_dataset
    from ..data.sampling import FrameBatch, rng_for
    from ..data.sampling.glazer import _numbers
    from ..errors import SpecError
    from ..pipeline import load

    t0 = time.perf_counter()
    problem = load(args.source)
    if problem.crystal is None:
        raise SpecError(f"{args.source} is a free cluster: sampling needs a spec with a [crystal]")
    sc = _supercell(problem, args.supercell)
    if args.list:
        return _list(problem, sc)
    if not args.output:
        raise SpecError("no output file", fix="give -o OUT.extxyz")
    chosen = [args.glazer, args.modes, args.strain, args.random_strains, args.nsphere, args.interpolate]
    if not any(x is not None for x in chosen):
        raise SpecError("no generator chosen",
                        fix="add at least one of --glazer, --modes, --strain, --random-strains, --nsphere, "
                            "--interpolate (see ccdgen sample --help)")
    out = Path(args.output)
    reference = FrameBatch(_numbers(sc), np.array(sc.positions)[None], np.array(sc.cell)[None],
                           ({"family": "reference"},))
    parts, timings = [], {}
    glazer = None
    modes_cache = {}

    def modes():
        if "m" not in modes_cache:
            from ..data.sampling.modes import displacement_modes

            modes_cache["m"] = displacement_modes(problem, sc)
        return modes_cache["m"]

    if args.glazer is not None:
        from ..data.sampling.glazer import glazer_frames, parse_patterns, relax_frames

        t = time.perf_counter()
        glazer = glazer_frames(sc, parse_patterns(args.glazer), args.amplitude, args.ratios, args.tilt_model)
        if args.relax:
            from ..data.label import make_calculator

            calc, _ = make_calculator(args.relax, args.relax_kwargs)
            glazer = relax_frames(glazer, calc, fmax=args.fmax, steps=args.relax_steps,
                                  cell_filter=args.cell_filter, optimizer=args.optimizer,
                                  keep_symmetry=not args.no_fix_symmetry)
        parts.append(glazer)
        timings["glazer"] = time.perf_counter() - t

    def around(choice):
        if choice == "glazer":
            if glazer is None:
                raise SpecError("--modes-around/--nsphere-around glazer needs --glazer")
            return glazer
        if choice == "reference":
            return reference
        from ..data.io import read_dataset

        ds = read_dataset(choice, require=(), duplicates="keep", check_composition=False)
        return _mapped_batch(ds, sc, problem, Path(choice).name)

    if args.modes is not None:
        from ..data.sampling.modes import mode_frames

        t = time.perf_counter()
        parts.append(mode_frames(modes(), args.mode_amplitudes, args.modes, around(args.modes_around)))
        timings["modes"] = time.perf_counter() - t
    if args.strain is not None or args.random_strains:
        from ..data.sampling.strain import apply_strains, random_strains, strain_enumeration, strain_irreps

        t = time.perf_counter()
        irr = strain_irreps(problem)
        if args.strain is not None:
            vecs, infos = strain_enumeration(irr, args.strain_amplitudes, args.strain, args.strain_directions)
            parts.append(apply_strains(reference, vecs, infos))
        if args.random_strains:
            vecs = random_strains(args.random_strains, rng_for(args.seed, "random_strain"), sigma=args.strain_sigma)
            infos = [{"family": "random_strain", "strain_sigma": float(args.strain_sigma)} for _ in vecs]
            parts.append(apply_strains(reference, vecs, infos))
        timings["strain"] = time.perf_counter() - t
    if args.interpolate is not None:
        from ..data.sampling.interpolate import interpolation_frames, map_path, path_coordinates

        t = time.perf_counter()
        structs, names = _read_structures(args.interpolate)
        path = map_path(structs, problem.crystal, supercell=sc, names=names)
        parts.append(interpolation_frames(path, path_coordinates(len(path), args.interp_step, args.extrapolate)))
        timings["interpolation"] = time.perf_counter() - t
    if args.nsphere:
        t = time.perf_counter()
        parts.append(_nsphere(args, problem, sc, parts, around(args.nsphere_around), modes))
        timings["nsphere"] = time.perf_counter() - t
    batch = FrameBatch.concatenate(parts)
    write_dataset(out, batch.to_dataset())
    fam = ", ".join(f"{k} {v}" for k, v in batch.families().items())
    print(f"wrote {out}: {len(batch)} frames of {batch.n_atoms} atoms ({fam}) in {time.perf_counter() - t0:.1f} s")
    if getattr(args, "timings", False):
        for k, v in timings.items():
            print(f"  {k}: {v:.2f} s", file=sys.stderr)
    return 0


def _nsphere(args, problem, sc, parts, base, modes):
    import numpy as np

    from ..crystal.mapping import default_max_displacement
    from ..data.sampling import FrameBatch, rng_for
    from ..data.sampling.nsphere import nsphere_frames
    from ..data.sampling.unique import UniqueFilter, frame_features
    from ..errors import SpecError

    basis = None
    if args.nsphere_modes:
        m = modes()
        basis = m.basis[:, m.select(args.nsphere_modes)]
    cand = nsphere_frames(base, args.nsphere, args.radii, rng_for(args.seed, "nsphere"),
                          displacement_basis=basis, strain_radius=args.nsphere_strain,
                          max_displacement=default_max_displacement(sc.reference))
    if args.min_distance is None:
        return cand
    fz = None
    if args.unique_features == "ccd":
        from ..crystal.featurizer import CrystalFeaturizer

        fz = CrystalFeaturizer(problem, args.order)
    prior_batches = [b for b in parts]
    if args.unique_against:
        from ..data.io import read_dataset

        ds = read_dataset(args.unique_against, require=(), duplicates="keep", check_composition=False)
        prior_batches.append(_mapped_batch(ds, sc, problem))
    prior = [frame_features(b, fz, sc, args.unique_features) for b in prior_batches if len(b)]
    feats = frame_features(cand, fz, sc, args.unique_features)
    allf = np.concatenate(prior + [feats]) if prior else feats
    scale = np.sqrt(np.mean(allf ** 2, axis=0))
    scale[scale == 0] = 1.0
    dim = feats.shape[1]
    norm = 1.0 / (scale * np.sqrt(dim))  # distances are RMS over standardized features
    if not (np.isfinite(args.min_distance) and args.min_distance > 0):
        raise SpecError(f"--min-distance {args.min_distance!r} must be a number > 0")
    filt = UniqueFilter(args.min_distance, dim, prior=np.concatenate(prior) * norm if prior else None)
    keep = filt.add(feats * norm)
    print(f"nsphere: kept {int(keep.sum())} of {len(cand)} candidates (min distance {args.min_distance:g})")
    out = cand.subset(np.flatnonzero(keep))
    return FrameBatch(out.numbers, out.positions, out.cells,
                      tuple({**i, "min_distance": float(args.min_distance)} for i in out.infos))


def _mapped_batch(ds, sc, problem, name: str = "pool"):
    """Frames of a file in ``sc``'s site order (mapped onto the reference; any atom order,
    rotation, translation), their ``info`` kept (``family`` defaults to the file name)."""
    import numpy as np

    from ..crystal.mapping import map_frames
    from ..data.sampling import FrameBatch
    from ..data.sampling.glazer import _numbers
    from ..errors import SpecError

    if not ds.uniform or ds.n_atoms != sc.n_atoms:
        raise SpecError(f"{name}: its frames are not all {sc.n_atoms}-atom frames of --supercell "
                        f"{sc.matrix.tolist()}", fix="use frames of the same supercell")
    maps = map_frames(ds.positions, ds.cells, ds.numbers, problem.crystal, supercell=sc,
                      frames=[ds.source_of(i) for i in range(ds.n_frames)])
    xs = maps.site_positions(ds.positions, ds.cells)
    infos = tuple({"family": name, **dict(ds.info(i))} for i in range(ds.n_frames))
    return FrameBatch(_numbers(sc), xs, np.array(ds.cells), infos)


def _list(problem, sc) -> int:
    from ..data.sampling.glazer import HOWARD_STOKES, find_octahedra
    from ..data.sampling.modes import displacement_modes
    from ..data.sampling.strain import strain_irreps
    from ..errors import StructureError

    try:
        net = find_octahedra(problem.crystal)
        print(f"tilt systems ({net.describe()}):")
        for k, (sym, num) in HOWARD_STOKES.items():
            print(f"  {k:8s} {sym} ({num})")
    except StructureError as exc:
        print(f"tilt systems: none ({exc.what})")
    m = displacement_modes(problem, sc)
    print(f"displacement modes of {sc!r} ({'CDML labels' if m.cdml else 'generic labels'}):")
    for part in m.describe().split(" | "):
        print(f"  {part}")
    print(f"strain irreps ({strain_irreps(problem).group.schoenflies}): {strain_irreps(problem).describe()}")
    return 0
