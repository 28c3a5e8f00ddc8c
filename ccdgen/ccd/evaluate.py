"""Evaluate CCDs and their Jacobian for batches of deformed clusters (NumPy reference).

The fast kernels are generated code (:mod:`ccdgen.codegen`); this module is the plain
reference they are tested against.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputArrayError
from .transform import CCDTransform


def check_coordinates(coords, n_sites: int, what: str = "coords") -> np.ndarray:
    """Validate ``(n_clusters, n_sites, 3)`` float coordinates (a single (n_sites, 3) is
    promoted).  Raises :class:`InputArrayError` on wrong shape, dtype or NaN/inf."""
    x = np.asarray(coords)
    if x.dtype.kind not in "fiu":
        raise InputArrayError(f"{what} must be real numbers, got dtype {x.dtype}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[1:] != (n_sites, 3):
        raise InputArrayError(
            f"{what} must have shape (n_clusters, {n_sites}, 3), got {np.shape(coords)}",
            fix=f"pass Cartesian positions in Å, one row of {n_sites} sites per cluster",
        )
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.all(np.isfinite(x), axis=(1, 2)))
        raise InputArrayError(f"{what}: cluster(s) {bad[:10].tolist()} contain NaN or inf")
    return x


def pair_metrics(t: CCDTransform, coords) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``eps`` (n, M), ``d eps / d r`` (n, M) in 1/Å, and unit pair vectors (n, M, 3)."""
    x = check_coordinates(coords, t.cluster.n_sites)
    i, j = t.rep.pairs[:, 0], t.rep.pairs[:, 1]
    d = x[:, j] - x[:, i]
    r = np.linalg.norm(d, axis=-1)
    if t.metric.singular_at_zero and np.any(r < 1e-8):
        n, p = np.argwhere(r < 1e-8)[0]
        raise InputArrayError(
            f"cluster {n}: sites {i[p]} and {j[p]} coincide and the {t.metric.name!r} metric "
            "diverges at r = 0", fix="separate the sites or use the 'exp' or 'linear' metric")
    s = r / t.r0
    eps = t.metric.value(s)
    deps = t.metric.derivative(s) / t.r0
    with np.errstate(invalid="ignore", divide="ignore"):
        unit = d / r[..., None]
    return eps, deps, np.nan_to_num(unit)


def ccds(t: CCDTransform, coords, truncated: bool = False) -> np.ndarray:
    """CCDs ``eta = Q eps`` (Eq. 6) → (n_clusters, n_ccd) (or the truncated set)."""
    eps, _, _ = pair_metrics(t, coords)
    q = t.Q[: t.n_truncated] if truncated else t.Q
    return eps @ q.T


def ccd_jacobian(t: CCDTransform, coords, truncated: bool = False) -> np.ndarray:
    """``d eta / d x`` → (n_clusters, n_ccd, n_sites, 3), in 1/Å."""
    eps, deps, unit = pair_metrics(t, coords)
    n, m = eps.shape
    jac_eps = np.zeros((n, m, t.cluster.n_sites, 3))
    rows = np.arange(m)
    jac_eps[:, rows, t.rep.pairs[:, 1], :] += deps[..., None] * unit
    jac_eps[:, rows, t.rep.pairs[:, 0], :] -= deps[..., None] * unit
    q = t.Q[: t.n_truncated] if truncated else t.Q
    return np.einsum("kp,npsc->nksc", q, jac_eps)


def modes(t: CCDTransform, truncated: bool = False) -> np.ndarray:
    """Displacement pattern of each CCD (Figs. 3-4) → (n_ccd, n_sites, 3).

    Column ``k`` of the Moore–Penrose pseudo-inverse of the reference Jacobian
    ``J = d eta / d x`` (n_ccd x 3N): orthogonal to rigid translations and rotations.
    Each pattern is scaled to unit maximal site displacement (dimensionless).
    """
    jac = ccd_jacobian(t, t.cluster.positions, truncated)[0]
    k = jac.shape[0]
    pinv = np.linalg.pinv(jac.reshape(k, -1), rcond=1e-10)  # (3N, k)
    out = pinv.T.reshape(k, t.cluster.n_sites, 3)
    scale = np.linalg.norm(out, axis=-1).max(axis=-1)
    return out / np.where(scale > 0, scale, 1.0)[:, None, None]
