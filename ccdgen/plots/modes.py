"""Pictures of CCD displacement modes (paper Figs. 3-4): 3-D arrows on the cluster."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..ccd.evaluate import modes
from ..ccd.names import block_tag
from ..ccd.transform import CCDTransform


def plot_modes(t: CCDTransform, path, truncated: bool = False, arrow_scale: float = 0.35):
    """Write one PNG with one 3-D panel per CCD, titled with its irrep and eigenvalue.

    Parameters
    ----------
    t : CCDTransform
    path : output PNG path
    truncated : only the truncated (3N-6) set
    arrow_scale : arrow length of the largest site displacement, as a fraction of the
        cluster's largest extent
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pats = modes(t, truncated)  # (k, n_sites, 3), max site displacement 1
    x = t.cluster.positions - t.cluster.positions.mean(axis=0)
    extent = max(float(np.ptp(x, axis=0).max()), 1e-6)
    k = len(pats)
    ncol = min(k, max(3, int(np.ceil(np.sqrt(k)))))
    nrow = int(np.ceil(k / ncol))
    fig = plt.figure(figsize=(3.0 * ncol, 3.1 * nrow))
    species = list(dict.fromkeys(t.cluster.species))
    colours = {s: plt.cm.tab10(i % 10) for i, s in enumerate(species)}
    labels = t.ccd_labels
    for m in range(k):
        ax = fig.add_subplot(nrow, ncol, m + 1, projection="3d")
        for i, j in t.rep.pairs:
            ax.plot(*np.stack([x[i], x[j]]).T, color="0.8", lw=0.6)
        for s in species:
            sel = [a for a, sp in enumerate(t.cluster.species) if sp == s]
            ax.scatter(*x[sel].T, s=40, color=colours[s], depthshade=False, label=s)
        d = pats[m] * arrow_scale * extent
        ax.quiver(*x.T, *d.T, color="crimson", linewidth=1.5, arrow_length_ratio=0.25)
        irrep, copy, comp = labels[m]
        ax.set_title(f"η{m + 1}: {block_tag(irrep, copy)},{comp}   λ={t.eigenvalues[m]:.3g}", fontsize=9)
        lim = 0.6 * extent + 1e-9
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_zlim(-lim, lim)
        ax.set_box_aspect((1, 1, 1))
        ax.set_axis_off()
    fig.suptitle(f"{t.cluster.name}: {t.cluster.group.schoenflies}, {t.metric.name} metric — "
                 f"CCD modes (pseudo-inverse of dη/dx)", fontsize=11)
    if len(species) > 1:
        fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="lower right")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
