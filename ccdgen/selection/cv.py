"""k-fold cross-validated model selection (``ccdgen cv``): split, featurize once, sweep the
grid on a back end, tabulate, retrain the best set.

    dataset ──split──► training part (1 − test_fraction) │ test part (never seen by selection)
    training part ──kfold──► k × (fold training part │ held-out fold)
    fold training part ──inner split──► weights (1 − val_fraction) │ early stopping (val_fraction)
    spec + order ──featurize (once per order, every orbit of the grid)──► FeatureSet
    FeatureSet ──select orbits──► one cluster set's features (no recomputation)
    (hyperparameter set × fold) = trial ──back end──► record (appended to trials.jsonl)
    records ──aggregate──► table (CSV + JSON), Fig. 7-style plots
    best set ──retrain on the whole training part──► best.ckpt, test error

The test part is removed before anything else: neither the folds, the standardization,
early stopping nor the choice of the best set ever sees it; only the final model is
evaluated on it.  A trial's split is ``Split(train=inner train, val=inner validation,
test=held-out fold)``: the held-out fold is only evaluated, never used for early stopping.

Features of an orbit do not depend on the other orbits of a featurizer, so one
featurization per order with every orbit the grid uses serves every cluster set
(:func:`select_orbits` takes the subset and gives it the subset featurizer's signature, so
models record the featurizer they really use).

Every finished trial is one JSON line of ``trials.jsonl``, written by the driver in one
``write`` on an ``O_APPEND`` descriptor and fsynced; a line cut short by a kill is ignored
and cut off when the sweep runs again, which then skips every finished trial.  Training is
deterministic (float64, one torch thread, seeded batches), so a resumed sweep, an
uninterrupted one and the local and Ray back ends give the same numbers trial by trial.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import DataError, ModelError
from ..fileio import append_bytes, write_text_atomic
from .grid import Grid, HyperParams, SweepOptions

SWEEP_FORMAT = "ccdgen-cv/1"
TRIALS_FILE = "trials.jsonl"
MANIFEST_FILE = "sweep.json"


# ---------------------------------------------------------------------------- folds
@dataclass(frozen=True)
class Folds:
    """Frame indices of a sweep (into the dataset), all sorted int64.

    train : (n_train,) — the training part: everything selection may touch
    test : (n_test,) — held out; only the final model is evaluated on it
    folds : k × (fold training part, held-out fold) — disjoint held-out folds covering ``train``
    inner : k × :class:`~ccdgen.data.split.Split` — per fold: weights (train), early
        stopping (val), held-out fold (test)
    final : Split — the whole training part split into weights / early stopping, and the test part
    """

    train: np.ndarray
    test: np.ndarray
    folds: tuple
    inner: tuple
    final: object
    seed: int

    @property
    def k(self) -> int:
        return len(self.folds)

    def describe(self) -> dict:
        return {"n_train": int(len(self.train)), "n_test": int(len(self.test)), "k": self.k, "seed": int(self.seed),
                "fold_sizes": [int(len(v)) for _, v in self.folds],
                "digest": _digest([self.train, self.test] + [v for _, v in self.folds])}


def make_folds(n_frames: int, options: SweepOptions) -> Folds:
    """The test split, the k folds of the training part and their inner splits (module doc).

    Deterministic in ``(n_frames, options)``; seeds: ``options.seed`` for the test split, the
    folds and the final inner split, ``options.seed + 1 + i`` for fold ``i``'s inner split.
    """
    from ..data.split import Split, kfold, split_frames

    outer = split_frames(n_frames, options.test_fraction, 0.0, options.seed)
    train, test = outer.train, outer.test
    folds = kfold(train, options.folds, options.seed)
    inner = []
    for i, (tr, held) in enumerate(folds):
        s = _inner_split(n_frames, tr, options.val_fraction, options.seed + 1 + i)
        inner.append(Split(s.train, s.val, held, s.seed))
    f = _inner_split(n_frames, train, options.val_fraction, options.seed)
    final = Split(f.train, f.val, test, f.seed)
    return Folds(train, test, tuple(folds), tuple(inner), final, options.seed)


def _inner_split(n_frames, frames, val_fraction, seed):
    from ..data.split import split_frames

    return split_frames(n_frames, 0.0, val_fraction, seed, frames=frames)


def _digest(arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------- features
def select_orbits(features, featurizer, keep_forces: bool = True):
    """The cluster features of ``featurizer``'s orbits out of a FeatureSet computed with a
    featurizer of more orbits (same spec and order): no recomputation.

    The blocks get ``featurizer``'s layouts (they index its kernel groups) and the set its
    signature.  ``keep_forces=False`` drops forces and stress (energy-only training and
    evaluation are then faster).  Returns a :class:`~ccdgen.data.features.FeatureSet`.
    """
    from ..data.features import FeatureBlock, FeatureSet

    blocks = []
    for b in features.blocks:
        missing = [n for n in featurizer.orbits if n not in b.clusters]
        if missing:
            raise ModelError(f"the features have no orbit(s) {missing}",
                             fix="featurize with every orbit of the grid's cluster sets")
        blocks.append(FeatureBlock(featurizer.layout(b.layout.supercell), b.frames,
                                   {n: b.clusters[n] for n in featurizer.orbits}, b.site_positions, b.cells,
                                   b.atom_of_site, b.energy, b.forces if keep_forces else None,
                                   b.stress if keep_forces else None))
    return FeatureSet(tuple(blocks), features.n_frames, featurizer.signature(), features.dataset_hash,
                      features.families)


# ---------------------------------------------------------------------------- trials
@dataclass(frozen=True)
class TrialTask:
    """One (hyperparameter set, fold) to train: everything a worker needs besides the
    features of its order (sent once per worker, see :mod:`ccdgen.selection.backends`)."""

    key: str
    hp: HyperParams
    fold: int
    split: object  # Split(train=inner train, val=early stopping, test=held-out fold)
    spec: dict  # the spec as plain data (ccdgen.pipeline.spec_as_dict)
    signature: str  # the cluster set's featurizer signature, checked in the worker
    options: SweepOptions
    context: str
    resources: tuple = (("num_cpus", 1), ("num_gpus", 0))

    @property
    def order(self) -> int:
        return self.hp.order


def trial_key(hp: HyperParams, fold: int) -> str:
    return f"{hp.key()}-{fold}"


_WORKER_STATE: dict = {}


def _worker_featurizer(spec: dict, order: int, clusters: tuple, signature: str):
    """The cluster set's featurizer in this process (built once per process and set)."""
    from ..crystal.featurizer import CrystalFeaturizer
    from ..pipeline import load
    from ..spec import parse_spec

    skey = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()
    problems = _WORKER_STATE.setdefault("problems", {})
    if skey not in problems:
        problems[skey] = load(parse_spec(spec))
    fzs = _WORKER_STATE.setdefault("featurizers", {})
    k = (skey, order, tuple(clusters))
    if k not in fzs:
        fz = CrystalFeaturizer(problems[skey], order, clusters=list(clusters))
        if fz.signature() != signature:
            raise ModelError(f"the worker's featurizer for {list(clusters)} (order {order}) differs from the driver's",
                             why="the worker runs another ccdgen version or sees another spec",
                             fix="install the same ccdgen on every node of the cluster")
        fzs[k] = fz
    return fzs[k]


