"""The Molien series: how many independent invariants each degree has.

``M(t) = (1/|G|) Σ_g 1 / det(I - t D(g)) = Σ_d m_d t^d``.

Two independent routes, used to cross-check each other:

* :func:`molien_permutation` — exact integers for a permutation representation (the pair
  representation Γ): ``1/det(I - tΓ(g)) = Π_cycles 1/(1 - t^len)``.
* :func:`molien_matrices` — any real representation ``D(g)`` (e.g. the CCD matrices of a
  truncated set) from the eigenvalues of each ``D(g)``, in complex floating point, rounded
  to integers (with a check).
"""

from __future__ import annotations

import numpy as np

from ..errors import InternalError


def _series_inverse_one_minus(lams: np.ndarray, max_degree: int) -> np.ndarray:
    """Coefficients of Π_k 1/(1 - λ_k t) up to t^max_degree (complex)."""
    out = np.zeros(max_degree + 1, dtype=complex)
    out[0] = 1.0
    for lam in lams:
        # multiply by 1/(1 - λ t): c_d += λ c_{d-1} (running)
        for d in range(1, max_degree + 1):
            out[d] += lam * out[d - 1]
    return out


def molien_matrices(matrices, max_degree: int) -> list[int]:
    """m_0..m_max_degree of the Molien series of a real representation.

    Parameters
    ----------
    matrices : (order, n, n) float — D(g) for every group element; or a list of such
        stacks ``(order, d_b, d_b)``, the diagonal blocks of a block-diagonal D(g)
        (eigenvalues per block: much cheaper for large representations)
    """
    stacks = [np.asarray(matrices)] if not isinstance(matrices, (list, tuple)) else [np.asarray(m) for m in matrices]
    eig = np.concatenate([np.linalg.eigvals(m) for m in stacks], axis=1)  # (order, n)
    total = np.zeros(max_degree + 1, dtype=complex)
    for lam in eig:
        total += _series_inverse_one_minus(lam, max_degree)
    coeff = total / len(eig)
    rounded = np.rint(coeff.real)
    if np.max(np.abs(coeff - rounded)) > 1e-6 * max(1.0, np.max(np.abs(rounded))):
        raise InternalError(f"Molien coefficients are not integers: {coeff}")
    return [int(v) for v in rounded]


def _cycle_lengths(perm: np.ndarray) -> list[int]:
    seen = np.zeros(len(perm), dtype=bool)
    out = []
    for s in range(len(perm)):
        if seen[s]:
            continue
        n, j = 0, s
        while not seen[j]:
            seen[j] = True
            j = perm[j]
            n += 1
        out.append(n)
    return out


def molien_permutation(perms: np.ndarray, max_degree: int) -> list[int]:
    """Exact m_0..m_max_degree for a permutation representation.

    Parameters
    ----------
    perms : (order, n) int — ``perms[g, p]`` is the image of variable ``p``
    """
    total = [0] * (max_degree + 1)
    for perm in perms:
        series = [1] + [0] * max_degree
        for length in _cycle_lengths(np.asarray(perm)):
            # multiply by 1/(1 - t^length)
            for d in range(length, max_degree + 1):
                series[d] += series[d - length]
        total = [a + b for a, b in zip(total, series)]
    order = len(perms)
    if any(v % order for v in total):
        raise InternalError("Molien sum not divisible by the group order")
    return [v // order for v in total]
