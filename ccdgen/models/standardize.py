"""Feature standardization learned from the training split only (no test leakage).

Per input group (a cluster orbit's φ or a site orbit's Ψ): the mean ``μ`` and a transform
``T`` so that ``z = (x − μ) T`` has unit variance.  Invariant polynomials of one cluster are
strongly correlated (ε, ε², ε³ … of a pair), so the condition number ``κ`` of the
standardized features' correlation matrix is reported; where it is poor (``κ >``
:data:`WHITEN_ABOVE`, or always with ``whiten="always"``) the features are whitened
(PCA: ``T = diag(1/σ) V Λ^-1/2``, eigenvalues floored at ``1e-12 λ_max``), which makes the
inputs uncorrelated and the optimization well conditioned without changing what the model
can represent.
"""

from __future__ import annotations

import numpy as np

#: Whiten a group when the condition number of its standardized features exceeds this.
WHITEN_ABOVE = 1e3


def fit(x: np.ndarray, whiten: str = "auto") -> dict:
    """Standardization of samples ``x`` (n_samples, F).

    Returns ``{"mean": (F,), "transform": (F, F), "std": (F,), "condition": κ before,
    "condition_after": κ after, "whitened": bool}``.
    """
    if whiten not in ("auto", "always", "never"):
        from ..errors import ModelError

        raise ModelError(f"whiten must be auto, always or never, got {whiten!r}")
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    std = x.std(axis=0)
    std = np.where(std > 1e-300, std, 1.0)
    z = (x - mean) / std
    corr = (z.T @ z) / max(len(z) - 1, 1)
    lam, vec = np.linalg.eigh(corr)
    lam_max = max(float(lam.max()), 1e-300)
    cond = float(lam_max / max(float(lam.min()), 1e-300 * lam_max))
    do = whiten == "always" or (whiten == "auto" and cond > WHITEN_ABOVE)
    if do:
        lam_f = np.maximum(lam, 1e-12 * lam_max)
        transform = (vec / np.sqrt(lam_f)[None, :]) / std[:, None]
        after = float(lam_f.max() / lam_f.min()) if np.any(lam < 1e-12 * lam_max) else 1.0
    else:
        transform = np.diag(1.0 / std)
        after = cond
    return {"mean": mean, "transform": transform, "std": std, "condition": cond, "condition_after": after,
            "whitened": bool(do)}


def summary(stats: dict) -> list[dict]:
    """JSON-ready per-group report: name, features, condition numbers, whitened."""
    return [{"input": n, "n_features": int(len(s["mean"])), "condition": s["condition"],
             "condition_after": s["condition_after"], "whitened": s["whitened"]} for n, s in stats.items()]
