"""Hyperparameter grids for cross-validated model selection (``ccdgen cv --grid``).

A grid file (TOML or YAML) has three tables::

    [sweep]                      # how the data are split and scored (all optional)
    folds = 10                   # k of the k-fold CV (``--folds`` overrides)
    seed = 0                     # split, folds, inner splits and weight initialization
    test_fraction = 0.2          # held out before selection, never touched by it
    val_fraction = 0.1           # of each fold's training part, for early stopping

    [cluster_sets]               # named subsets of the spec's cluster orbits
    "4p+oct" = ["pair1", "pair2", "pair3", "pair4", "PbBr6"]

    [grid]                       # axes: a list is swept, a single value is fixed
    cluster_set = ["4p+oct"]     # default: every set
    order = [2, 4]               # default: the spec's max_order
    kind = ["cluster", "site", "linear"]
    depth = [1, 2]               # hidden layers ...
    width = [8, 16]              # ... of this many nodes each (or: hidden = [[8], [16, 16]])

    [training]                   # TrainConfig options; a list makes one more axis
    epochs = 50                  # (batch_schedule: a list of lists is an axis)
    lr = 0.01

The grid is the Cartesian product of every axis.  A linear model has no architecture or
optimizer, so its hyperparameter sets collapse to one per cluster set and order.  Each
:class:`HyperParams` has a stable :meth:`~HyperParams.key`: the SHA-256 of everything that
defines its training run, so a sweep that is run again recognizes its finished trials.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from ..errors import SpecError

GRID_FORMAT = "ccdgen-grid/1"

#: TrainConfig options a grid may set in [training] (``ridge_folds`` is TrainConfig.folds).
TRAINING_KEYS = ("activation", "lr", "weight_decay", "epochs", "batch_size", "batch_schedule", "epochs_per_stage",
                 "patience", "lr_patience", "force_weight", "stress_weight", "whiten", "ridge_folds")
#: Options that matter to a linear (closed-form ridge) model; the others are dropped for it.
LINEAR_KEYS = ("whiten", "ridge_folds")
KINDS = ("cluster", "site", "linear")
SWEEP_KEYS = ("folds", "seed", "test_fraction", "val_fraction")
GRID_KEYS = ("cluster_set", "order", "kind", "depth", "width", "hidden")


@dataclass(frozen=True)
class SweepOptions:
    """How a sweep splits and scores the data (the ``[sweep]`` table)."""

    folds: int = 10  #: k of the k-fold cross-validation
    seed: int = 0  #: seeds the test split, the folds, the inner splits and the weights
    test_fraction: float = 0.2  #: held out before selection; only the final model sees it
    val_fraction: float = 0.1  #: of each fold's training part, for early stopping


@dataclass(frozen=True)
class HyperParams:
    """One hyperparameter set: cluster set, order, model kind, architecture and training.

    ``clusters`` are orbit names in the spec's order; ``hidden`` the hidden layer widths
    (() for a linear model); ``training`` sorted ``(option, value)`` pairs of
    :class:`~ccdgen.models.train.TrainConfig` options (values JSON-like: tuples for lists).
    """

    cluster_set: str
    clusters: tuple
    order: int
    kind: str
    hidden: tuple = ()
    training: tuple = ()

    @property
    def depth(self) -> int:
        return len(self.hidden)

    @property
    def width(self) -> int:
        return max(self.hidden) if self.hidden else 0

    def options(self) -> dict:
        return dict(self.training)

    def record(self) -> dict:
        """Everything that defines the training run, as plain JSON data (the key's input)."""
        return {"clusters": list(self.clusters), "order": int(self.order), "kind": self.kind,
                "hidden": list(self.hidden),
                "training": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.training}}

    def key(self) -> str:
        """Stable 16-hex-digit id: SHA-256 of :meth:`record` (the set's name is a label, not
        part of the key: renaming a cluster set keeps its finished trials)."""
        text = json.dumps(self.record(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def architecture(self) -> str:
        """``8x1`` (width x depth), ``16-8`` (unequal widths) or ``-`` (linear)."""
        if self.kind == "linear":
            return "-"
        if len(set(self.hidden)) > 1:
            return "-".join(map(str, self.hidden))
        return f"{self.width}x{self.depth}"

    def label(self, show=()) -> str:
        """Short human-readable name, e.g. ``7p+tri+oct/o2/cluster/8x1``; ``show``: training
        options to append (those that vary across a grid, :meth:`Grid.varying`)."""
        extra = ",".join(f"{k}={_short(v)}" for k, v in self.training if k in show)
        return f"{self.cluster_set}/o{self.order}/{self.kind}/{self.architecture}" + (f"/{extra}" if extra else "")

    def train_config(self, options: SweepOptions):
        """The :class:`~ccdgen.models.train.TrainConfig` of this set under a sweep's options."""
        from ..models.train import TrainConfig

        kw = {k: v for k, v in self.training if k != "ridge_folds"}
        if "ridge_folds" in dict(self.training):
            kw["folds"] = dict(self.training)["ridge_folds"]
        return TrainConfig(kind=self.kind, order=self.order, clusters=tuple(self.clusters),
                           hidden=tuple(self.hidden) if self.hidden else (8,), seed=options.seed,
                           test_fraction=options.test_fraction, val_fraction=options.val_fraction, **kw)


def _short(v) -> str:
    if isinstance(v, tuple):
        return "-".join(map(str, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Grid:
    """A parsed grid file: sweep options, cluster sets and the axes (see the module doc)."""

    options: SweepOptions
    cluster_sets: dict  # name -> tuple of orbit names (as written)
    axes: dict  # axis -> tuple of values: cluster_set, order, kind, hidden, and training options
    source: str = "<grid>"
    raw: dict = field(default_factory=dict, compare=False)

    def with_folds(self, folds: int | None) -> "Grid":
        if folds is None:
            return self
        return replace(self, options=replace(self.options, folds=_check_int(folds, "folds", 2, self.source)))

    def varying(self) -> tuple:
        """Training options with more than one value (the ones a label must show)."""
        return tuple(k for k, v in self.axes.items() if k in TRAINING_KEYS and len(v) > 1)

    def expand(self, orbits=None) -> list:
        """Every distinct :class:`HyperParams` of the grid, in a stable order.

        ``orbits``: the spec's cluster orbits, in spec order.  A set naming an orbit the spec
        does not have is an error; set members are put in spec order; None: sets as written.
        """
        sets = {}
        for name in self.axes["cluster_set"]:
            members = self.cluster_sets[name]
            if orbits is not None:
                missing = [m for m in members if m not in orbits]
                if missing:
                    raise SpecError(f"{self.source}: cluster set {name!r} names {missing}, which the spec "
                                    "does not have",
                                    why="a cluster set is a subset of the spec's cluster orbits",
                                    fix=f"the spec's orbits are {', '.join(orbits)}; use a spec with these orbits "
                                        "(e.g. examples/cspbbr3/ccdgen_8pairs.toml for an 8th, Pb-Pb pair) or "
                                        "edit the set")
                members = tuple(o for o in orbits if o in members)
            sets[name] = tuple(members)
        seen = {}
        for a, b in itertools.combinations(sets, 2):
            if set(sets[a]) == set(sets[b]):
                raise SpecError(f"{self.source}: cluster sets {a!r} and {b!r} are the same orbits",
                                fix="remove one of them")
        train_axes = [k for k in self.axes if k in TRAINING_KEYS]
        out = []
        for cs, order, kind, hidden, *tv in itertools.product(
                self.axes["cluster_set"], self.axes["order"], self.axes["kind"], self.axes["hidden"],
                *(self.axes[k] for k in train_axes)):
            training = dict(zip(train_axes, tv))
            if kind == "linear":
                hidden = ()
                training = {k: v for k, v in training.items() if k in LINEAR_KEYS}
            hp = HyperParams(cs, sets[cs], int(order), kind, tuple(hidden), tuple(sorted(training.items())))
            k = hp.key()
            if k not in seen:
                seen[k] = hp
                out.append(hp)
        return out

    def describe(self) -> dict:
        return {"format": GRID_FORMAT, "source": self.source, "sweep": asdict(self.options),
                "cluster_sets": {k: list(v) for k, v in self.cluster_sets.items()},
                "axes": {k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in self.axes.items()}}


# ---------------------------------------------------------------------------- parsing
def load_grid(path) -> Grid:
    """Read a grid file (.toml, .yaml or .yml); every problem is a :class:`SpecError`
    that names the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise SpecError(f"grid file {path} does not exist", fix="pass --grid with a .toml or .yaml grid "
                                                                "(see examples/cspbbr3/grid.toml)")
    text = path.read_text()
    suffix = path.suffix.lower()
    try:
        if suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        elif suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            raise SpecError(f"grid file {path}: unknown format {suffix!r}", fix="use .toml, .yaml or .yml")
    except SpecError:
        raise
    except Exception as exc:  # a syntax error of either parser
        raise SpecError(f"grid file {path} cannot be parsed: {exc}", fix="fix the TOML/YAML syntax") from None
    return parse_grid(data, str(path))


def parse_grid(data: dict, source: str = "<grid>") -> Grid:
    """Build a :class:`Grid` from plain data (what :func:`load_grid` reads)."""
    if not isinstance(data, dict):
        raise SpecError(f"{source}: a grid must be a table with [sweep], [cluster_sets], [grid], [training]")
    _unknown(data, ("sweep", "cluster_sets", "grid", "training"), source, "top-level table")
    sweep = _table(data, "sweep", source)
    _unknown(sweep, SWEEP_KEYS, source, "[sweep] key")
    opts = SweepOptions(
        folds=_check_int(sweep.get("folds", 10), "[sweep] folds", 2, source),
        seed=_check_int(sweep.get("seed", 0), "[sweep] seed", 0, source),
        test_fraction=_check_fraction(sweep.get("test_fraction", 0.2), "[sweep] test_fraction", source, low_open=True),
        val_fraction=_check_fraction(sweep.get("val_fraction", 0.1), "[sweep] val_fraction", source))

    sets_raw = _table(data, "cluster_sets", source)
    sets = {}
    for name, members in sets_raw.items():
        if not isinstance(members, list) or not members or not all(isinstance(m, str) and m for m in members):
            raise SpecError(f"{source}: [cluster_sets] {name!r} must be a non-empty list of orbit names, "
                            f"got {members!r}",
                            fix='e.g. "4p+oct" = ["pair1", "pair2", "pair3", "pair4", "PbBr6"]')
        if len(set(members)) != len(members):
            raise SpecError(f"{source}: [cluster_sets] {name!r} lists an orbit twice: {members}")
        if "/" in name or not name.strip():
            raise SpecError(f"{source}: cluster set name {name!r} is empty or has a '/'", fix="rename it")
        sets[str(name)] = tuple(members)

    grid = _table(data, "grid", source)
    _unknown(grid, GRID_KEYS, source, "[grid] key")
    axes = {}
    cs = _as_list(grid.get("cluster_set", list(sets) or None), "[grid] cluster_set", source)
    if cs == [None]:
        raise SpecError(f"{source}: no cluster sets", fix="add a [cluster_sets] table (name = [orbits])")
    for c in cs:
        if c not in sets:
            raise SpecError(f"{source}: [grid] cluster_set {c!r} is not defined in [cluster_sets]",
                            fix=f"defined sets: {', '.join(sets) or 'none'}")
    axes["cluster_set"] = tuple(dict.fromkeys(cs))
    orders = _as_list(grid.get("order", [2]), "[grid] order", source)
    from ..spec import check_max_order

    axes["order"] = tuple(dict.fromkeys(_spec_checked(check_max_order, o, "[grid] order", source) for o in orders))
    if any(o < 1 for o in axes["order"]):
        raise SpecError(f"{source}: [grid] order must be ≥ 1, got {list(axes['order'])}")
    kinds = _as_list(grid.get("kind", ["cluster"]), "[grid] kind", source)
    for k in kinds:
        if k not in KINDS:
            raise SpecError(f"{source}: [grid] kind {k!r} is not a model kind", fix=f"use {', '.join(KINDS)}")
    axes["kind"] = tuple(dict.fromkeys(kinds))
    if "hidden" in grid:
        if "depth" in grid or "width" in grid:
            raise SpecError(f"{source}: [grid] gives hidden and depth/width", fix="use one or the other")
        hid = grid["hidden"]
        if not isinstance(hid, list) or not hid:
            raise SpecError(f"{source}: [grid] hidden must be a list of layer-width lists, e.g. [[8], [16, 16]]")
        hid = [h if isinstance(h, list) else [h] for h in hid]
        axes["hidden"] = tuple(dict.fromkeys(tuple(_check_int(w, "[grid] hidden width", 1, source) for w in h)
                                             for h in hid))
        if any(len(h) == 0 for h in axes["hidden"]):
            raise SpecError(f"{source}: [grid] hidden has an empty architecture", fix="use kind = 'linear' for that")
    else:
        depths = [_check_int(d, "[grid] depth", 1, source)
                  for d in _as_list(grid.get("depth", [1]), "[grid] depth", source)]
        widths = [_check_int(w, "[grid] width", 1, source)
                  for w in _as_list(grid.get("width", [8]), "[grid] width", source)]
        axes["hidden"] = tuple(dict.fromkeys((w,) * d for d in depths for w in widths))

    training = _table(data, "training", source)
    _unknown(training, TRAINING_KEYS, source, "[training] key")
    for key, value in training.items():
        if key == "batch_schedule":
            if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
                vals = value
            else:
                vals = [value]
        else:
            vals = value if isinstance(value, list) else [value]
            if not vals:
                raise SpecError(f"{source}: [training] {key} is an empty list")
        axes[key] = tuple(dict.fromkeys(_training_value(key, v, source) for v in vals))
    return Grid(opts, sets, axes, source, data)


def _training_value(key: str, value, source: str):
    """Check one [training] value by building a TrainConfig with it (the trainer's own rules)."""
    from ..errors import ModelError
    from ..models.train import TrainConfig

    if key == "batch_schedule":
        if not isinstance(value, list) or not value:
            raise SpecError(f"{source}: [training] batch_schedule must be a list of batch sizes, e.g. [2, 10, 100]")
        value = tuple(_check_int(v, "[training] batch_schedule", 1, source) for v in value)
    elif isinstance(value, (dict, list)):
        raise SpecError(f"{source}: [training] {key} must be a single value or a list of values, got {value!r}")
    name = "folds" if key == "ridge_folds" else key
    try:
        if name == "folds":
            _check_int(value, "[training] ridge_folds", 2, source)
        TrainConfig(**{name: value})
    except ModelError as exc:
        raise SpecError(f"{source}: [training] {key}: {exc.what}", fix=exc.fix) from None
    except TypeError as exc:
        raise SpecError(f"{source}: [training] {key} = {value!r}: {exc}") from None
    return value


def _table(data: dict, name: str, source: str) -> dict:
    t = data.get(name, {})
    if not isinstance(t, dict):
        raise SpecError(f"{source}: [{name}] must be a table, got {type(t).__name__}")
    return t


def _unknown(table: dict, known, source: str, what: str) -> None:
    bad = [k for k in table if k not in known]
    if bad:
        import difflib

        close = difflib.get_close_matches(str(bad[0]), list(known), n=1)
        raise SpecError(f"{source}: unknown {what} {bad[0]!r}",
                        fix=(f"did you mean {close[0]!r}? " if close else "") + f"known: {', '.join(known)}")


def _as_list(value, what: str, source: str) -> list:
    if isinstance(value, list):
        if not value:
            raise SpecError(f"{source}: {what} is an empty list", fix="give at least one value")
        return value
    return [value]


def _check_int(value, what: str, low: int, source: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise SpecError(f"{source}: {what} must be a whole number ≥ {low}, got {value!r}")
    return int(value)


def _check_fraction(value, what: str, source: str, low_open: bool = False) -> float:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and 0 <= value < 1
    if not ok or (low_open and value <= 0):
        rng = "(0, 1)" if low_open else "[0, 1)"
        raise SpecError(f"{source}: {what} must be a fraction in {rng}, got {value!r}")
    return float(value)


def _spec_checked(check, value, what: str, source: str):
    try:
        return int(check(value, what))
    except SpecError as exc:
        raise SpecError(f"{source}: {exc.what}", fix=exc.fix) from None


def grid_fields() -> tuple:
    """Names of the HyperParams fields (for tables)."""
    return tuple(f.name for f in fields(HyperParams))