def execute_trial(task: TrialTask, features) -> dict:
    """Train one trial on ``features`` (the FeatureSet of the task's order, every orbit) and
    return its record (JSON-ready).  Runs in a worker process; deterministic."""
    import socket
    import tempfile
    import warnings

    from ..models import torch_threads
    from ..models.train import train_model

    t0 = time.perf_counter()
    os.environ.setdefault("CCDGEN_TORCH_THREADS", str(max(1, int(dict(task.resources).get("num_cpus", 1)))))
    torch_threads()
    fz = _worker_featurizer(task.spec, task.order, task.hp.clusters, task.signature)
    cfg = task.hp.train_config(task.options)
    keep_forces = cfg.force_weight > 0 or cfg.stress_weight > 0
    fs = select_orbits(features, fz, keep_forces=keep_forces)
    with tempfile.TemporaryDirectory(prefix="ccdgen-trial-") as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_model(None, None, cfg, Path(tmp) / "model.ckpt", run_dir=Path(tmp) / "run", resume=False,
                          progress=False, featurizer=fz, features=fs, split=task.split, log=_quiet)
        alpha = _ridge_alpha(res)
    m = res.metrics

    def part(name):
        d = m.get(name) or {}
        out = {k: d[k] for k in ("n_frames", "energy_rmse_meV_atom", "energy_mae_meV_atom", "energy_max_meV_atom",
                                 "force_rmse_meV_A") if k in d}
        if name == "test" and d.get("by_family"):
            out["by_family_rmse_meV_atom"] = {f: v.get("energy_rmse_meV_atom") for f, v in d["by_family"].items()}
        return out

    return {"key": task.key, "hp_key": task.hp.key(), "fold": int(task.fold), "context": task.context,
            "cluster_set": task.hp.cluster_set, "label": task.hp.label(), "hp": task.hp.record(),
            "train": part("train"), "val": part("val"), "cv": part("test"),
            "epochs": res.extra.get("epochs"), "ridge_alpha": alpha,
            "seconds": round(time.perf_counter() - t0, 3), "host": socket.gethostname(), "pid": os.getpid()}


