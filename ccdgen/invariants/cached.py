"""Stage 3 entry point: the invariant basis of a cluster, from the disk cache if present.

Cache key (``generated/invariants/<key>/``): the pair permutation representation and
cluster signature (geometry + group), the degree, whether the truncated set is used and
— only then — the CCD transform's signature (metric, sigma, Q, truncation), plus the
ccdgen/numpy/numba versions.  The full-set basis does not depend on the metric or sigma,
so it is shared between them.
"""

from __future__ import annotations

import hashlib

from ..cache import environment_fingerprint, get_or_build
from ..ccd.transform import CCDTransform
from .basis import InvariantBasis, check_degree, derive_basis

CACHE_KIND = "invariants"


def invariant_basis(t: CCDTransform, max_degree: int, truncated: bool | None = None,
                    use_cache: bool = True) -> InvariantBasis:
    """Complete invariant basis of the CCDs of ``t`` up to ``max_degree``.

    ``truncated=None`` uses the truncated set when ``t`` truncates (``n_truncated < n_ccd``).
    """
    check_degree(max_degree, t.rep.pair_perm, t.cluster.name)
    if truncated is None:
        truncated = t.n_truncated < t.n_ccd
    truncated = bool(truncated) and t.n_truncated < t.n_ccd
    if not use_cache:
        return derive_basis(t.rep.pair_perm, max_degree, t, truncated)
    parts = {
        "stage": "invariant-basis/2",
        "cluster": t.cluster.signature(),
        "pair_perm": hashlib.sha256(t.rep.pair_perm.tobytes()).hexdigest(),
        "max_degree": int(max_degree),
        "truncated": truncated,
        "transform": t.signature() if truncated else None,
        "env": environment_fingerprint(),
    }
    result = {}

    def build(tmp):
        b = derive_basis(t.rep.pair_perm, max_degree, t, truncated)
        result["basis"] = b
        (tmp / "basis.npz").write_bytes(b.to_bytes())
        return {"n_vars": b.n_vars, "max_degree": b.max_degree, "per_degree": b.per_degree,
                "molien": b.molien, "truncated": b.truncated}

    entry = get_or_build(CACHE_KIND, parts, build, describe=f"{t.cluster.name} degree ≤ {max_degree}"
                         f"{' truncated' if truncated else ''}")
    if "basis" in result:
        return result["basis"]
    return InvariantBasis.from_bytes(entry.file("basis.npz").read_bytes(), entry.meta)
