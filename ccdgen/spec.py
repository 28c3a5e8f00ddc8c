"""The spec file: a reference crystal, the clusters to use and options (TOML or YAML).

Example (``examples/cspbbr3/ccdgen.toml``)::

    [crystal]                       # inline, or:  file = "POSCAR"  (any ASE format)
    lattice = [[5.9436, 0, 0], [0, 5.9436, 0], [0, 0, 5.9436]]
    species = ["Pb", "Br", "Br", "Br", "Cs"]
    positions = [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]

    [options]
    metric = "exp"        # linear | log | exp | inverse
    sigma = 0.15          # fraction of the nearest-neighbour distance (Eq. 19)
    max_order = 2         # highest invariant polynomial degree
    truncate = "auto"     # "auto" (3N-6), an integer, or false

    [[clusters]]
    name = "pair"
    kind = "pairs"        # pairs | triplets | polyhedron | sites
    count = 7             # the 7 shortest pair orbits
    max_length = 8.0      # Å

    [[clusters]]
    name = "PbBr6"
    kind = "polyhedron"
    center = "Pb"
    neighbors = "Br"
    count = 6

Every key is checked: an unknown key or a bad value raises :class:`SpecError` naming it.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from .errors import SpecError
from .geometry.structure import Crystal
from .ccd.metrics import METRICS

CLUSTER_KINDS = ("pairs", "triplets", "polyhedron", "sites")


@dataclass(frozen=True)
class Options:
    """Options shared by every cluster of a spec (all can be overridden per cluster
    except ``symprec``)."""

    metric: str = "exp"  #: pair metric: linear | log | exp | inverse
    sigma: float = 0.15  #: Gaussian width for C, fraction of the nearest-neighbour distance
    max_order: int = 2  #: highest invariant polynomial degree
    truncate: Any = "auto"  #: "auto" (3N-6), an int, or False (all CCDs)
    symprec: float = 1e-3  #: symmetry tolerance, Å


@dataclass(frozen=True)
class ClusterSpec:
    """One entry of ``[[clusters]]``."""

    name: str
    kind: str
    count: Optional[int] = None
    max_length: Optional[float] = None
    center: Optional[str] = None
    neighbors: Optional[str] = None
    include_center: bool = False
    sites: Optional[tuple] = None


@dataclass(frozen=True)
class Spec:
    crystal: Crystal
    clusters: tuple
    options: Options = field(default_factory=Options)
    path: Optional[str] = None


def _unknown(key: str, allowed, where: str) -> SpecError:
    close = difflib.get_close_matches(key, list(allowed), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return SpecError(f"{where}: unknown key {key!r}", fix=f"{hint}allowed keys: {', '.join(sorted(allowed))}")


def _check_keys(d: dict, allowed, where: str) -> None:
    if not isinstance(d, dict):
        raise SpecError(f"{where} must be a table/mapping, got {type(d).__name__}")
    for k in d:
        if k not in allowed:
            raise _unknown(k, allowed, where)


def _typed(value, types, where: str, what: str):
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise SpecError(f"{where}: expected {what}, got {value!r}")
    if not isinstance(value, types):
        raise SpecError(f"{where}: expected {what}, got {value!r} ({type(value).__name__})")
    return value


def parse_options(d: dict, where: str = "options") -> Options:
    allowed = {f.name for f in fields(Options)}
    _check_keys(d, allowed, where)
    o = Options(**d)
    if not isinstance(o.metric, str) or o.metric not in METRICS:
        raise SpecError(f"{where}.metric: unknown pair metric {o.metric!r}",
                        fix=f"use one of {', '.join(METRICS)}")
    _typed(o.sigma, (int, float), f"{where}.sigma", "a number")
    if not 0 < o.sigma:
        raise SpecError(f"{where}.sigma must be > 0, got {o.sigma}",
                        why="sigma is the width of the Gaussian of displacements in Eq. (19)",
                        fix="the paper uses 0.10-0.25 (fraction of the nearest-neighbour distance)")
    if o.sigma > 1:
        raise SpecError(f"{where}.sigma = {o.sigma} is a fraction of the nearest-neighbour "
                        "distance; values above 1 make no physical sense", fix="use 0.10-0.25")
    _typed(o.max_order, int, f"{where}.max_order", "an integer")
    if o.max_order < 0:
        raise SpecError(f"{where}.max_order must be ≥ 0, got {o.max_order}")
    if not (o.truncate == "auto" or o.truncate is False or (isinstance(o.truncate, int) and not isinstance(o.truncate, bool))):
        raise SpecError(f"{where}.truncate must be 'auto', an integer or false, got {o.truncate!r}")
    _typed(o.symprec, (int, float), f"{where}.symprec", "a number")
    if o.symprec <= 0:
        raise SpecError(f"{where}.symprec must be > 0, got {o.symprec}")
    return o


def parse_cluster(d: dict, k: int) -> ClusterSpec:
    where = f"clusters[{k}]"
    allowed = {f.name for f in fields(ClusterSpec)}
    _check_keys(d, allowed, where)
    if "kind" not in d:
        raise SpecError(f"{where}: missing key 'kind'", fix=f"use one of {', '.join(CLUSTER_KINDS)}")
    kind = d["kind"]
    if kind not in CLUSTER_KINDS:
        raise SpecError(f"{where}.kind: unknown kind {kind!r}", fix=f"use one of {', '.join(CLUSTER_KINDS)}")
    d = dict(d)
    d.setdefault("name", {"pairs": "pair", "triplets": "triplet", "polyhedron": "poly", "sites": "cluster"}[kind])
    need = {"pairs": ("max_length",), "triplets": ("max_length",), "polyhedron": ("center", "neighbors", "count"),
            "sites": ("sites",)}[kind]
    for key in need:
        if d.get(key) is None:
            raise SpecError(f"{where}: kind {kind!r} needs key {key!r}")
    if d.get("count") is not None:
        _typed(d["count"], int, f"{where}.count", "an integer")
        if d["count"] < 1:
            raise SpecError(f"{where}.count must be ≥ 1, got {d['count']}")
    if d.get("max_length") is not None:
        _typed(d["max_length"], (int, float), f"{where}.max_length", "a length in Å")
        if d["max_length"] <= 0:
            raise SpecError(f"{where}.max_length must be > 0 Å, got {d['max_length']}")
    if d.get("sites") is not None:
        sites = d["sites"]
        def _site_ok(s):
            if not isinstance(s, list) or len(s) not in (3, 4):
                return False
            if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in s):
                return False
            return len(s) == 3 or all(isinstance(v, int) for v in s)

        if not isinstance(sites, list) or not all(_site_ok(s) for s in sites):
            raise SpecError(f"{where}.sites must be a list of [x, y, z] fractional positions or "
                            "[basis_index, n1, n2, n3] integer sites")
        d["sites"] = tuple(tuple(s) for s in sites)
    return ClusterSpec(**d)


def parse_crystal(d: dict, base: Path) -> Crystal:
    _check_keys(d, {"file", "lattice", "species", "positions", "cartesian"}, "crystal")
    if "file" in d:
        extra = set(d) - {"file"}
        if extra:
            raise SpecError(f"crystal: give either 'file' or an inline structure, not both ({sorted(extra)})")
        return Crystal.read(base / d["file"])
    for key in ("lattice", "species", "positions"):
        if key not in d:
            raise SpecError(f"crystal: missing key {key!r}",
                            fix="give 'file' (any ASE-readable structure) or lattice, species, positions")
    import numpy as np

    try:
        cell = np.array(d["lattice"], dtype=float)
        pos = np.array(d["positions"], dtype=float)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"crystal: lattice/positions must be numbers ({exc})") from None
    if d.get("cartesian", False):
        pos = pos @ np.linalg.inv(cell)
    return Crystal.from_arrays(cell, d["species"], pos, "crystal")


def load_spec(path) -> Spec:
    """Read and validate a TOML (``.toml``) or YAML (``.yaml``/``.yml``) spec file."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"spec file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix == ".toml":
            data = tomllib.loads(text)
        elif path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            raise SpecError(f"{path}: unknown spec format {path.suffix!r}", fix="use .toml or .yaml")
    except SpecError:
        raise
    except Exception as exc:
        raise SpecError(f"{path} is not valid {path.suffix[1:].upper()}: {exc}") from None
    return parse_spec(data, path)


def parse_spec(data: dict, path: Optional[Path] = None) -> Spec:
    _check_keys(data, {"crystal", "clusters", "options"}, "spec")
    if "crystal" not in data:
        raise SpecError("spec: missing table [crystal]")
    if not data.get("clusters"):
        raise SpecError("spec: no [[clusters]] given", fix="add at least one [[clusters]] entry")
    if not isinstance(data["clusters"], list):
        raise SpecError("spec: 'clusters' must be a list of tables ([[clusters]] entries), "
                        f"got {type(data['clusters']).__name__}")
    base = path.parent if path else Path(".")
    crystal = parse_crystal(data["crystal"], base)
    options = parse_options(data.get("options", {}))
    clusters = tuple(parse_cluster(c, k) for k, c in enumerate(data["clusters"]))
    names = [c.name for c in clusters]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(f"clusters: duplicate name(s) {sorted(dup)}", fix="give each [[clusters]] entry its own 'name'")
    return Spec(crystal, clusters, options, str(path) if path else None)
