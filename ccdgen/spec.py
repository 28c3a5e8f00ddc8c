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

Every key is checked before anything is computed: an unknown key, a key that does not
apply to a cluster's kind, or a bad value raises :class:`SpecError` naming it (with a
close match for typos).  The rules:

* numbers are TOML/YAML numbers (not quoted text, not booleans) and finite;
  ``sigma`` in (0, 1], ``symprec`` in (0, 1) Å, ``max_length`` > 0 Å;
* integers are integers (``count = 1.5`` is refused), booleans are booleans
  (``include_center = "no"`` is refused; YAML's ``yes``/``no`` are booleans);
* ``species`` are element symbols of :data:`ase.data.chemical_symbols` (``"X"``, ASE's
  dummy atom, included).  An unquoted YAML ``NO``/``No``/``ON``/``yes``... is read by
  YAML 1.1 as a boolean: the error says to quote it;
* ``truncate`` is ``"auto"``, an integer ≥ 1 or ``false`` (the command line's
  ``--truncate none``/``all`` is written ``false`` in a spec);
* a spec is UTF-8 text (a byte-order mark is allowed); YAML keys must be unique.

The validators (``check_*``) are public so that the command line checks its options with
the same rules and words (:mod:`ccdgen.cli.common`).
"""

from __future__ import annotations

import difflib
import math
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional

from .errors import SpecError
from .geometry.structure import Crystal, check_crystal_species
from .ccd.metrics import METRICS

CLUSTER_KINDS = ("pairs", "triplets", "polyhedron", "sites")

#: The keys each cluster kind takes (``name`` and ``kind`` for all).
KIND_KEYS = {
    "pairs": ("name", "kind", "count", "max_length"),
    "triplets": ("name", "kind", "count", "max_length"),
    "polyhedron": ("name", "kind", "center", "neighbors", "count", "include_center"),
    "sites": ("name", "kind", "sites"),
}
_REQUIRED = {"pairs": ("max_length",), "triplets": ("max_length",),
             "polyhedron": ("center", "neighbors", "count"), "sites": ("sites",)}
_DEFAULT_NAMES = {"pairs": "pair", "triplets": "triplet", "polyhedron": "poly", "sites": "cluster"}

#: Limits of the options (the reasons are in the error messages).
SIGMA_MAX = 1.0  #: sigma is a fraction of the nearest-neighbour distance
SYMPREC_MAX = 1.0  #: Å; a tolerance this large merges distinct atoms
MAX_ORDER = 40  #: the invariant layer refuses higher degrees as absurd
MAX_CLUSTER_SITES = 64  #: sites of one polyhedron / explicit cluster (64 sites = 2016 pairs)
MAX_CELL_OFFSET = 1000  #: |n_i| of an explicit site and |x_i| of a fractional position
MAX_CANDIDATES = 200_000  #: candidate pairs/triplets a max_length may make the selection scan


@dataclass(frozen=True)
class Options:
    """Options shared by every cluster of a spec (``[options]``; the command line may
    override metric, sigma, truncate and symprec)."""

    metric: str = "exp"  #: pair metric: linear | log | exp | inverse
    sigma: float = 0.15  #: Gaussian width for C, fraction of the nearest-neighbour distance
    max_order: int = 2  #: highest invariant polynomial degree
    truncate: Any = "auto"  #: "auto" (3N-6), an int ≥ 1, or False (all CCDs)
    symprec: float = 1e-3  #: symmetry tolerance, Å


@dataclass(frozen=True)
class ClusterSpec:
    """One entry of ``[[clusters]]`` (the keys of its kind: :data:`KIND_KEYS`)."""

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


# ----------------------------------------------------------------------------- validators
def _kind_of(value) -> str:
    """How a TOML/YAML value reads to a user."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    if value is None:
        return "null"
    return type(value).__name__


def _numeric_text(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _type_fix(value, expected: str) -> str:
    if _numeric_text(value):
        if re.fullmatch(r"\s*[+-]?\d+[eE][+-]?\d+\s*", value):
            return (f"write {expected} without quotes; in YAML write the exponent with a dot "
                    f"({value.strip().lower().replace('e', '.0e', 1)}): YAML 1.1 reads {value.strip()} as text")
        return f"write {expected} without quotes"
    if isinstance(value, bool):
        return f"true/false is not {expected}"
    return ""


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _finite(value) -> bool:
    """A number that is finite as a float (an integer beyond ±1.8e308 is not)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def check_number(value, where: str, *, low: float | None = None, high: float | None = None,
                 low_open: bool = True, high_open: bool = False, unit: str = "",
                 why: str = "", fix: str = "") -> float:
    """A finite real number in the range given (``low < value`` if ``low_open``, else
    ``low <= value``; likewise ``high``).  Returns it as a float; raises :class:`SpecError`
    naming ``where``."""
    if not _is_number(value):
        raise SpecError(f"{where} must be a number{' in ' + unit if unit else ''}, got "
                        f"{value!r} ({_kind_of(value)})", why=why, fix=_type_fix(value, "a number") or fix)
    if not _finite(value):
        raise SpecError(f"{where} must be a finite number, got {value!r}", why=why, fix=fix)
    v = float(value)
    u = f" {unit}" if unit else ""
    if low is not None and (v <= low if low_open else v < low):
        raise SpecError(f"{where} must be {'>' if low_open else '≥'} {low:g}{u}, got {value!r}",
                        why=why, fix=fix)
    if high is not None and (v >= high if high_open else v > high):
        raise SpecError(f"{where} must be {'<' if high_open else '≤'} {high:g}{u}, got {value!r}",
                        why=why, fix=fix)
    return v


def check_integer(value, where: str, *, low: int | None = None, high: int | None = None,
                  why: str = "", fix: str = "") -> int:
    """An integer (not a bool, not a float) in ``low..high``; raises :class:`SpecError`."""
    if isinstance(value, bool) or not isinstance(value, int):
        hint = _type_fix(value, "an integer")
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            hint = f"write {int(value)} (no decimal point)"
        raise SpecError(f"{where} must be an integer, got {value!r} ({_kind_of(value)})", why=why,
                        fix=hint or fix)
    if low is not None and value < low:
        raise SpecError(f"{where} must be ≥ {low}, got {value}", why=why, fix=fix)
    if high is not None and value > high:
        raise SpecError(f"{where} must be ≤ {high}, got {value}", why=why, fix=fix)
    return value


def check_bool(value, where: str) -> bool:
    """A TOML/YAML boolean (``true``/``false``); text such as ``"no"`` and numbers such as
    ``0``/``1`` are refused."""
    if not isinstance(value, bool):
        raise SpecError(f"{where} must be a boolean (true or false), got {value!r} ({_kind_of(value)})",
                        fix="write true or false without quotes")
    return value


def check_text(value, where: str, what: str = "text") -> str:
    """A non-empty string."""
    if isinstance(value, bool):
        raise SpecError(f"{where} must be {what}, got {str(value).lower()} (a boolean)",
                        fix="write it in quotes (YAML 1.1 reads an unquoted yes/no/on/off, any case, "
                        "as a boolean)")
    if not isinstance(value, str):
        raise SpecError(f"{where} must be {what}, got {value!r} ({_kind_of(value)})")
    if not value.strip():
        raise SpecError(f"{where} must be {what}, got an empty string")
    return value


def _choice(value, choices, where: str, what: str) -> str:
    check_text(value, where, f"a {what} name")
    if value in choices:
        return value
    lower = [c for c in choices if c.lower() == value.lower()]
    close = lower or difflib.get_close_matches(value, list(choices), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise SpecError(f"{where}: unknown {what} {value!r}", why="names are case-sensitive" if lower else "",
                    fix=f"{hint}use one of {', '.join(choices)}")


def check_metric(value, where: str = "metric") -> str:
    """One of :data:`ccdgen.ccd.metrics.METRICS` (case-sensitive, lower case)."""
    if not isinstance(value, str) or isinstance(value, bool):
        raise SpecError(f"{where}: unknown pair metric {value!r} ({_kind_of(value)})",
                        fix=f"use one of {', '.join(METRICS)} (in quotes)")
    return _choice(value, tuple(METRICS), where, "pair metric")


def check_sigma(value, where: str = "sigma") -> float:
    """The Gaussian width of Eq. (19) as a fraction of the nearest-neighbour distance, in (0, 1]."""
    return check_number(value, where, low=0.0, high=SIGMA_MAX,
                        why="sigma is the width of the Gaussian of displacements in Eq. (19), as a "
                        "fraction of the nearest-neighbour distance",
                        fix="the paper uses 0.10-0.25")


def check_symprec(value, where: str = "symprec") -> float:
    """The symmetry tolerance in Å, in (0, 1)."""
    return check_number(value, where, low=0.0, high=SYMPREC_MAX, high_open=True, unit="Å",
                        why="symprec is the distance (Å) within which spglib and the point-group "
                        "search treat sites as equal; NaN or a tolerance ≥ 1 Å breaks them",
                        fix="use 1e-5 to 1e-2 (default 1e-3)")


def check_max_order(value, where: str = "max_order") -> int:
    """The highest invariant degree, ``0..MAX_ORDER`` (0 = no invariants)."""
    return check_integer(value, where, low=0, high=MAX_ORDER,
                         why="the number of invariant polynomials grows combinatorially with it",
                         fix="use 2, 4 or 6")


def check_truncate(value, where: str = "truncate"):
    """``"auto"``, an integer ≥ 1, or ``False``; returns it."""
    fix = ('use "auto" (keep the 3N-6 largest-variance CCDs), a number of CCDs ≥ 1, or false '
           "(keep every CCD)")
    if value is False or value == "auto":
        return value
    if value is True:
        raise SpecError(f"{where} = true is ambiguous", fix=fix)
    if isinstance(value, str):
        if value.lower() in ("none", "all", "false", "no", "off"):
            raise SpecError(f"{where} = {value!r}: in a spec, 'keep every CCD' is written false "
                            "(no quotes)", why="'none'/'all' are the command line's spellings (--truncate none)",
                            fix=f"write {where.rsplit('.', 1)[-1]} = false")
        if value.lower() == "auto":
            raise SpecError(f"{where} = {value!r}: did you mean 'auto'?", why="names are case-sensitive", fix=fix)
        if _numeric_text(value):
            raise SpecError(f"{where} = {value!r} is text", fix="write the number without quotes")
    if isinstance(value, int) and not isinstance(value, bool):
        return check_integer(value, where, low=1, why="truncate is the number of CCDs kept", fix=fix)
    raise SpecError(f"{where} must be 'auto', an integer or false, got {value!r} ({_kind_of(value)})", fix=fix)


# ----------------------------------------------------------------------------- keys
def _unknown(key, allowed, where: str) -> SpecError:
    close = difflib.get_close_matches(str(key), list(allowed), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return SpecError(f"{where}: unknown key {key!r}", fix=f"{hint}allowed keys: {', '.join(sorted(allowed))}")


def _check_keys(d, allowed, where: str) -> None:
    if not isinstance(d, dict):
        raise SpecError(f"{where} must be a table/mapping, got {d!r} ({_kind_of(d)})")
    for k in d:
        if k not in allowed:
            raise _unknown(k, allowed, where)


# ----------------------------------------------------------------------------- sections
def parse_options(d: dict, where: str = "options") -> Options:
    """``[options]`` (a dict) → :class:`Options`, every value checked."""
    allowed = {f.name for f in fields(Options)}
    _check_keys(d, allowed, where)
    o = {f.name: f.default for f in fields(Options)} | d
    return Options(metric=check_metric(o["metric"], f"{where}.metric"),
                   sigma=check_sigma(o["sigma"], f"{where}.sigma"),
                   max_order=check_max_order(o["max_order"], f"{where}.max_order"),
                   truncate=check_truncate(o["truncate"], f"{where}.truncate"),
                   symprec=check_symprec(o["symprec"], f"{where}.symprec"))


def _site(s, where: str) -> tuple:
    msg = (f"{where} = {s!r} is not a site: sites must be a list of [x, y, z] fractional "
           "positions or [basis_index, n1, n2, n3] integer sites")
    if not isinstance(s, list) or len(s) not in (3, 4) or not all(_is_number(v) for v in s):
        raise SpecError(msg)
    if len(s) == 4 and not all(isinstance(v, int) for v in s):
        raise SpecError(msg, fix="four entries are [basis_index, n1, n2, n3] and must all be integers")
    if not all(_finite(v) for v in s):
        raise SpecError(f"{where} = {s!r} contains NaN or inf")
    if any(abs(v) > MAX_CELL_OFFSET for v in s):
        raise SpecError(f"{where} = {s!r} lies more than {MAX_CELL_OFFSET} cells from the origin",
                        fix="give the site in or near the reference cell")
    return tuple(s)


def _check_name(value, where: str) -> str:
    """A cluster name: text that is a safe identifier (:func:`ccdgen.clusters.check_name`);
    an unsafe one raises :class:`ClusterError` naming the key."""
    from .clusters import check_name
    from .errors import ClusterError

    check_text(value, where, "a name")
    try:
        return check_name(value)
    except ClusterError as exc:
        raise ClusterError(f"{where}: {exc.what}", exc.why, exc.fix) from None


def parse_cluster(d: dict, k: int) -> ClusterSpec:
    """One ``[[clusters]]`` entry (a dict) → :class:`ClusterSpec`, every value checked
    (cross-checks against the crystal are in :func:`parse_spec`)."""
    where = f"clusters[{k}]"
    _check_keys(d, {f.name for f in fields(ClusterSpec)}, where)
    if "kind" not in d:
        raise SpecError(f"{where}: missing key 'kind'", fix=f"use one of {', '.join(CLUSTER_KINDS)}")
    kind = _choice(d["kind"], CLUSTER_KINDS, f"{where}.kind", "kind")
    for key in d:
        if key not in KIND_KEYS[kind]:
            raise SpecError(f"{where}: key {key!r} does not apply to kind {kind!r}",
                            fix=f"kind {kind!r} takes {', '.join(KIND_KEYS[kind])}; remove {key!r}")
    for key in _REQUIRED[kind]:
        if key not in d:
            raise SpecError(f"{where}: kind {kind!r} needs key {key!r}")
    out = {"kind": kind, "name": _check_name(d.get("name", _DEFAULT_NAMES[kind]), f"{where}.name")}
    if "count" in d:
        if kind == "polyhedron":
            out["count"] = check_integer(d["count"], f"{where}.count", low=1, high=MAX_CLUSTER_SITES,
                                         why="count is the number of neighbours in the polyhedron",
                                         fix="use the size of the first coordination shell(s), e.g. 6")
        else:
            out["count"] = check_integer(d["count"], f"{where}.count", low=1,
                                         why="count is the number of shortest orbits kept")
    if "max_length" in d:
        out["max_length"] = check_number(d["max_length"], f"{where}.max_length", low=0.0, unit="Å",
                                         why="max_length is the longest pair distance in a cluster",
                                         fix="e.g. max_length = 6.5")
    for key in ("center", "neighbors"):
        if key in d:
            out[key] = check_text(d[key], f"{where}.{key}", "an element symbol of the crystal")
    if "include_center" in d:
        out["include_center"] = check_bool(d["include_center"], f"{where}.include_center")
    if "sites" in d:
        sites = d["sites"]
        if not isinstance(sites, list):
            raise SpecError(f"{where}.sites must be a list of [x, y, z] fractional positions or "
                            f"[basis_index, n1, n2, n3] integer sites, got {sites!r} ({_kind_of(sites)})")
        if len(sites) > MAX_CLUSTER_SITES:
            raise SpecError(f"{where}.sites lists {len(sites)} sites; at most {MAX_CLUSTER_SITES} are supported",
                            why="the CCD transform and invariants grow with the number of pairs")
        out["sites"] = tuple(_site(s, f"{where}.sites[{i}]") for i, s in enumerate(sites))
    return ClusterSpec(**out)


def _vectors(value, where: str, what: str, n: int | None = None):
    """A list of [x, y, z] number triples → (len, 3) float64 array (finite)."""
    import numpy as np

    example = "[[ax, ay, az], [bx, by, bz], [cx, cy, cz]]" if what == "lattice" else "[[x, y, z], ...]"
    if not isinstance(value, list):
        raise SpecError(f"{where} must be a list of [x, y, z] vectors, got {value!r} ({_kind_of(value)})",
                        fix=f"write {example}")
    if value and all(_is_number(v) for v in value):
        raise SpecError(f"{where} is a flat list of {len(value)} numbers; it must be a list of "
                        "[x, y, z] vectors", fix=f"write {example}")
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != 3:
            raise SpecError(f"{where}[{i}] = {row!r} is not an [x, y, z] vector of 3 numbers",
                            fix=f"write {example}")
        for v in row:
            if not _is_number(v):
                raise SpecError(f"{where}[{i}] = {row!r}: {v!r} is not a number ({_kind_of(v)})",
                                fix=_type_fix(v, "a number") or f"write {example}")
        if not all(_finite(v) for v in row):
            raise SpecError(f"{where}[{i}] = {row!r} contains NaN or inf")
    if n is not None and len(value) != n:
        raise SpecError(f"{where} has {len(value)} vectors; it must have {n}", fix=f"write {example}")
    return np.array(value, dtype=float).reshape(-1, 3)


def parse_crystal(d: dict, base: Path) -> Crystal:
    """``[crystal]`` → :class:`Crystal`: ``file`` (relative to the spec's folder) or an inline
    lattice (3 vectors, Å), species and positions (fractional, or Å if ``cartesian``)."""
    _check_keys(d, {"file", "lattice", "species", "positions", "cartesian"}, "crystal")
    if "file" in d:
        extra = set(d) - {"file"}
        if extra:
            raise SpecError(f"crystal: give either 'file' or an inline structure, not both ({sorted(extra)})")
        return Crystal.read(base / check_text(d["file"], "crystal.file", "a file name"))
    for key in ("lattice", "species", "positions"):
        if key not in d:
            raise SpecError(f"crystal: missing key {key!r}",
                            fix="give 'file' (any ASE-readable structure) or lattice, species, positions")
    cell = _vectors(d["lattice"], "crystal.lattice", "lattice", 3)
    species = d["species"]
    if not isinstance(species, list) or not species:
        raise SpecError(f"crystal.species must be a non-empty list of element symbols, got {species!r}",
                        fix='e.g. species = ["Pb", "Br", "Br", "Br", "Cs"]')
    check_crystal_species(species, "crystal.species", error=SpecError)
    pos = _vectors(d["positions"], "crystal.positions", "positions")
    if len(pos) != len(species):
        raise SpecError(f"crystal: {len(species)} species but {len(pos)} positions",
                        fix="give one [x, y, z] position per species entry, in the same order")
    cartesian = check_bool(d.get("cartesian", False), "crystal.cartesian")
    return Crystal.from_arrays(cell, species, pos, "crystal", cartesian=cartesian)


# ----------------------------------------------------------------------------- files
def _yaml_loader():
    """A safe YAML loader that refuses duplicate keys (PyYAML keeps the last silently)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            key = loader.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:
                raise SpecError(f"line {key_node.start_mark.line + 1}: a key must be text, got {key!r}") from None
            if key in seen:
                raise SpecError(f"duplicate key {key!r} (lines {seen[key] + 1} and {key_node.start_mark.line + 1})",
                                fix="give each key once")
            seen[key] = key_node.start_mark.line
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    return Loader


_BOOL_TAG = "tag:yaml.org,2002:bool"


def _yaml_bool_text(root) -> None:
    """Refuse an unquoted YAML word read as a boolean where text belongs (species,
    center/neighbors, names), quoting its exact spelling: ``NO`` → false."""
    import yaml

    def get(node, key):
        if isinstance(node, yaml.MappingNode):
            for k, v in node.value:
                if isinstance(k, yaml.ScalarNode) and k.value == key:
                    return v
        return None

    def check(node, where, what):
        if isinstance(node, yaml.ScalarNode) and node.tag == _BOOL_TAG:
            raise SpecError(f"{where}: {what}; YAML read {node.value} as "
                            f"{str(node.value.lower() in ('yes', 'true', 'on')).lower()}: quote it",
                            why="YAML 1.1 reads unquoted yes/no/on/off/true/false (any case) as booleans",
                            fix=f'write "{node.value}"')

    crystal = get(root, "crystal")
    species = get(crystal, "species")
    if isinstance(species, yaml.SequenceNode):
        for i, s in enumerate(species.value):
            check(s, f"crystal.species[{i}]", "species must be element symbols")
    clusters = get(root, "clusters")
    if isinstance(clusters, yaml.SequenceNode):
        for k, c in enumerate(clusters.value):
            for key in ("center", "neighbors"):
                check(get(c, key), f"clusters[{k}].{key}", f"{key} must be an element symbol")
            for key in ("name", "kind"):
                check(get(c, key), f"clusters[{k}].{key}", f"{key} must be text")
    check(get(get(root, "options"), "metric"), "options.metric", "metric must be text")


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SpecError(f"cannot read spec file {path}: {exc.strerror}") from None
    if b"\x00" in raw:
        raise SpecError(f"{path} is a binary file, not a TOML/YAML spec",
                        fix="give the spec file (.toml or .yaml text)")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise SpecError(f"{path} is not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line}",
                        fix="save the file as UTF-8") from None


def load_spec(path) -> Spec:
    """Read and validate a TOML (``.toml``) or YAML (``.yaml``/``.yml``) spec file."""
    path = Path(path)
    if not path.exists():
        raise SpecError(f"spec file {path} does not exist")
    if path.is_dir():
        inside = sorted(p.name for p in path.iterdir() if p.suffix.lower() in (".toml", ".yaml", ".yml"))
        raise SpecError(f"{path} is a folder, not a spec file",
                        fix=f"give a spec file{' such as ' + str(path / inside[0]) if inside else ' (.toml or .yaml)'}")
    suffix = path.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise SpecError(f"{path}: unknown spec format {path.suffix!r}",
                        fix="give a .toml or .yaml spec (a structure file goes into its [crystal] as "
                        "file = ...), or a free cluster as .xyz")
    text = _read_text(path)
    fmt = "TOML" if suffix == ".toml" else "YAML"
    try:
        if fmt == "TOML":
            data = tomllib.loads(text)
        else:
            import yaml

            loader = _yaml_loader()
            data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
            _yaml_bool_text(yaml.compose(text, Loader=loader))
    except SpecError as exc:
        raise SpecError(f"{path}: {exc.what}", exc.why, exc.fix) from None
    except Exception as exc:
        raise SpecError(f"{path} is not valid {fmt}: {exc}") from None
    return parse_spec(data, path)


def parse_spec(data: dict, path: Optional[Path] = None) -> Spec:
    """A parsed spec document (dict) → :class:`Spec`, every key and value checked."""
    if data is None:
        raise SpecError("spec: the file is empty", fix="give [crystal] and [[clusters]]")
    _check_keys(data, {"crystal", "clusters", "options"}, "spec")
    if "crystal" not in data:
        raise SpecError("spec: missing table [crystal]")
    if "clusters" not in data:
        raise SpecError("spec: no [[clusters]] given", fix="add at least one [[clusters]] entry")
    if not isinstance(data["clusters"], list):
        raise SpecError("spec: 'clusters' must be a list of tables ([[clusters]] entries), "
                        f"got {data['clusters']!r} ({_kind_of(data['clusters'])})")
    if not data["clusters"]:
        raise SpecError("spec: no [[clusters]] given ('clusters' is empty)",
                        fix="add at least one [[clusters]] entry")
    base = path.parent if path else Path(".")
    crystal = parse_crystal(data["crystal"], base)
    options = parse_options(data.get("options", {}))
    clusters = tuple(parse_cluster(c, k) for k, c in enumerate(data["clusters"]))
    for k, c in enumerate(clusters):
        _check_against_crystal(c, k, crystal)
    names = [c.name for c in clusters]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SpecError(f"clusters: duplicate name(s) {sorted(dup)}", fix="give each [[clusters]] entry its own 'name'")
    return Spec(crystal, clusters, options, str(path) if path else None)


def _check_against_crystal(c: ClusterSpec, k: int, crystal: Crystal) -> None:
    """Cross-checks that need the crystal: polyhedron species exist; a ``max_length`` does
    not make the pair/triplet scan enumerate more than :data:`MAX_CANDIDATES` clusters."""
    where = f"clusters[{k}]"
    present = sorted(set(crystal.species))
    for key in ("center", "neighbors"):
        value = getattr(c, key)
        if value is not None and value not in present:
            close = [s for s in present if s.lower() == value.lower()]
            raise SpecError(f"{where}.{key}: no site of species {value!r} in the crystal",
                            fix=f"{'did you mean ' + repr(close[0]) + '? ' if close else ''}"
                            f"the crystal's species are {', '.join(present)}")
    if c.max_length is not None:
        import numpy as np

        volume = abs(float(np.linalg.det(crystal.cell)))
        per_site = 4.0 / 3.0 * math.pi * min(c.max_length, 1e6) ** 3 * crystal.n_basis / volume
        cands = crystal.n_basis * per_site * (per_site / 2 if c.kind == "triplets" else 1)
        if cands > MAX_CANDIDATES:
            raise SpecError(
                f"{where}.max_length = {c.max_length:g} Å is too long for this crystal: about "
                f"{per_site:.3g} sites lie within it of each site, so the {c.kind} scan would check "
                f"about {cands:.2g} candidate clusters (limit {MAX_CANDIDATES:,})",
                why="max_length bounds the pair lengths of the clusters searched for",
                fix="lower max_length (CCD clusters are local: a few nearest-neighbour distances)")
