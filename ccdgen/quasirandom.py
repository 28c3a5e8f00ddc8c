"""Fixed generic points for numerical rank tests and eigen-separation: no RNG anywhere.

Derived results (bases, transforms, character tables) must be identical on every machine,
so where an algorithm needs "generic" points or coefficients it takes them from a
deterministic low-discrepancy sequence instead of a random stream.
"""

from __future__ import annotations

import numpy as np


def quasi_random_normal(n: int, dim: int) -> np.ndarray:
    """(n, dim) fixed points that look like standard normal samples, identical on every
    machine: the R_d low-discrepancy sequence (Roberts 2018), ``u_kj = frac(1/2 + k α_j)``
    with ``α_j = φ_d^-(j+1)``, ``φ_d`` the positive root of ``x^(d+1) = x + 1``, mapped through
    the normal quantile function.  Used wherever generic points are needed (no RNG)."""
    from scipy.special import ndtri

    phi = 2.0
    for _ in range(200):  # fixed point of x = (1 + x)^(1/(d+1)), converges monotonically
        phi = (1.0 + phi) ** (1.0 / (dim + 1))
    alpha = phi ** -(np.arange(dim) + 1.0)
    k = np.arange(1, n + 1, dtype=float)[:, None]
    u = np.mod(0.5 + k * alpha[None, :], 1.0)
    return ndtri(np.clip(u, 1e-12, 1 - 1e-12))
