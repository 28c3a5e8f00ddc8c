"""The driver: reads like the stage list.

    source (spec file | XYZ)  --load-->  clusters (+ point groups)   [stage 1: symmetry]
    cluster                   --ccd-->   CCDTransform                [stage 2: CCD transform]

Later stages (invariants, code generation, features, models) build on these outputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .clusters import (Cluster, embedded_cluster, free_cluster, select_pairs, select_polyhedron,
                       select_triplets)
from .errors import SpecError
from .spec import ClusterSpec, Options, Spec, load_spec
from .symmetry.spacegroup import SpaceGroup, locate_site, space_group, symmetrize_crystal

FREE_FORMATS = (".xyz",)


@dataclass(frozen=True, eq=False)
class Problem:
    """What a user asked for: clusters with their point groups, and the options."""

    clusters: tuple
    options: Options
    source: str
    spec: Spec | None = None
    spacegroup: SpaceGroup | None = None
    crystal: object = None  #: the reference crystal, symmetrized exactly (None for free clusters)
    symmetrize_shift: float = 0.0  #: largest change (Å) made by the symmetrization


def load(source, options: Options | None = None, **overrides) -> Problem:
    """Stage 1: a spec file (.toml/.yaml), a :class:`~ccdgen.spec.Spec` or a free cluster
    (.xyz) → :class:`Problem`.

    ``overrides`` replace spec options (e.g. ``metric="log"``) — they are validated too.
    """
    if isinstance(source, Spec):
        return _from_spec(source, options, overrides)
    path = Path(source)
    if path.suffix.lower() in FREE_FORMATS:
        from .geometry.structure import read_cluster_xyz

        opts = _with_overrides(options or Options(), overrides)
        x, species = read_cluster_xyz(path)
        name = _safe_name(path.stem)
        return Problem((free_cluster(x, species, name, opts.symprec),), opts, str(path))
    return _from_spec(load_spec(path), options, overrides)


def _from_spec(spec: Spec, options: Options | None, overrides: dict) -> Problem:
    opts = _with_overrides(options or spec.options, overrides)
    crystal, sg, shift = _exact_reference(spec.crystal, opts.symprec)
    clusters = []
    for cs in spec.clusters:
        clusters.extend(build_clusters(crystal, sg, cs, opts.symprec))
    names = [c.name for c in clusters]
    if len(set(names)) != len(names):
        raise SpecError(f"cluster names collide after expansion: {names}",
                        fix="rename the [[clusters]] entries")
    return Problem(tuple(clusters), opts, spec.path or "<spec>", spec, sg, crystal, shift)


def spec_as_dict(spec: Spec, options: Options | None = None) -> dict:
    """A spec as plain data (crystal inline, full float precision) that
    :func:`ccdgen.spec.parse_spec` reads back to the same spec: what checkpoints store."""
    from dataclasses import asdict

    c = spec.crystal
    clusters = []
    for cs in spec.clusters:
        d = {k: v for k, v in asdict(cs).items() if v is not None}
        if "sites" in d:
            d["sites"] = [list(s) for s in d["sites"]]
        if not d.get("include_center", False):
            d.pop("include_center", None)
        clusters.append(d)
    return {"crystal": {"lattice": np.asarray(c.cell).tolist(), "species": list(c.species),
                        "positions": np.asarray(c.frac).tolist()},
            "options": dict((options or spec.options).__dict__), "clusters": clusters}


def _exact_reference(crystal, symprec: float):
    """Symmetrize the crystal under its space group until the group is stable (a
    symmetrized structure can reveal more symmetry within ``symprec``)."""
    sg = space_group(crystal, symprec)
    total = 0.0
    for _ in range(4):
        crystal, shift = symmetrize_crystal(crystal, sg)
        total += shift
        sg_new = space_group(crystal, symprec)
        if len(sg_new.rotations) == len(sg.rotations):
            return crystal, sg_new, total
        sg = sg_new
    return crystal, sg, total


def _with_overrides(opts: Options, overrides: dict) -> Options:
    from dataclasses import fields

    from .spec import parse_options

    known = {f.name for f in fields(Options)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        import difflib

        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        raise SpecError(f"unknown option(s) {unknown}",
                        fix=(f"did you mean {close[0]!r}? " if close else "") + f"options are: {', '.join(sorted(known))}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if not overrides:
        return opts
    merged = {**opts.__dict__, **overrides}
    return parse_options(merged, "options (command line)")


def _safe_name(stem: str) -> str:
    import re

    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    return name if name[:1].isalpha() else f"c_{name}"


def build_clusters(crystal, sg: SpaceGroup, cs: ClusterSpec, symprec: float) -> list[Cluster]:
    """One ``[[clusters]]`` entry → its cluster(s) (one per orbit) in the reference crystal."""
    if cs.kind == "pairs":
        return select_pairs(crystal, sg, cs.max_length, cs.count, cs.name)
    if cs.kind == "triplets":
        return select_triplets(crystal, sg, cs.max_length, cs.count, cs.name)
    if cs.kind == "polyhedron":
        return select_polyhedron(crystal, sg, cs.center, cs.neighbors, cs.count, cs.include_center, cs.name)
    sites = []
    for s in cs.sites:
        if len(s) == 4 and all(isinstance(v, int) for v in s):
            sites.append(np.array(s, dtype=np.int64))
        else:
            sites.append(locate_site(crystal, s[:3], tol=10 * symprec))
    return [embedded_cluster(crystal, sg, np.array(sites), cs.name, "sites")]


def transforms(problem: Problem) -> list:
    """Stage 2: the CCD transform of every cluster (Appendix A)."""
    from .ccd.transform import build_transform

    o = problem.options
    # sigma is a fraction of each cluster's length scale: the crystal's nearest-neighbour
    # distance for embedded clusters, the shortest pair for a free cluster
    return [build_transform(c, o.metric, o.sigma, truncate=o.truncate) for c in problem.clusters]
