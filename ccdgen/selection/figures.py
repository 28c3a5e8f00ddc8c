"""Figures of a sweep (matplotlib Agg, PNG).

* :func:`cv_figure` — the paper's Fig. 7(b, c) for one cluster set: rows = invariant order,
  columns = number of hidden layers, x = nodes per layer; per model kind the mean CV error
  (solid, error bars ±1 sample s.d. over the folds) and the mean training error (dashed);
  linear models as dotted horizontal lines; the selected set circled in black.
* :func:`sets_figure` — the best CV error of every cluster set per (kind, order).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..analysis.plots import pyplot, save_figure

COLORS = {"cluster": "tab:blue", "site": "tab:orange", "linear": "tab:gray"}


def _complete(rows):
    return [r for r in rows if r["cv_rmse_mean"] is not None]


def cv_figure(rows, path, cluster_set: str, best_key: str | None = None) -> Path:
    """Fig. 7-style panels for ``cluster_set`` (rows: order; columns: depth).  Returns ``path``."""
    plt = pyplot()
    rs = [r for r in _complete(rows) if r["cluster_set"] == cluster_set]
    orders = sorted({r["order"] for r in rs})
    depths = sorted({r["depth"] for r in rs if r["kind"] != "linear"}) or [0]
    fig, axes = plt.subplots(len(orders), len(depths), figsize=(3.3 * len(depths) + 0.6, 2.7 * len(orders) + 0.7),
                             dpi=130, squeeze=False, sharey=True)
    for i, order in enumerate(orders):
        for j, depth in enumerate(depths):
            ax = axes[i][j]
            for kind in ("cluster", "site"):
                sel = sorted((r for r in rs if r["order"] == order and r["depth"] == depth and r["kind"] == kind
                              and r["hidden"] == "-".join([str(r["width"])] * depth)), key=lambda r: r["width"])
                if not sel:
                    continue
                x = np.array([r["width"] for r in sel], dtype=float)
                ax.errorbar(x, [r["cv_rmse_mean"] for r in sel], yerr=[r["cv_rmse_std"] or 0 for r in sel],
                            color=COLORS[kind], marker="o", ms=4, lw=1.4, capsize=2, label=f"{kind} CV")
                ax.plot(x, [r["train_rmse_mean"] for r in sel], color=COLORS[kind], marker="s", ms=3, lw=1.0,
                        ls="--", label=f"{kind} train")
                for r in sel:
                    if r["key"] == best_key:
                        ax.plot([r["width"]], [r["cv_rmse_mean"]], "o", mfc="none", mec="k", ms=11, mew=1.6,
                                label="selected")
            for r in rs:
                if r["kind"] == "linear" and r["order"] == order:
                    ax.axhline(r["cv_rmse_mean"], color=COLORS["linear"], ls=":", lw=1.2, label="linear CV")
                    if r["key"] == best_key:
                        ax.text(0.02, 0.95, "selected: linear", transform=ax.transAxes, fontsize=7, va="top")
            if depth:
                ax.set_xscale("log", base=2)
            ax.set_title(f"order {order}, {depth} hidden layer{'s' if depth != 1 else ''}", fontsize=9)
            if i == len(orders) - 1:
                ax.set_xlabel("nodes per hidden layer")
            if j == 0:
                ax.set_ylabel("energy RMSE (meV/atom)")
            ax.grid(alpha=0.3)
    handles = {}
    for ax in axes.ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(lab, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="upper center", ncol=min(5, len(handles)), fontsize=7,
                   bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.suptitle(f"cluster set {cluster_set}: training (dashed) vs cross-validation (solid, ±1 s.d. over folds)",
                 fontsize=9, y=0.955 if handles else 0.99)
    fig.tight_layout(rect=(0, 0, 1, 0.93 if handles else 0.97))
    return save_figure(plt, fig, path)


def sets_figure(rows, path) -> Path:
    """Best mean CV RMSE (over architectures) per cluster set and (kind, order), ±1 s.d."""
    plt = pyplot()
    rs = _complete(rows)
    sets = list(dict.fromkeys(r["cluster_set"] for r in sorted(rs, key=lambda r: (r["n_orbits"], r["cluster_set"]))))
    kinds = ["cluster", "site", "linear"]
    groups = sorted({(r["kind"], r["order"]) for r in rs}, key=lambda g: (kinds.index(g[0]), g[1]))
    width = 0.8 / max(1, len(groups))
    fig, ax = plt.subplots(figsize=(1.2 * len(sets) + 3.6, 3.4), dpi=130)
    for gi, (kind, order) in enumerate(groups):
        xs, ys, es = [], [], []
        for si, s in enumerate(sets):
            cand = [r for r in rs if r["cluster_set"] == s and r["kind"] == kind and r["order"] == order]
            if cand:
                b = min(cand, key=lambda r: r["cv_rmse_mean"])
                xs.append(si + (gi - (len(groups) - 1) / 2) * width)
                ys.append(b["cv_rmse_mean"])
                es.append(b["cv_rmse_std"] or 0)
        alpha = 1.0 if order == min(o for _, o in groups) else 0.55
        ax.bar(xs, ys, width * 0.95, yerr=es, capsize=2, color=COLORS[kind], alpha=alpha,
               label=f"{kind}, order {order}")
    ax.set_xticks(range(len(sets)))
    ax.set_xticklabels(sets, fontsize=8)
    ax.set_ylabel("best CV energy RMSE (meV/atom)")
    ax.set_title("best architecture per cluster set", fontsize=9)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return save_figure(plt, fig, path)
