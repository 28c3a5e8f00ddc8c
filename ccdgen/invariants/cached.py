"""Stage 3 entry point: the invariant basis of a cluster, from the disk cache if present.

Cache key (``generated/invariants/<key>/``) — exactly what the basis depends on:

* the permutation group that Γ generates on the pair variables (its sorted rows: the
  same group gives the same key whatever the cluster's geometry, size or site labels, so
  the seven pair orbits of CsPbBr3 share one entry);
* the degree;
* for a truncated CCD set, the projector ``V_T V_Tᵀ`` onto the kept CCDs (rounded to 12
  digits), which carries the metric, sigma and truncation dependence; a full-set basis does
  not depend on those and is shared between them;
* the derivation algorithm's version.

Not in the key: cluster names, the cache location, Numba or NumPy versions (the basis is
integer data plus the projector), sigma or the metric for full sets.
"""

from __future__ import annotations

import hashlib

import numpy as np

from ..cache import get_or_build
from ..ccd.transform import CCDTransform
from .basis import InvariantBasis, check_degree, derive_basis, truncation_projection

CACHE_KIND = "invariants"
#: Bump when the derivation changes its output for the same inputs.
ALGORITHM = "invariant-basis/3"


def group_key(pair_perm: np.ndarray) -> str:
    """SHA-256 of the permutation group on the pair variables (order-independent)."""
    rows = np.unique(np.asarray(pair_perm, dtype=np.int64), axis=0)
    h = hashlib.sha256(f"{rows.shape}".encode())
    h.update(np.ascontiguousarray(rows).tobytes())
    return h.hexdigest()


def basis_key_parts(t: CCDTransform, max_degree: int, truncated: bool) -> dict:
    """The cache key's parts for the basis of ``t`` (see the module docstring)."""
    proj = truncation_projection(t) if truncated else None
    return {
        "stage": ALGORITHM,
        "group": group_key(t.rep.pair_perm),
        "max_degree": int(max_degree),
        "truncated": int(t.n_truncated) if proj is not None else None,
        "projection": hashlib.sha256(np.round(proj, 12).tobytes()).hexdigest() if proj is not None else None,
    }


def invariant_basis(t: CCDTransform, max_degree: int, truncated: bool | None = None,
                    use_cache: bool = True, progress=None) -> InvariantBasis:
    """Complete invariant basis of the CCDs of ``t`` up to ``max_degree``.

    ``truncated=None`` uses the truncated set when ``t`` truncates (``n_truncated < n_ccd``).
    ``progress(degree, n_monomials)`` is called before each degree is derived.
    """
    check_degree(max_degree, t.rep.pair_perm, t.cluster.name)
    if truncated is None:
        truncated = t.n_truncated < t.n_ccd
    truncated = bool(truncated) and t.n_truncated < t.n_ccd
    if not use_cache:
        return derive_basis(t.rep.pair_perm, max_degree, t, truncated, progress=progress)
    result = {}

    def build(tmp):
        b = derive_basis(t.rep.pair_perm, max_degree, t, truncated, progress=progress)
        result["basis"] = b
        (tmp / "basis.npz").write_bytes(b.to_bytes())
        return {"n_vars": b.n_vars, "max_degree": b.max_degree, "per_degree": b.per_degree,
                "molien": b.molien, "truncated": b.truncated}

    entry = get_or_build(CACHE_KIND, basis_key_parts(t, max_degree, truncated), build,
                         describe=f"{t.n_ccd} pair variables, |G| = {t.cluster.group.order}, degree ≤ {max_degree}"
                         f"{' truncated' if truncated else ''} (first built for {t.cluster.name})")
    if "basis" in result:
        return result["basis"]
    return InvariantBasis.from_bytes(entry.file("basis.npz").read_bytes(), entry.meta)
