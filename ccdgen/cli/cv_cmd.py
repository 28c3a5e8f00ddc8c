"""``ccdgen cv SPEC DATA... --grid GRID.(toml|yaml) [--folds 10] [--backend local|ray] [-o DIR]``.

k-fold cross-validated model selection (the paper's Sec. III.3-4): the test split is held
out first and never used in selection; features are computed once per order; every
(hyperparameter set, fold) trial runs on local processes or on Ray; the best set is
retrained on the whole training part and evaluated on the test split.  Running the same
command again skips the finished trials.  Writes into DIR: ``results.csv``/``results.json``
(one row per set), ``cv.png`` (Fig. 7-style), ``cv_sets.png``, ``trials.jsonl``,
``sweep.json``, ``best.ckpt`` and ``best.json``.
"""

from __future__ import annotations

import argparse
import json

from .common import number, positive_int


def _folds(text):
    v = positive_int(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f"cross-validation needs at least 2 folds, got {v}")
    return v


def _cpus(text):
    v = number("CPUs per trial", minimum=0)(text)
    if v == 0:
        raise argparse.ArgumentTypeError("CPUs per trial must be > 0, got 0")
    return v


def add_arguments(p) -> None:
    p.add_argument("spec", help="spec file (.toml/.yaml); the grid's cluster sets are subsets of its orbits")
    p.add_argument("data", nargs="+", help="labelled configurations (extxyz or anything ASE reads)")
    p.add_argument("--grid", required=True, help="grid file (.toml/.yaml), e.g. examples/cspbbr3/grid.toml")
    p.add_argument("--folds", type=_folds, default=None, help="k of the k-fold CV (default: the grid's, else 10)")
    p.add_argument("--backend", choices=("local", "ray", "inline"), default="local",
                   help="local processes (default), Ray (pip install ccdgen[ray]), or inline (this process)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="local: processes (default: CPUs // --cpus-per-trial); ray: CPUs of a local Ray instance")
    p.add_argument("--address", default=None, help="Ray cluster address (e.g. auto or ray://host:10001); "
                   "default: start a local Ray instance")
    p.add_argument("--cpus-per-trial", type=_cpus, default=1.0, help="CPUs each trial declares (default 1)")
    p.add_argument("--gpus-per-trial", type=number("GPUs per trial", minimum=0), default=0.0,
                   help="GPUs each trial declares to Ray (default 0; training itself runs on the CPU)")
    p.add_argument("--index", default=":", help="frames to read from each file (ASE slice)")
    p.add_argument("-o", "--output", default="runs/cv", help="output folder (default: %(default)s)")
    p.add_argument("--no-final", action="store_true", help="do not retrain the best set on the whole training part")
    p.add_argument("--final-epochs", type=positive_int, default=None,
                   help="maximum epochs of that retraining (default: the set's own, as in the trials)")
    p.add_argument("--fresh", action="store_true", help="forget the finished trials in the output folder")
    p.add_argument("--top", type=positive_int, default=10, help="rows of the table to print (default 10)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress display")


def _sigterm_as_interrupt():
    """SIGTERM (``kill PID``) stops a sweep like Ctrl-C: workers stopped, results table
    written, finished trials kept (a background job started by a non-interactive shell
    ignores SIGINT, so ``kill`` is how it is stopped)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


def run(args) -> int:
    import signal
    import sys

    from ..data.io import read_dataset
    from ..selection.cv import run_sweep
    from ..selection.grid import load_grid
    from ..selection.results import format_table

    grid = load_grid(args.grid).with_folds(args.folds)
    forces = any(v > 0 for v in grid.axes.get("force_weight", ()))
    stress = any(v > 0 for v in grid.axes.get("stress_weight", ()))
    need = ("energy",) + (("forces",) if forces else ()) + (("stress",) if stress else ())
    ds = read_dataset(args.data, index=args.index, require=need)

    def log(msg):
        print(msg, file=sys.stderr if args.json else sys.stdout, flush=True)

    previous = _sigterm_as_interrupt()
    try:
        res = run_sweep(args.spec, ds, grid, args.output, backend=args.backend, workers=args.workers,
                        address=args.address, cpus_per_trial=args.cpus_per_trial,
                        gpus_per_trial=args.gpus_per_trial, final=not args.no_final,
                        final_epochs=args.final_epochs, fresh=args.fresh, progress=False if args.quiet else None,
                        log=(lambda *a: None) if args.quiet and not args.json else log)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    if args.json:
        summary = {"output": str(res.out), "trials_run": res.n_run, "trials_skipped": res.n_skipped,
                   "seconds": round(res.seconds, 1), "best": res.best, "final": res.final,
                   "files": {k: str(v) for k, v in res.files.items()}}
        print(json.dumps(summary, indent=1, default=str))
        return 0
    print(f"cross-validation ({grid.options.folds} folds, {len(res.folds.train)} training / {len(res.folds.test)} "
          f"test frames), energy RMSE in meV/atom, mean ± s.d. over folds:")
    print(format_table(res.rows, args.top))
    if res.final is not None:
        t = res.final["metrics"].get("test", {})
        tr = res.final["metrics"].get("train", {})
        print(f"best: {res.final['label']}: retrained on the training part, train "
              f"{tr.get('energy_rmse_meV_atom', 0):.3f}, test {t.get('energy_rmse_meV_atom', 0):.3f} meV/atom "
              f"({t.get('n_frames', 0)} test frames)")
    for k, v in res.files.items():
        print(f"{k}: {v}")
    print(f"{res.n_run} trials run, {res.n_skipped} skipped (finished earlier), {res.seconds:.0f} s")
    return 0
