"""Sweep results: the per-set table (CSV + JSON) and the progress display.

One row per hyperparameter set, from its fold records: training and cross-validation
energy RMSE (meV/atom) as mean, sample standard deviation (ddof = 1), minimum and maximum
over the folds, the CV MAE, the generalization gap (CV − training), mean epochs and the
summed trial time.  Rows are sorted by mean CV RMSE, complete sets (every fold done) first;
``rank`` counts complete sets only.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np

#: Table columns, in CSV order.
COLUMNS = ("rank", "key", "label", "cluster_set", "clusters", "n_orbits", "order", "kind", "depth", "width", "hidden",
           "training", "folds_done", "folds", "train_rmse_mean", "train_rmse_std", "cv_rmse_mean", "cv_rmse_std",
           "cv_rmse_min", "cv_rmse_max", "cv_mae_mean", "gap_mean", "epochs_mean", "seconds")


def _stats(vals) -> tuple:
    v = np.asarray([x for x in vals if x is not None and np.isfinite(x)], dtype=float)
    if not len(v):
        return (None,) * 4
    std = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
    return float(np.mean(v)), std, float(np.min(v)), float(np.max(v))


def aggregate(hps, records, k: int, show=()) -> list:
    """Table rows (dicts with :data:`COLUMNS` and ``cv_by_fold``, ``train_by_fold``) for the
    hyperparameter sets ``hps`` from trial ``records`` of a ``k``-fold sweep."""
    by_hp = {}
    for r in records:
        by_hp.setdefault(r["hp_key"], {})[int(r["fold"])] = r
    rows = []
    for hp in hps:
        recs = by_hp.get(hp.key(), {})
        folds = sorted(recs)
        tr = [recs[i]["train"].get("energy_rmse_meV_atom") for i in folds]
        cv = [recs[i]["cv"].get("energy_rmse_meV_atom") for i in folds]
        mae = [recs[i]["cv"].get("energy_mae_meV_atom") for i in folds]
        ep = [recs[i].get("epochs") for i in folds if recs[i].get("epochs") is not None]
        t_m, t_s, _, _ = _stats(tr)
        c_m, c_s, c_lo, c_hi = _stats(cv)
        rows.append({
            "rank": None, "key": hp.key(), "label": hp.label(show), "cluster_set": hp.cluster_set,
            "clusters": "+".join(hp.clusters), "n_orbits": len(hp.clusters), "order": hp.order, "kind": hp.kind,
            "depth": hp.depth, "width": hp.width, "hidden": "-".join(map(str, hp.hidden)),
            "training": json.dumps(hp.options(), sort_keys=True, default=list), "folds_done": len(folds), "folds": k,
            "train_rmse_mean": t_m, "train_rmse_std": t_s, "cv_rmse_mean": c_m, "cv_rmse_std": c_s,
            "cv_rmse_min": c_lo, "cv_rmse_max": c_hi, "cv_mae_mean": _stats(mae)[0],
            "gap_mean": (c_m - t_m) if c_m is not None and t_m is not None else None,
            "epochs_mean": float(np.mean(ep)) if ep else None,
            "seconds": round(float(sum(recs[i].get("seconds", 0.0) for i in folds)), 2),
            "train_by_fold": {int(i): v for i, v in zip(folds, tr)},
            "cv_by_fold": {int(i): v for i, v in zip(folds, cv)},
        })

    def order(r):
        complete = r["folds_done"] == r["folds"]
        return (not complete, r["cv_rmse_mean"] if r["cv_rmse_mean"] is not None else np.inf, r["key"])

    rows.sort(key=order)
    rank = 0
    for r in rows:
        if r["folds_done"] == r["folds"] and r["cv_rmse_mean"] is not None:
            rank += 1
            r["rank"] = rank
    return rows


def table_csv(rows) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else (f"{r[k]:.6g}" if isinstance(r[k], float) else r[k]))
                    for k in COLUMNS})
    return buf.getvalue()


def write_results(out, hps, records, k: int, show=()) -> tuple[list, dict]:
    """Write ``results.csv``, ``results.json`` and the plots into ``out``; returns (rows, files)."""
    from ..fileio import write_text_atomic
    from .cv import _json_default
    from .figures import cv_figure, sets_figure

    out = Path(out)
    rows = aggregate(hps, records, k, show)
    files = {"csv": write_text_atomic(out / "results.csv", table_csv(rows)),
             "json": write_text_atomic(out / "results.json", json.dumps(
                 {"format": "ccdgen-cv-results/1", "folds": k, "n_sets": len(hps),
                  "n_trials_done": len(records), "rows": rows}, indent=1, default=_json_default))}
    if any(r["cv_rmse_mean"] is not None for r in rows):
        best = next((r for r in rows if r["rank"] == 1), None)
        focus = best["cluster_set"] if best else rows[0]["cluster_set"]
        files["plot"] = cv_figure(rows, out / "cv.png", cluster_set=focus, best_key=best["key"] if best else None)
        if len({r["cluster_set"] for r in rows}) > 1:
            files["plot_sets"] = sets_figure(rows, out / "cv_sets.png")
    return rows, files


def format_table(rows, top: int = 10) -> str:
    """The best ``top`` rows as aligned text (meV/atom)."""
    lines = [f"  {'#':>3} {'hyperparameter set':<38} {'train':>14} {'CV':>15} {'folds':>6}"]
    for r in rows[:top]:
        def pm(m, s):
            return f"{m:7.3f} ± {s:5.3f}" if m is not None else f"{'-':>15}"

        lines.append(f"  {r['rank'] or '':>3} {r['label']:<38.38} {pm(r['train_rmse_mean'], r['train_rmse_std']):>14} "
                     f"{pm(r['cv_rmse_mean'], r['cv_rmse_std']):>15} {r['folds_done']:>3}/{r['folds']}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- progress
class Progress:
    """Trials done and running, and the best set so far: a tqdm bar on a terminal, else
    one line per finished trial (what a log of ``nohup ccdgen cv ...`` shows)."""

    def __init__(self, total: int, records, hps, show=None, log=print):
        from tqdm.auto import tqdm

        self.total, self.log = total, log
        self.k = max(1, total // max(1, len(hps)))
        self.labels = {hp.key(): hp.label() for hp in hps}
        self.cv = {}
        for r in records:
            self._add(r)
        self.running = 0
        tty = sys.stderr.isatty() if show is None else bool(show)
        self.bar = tqdm(total=total, initial=len(records), desc="cv", unit="trial", disable=not tty, leave=True,
                        dynamic_ncols=True) if tty else None
        self.done = len(records)
        self._update()

    def _add(self, r) -> None:
        v = r["cv"].get("energy_rmse_meV_atom")
        if v is not None:
            self.cv.setdefault(r["hp_key"], {})[int(r["fold"])] = v

    def best(self):
        """(label, mean CV RMSE, complete?) of the best set so far (complete sets first)."""
        cands = [(len(f) < self.k, float(np.mean(list(f.values()))), key) for key, f in self.cv.items() if f]
        if not cands:
            return None
        partial, m, key = min(cands)
        return self.labels.get(key, key), m, not partial

    def _best_text(self) -> str:
        b = self.best()
        if b is None:
            return "best: -"
        return f"best {b[1]:.3f} meV/atom {b[0]}" + ("" if b[2] else " (partial)")

    def _update(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f"running {self.running}, {self._best_text()}", refresh=True)

    def started(self, task) -> None:
        self.running += 1
        self._update()

    def finished(self, record) -> None:
        self.running = max(0, self.running - 1)
        self.done += 1
        self._add(record)
        if self.bar is not None:
            self.bar.update(1)
            self._update()
        else:
            cv = record["cv"].get("energy_rmse_meV_atom")
            tr = record["train"].get("energy_rmse_meV_atom")
            self.log(f"[{self.done:>{len(str(self.total))}}/{self.total}] {record['label']} fold {record['fold']}: "
                     f"train {tr:.3f}, CV {cv:.3f} meV/atom, {record['seconds']:.0f} s; {self.running} running; "
                     f"{self._best_text()}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
