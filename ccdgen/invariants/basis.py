"""Invariant polynomials of the CCDs, complete per degree (Eq. 2, Reynolds operator).

The route (no SymPy in the numeric core):

* In pair-metric variables ``eps`` the point group acts by *permutation* (Eqs. 9-10), so
  the Reynolds average of a monomial is an orbit average,
  ``R[eps^a] = (1/|orbit|) Σ_{b in orbit(a)} eps^b`` — exact rational coefficients.
  Distinct orbits give linearly independent invariants and every invariant of degree
  ``d`` is a combination of them, so the orbit averages are a complete basis.  Orbits are
  found as connected components of the monomials under the group's generators.
* ``eta = Q eps`` is an invertible linear change of variables, so these are *also* a
  complete basis of the invariants of the full CCD vector under ``D(g) = Q Γ(g) Q⁻¹``:
  the same functions, written in other variables (``eps = Q⁻¹ eta``).
* Truncated CCDs (Appendix A): a polynomial in the kept CCDs ``eta_T`` is invariant under
  ``D_T`` iff it is an invariant of the full set evaluated at ``eta_rest = 0``, i.e. at the
  projected pair metrics ``eps~ = Q⁻¹ Π_T Q eps``.  ccdgen evaluates the orbit averages at
  ``eps~`` and keeps, degree by degree, a linearly independent subset of them (values on
  random points, QR preferring basis order but pivoting away from near-dependent ones,
  see :func:`_independent_after_projection`), listed in basis order; the count is
  checked against the Molien series of ``D_T``.

Normalisation and order: each basis function is a Reynolds average (coefficients
``1/|orbit|``, so ``phi(eps = 1) = 1``); functions are ordered by degree, then by their
orbit representative (the lexicographically smallest monomial, pairs in lexicographic
site order).  This order is deterministic.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import InternalError, SpecError
from ..quasirandom import quasi_random_normal
from .molien import molien_matrices, molien_permutation

#: Refuse bases with more functions than this (cumulative over degrees)...
MAX_FUNCTIONS = 50_000
#: ...or that need more monomials than this to enumerate.
MAX_MONOMIALS = 5_000_000


@dataclass(frozen=True, eq=False)
class InvariantBasis:
    """A complete basis of invariant polynomials up to ``max_degree`` (degree ≥ 1).

    Feature ``f`` is ``(1/len) Σ_k Π_j eps~[monomials[k, j]]`` over rows
    ``k in offsets[f]:offsets[f+1]`` (padding entries are -1), with ``eps~ = eps`` for the
    full CCD set or ``eps~ = projection @ eps`` for a truncated one.

    Attributes
    ----------
    n_vars : int — number of pair variables M
    max_degree : int
    degrees : (F,) int
    monomials : (K, max_degree) int64 — variable indices, sorted, -1 padded
    offsets : (F + 1,) int64
    projection : (M, M) float64 or None
    per_degree : dict {degree: count};  molien : dict {degree: Molien coefficient}
    truncated : int or None — number of CCDs kept, None for the full set
    """

    n_vars: int
    max_degree: int
    degrees: np.ndarray
    monomials: np.ndarray
    offsets: np.ndarray
    projection: np.ndarray | None
    per_degree: dict
    molien: dict
    truncated: int | None

    @property
    def n_features(self) -> int:
        return len(self.degrees)

    @property
    def orbit_sizes(self) -> np.ndarray:
        return np.diff(self.offsets)

    def representative(self, f: int) -> tuple:
        """The orbit representative of feature ``f`` as a tuple of variable indices."""
        row = self.monomials[self.offsets[f]]
        return tuple(int(v) for v in row if v >= 0)

    def signature(self) -> str:
        h = hashlib.sha256()
        for a in (self.degrees, self.monomials, self.offsets):
            h.update(np.ascontiguousarray(a).tobytes())
        if self.projection is not None:
            h.update(np.round(self.projection, 12).tobytes())
        return h.hexdigest()

    @cached_property
    def _weights(self) -> csr_matrix:
        k = len(self.monomials)
        cols = np.repeat(np.arange(self.n_features), self.orbit_sizes)
        vals = 1.0 / np.repeat(self.orbit_sizes, self.orbit_sizes)
        return coo_matrix((vals, (np.arange(k), cols)), shape=(k, self.n_features)).tocsr()

    def evaluate(self, eps: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """Plain NumPy reference evaluation.

        Parameters
        ----------
        eps : (n, M) float64 — pair metrics (not projected)

        Returns
        -------
        (n, F) float64
        """
        eps = np.asarray(eps, dtype=float)
        if self.projection is not None:
            eps = eps @ self.projection.T
        ext = np.concatenate([eps, np.ones((len(eps), 1))], axis=1)  # index -1 → 1
        out = np.zeros((len(eps), self.n_features))
        for s in range(0, len(self.monomials), chunk):
            mons = self.monomials[s:s + chunk]
            prods = np.prod(ext[:, mons], axis=2)  # (n, chunk)
            out += (self._weights[s:s + chunk].T @ prods.T).T
        return out

    def to_bytes(self) -> bytes:
        buf = io.BytesIO()
        np.savez(buf, degrees=self.degrees, monomials=self.monomials, offsets=self.offsets,
                 projection=self.projection if self.projection is not None else np.zeros((0, 0)))
        return buf.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes, meta: dict) -> "InvariantBasis":
        z = np.load(io.BytesIO(data))
        proj = z["projection"]
        return cls(int(meta["n_vars"]), int(meta["max_degree"]), z["degrees"], z["monomials"], z["offsets"],
                   proj if proj.size else None, {int(k): v for k, v in meta["per_degree"].items()},
                   {int(k): v for k, v in meta["molien"].items()}, meta["truncated"])


def feature_names(basis: InvariantBasis, prefix: str) -> list[str]:
    """Identifier-safe names ``<prefix>_d<degree>_<k>`` (k counts from 1 within a degree)."""
    out, count = [], {}
    for d in basis.degrees.tolist():
        count[d] = count.get(d, 0) + 1
        out.append(f"{prefix}_d{d}_{count[d]}")
    return out


def permutation_generators(perms: np.ndarray) -> list[np.ndarray]:
    """A small generating set of the permutation group given by ``perms`` (rows)."""
    uniq = np.unique(np.asarray(perms), axis=0)
    n = uniq.shape[1]
    ident = tuple(range(n))
    generated = {ident}
    gens = []
    for p in uniq:
        if tuple(p) in generated:
            continue
        gens.append(p)
        frontier = list(generated)
        while frontier:  # closure under right multiplication by all generators
            new = []
            for h in frontier:
                for g in gens:
                    c = tuple(np.asarray(h)[g])
                    if c not in generated:
                        generated.add(c)
                        new.append(c)
            frontier = new
    if len(generated) != len(uniq):
        raise InternalError("pair permutations do not form a group")
    return gens


def _encode(mons: np.ndarray, base: int) -> np.ndarray:
    key = np.zeros(len(mons), dtype=np.int64)
    for j in range(mons.shape[1]):
        key = key * base + mons[:, j]
    return key


def monomial_orbits(generators: list[np.ndarray], n_vars: int, degree: int):
    """Orbits of the degree-``degree`` monomials in ``n_vars`` variables.

    Returns
    -------
    mons : (K, degree) int64 — all monomials as sorted index tuples, lexicographic
    labels : (K,) int — orbit index of each monomial; orbit 0 contains monomial 0, and
        orbits are numbered by their smallest member
    n_orbits : int
    """
    mons = np.array(list(itertools.combinations_with_replacement(range(n_vars), degree)), dtype=np.int64)
    mons = mons.reshape(-1, degree)
    k = len(mons)
    keys = _encode(mons, n_vars)
    rows, cols = [], []
    for g in generators:
        img = np.sort(g[mons], axis=1)
        idx = np.searchsorted(keys, _encode(img, n_vars))
        rows.append(np.arange(k))
        cols.append(idx)
    if not rows:
        return mons, np.arange(k), k
    graph = coo_matrix((np.ones(k * len(rows), dtype=np.int8), (np.concatenate(rows), np.concatenate(cols))),
                       shape=(k, k)).tocsr()
    n, labels = connected_components(graph, directed=True, connection="weak")
    return mons, labels, n


def estimate(pair_perm: np.ndarray, max_degree: int) -> tuple[list[int], int]:
    """Molien counts m_0..m_max and the number of monomials needed (before deriving)."""
    m = pair_perm.shape[1]
    counts = molien_permutation(pair_perm, max_degree)
    n_mons = sum(math.comb(m + d - 1, d) for d in range(1, max_degree + 1))
    return counts, n_mons


def check_degree(max_degree, pair_perm: np.ndarray, name: str = "cluster") -> None:
    """Validate the requested degree; refuse sizes past the documented limits."""
    if isinstance(max_degree, bool) or not isinstance(max_degree, (int, np.integer)):
        raise SpecError(f"max_order must be an integer, got {max_degree!r}")
    if max_degree < 0:
        raise SpecError(f"max_order must be ≥ 0, got {max_degree}",
                        fix="use 2 or 4 as in the paper (6 for very detailed models)")
    if max_degree > 40:
        raise SpecError(f"max_order = {max_degree} is absurdly large", fix="use 2, 4 or 6")
    counts, n_mons = estimate(pair_perm, max_degree)
    total = sum(counts[1:])
    if total > MAX_FUNCTIONS or n_mons > MAX_MONOMIALS:
        raise SpecError(
            f"{name}: invariants up to degree {max_degree} would be {total:,} functions built "
            f"from {n_mons:,} monomials of {pair_perm.shape[1]} pair variables",
            why=f"ccdgen refuses more than {MAX_FUNCTIONS:,} functions or {MAX_MONOMIALS:,} monomials "
            "(memory and run time grow combinatorially)",
            fix="lower max_order, or use the truncated CCD set / fewer sites",
        )


def truncation_projection(transform) -> np.ndarray | None:
    """(M, M) orthogonal projector ``Q⁻¹ Π_T Q = V_T V_Tᵀ`` onto the kept CCDs, or None when
    the transform keeps every CCD."""
    k = transform.n_truncated
    if k >= transform.n_ccd:
        return None
    v = transform.basis[:, :k]
    return v @ v.T


def derive_basis(pair_perm: np.ndarray, max_degree: int, transform=None, truncated: bool = False,
                 progress=None) -> InvariantBasis:
    """Derive the complete invariant basis (see the module docstring).

    Parameters
    ----------
    pair_perm : (order, M) int — Γ as index arrays
    max_degree : int ≥ 0
    transform : CCDTransform, needed when ``truncated``
    truncated : use the truncated CCD set of ``transform``
    progress : callable(degree, n_monomials) or None — called before each degree
    """
    check_degree(max_degree, pair_perm)
    m = pair_perm.shape[1]
    gens = permutation_generators(pair_perm)
    projection = None
    k_trunc = None
    if truncated:
        if transform is None:
            raise InternalError("a truncated basis needs the CCD transform")
        k_trunc = transform.n_truncated
        projection = truncation_projection(transform)
        molien = molien_matrices(transform.block_matrices(k_trunc), max_degree)
    else:
        molien = molien_permutation(pair_perm, max_degree)
    all_mons, degrees, offsets, per_degree = [], [], [0], {}
    for d in range(1, max_degree + 1):
        if progress is not None:
            progress(d, math.comb(m + d - 1, d))
        mons, labels, n_orb = monomial_orbits(gens, m, d)
        order = np.argsort(labels, kind="stable")
        mons = mons[order]
        sizes = np.bincount(labels, minlength=n_orb)
        starts = np.concatenate([[0], np.cumsum(sizes)])
        keep = np.arange(n_orb)
        if projection is not None:
            keep = _independent_after_projection(mons, starts, projection, molien[d], d)
        pad = np.full((len(mons), max_degree), -1, dtype=np.int64)
        pad[:, :d] = mons
        for o in keep:
            all_mons.append(pad[starts[o]:starts[o + 1]])
            offsets.append(offsets[-1] + int(sizes[o]))
            degrees.append(d)
        per_degree[d] = len(keep)
    monomials = np.concatenate(all_mons) if all_mons else np.zeros((0, max_degree), dtype=np.int64)
    return InvariantBasis(m, max_degree, np.array(degrees, dtype=np.int64), monomials,
                          np.array(offsets, dtype=np.int64), projection, per_degree,
                          {d: molien[d] for d in range(1, max_degree + 1)}, k_trunc)


#: A truncated-set invariant is kept only if its part independent of those already kept
#: is at least this fraction of the largest such part among the remaining candidates.
PIVOT_FRACTION = 0.1
#: Residual (of unit columns) below which a candidate counts as dependent (rounding noise).
NOISE_FLOOR = 1e-11


def _independent_after_projection(mons, starts, projection, expected, degree) -> np.ndarray:
    """Indices of orbit averages that are linearly independent on the projected subspace.

    Their values on fixed quasi-random points (:func:`quasi_random_normal`, columns unit-normalised) go through a Householder QR
    with a tolerant column pivot: each step takes the *first* candidate in basis order
    whose residual (part independent of the columns already taken) is at least
    :data:`PIVOT_FRACTION` of the largest residual, until every residual is negligible.
    Plain first-come selection (unpivoted QR) is numerically unstable here: orbit
    averages can be nearly dependent on the truncated subspace, and the near-dependences
    compound until rounding noise passes for independence (e.g. octahedron, log metric,
    degree 6).  The pivot keeps every step well conditioned, so the rank is read off a
    clean gap (checked against the Molien count).

    Memory is ``O(n_points × n_orbits)``: monomial values are summed into their orbits
    chunk by chunk, and the number of points follows the expected rank.
    """
    n_orb = len(starts) - 1
    n_pts = min(n_orb, expected) + 64  # a few more points than the rank: generic, well conditioned
    eps = quasi_random_normal(n_pts, projection.shape[0]) @ projection.T
    eps /= np.linalg.norm(eps, axis=1, keepdims=True)  # homogeneous: row scaling keeps the rank
    sizes = np.diff(starts)
    owner = np.repeat(np.arange(n_orb), sizes)  # orbit of each monomial (contiguous runs)
    a = np.zeros((n_pts, n_orb))
    step = max(2048, 2**22 // n_pts)
    for s in range(0, len(mons), step):
        prods = np.prod(eps[:, mons[s:s + step]], axis=2)  # (n_pts, chunk)
        own = owner[s:s + step]
        first = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
        a[:, own[first]] += np.add.reduceat(prods, first, axis=1)
    a /= np.maximum(np.linalg.norm(a, axis=0), 1e-300)
    free = np.ones(n_orb, dtype=bool)
    keep, last = [], 1.0
    # exactly `expected` picks (the Molien count is exact); each must stand clear of the
    # rounding noise of unit columns, so the picked functions are independent
    for k in range(min(n_pts, n_orb, expected)):
        res = np.where(free, np.linalg.norm(a[k:], axis=0), 0.0)
        top = res.max()
        if top <= NOISE_FLOOR:
            break
        j = int(np.argmax(res >= PIVOT_FRACTION * top))
        x = a[k:, j]
        v = x.copy()
        v[0] += np.copysign(np.linalg.norm(x), x[0])
        v /= np.linalg.norm(v)
        a[k:] -= np.outer(2.0 * v, v @ a[k:])
        free[j] = False
        keep.append(j)
        last = res[j]
    if len(keep) != expected or last <= NOISE_FLOOR:
        raise InternalError(f"degree {degree}: only {len(keep)} truncated invariants stand clear of rounding "
                            f"noise, Molien says {expected} (last residual {last:.2g})")
    return np.sort(np.array(keep, dtype=np.int64))
