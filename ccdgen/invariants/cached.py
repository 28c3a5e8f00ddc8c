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


#: Rough cost of a derivation per monomial (s), measured on the project's 2-core machine;
#: truncated sets also rank the orbit averages on quasi-random points.
_SECONDS_PER_MONOMIAL = {False: 2e-6, True: 1e-5}
_ANNOUNCE_ABOVE = 300_000  # monomials


def _announce(t: CCDTransform, max_degree: int, truncated: bool):
    """For large derivations: a note with the size and an estimate, and a bar over degrees."""
    import math

    from ..progress import bar, human_seconds, note

    m = t.rep.n_pairs
    n_mons = sum(math.comb(m + d - 1, d) for d in range(1, max_degree + 1))
    if n_mons < _ANNOUNCE_ABOVE:
        return None
    est = n_mons * _SECONDS_PER_MONOMIAL[truncated]
    note(f"{t.cluster.name}: deriving invariants to degree {max_degree}: {n_mons:,} monomials of {m} pair "
         f"variables ({'truncated set, ' if truncated else ''}about {human_seconds(est)}; cached afterwards)")
    b = bar(max_degree, f"{t.cluster.name} invariants", "degree")

    def progress(degree, n):
        b.update(1)
        if degree == max_degree:
            b.close()

    return progress


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
    if progress is None:
        progress = _announce(t, max_degree, truncated)
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