def _ridge_alpha(res):
    table = res.extra.get("ridge_cv")
    if not table:
        return None
    try:
        import torch

        ck = torch.load(res.model_path, map_location="cpu", weights_only=False)
        return ck["hyper_parameters"]["training"].get("ridge_alpha")
    except Exception:  # the alpha is informative only
        return None


def _quiet(*_args, **_kwargs):
    return None


#: Keys of a record that depend on where and how fast a trial ran, not on its result.
VOLATILE = ("seconds", "host", "pid")


def comparable(record: dict) -> dict:
    """A record without its timing and host fields (what must agree between back ends)."""
    return {k: v for k, v in record.items() if k not in VOLATILE}


# ---------------------------------------------------------------------------- the log
def read_records(path) -> tuple[list, int]:
    """Finished-trial records of a ``trials.jsonl`` and the byte length of its valid part
    (a last line cut short by a kill is left out)."""
    path = Path(path)
    if not path.exists():
        return [], 0
    data = path.read_bytes()
    records, good = [], 0
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            break  # torn last line: no newline
        line = data[pos:nl]
        try:
            rec = json.loads(line)
        except ValueError:
            break  # a torn or garbled line: everything after it is suspect
        if not isinstance(rec, dict) or "key" not in rec:
            break
        records.append(rec)
        pos = nl + 1
        good = pos
    return records, good


class TrialLog:
    """Append-only record of finished trials (``DIR/trials.jsonl``); only the driver writes."""

    def __init__(self, path):
        self.path = Path(path)
        self.records, good = read_records(self.path)
        if self.path.exists() and self.path.stat().st_size != good:  # drop a torn tail before appending
            with open(self.path, "r+b") as fh:
                fh.truncate(good)

    def append(self, record: dict) -> None:
        line = (json.dumps(record, sort_keys=True, default=_json_default) + "\n").encode()
        append_bytes(self.path, line)
        self.records.append(json.loads(line))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    return str(o)


# ---------------------------------------------------------------------------- the sweep
@dataclass
class SweepResult:
    """What :func:`run_sweep` produced (paths inside ``out``)."""

    out: Path
    rows: list  # table rows, best (lowest mean CV RMSE) first
    best: dict | None  # the best complete row
    final: dict | None  # the retrained best set: metrics, model path
    files: dict  # name -> Path (table CSV/JSON, plots, model)
    n_run: int  # trials trained by this call
    n_skipped: int  # trials found finished
    seconds: float
    folds: Folds | None = None
    records: list = field(default_factory=list)


def sweep_context(spec_dict: dict, dataset_hash: str, options: SweepOptions, folds: Folds,
                  featurizers: dict | None = None) -> tuple[str, dict]:
    """What every trial of a sweep shares; its hash marks the records that belong together.

    ``featurizers``: {order: signature} of the featurizers that made the features, so that a
    ccdgen whose features differ does not reuse another one's trials."""
    ctx = {"format": SWEEP_FORMAT, "dataset": dataset_hash,
           "spec": hashlib.sha256(json.dumps(spec_dict, sort_keys=True, default=str).encode()).hexdigest()[:16],
           "options": asdict(options), "folds": folds.describe()["digest"],
           "featurizers": {str(k): v for k, v in sorted((featurizers or {}).items())}}
    return hashlib.sha256(json.dumps(ctx, sort_keys=True).encode()).hexdigest()[:16], ctx


