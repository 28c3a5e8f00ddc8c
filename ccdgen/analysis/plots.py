"""Plots of results people look at (matplotlib, PNG): parity, error by energy bin (paper
Fig. 8), learning curves."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg back end (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path) -> Path:
    """Write ``fig`` to ``path`` (folder created) and close it; returns ``Path(path)``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def _save(plt, fig, folder, name: str) -> Path:
    """Lay out ``fig`` and write it as ``folder/name.png``."""
    fig.tight_layout()
    return save_figure(plt, fig, Path(folder) / f"{name}.png")


def parity_plot(pred, ref, folder, name: str = "parity", title: str = "", parts: dict | None = None) -> Path:
    """Predicted vs reference energy per atom (meV/atom relative to the lowest reference).

    ``parts`` = {label: (pred, ref)} overlays several sets (train, test); else ``pred``, ``ref``.
    """
    plt = pyplot()
    parts = parts or {"": (pred, ref)}
    lo = min(np.nanmin(r) for _, r in parts.values())
    fig, ax = plt.subplots(figsize=(4.6, 4.4), dpi=130)
    allv = []
    for label, (p, r) in parts.items():
        p, r = (np.asarray(p) - lo) * 1e3, (np.asarray(r) - lo) * 1e3
        rmse = float(np.sqrt(np.nanmean((p - r) ** 2)))
        ax.scatter(r, p, s=5, alpha=0.5, label=f"{label} (RMSE {rmse:.2f} meV/atom)".strip())
        allv += [r, p]
    v = np.concatenate(allv)
    ax.plot([np.nanmin(v), np.nanmax(v)], [np.nanmin(v), np.nanmax(v)], "k-", lw=0.8)
    ax.set_xlabel("reference energy (meV/atom)")
    ax.set_ylabel("model energy (meV/atom)")
    ax.set_title(title or "parity", fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    return _save(plt, fig, folder, name)


def error_by_energy(pred, ref, folder, name: str = "error_by_energy", bins: int = 8) -> Path:
    """RMSE in bins of reference energy above the lowest (paper Fig. 8b)."""
    plt = pyplot()
    p, r = np.asarray(pred) * 1e3, np.asarray(ref) * 1e3
    r0 = np.nanmin(r)
    x = r - r0
    edges = np.quantile(x, np.linspace(0, 1, bins + 1))
    edges[-1] += 1e-9
    which = np.clip(np.searchsorted(edges, x, side="right") - 1, 0, bins - 1)
    rmse = [float(np.sqrt(np.mean((p[which == k] - r[which == k]) ** 2))) if np.any(which == k) else np.nan
            for k in range(bins)]
    centers = 0.5 * (edges[:-1] + edges[1:])
    fig, ax = plt.subplots(figsize=(4.6, 3.4), dpi=130)
    ax.bar(centers, rmse, width=np.diff(edges) * 0.9, color="tab:blue", alpha=0.8)
    ax.set_xlabel("reference energy above the lowest (meV/atom)")
    ax.set_ylabel("test RMSE (meV/atom)")
    ax.set_title("error by energy (equal-count bins)", fontsize=9)
    return _save(plt, fig, folder, name)


def learning_curves(logs, folder, name: str = "learning_curves") -> Path | None:
    """Training and validation RMSE per epoch from Lightning CSV logs: ``logs`` is one
    ``metrics.csv`` or a folder of ``version_N/metrics.csv`` (one per resumed segment of a run;
    read in order, a later segment's value for an epoch wins)."""
    import csv

    logs = Path(logs)
    if logs.is_dir():
        files = sorted((p for p in logs.glob("version_*/metrics.csv") if p.parent.name[8:].isdigit()),
                       key=lambda p: int(p.parent.name[8:]))
    else:
        files = [logs] if logs.exists() else []
    series = {}
    for f in files:
        with f.open() as fh:
            for row in csv.DictReader(fh):
                if not row.get("epoch"):
                    continue
                ep = int(row["epoch"])
                for key in ("train_energy_rmse_meV_atom", "val_energy_rmse_meV_atom"):
                    if row.get(key):
                        series.setdefault(key, {})[ep] = float(row[key])
    if not series:
        return None
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.8, 3.4), dpi=130)
    for key, label in (("train_energy_rmse_meV_atom", "train"), ("val_energy_rmse_meV_atom", "validation")):
        if key in series:
            ep = sorted(series[key])
            ax.plot(ep, [series[key][e] for e in ep], label=label)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("energy RMSE (meV/atom)")
    ax.legend(fontsize=8)
    return _save(plt, fig, folder, name)


def training_plots(result, folder, dataset=None, prefix: str = "") -> list:
    """Parity (train + test), error by energy bin (test) and learning curves of a TrainResult."""
    pf = result.extra.get("predictions", {})
    out = []
    parts = {k: (v["energy"], v["reference"]) for k, v in pf.items() if k in ("train", "test") and len(v["energy"])}
    if parts:
        out.append(parity_plot(None, None, folder, f"{prefix}parity", f"{result.model_path.name}", parts))
    if "test" in pf and len(pf["test"]["energy"]) > 8:
        out.append(error_by_energy(pf["test"]["energy"], pf["test"]["reference"], folder, f"{prefix}error_by_energy"))
    if result.history is not None:
        p = learning_curves(result.history, folder, f"{prefix}learning_curves")
        if p is not None:
            out.append(p)
    return out
