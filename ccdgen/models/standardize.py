"""Feature standardization learned from the training split only (no test leakage).

Per input group (a cluster orbit's φ or a site orbit's Ψ): the mean ``μ`` and a transform
``T`` so that ``z = (x − μ) T`` has unit variance.  Invariant polynomials of one cluster are
strongly correlated (ε, ε², ε³ … of a pair), so the condition number ``κ`` of the
standardized features' correlation matrix is reported; where it is poor (``κ >``
:data:`WHITEN_ABOVE`, or always with ``whiten="always"``) the features are whitened
(PCA: ``T = diag(1/σ) V Λ^-1/2``, eigenvalues floored at ``1e-12 λ_max``), which makes the
inputs uncorrelated and the optimization well conditioned without changing what the model
can represent.  Directions with an eigenvalue below :data:`DROP_BELOW` of the largest are
exact linear dependences (site-centric sums of different prototypes share pair lengths, e.g.
the Pb–Br bonds of a Pb site enter its pair and its triplet sums): whitening would blow their
rounding noise up by 1e8, so they are dropped — the transform maps ``F`` features to
``K ≤ F`` inputs.
"""

from __future__ import annotations

import numpy as np

#: Whiten a group when the condition number of its standardized features exceeds this.
WHITEN_ABOVE = 1e3
#: When whitening, drop directions whose correlation eigenvalue is below this fraction of the
#: largest (exact dependences, carrying only rounding noise).
DROP_BELOW = 1e-10


def fit(x: np.ndarray, whiten: str = "auto") -> dict:
    """Standardization of samples ``x`` (n_samples, F).

    Returns ``{"mean": (F,), "transform": (F, K), "std": (F,), "condition": κ before,
    "condition_after": κ after, "whitened": bool, "dropped": F − K}``.
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
        keep = lam > DROP_BELOW * lam_max
        transform = (vec[:, keep] / np.sqrt(lam[keep])[None, :]) / std[:, None]
        after = 1.0
    else:
        keep = np.ones(len(lam), dtype=bool)
        transform = np.diag(1.0 / std)
        after = cond
    return {"mean": mean, "transform": transform, "std": std, "condition": cond, "condition_after": after,
            "whitened": bool(do), "dropped": int((~keep).sum())}


def summary(stats: dict) -> list[dict]:
    """JSON-ready per-group report: name, features, condition numbers, whitened."""
    return [{"input": n, "n_features": int(len(s["mean"])), "n_inputs": int(s["transform"].shape[1]),
             "condition": s["condition"], "condition_after": s["condition_after"], "whitened": s["whitened"],
             "dropped": s.get("dropped", 0)} for n, s in stats.items()]