def run_sweep(spec, dataset, grid: Grid, out, *, backend="local", workers: int | None = None,
              address: str | None = None, cpus_per_trial: float = 1, gpus_per_trial: float = 0,
              final: bool = True, final_epochs: int | None = None, fresh: bool = False, progress: bool | None = None,
              features: dict | None = None, on_record=None, log=print) -> SweepResult:
    """Run (or resume) a cross-validated sweep of ``grid`` and write its results into ``out``.

    Parameters
    ----------
    spec : spec path or a loaded :class:`~ccdgen.pipeline.Problem`; the grid's cluster sets
        are subsets of its orbits
    dataset : :class:`~ccdgen.data.dataset.Dataset` with energies (None when ``features`` is given)
    grid : :class:`~ccdgen.selection.grid.Grid` (``with_folds`` applied by the caller)
    out : folder for ``sweep.json``, ``trials.jsonl``, ``results.csv/json``, plots, ``best.ckpt``
    backend : "local" (processes on this machine), "ray", or a Backend instance
    workers : local processes (default: CPU count // cpus_per_trial)
    address : Ray cluster address (default: start a local Ray instance)
    cpus_per_trial, gpus_per_trial : what each trial declares (Ray schedules by them; the
        local back end runs CPU count // cpus_per_trial at once)
    final : retrain the best set on the whole training part and evaluate it on the test part
    final_epochs : maximum epochs of that retraining (default: the set's own, as in the trials)
    fresh : forget finished trials in ``out`` (default: skip them)
    features : {order: FeatureSet} computed with every orbit of the grid (skips featurizing)
    on_record : called with each new record (after it is appended)
    """
    from ..crystal.featurizer import CrystalFeaturizer
    from ..data.features import featurize_dataset
    from ..pipeline import Problem, load, spec_as_dict
    from .backends import make_backend
    from .results import Progress, write_results

    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    problem = spec if isinstance(spec, Problem) else load(spec)
    if problem.spec is None:
        raise DataError(f"{problem.source} is not a crystal spec", fix="pass a spec file with [crystal]")
    orbits = [c.name for c in problem.clusters]
    hps = grid.expand(orbits)
    used = tuple(o for o in orbits if any(o in hp.clusters for hp in hps))
    orders = sorted({hp.order for hp in hps})
    spec_dict = spec_as_dict(problem.spec, problem.options)

    # featurize once per order with every orbit the grid uses
    if features is None:
        if dataset is None:
            raise DataError("run_sweep needs a dataset or precomputed features")
        if len(dataset) < 2 * grid.options.folds:
            raise DataError(f"{len(dataset)} frames are too few for {grid.options.folds}-fold cross-validation",
                            fix="use more frames or fewer --folds")
        features = {}
        for o in orders:
            full = CrystalFeaturizer(problem, o, clusters=list(used))
            log(f"featurizing {len(dataset)} frames, order {o}, orbits {', '.join(used)}")
            features[o] = featurize_dataset(full, dataset, progress=progress)
    else:
        features = {int(k): v for k, v in features.items()}
        for o in orders:
            if o not in features:
                raise DataError(f"no features of order {o} given", fix="featurize every order of the grid")
    n_frames = features[orders[0]].n_frames
    dataset_hash = features[orders[0]].dataset_hash
    folds = make_folds(n_frames, grid.options)
    ctx_hash, ctx = sweep_context(spec_dict, dataset_hash, grid.options, folds,
                                  {o: features[o].featurizer_signature for o in orders})

    # manifest: one sweep context per folder
    manifest = out / MANIFEST_FILE
    trials_path = out / TRIALS_FILE
    if manifest.exists() and not fresh:
        old = json.loads(manifest.read_text())
        if old.get("context_hash") != ctx_hash:
            raise ModelError(f"{out} holds a sweep of other data, spec, split settings or features",
                             why="its finished trials are not comparable with this sweep's (a ccdgen whose "
                                 "features differ, e.g. another version, counts as other features)",
                             fix="pass --fresh to start over in this folder (its trials are deleted), or use "
                                 "another -o")
    if fresh:
        import shutil

        for p in (trials_path, out / "best.json", out / "best.ckpt"):
            if p.exists():
                p.unlink()
        shutil.rmtree(out / "best.run", ignore_errors=True)
    write_text_atomic(manifest, json.dumps({"format": SWEEP_FORMAT, "context_hash": ctx_hash, "context": ctx,
                                        "grid": grid.describe(), "split": folds.describe(),
                                        "ccdgen": __version__}, indent=1, sort_keys=True))
    tlog = TrialLog(trials_path)
    done = {r["key"]: r for r in tlog.records if r.get("context") == ctx_hash}

    # featurizer signatures of the cluster sets (checked by the workers)
    signatures = {}
    for hp in hps:
        k = (hp.order, hp.clusters)
        if k not in signatures:
            fz = CrystalFeaturizer(problem, hp.order, clusters=list(hp.clusters))
            signatures[k] = fz.signature()
            bare = [o.name for o in fz.site_orbits if not o.clusters]
            if bare and any(h.kind == "site" and h.clusters == hp.clusters for h in hps):
                from ..errors import SpecError

                raise SpecError(f"cluster set {hp.cluster_set!r} has no cluster on the {', '.join(bare)} site(s)",
                                why="a site-based model sums cluster features over the clusters of each site "
                                    "(Eq. 15); a site orbit without any has no input",
                                fix="add a cluster that contains that site to the set, or drop 'site' from "
                                    "[grid] kind for it")
    res = tuple(sorted({"num_cpus": float(cpus_per_trial), "num_gpus": float(gpus_per_trial)}.items()))
    tasks = []
    for hp in hps:
        for i in range(folds.k):
            key = trial_key(hp, i)
            if key not in done:
                tasks.append(TrialTask(key, hp, i, folds.inner[i], spec_dict, signatures[(hp.order, hp.clusters)],
                                       grid.options, ctx_hash, res))
    total = len(hps) * folds.k
    n_skip = total - len(tasks)
    log(f"{len(hps)} hyperparameter sets × {folds.k} folds = {total} trials"
        + (f"; {n_skip} finished earlier, {len(tasks)} to run" if n_skip else ""))
    records = [done[trial_key(hp, i)] for hp in hps for i in range(folds.k) if trial_key(hp, i) in done]
    show = grid.varying()
    prog = Progress(total, records, hps, show=progress, log=log)
    n_run = 0
    try:
        if tasks:
            be = make_backend(backend, workers=workers, address=address, cpus_per_trial=cpus_per_trial,
                              gpus_per_trial=gpus_per_trial)
            log(f"back end: {be.describe()}")

            def on_result(task, record):
                nonlocal n_run
                tlog.append(record)
                records.append(record)
                n_run += 1
                prog.finished(record)
                if on_record is not None:
                    on_record(record)

            be.run(tasks, {o: features[o] for o in orders}, on_result, prog.started)
    finally:
        prog.close()
        rows, files = write_results(out, hps, records, folds.k, show)
    best = next((r for r in rows if r["folds_done"] == folds.k), None)
    final_info = None
    if final and best is not None:
        hp = next(h for h in hps if h.key() == best["key"])
        final_info = retrain_best(problem, features[hp.order], hp, grid.options, folds, out, best,
                                  ctx_hash, epochs=final_epochs, progress=progress, log=log)
        files["model"] = Path(final_info["model"])
        files["best"] = out / "best.json"
    return SweepResult(out, rows, best, final_info, files, n_run, n_skip, time.perf_counter() - t0, folds, records)


