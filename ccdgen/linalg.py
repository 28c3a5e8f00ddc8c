"""Small linear-algebra helpers shared by the symmetry-adapted bases (CCDs, strains, modes)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import InternalError


def canonical_span_basis(column: Callable[[int], np.ndarray], n: int, dim: int, what: str = "projector",
                         tol: float = 1e-8) -> np.ndarray:
    """Gram–Schmidt of ``column(0), column(1), …, column(n-1)`` until ``dim`` orthonormal vectors.

    With ``column(p) = P e_p`` for an orthogonal projector ``P`` of rank ``dim`` this is the
    canonical basis of its range: it depends on the subspace only, not on how it was found.
    Returns the vectors as columns, ``(len, dim)``; an ``InternalError`` if fewer come out.
    """
    vecs = []
    for p in range(n):
        v = np.array(column(p), dtype=float)
        for w in vecs:
            v -= (w @ v) * w
        norm = np.linalg.norm(v)
        if norm > tol:
            vecs.append(v / norm)
            if len(vecs) == dim:
                break
    if len(vecs) != dim:
        raise InternalError(f"{what} of rank {dim} gave {len(vecs)} vectors")
    return np.array(vecs).T
