"""The linear anharmonic cluster expansion (Eq. 2) by closed-form ridge regression.

``E = n_cells·e0 + Σ_orbits w_o · (Σ_{clusters} φ_c) T_o`` — linear in the orbit sums of the
invariant polynomials (``T_o`` the training-split standardization).  Fitted on energies
per atom (Eq. 18); the ridge strength is chosen by k-fold cross-validation over a
logarithmic grid on the training part only; the intercept (``e0``) is not penalized.  The
result is an :class:`~ccdgen.models.module.EnergyModel` of kind "linear" (one linear layer
per orbit), so forces, stress, checkpoints and the calculator work as for the nets.
"""

from __future__ import annotations

import numpy as np
import torch

from ..data.split import kfold

ALPHAS = tuple(10.0 ** np.arange(-12, 3.01, 0.5))


def design(features, frames, names, transforms: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-atom design matrix ``X`` (n, Σ F), targets ``y`` (n,) eV/atom and ``n_cells/N``
    for the given dataset frames."""
    rows, ys, scale, order = [], [], [], []
    want = np.zeros(features.n_frames, dtype=bool)
    want[np.asarray(frames, dtype=np.int64)] = True
    for b in features.blocks:
        r = np.flatnonzero(want[b.frames])
        if not len(r):
            continue
        x = np.concatenate([b.clusters[n][r].sum(axis=1) @ transforms[n] for n in names], axis=1)
        rows.append(x / b.n_atoms)
        ys.append(b.energy[r] / b.n_atoms)
        scale.append(np.full(len(r), b.n_cells / b.n_atoms))
        order.append(b.frames[r])
    idx = np.argsort(np.concatenate(order))
    return np.concatenate(rows)[idx], np.concatenate(ys)[idx], np.concatenate(scale)[idx]


def _ridge(x, y, s, alpha: float):
    """Ridge with an unpenalized intercept on the column ``s`` (constant n_cells/N)."""
    s0 = float(s[0])
    xm, ym = x.mean(axis=0), y.mean()
    xc, yc = x - xm, y - ym
    u, d, vt = np.linalg.svd(xc, full_matrices=False)
    w = vt.T @ ((d / (d**2 + alpha)) * (u.T @ yc))
    e0 = (ym - xm @ w) / s0
    return w, e0


def cv_alpha(x, y, s, folds: int = 5, seed: int = 0, alphas=ALPHAS) -> tuple[float, list]:
    """The ridge strength with the smallest k-fold CV RMSE, and [(alpha, rmse)]."""
    frames = np.arange(len(y))
    splits = kfold(frames, min(folds, len(y)), seed)
    table = []
    for a in alphas:
        err = []
        for tr, va in splits:
            w, e0 = _ridge(x[tr], y[tr], s[tr], a)
            err.append((x[va] @ w + e0 * s[va] - y[va]) ** 2)
        table.append((float(a), float(np.sqrt(np.concatenate(err).mean()))))
    best = min(table, key=lambda t: t[1])
    return best[0], table


def fit_linear(features, split, names, standardization: dict, folds: int = 5, seed: int = 0):
    """Fit Eq. (2) on ``split.train`` ∪ ``split.val`` (the test part is never used).

    Returns ``(weights {orbit: (F,)}, e0, alpha, cv_table)``.
    """
    frames = np.concatenate([split.train, split.val])
    transforms = {n: np.asarray(standardization[n]["transform"]) for n in names}
    x, y, s = design(features, frames, names, transforms)
    alpha, table = cv_alpha(x, y, s, folds, seed)
    w, e0 = _ridge(x, y, s, alpha)
    out, k = {}, 0
    for n in names:
        f = transforms[n].shape[1]
        out[n] = w[k:k + f]
        k += f
    return out, float(e0), alpha, table


def set_linear_weights(module, weights: dict, e0: float) -> None:
    """Write ridge weights into an EnergyModel of kind "linear"."""
    from .nets import _key

    with torch.no_grad():
        for n, w in weights.items():
            layer = module.net.nets[_key(n)][0]
            layer.weight.copy_(torch.as_tensor(w, dtype=layer.weight.dtype)[None, :])
            layer.bias.zero_()
        module.net.e0.fill_(e0)