def retrain_best(problem, features, hp: HyperParams, options: SweepOptions, folds: Folds, out: Path, row: dict,
                 context: str, epochs: int | None = None, progress=None, log=print) -> dict:
    """Train ``hp`` on the whole training part (early stopping on its inner validation split,
    exactly as inside each fold; ``epochs`` overrides the maximum number of epochs) and
    evaluate it on the test part; writes ``best.ckpt`` and ``best.json``.  Skipped when
    ``best.json`` already holds this set, context and epochs."""
    import warnings

    from ..crystal.featurizer import CrystalFeaturizer
    from ..models.train import train_model

    info_path = out / "best.json"
    model_path = out / "best.ckpt"
    if info_path.exists() and model_path.exists():
        old = json.loads(info_path.read_text())
        if old.get("hp_key") == hp.key() and old.get("context") == context and old.get("max_epochs") == epochs:
            log(f"best set {hp.label()} was retrained earlier: {model_path}")
            return old
    log(f"retraining the best set {hp.label()} on the whole training part ({len(folds.train)} frames)")
    fz = CrystalFeaturizer(problem, hp.order, clusters=list(hp.clusters))
    fs = select_orbits(features, fz, keep_forces=True)
    cfg = hp.train_config(options)
    if epochs is not None:
        from dataclasses import replace

        cfg = replace(cfg, epochs=int(epochs))
    run_dir = out / "best.run" / (hp.key() + (f"-e{epochs}" if epochs else ""))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = train_model(None, None, cfg, model_path, run_dir=run_dir, resume=True, progress=progress,
                          featurizer=fz, features=fs, split=folds.final, log=log)
    info = {"hp_key": hp.key(), "context": context, "label": hp.label(), "hp": hp.record(),
            "cluster_set": hp.cluster_set, "cv": {k: row[k] for k in row if k.startswith(("cv_", "train_"))},
            "metrics": res.metrics, "split": res.split, "model": str(model_path), "seconds": round(res.seconds, 2),
            "epochs": res.extra.get("epochs"), "max_epochs": epochs}
    write_text_atomic(info_path, json.dumps(info, indent=1, default=_json_default))
    return info
