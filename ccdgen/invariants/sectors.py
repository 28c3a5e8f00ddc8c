"""Invariant polynomials of the CCDs, sector by sector (numeric core, no SymPy).

``D(g) = Q Γ(g) Q⁻¹`` is block diagonal: one real orthogonal matrix ``A_b(g)`` per CCD
block ``b`` (the η basis inside a block is orthonormal; ``Q``'s ``λ^-1/2`` is one scalar
per block and cancels in ``D``).  The polynomials of degree ``d`` therefore split into
*sectors*, one per block multidegree ``(d_1, ..., d_k)`` with ``Σ d_b = d``,

    Sym^{d_1}(B_1) ⊗ ... ⊗ Sym^{d_k}(B_k)        (monomials of degree d_b in block b),

each mapped onto itself by every ``D(g)``.  The invariants of degree ``d`` are the direct
sum of the invariants of its sectors, and every sector is small (a product of small
binomials).  Per sector:

1. **Character count first.**  The number of invariants is
   ``(1/|G|) Σ_g Π_b h_{d_b}(A_b(g))`` with ``h_e`` the complete homogeneous symmetric
   polynomial of the eigenvalues of ``A_b(g)`` — the character of ``Sym^e`` — computed from
   the power sums ``p_k = tr A^k`` by Newton's identities.  Sectors with count 0 (most of
   them) are skipped before anything is built.
2. **Reynolds projector.**  In the Bombieri-orthonormal monomial basis
   ``sqrt(e!/α!) x^α``, ``f ↦ f∘A`` is orthogonal for orthogonal ``A``, so
   ``P = (1/|G|) Σ_g ⊗_b Sym^{d_b}(A_b(g))`` is an orthogonal projector onto the sector's
   invariants.  Its trace, ``(1/|G|) Σ_g Π_b tr Sym^{d_b}(A_b(g))`` from the explicit
   matrices, must equal the character count from Newton's identities (else
   :class:`InternalError`).  ``P`` is never formed: it is applied factor by factor to a few
   more fixed generic vectors than the count (no RNG,
   :func:`~ccdgen.quasirandom.quasi_random_normal`); the images span the invariants.
3. **Canonical readable basis.**  That span, in plain monomials ``x^α``, is brought to
   reduced row echelon form in the sector's fixed monomial order (blocks in CCD order,
   the first block varying slowest; inside a block index tuples in lexicographic order):
   exactly as many pivots as the character count, then nothing left (a clean rank gap,
   else :class:`InternalError`).  The result does not depend on the generic vectors:
   each invariant has leading coefficient 1
   and no other invariant of the sector contains its leading monomial.  The rows are
   projected once more (one step of refinement; a change above 1e-8 is an
   :class:`InternalError`), so they are invariant to rounding, and coefficients within
   :data:`SNAP_TOL` of a small exact number (``p√k/q``, ``(a + b√5)/q``) are set to it.

Conventions: the action is ``f ↦ f∘D(g)``, i.e. ``f`` is invariant iff
``f(D(g) η) = f(η)`` for all ``g``; sectors are ordered by degree, then by multidegree in
descending lexicographic order (highest power of the first block first).  Everything is
deterministic (no random numbers).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace
from functools import partial

import numpy as np

from ..errors import InternalError, SpecError

#: Refuse to enumerate more block multidegrees than this in one degree.
MAX_SECTORS = 2_000_000
#: Refuse a single sector with more monomials than this.
MAX_SECTOR_DIM = 20_000
#: A coefficient within this (relative; absolute below 1) of a small exact number is
#: replaced by it (:func:`snap_array`).
SNAP_TOL = 1e-12
#: Sectors up to this many monomials form the Reynolds projector densely; larger ones
#: apply it to a few generic vectors.
DENSE_SECTOR_DIM = 256
#: Extra generic vectors the Reynolds projector is applied to (beyond the rank).
OVERSAMPLE = 8
#: Chunk size (bytes) for applying the Reynolds projector over the group.
_CHUNK_BYTES = 64 * 2**20


@dataclass(frozen=True, eq=False)
class Sector:
    """The invariants of one block multidegree.

    Attributes
    ----------
    degree : int
    multidegree : tuple of int, one per block (block order)
    monomials : (N, degree) int64 — the sector's monomials as sorted CCD indices (into the
        η vector of the blocks given), in the sector's fixed order
    coefficients : (r, N) float64 — the invariants in reduced row echelon form
    pivots : (r,) int64 — column of each invariant's leading monomial (coefficient 1)
    """

    degree: int
    multidegree: tuple
    monomials: np.ndarray
    coefficients: np.ndarray
    pivots: np.ndarray

    @property
    def n_invariants(self) -> int:
        return len(self.coefficients)

    def evaluate(self, eta: np.ndarray) -> np.ndarray:
        """Values at ``eta`` (n, K) float64 (K ≥ the largest CCD index used) → (n, r)."""
        eta = np.asarray(eta, dtype=float)
        mons = np.prod(eta[:, self.monomials], axis=2) if self.degree else np.ones((len(eta), 1))
        return mons @ self.coefficients.T


@dataclass(frozen=True, eq=False)
class SectorBasis:
    """All sector invariants up to ``max_degree`` (degree ≥ 1).

    Attributes
    ----------
    n_vars : int — number of CCDs K the blocks cover (η indices 0..K-1)
    bounds : tuple of (start, stop) — the blocks, contiguous, in CCD order
    max_degree : int
    sectors : tuple of Sector — non-empty sectors, by degree then multidegree
    per_degree : dict {degree: number of invariants} (checked against ``expected`` when given)
    """

    n_vars: int
    bounds: tuple
    max_degree: int
    sectors: tuple
    per_degree: dict

    @property
    def count(self) -> int:
        return sum(self.per_degree.values())

    def of_degree(self, degree: int) -> list[Sector]:
        return [s for s in self.sectors if s.degree == degree]

    def evaluate(self, eta: np.ndarray, degree: int | None = None) -> np.ndarray:
        """All invariants (or those of one degree) at ``eta`` (n, K) → (n, count)."""
        ss = self.sectors if degree is None else self.of_degree(degree)
        eta = np.asarray(eta, dtype=float)
        if not ss:
            return np.zeros((len(eta), 0))
        return np.concatenate([s.evaluate(eta) for s in ss], axis=1)


# ------------------------------------------------------------------ small building blocks
def block_matrices(d: np.ndarray, bounds) -> list[np.ndarray]:
    """The diagonal blocks ``A_b(g)`` of ``D(g)``.

    Parameters
    ----------
    d : (order, K, K) float64 — ``D(g)`` of the CCDs used
    bounds : sequence of (start, stop)

    Returns list of (order, n_b, n_b) float64.  Raises InternalError if ``D`` is not block
    diagonal or a block is not orthogonal (to 1e-8).
    """
    d = np.asarray(d, dtype=float)
    out = []
    mask = np.ones(d.shape[1:], dtype=bool)
    for s, e in bounds:
        a = np.ascontiguousarray(d[:, s:e, s:e])
        mask[s:e, s:e] = False
        err = np.abs(a @ np.swapaxes(a, 1, 2) - np.eye(e - s)).max(initial=0.0)
        if err > 1e-8:
            raise InternalError(f"CCD block {s}:{e} of D(g) is not orthogonal (error {err:.2g})")
        out.append(a)
    off = np.abs(d[:, mask]).max(initial=0.0)
    if off > 1e-8:
        raise InternalError(f"D(g) is not block diagonal over the CCD blocks (largest off-block entry {off:.2g})")
    return out


def block_monomials(n: int, e: int) -> np.ndarray:
    """(C(n+e-1, e), e) int64: the monomials of degree ``e`` in ``n`` variables as sorted
    index tuples, in lexicographic order."""
    mons = list(itertools.combinations_with_replacement(range(n), e))
    return np.array(mons, dtype=np.int64).reshape(len(mons), e)


def bombieri_weights(n: int, e: int) -> np.ndarray:
    """(N,) float64: ``sqrt(e!/α!)`` for the monomials of :func:`block_monomials`."""
    mons = block_monomials(n, e)
    out = np.empty(len(mons))
    for k, m in enumerate(mons):
        counts = np.bincount(m, minlength=n) if e else np.zeros(n, dtype=int)
        out[k] = math.factorial(e) / math.prod(math.factorial(int(c)) for c in counts)
    return np.sqrt(out)


def _index_of(n: int, e: int) -> dict:
    return {tuple(m): k for k, m in enumerate(block_monomials(n, e).tolist())}


def symmetric_power(a: np.ndarray, e: int) -> np.ndarray:
    """``Sym^e`` of the matrices ``a`` on plain monomials, ``f ↦ f∘A``.

    Parameters
    ----------
    a : (order, n, n) float64
    e : degree ≥ 0

    Returns
    -------
    (order, N, N) float64, N = C(n+e-1, e): column ``α`` holds the coefficients (on the
    monomials of :func:`block_monomials`) of ``Π_j (A x)_{α_j}``.
    """
    a = np.asarray(a, dtype=float)
    order, n, _ = a.shape
    s = np.ones((order, 1, 1))
    for k in range(1, e + 1):
        prev_idx = _index_of(n, k - 1)
        mons = block_monomials(n, k)
        idx = _index_of(n, k)
        prev = np.array([prev_idx[tuple(m[:-1])] for m in mons.tolist()], dtype=np.int64)
        last = mons[:, -1]
        lower = block_monomials(n, k - 1).tolist()
        out = np.zeros((order, len(mons), len(mons)))
        base = s[:, :, prev]  # (order, N_{k-1}, N_k): image of x^{α'}
        for l in range(n):
            rows = np.array([idx[tuple(sorted(m + [l]))] for m in lower], dtype=np.int64)
            out[:, rows, :] += base * a[:, last, l][:, None, :]
        s = out
    return s


def complete_homogeneous(a: np.ndarray, max_degree: int) -> np.ndarray:
    """(max_degree + 1, order) float64: ``h_e(A(g))`` = character of ``Sym^e`` at each g,
    from the power sums ``p_k = tr A^k`` by Newton's identities."""
    a = np.asarray(a, dtype=float)
    order = a.shape[0]
    p = np.zeros((max_degree + 1, order))
    ak = a.copy()
    for k in range(1, max_degree + 1):
        p[k] = np.trace(ak, axis1=1, axis2=2)
        ak = ak @ a
    h = np.zeros((max_degree + 1, order))
    h[0] = 1.0
    for e in range(1, max_degree + 1):
        h[e] = sum(p[k] * h[e - k] for k in range(1, e + 1)) / e
    return h


def multidegrees(k: int, d: int):
    """All ``(d_1, ..., d_k)`` with ``d_b ≥ 0`` and ``Σ d_b = d``, descending
    lexicographic order (as an (n, k) int64 array)."""
    n = math.comb(d + k - 1, k - 1)
    if n > MAX_SECTORS:
        raise SpecError(f"degree {d} over {k} CCD blocks has {n:,} block multidegrees",
                        why=f"ccdgen refuses more than {MAX_SECTORS:,} sectors per degree",
                        fix="lower --order or use the truncated CCD set")
    out = np.zeros((n, k), dtype=np.int64)
    # stars and bars: bar positions c_1 < ... < c_{k-1} in 0..d+k-2; ascending
    # combinations give ascending d_1 - reversed below for descending order
    for r, bars in enumerate(itertools.combinations(range(d + k - 1), k - 1)):
        prev = -1
        for b, c in enumerate(bars):
            out[r, b] = c - prev - 1
            prev = c
        out[r, k - 1] = d + k - 2 - prev
    return out[np.lexsort(out.T[::-1])][::-1]


def trivial_counts(h: list[np.ndarray], degs: np.ndarray, chunk: int = 4096) -> np.ndarray:
    """Number of invariants of each multidegree (rows of ``degs``), from characters.

    Parameters
    ----------
    h : per block, (max_degree + 1, order) — :func:`complete_homogeneous`
    degs : (n, k) int64 multidegrees
    """
    k = len(h)
    hh = np.stack(h)  # (k, D+1, order)
    out = np.zeros(len(degs))
    for s in range(0, len(degs), chunk):
        part = degs[s:s + chunk]
        vals = hh[np.arange(k)[None, :], part, :]  # (c, k, order)
        out[s:s + chunk] = np.prod(vals, axis=1).mean(axis=1)
    rounded = np.rint(out)
    if len(out) and np.abs(out - rounded).max() > 1e-6:
        raise InternalError("sector character counts are not integers")
    return rounded.astype(np.int64)


# ------------------------------------------------------------------ exact numbers
_RADICANDS = (1, 2, 3, 5, 6, 7, 10, 11, 13, 14, 15, 21, 30)
_LCM = 27720  # lcm(1..12): every denominator q ≤ 12 divides it
_GOLDEN_B = (1, 2, 3, 4, 6, 8, 12)  # b·8/q for b = 1..3, q = 2, 4, 8


def snap_array(x) -> dict:
    """Recognise small exact numbers in ``x`` (any shape, float64), vectorized, no SymPy.

    A value counts as exact if it is within :data:`SNAP_TOL` (relative, absolute below 1)
    of ``p√k/q`` (k squarefree ≤ 30, q ≤ 12, 0 < |p| ≤ 144) or of ``(a + b√5)/q``
    (q ≤ 8, |b| ≤ 3, |a| ≤ 24: the golden-ratio numbers of Ih).

    Returns a dict of arrays shaped like ``x``: ``value`` (the exact value where one was
    found, else ``x``), ``kind`` (0 none, 1 ``p√k/q``, 2 ``(a + b√5)/q``, 3 zero), and the
    integers ``p, q, k`` (kind 1) or ``a, q, b`` in ``p, q, k`` (kind 2).
    """
    x = np.asarray(x, dtype=float)
    flat = x.ravel()
    n = len(flat)
    kind = np.zeros(n, dtype=np.int8)
    p = np.zeros(n, dtype=np.int64)
    q = np.ones(n, dtype=np.int64)
    k = np.ones(n, dtype=np.int64)
    value = flat.copy()
    tol = SNAP_TOL * np.maximum(1.0, np.abs(flat))
    kind[flat == 0.0] = 3
    todo = np.flatnonzero(kind == 0)
    for rk in _RADICANDS:
        if not len(todo):
            break
        r = math.sqrt(rk)
        y = flat[todo] * (_LCM / r)
        num = np.rint(y)
        ok = (np.abs(y - num) * (r / _LCM) <= tol[todo]) & (num != 0) & (np.abs(y) < 145 * _LCM)
        if not ok.any():
            continue
        idx = todo[ok]
        nn = num[ok].astype(np.int64)
        g = np.gcd(nn, _LCM)
        qq, pp = _LCM // g, nn // g
        good = (qq <= 12) & (np.abs(pp) <= 144)
        idx, pp, qq = idx[good], pp[good], qq[good]
        kind[idx], p[idx], q[idx], k[idx] = 1, pp, qq, rk
        value[idx] = pp * r / qq
        todo = np.flatnonzero(kind == 0)
    s5 = math.sqrt(5.0)
    for b0 in _GOLDEN_B:
        for b in (b0, -b0):
            if not len(todo):
                break
            y = 8.0 * flat[todo] - b * s5
            a = np.rint(y)
            ok = (np.abs(y - a) / 8.0 <= tol[todo]) & (a != 0) & (np.abs(a) <= 192)
            if not ok.any():
                continue
            idx = todo[ok]
            aa = a[ok].astype(np.int64)
            g = np.gcd(np.gcd(aa, b), 8)
            a2, b2, q2 = aa // g, b // g, 8 // g
            good = (np.abs(b2) <= 3) & (np.abs(a2) <= 24)
            idx, a2, b2, q2 = idx[good], a2[good], b2[good], q2[good]
            kind[idx], p[idx], q[idx], k[idx] = 2, a2, q2, b2
            value[idx] = (a2 + b2 * s5) / q2
            todo = np.flatnonzero(kind == 0)
    shape = x.shape
    return {"value": value.reshape(shape), "kind": kind.reshape(shape), "p": p.reshape(shape),
            "q": q.reshape(shape), "k": k.reshape(shape)}


# ------------------------------------------------------------------ one sector
def _rref(a: np.ndarray, rank: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """The first ``rank`` rows of the reduced row echelon form of ``a`` (n, N), whose rank
    must be ``rank`` with a clean gap: the pivot column is the first whose largest remaining
    entry exceeds ``tol`` (relative); after ``rank`` pivots every remaining entry must be
    below it.  Cost O(rank · n · N)."""
    a = np.array(a, dtype=float)
    scale = np.abs(a).max(initial=0.0)
    cut = tol * scale
    pivots = []
    j0 = 0
    for row in range(rank):
        colmax = np.abs(a[row:, j0:]).max(axis=0, initial=0.0) if row < len(a) else np.zeros(0)
        hits = np.flatnonzero(colmax > cut)
        if len(hits) == 0:
            raise InternalError(f"sector invariants: rank {row} where the characters say {rank}")
        j = j0 + int(hits[0])
        p = row + int(np.argmax(np.abs(a[row:, j])))
        a[[row, p]] = a[[p, row]]
        a[row] /= a[row, j]
        col = a[:, j].copy()
        col[row] = 0.0
        a -= np.outer(col, a[row])
        pivots.append(j)
        j0 = j + 1
    rest = np.abs(a[rank:]).max(initial=0.0)
    if rest > cut:
        raise InternalError(f"sector invariants: rank above {rank} (residual {rest / max(scale, 1e-300):.2g}), "
                            "no clean gap")
    return a[:rank], np.array(pivots, dtype=np.int64)


def _generic(m: int, n: int) -> np.ndarray:
    """(m, n) fixed generic vectors (no RNG): :func:`~ccdgen.quasirandom.quasi_random_normal`."""
    from ..quasirandom import quasi_random_normal

    return quasi_random_normal(m, n)


def _reynolds_apply(mats: list[np.ndarray], v: np.ndarray) -> np.ndarray:
    """Rows ``v`` (m, N) mapped by ``P = (1/|G|) Σ_g ⊗_b S_b(g)`` (symmetric), without
    forming ``P``: each factor acts on its own axis of ``v`` reshaped to (m, N_1, ..., N_k).
    Cost O(|G| · m · N · Σ_b N_b); group elements in chunks of bounded memory."""
    order = mats[0].shape[0]
    dims = tuple(a.shape[1] for a in mats)
    m = v.shape[0]
    n = int(np.prod(dims))
    step = max(1, _CHUNK_BYTES // (8 * max(1, m * n)))
    out = np.zeros((m, n))
    base = np.asarray(v, dtype=float).reshape((1, m) + dims)
    for g0 in range(0, order, step):
        gs = min(step, order - g0)
        x = np.broadcast_to(base, (gs, m) + dims)
        for b, a in enumerate(mats):
            # axis b in the middle: (gs, m·N_<b, N_b, N_>b); A_b(g) acts from the left
            left, right = m * int(np.prod(dims[:b])), int(np.prod(dims[b + 1:]))
            x = np.matmul(a[g0:g0 + gs, None], x.reshape(gs, left, dims[b], right))
        out += x.sum(axis=0).reshape(m, n)
    return out / order


def _reynolds_dense(mats: list[np.ndarray]) -> np.ndarray:
    """``P = (1/|G|) Σ_g ⊗_b S_b(g)`` formed (N, N), symmetrized; for small sectors."""
    order = mats[0].shape[0]
    n = int(np.prod([a.shape[1] for a in mats]))
    proj = np.zeros((n, n))
    step = max(1, _CHUNK_BYTES // (8 * n * n))
    for g0 in range(0, order, step):
        kron = mats[0][g0:g0 + step]
        for s in mats[1:]:
            c, m = kron.shape[0], kron.shape[1] * s.shape[1]
            kron = (kron[:, :, None, :, None] * s[g0:g0 + step, None, :, None, :]).reshape(c, m, m)
        proj += kron.sum(axis=0)
    proj /= order
    return 0.5 * (proj + proj.T)


class _SectorBuilder:
    """Per-block caches (symmetric powers, weights, monomials) for one set of blocks."""

    def __init__(self, mats: list[np.ndarray], bounds):
        self.mats = mats
        self.bounds = tuple(bounds)
        self.order = mats[0].shape[0] if mats else 1
        self._sym = {}

    def sym(self, b: int, e: int):
        key = (b, e)
        if key not in self._sym:
            n = self.mats[b].shape[1]
            w = bombieri_weights(n, e)
            s = symmetric_power(self.mats[b], e) * (w[None, None, :] / w[None, :, None])
            s0, _ = self.bounds[b]
            self._sym[key] = (s, w, block_monomials(n, e) + s0)
        return self._sym[key]

    def build(self, degs: tuple, count: int) -> Sector:
        used = [b for b, e in enumerate(degs) if e > 0]
        parts = [self.sym(b, degs[b]) for b in used]
        dims = [len(p[1]) for p in parts]
        n_tot = math.prod(dims)
        if n_tot > MAX_SECTOR_DIM:
            raise SpecError(f"the sector {degs} has {n_tot:,} monomials",
                            why=f"ccdgen builds sectors of at most {MAX_SECTOR_DIM:,} monomials",
                            fix="lower --order")
        mats = [p[0] for p in parts]
        # the trace of the Reynolds projector, from the explicit matrices
        trace = float(np.mean(np.prod([np.trace(a, axis1=1, axis2=2) for a in mats], axis=0)))
        if abs(trace - count) > 1e-8 * max(1, count):
            raise InternalError(f"sector {degs}: trace of the Reynolds projector {trace:.12g}, "
                                f"characters say {count}")
        weight = parts[0][1]
        for _, w, _ in parts[1:]:
            weight = np.multiply.outer(weight, w).ravel()
        # the range of P from P applied to a few generic vectors, in plain-monomial
        # coefficients, to reduced row echelon form in the sector's monomial order: exactly
        # `count` pivots, then nothing left (a clean rank gap), else InternalError
        if n_tot <= DENSE_SECTOR_DIM:  # small: form P (symmetric; its rows span the invariants)
            y = _reynolds_dense(mats)
            apply = y.__rmatmul__  # rows v ↦ v @ P
        else:
            apply = partial(_reynolds_apply, mats)
            y = apply(_generic(count + OVERSAMPLE, n_tot))
        rows, piv = _rref(y * weight, count, 1e-9)
        # one refinement step: re-project (orthonormal coordinates), restore the pivots;
        # the change measures how invariant the rows are
        again = apply(rows / weight) * weight
        again = np.linalg.solve(again[:, piv], again)
        change = np.abs(again - rows).max() / max(np.abs(rows).max(), 1e-300)
        if change > 1e-8:
            raise InternalError(f"sector {degs}: row-reduced invariants are not invariant (change {change:.2g})")
        rows = again
        rows[np.abs(rows) < 1e-13 * np.abs(rows).max(axis=1, keepdims=True)] = 0.0
        rows[:, piv] = np.eye(len(piv))
        mons = parts[0][2]
        for _, _, m in parts[1:]:
            mons = np.concatenate([np.repeat(mons, len(m), axis=0), np.tile(m, (len(mons), 1))], axis=1)
        return Sector(int(sum(degs)), tuple(int(x) for x in degs), mons, rows, piv)


def sector_basis(d: np.ndarray, bounds, max_degree: int, expected: dict | None = None) -> SectorBasis:
    """All sector invariants of the CCDs with matrices ``d`` up to ``max_degree``.

    Parameters
    ----------
    d : (order, K, K) float64 — ``D(g)`` (or ``D_T(g)``) for every group element
    bounds : sequence of (start, stop) — the CCD blocks covering 0..K, in order
    max_degree : int ≥ 0
    expected : {degree: count}, e.g. the Molien series; a mismatch raises InternalError

    Returns
    -------
    SectorBasis
    """
    bounds = tuple((int(s), int(e)) for s, e in bounds)
    d = np.asarray(d, dtype=float)
    if not bounds or bounds[0][0] != 0 or bounds[-1][1] != d.shape[1] or any(
            a[1] != b[0] for a, b in zip(bounds, bounds[1:])):
        raise InternalError(f"CCD blocks {bounds} do not tile 0..{d.shape[1]}")
    mats = block_matrices(d, bounds)
    h = [complete_homogeneous(a, max_degree) for a in mats]
    builder = _SectorBuilder(mats, bounds)
    sectors, per_degree = [], {}
    for deg in range(1, max_degree + 1):
        degs = multidegrees(len(bounds), deg)
        counts = trivial_counts(h, degs)
        n = 0
        for row in np.flatnonzero(counts):
            sectors.append(builder.build(tuple(int(x) for x in degs[row]), int(counts[row])))
            n += int(counts[row])
        per_degree[deg] = n
        if expected is not None and expected.get(deg) != n:
            raise InternalError(f"degree {deg}: {n} sector invariants, the Molien series says {expected.get(deg)}")
    if sectors:  # exact numbers, all sectors at once: 0.9999999999999998 → 1, 1.7320508075688767 → √3
        flat = snap_array(np.concatenate([s.coefficients.ravel() for s in sectors]))["value"]
        cuts = np.cumsum([0] + [s.coefficients.size for s in sectors])
        sectors = [replace(s, coefficients=flat[a:b].reshape(s.coefficients.shape))
                   for s, a, b in zip(sectors, cuts[:-1], cuts[1:])]
        for s in sectors:  # immutable outputs
            for arr in (s.monomials, s.coefficients, s.pivots):
                arr.flags.writeable = False
    return SectorBasis(int(d.shape[1]), bounds, int(max_degree), tuple(sectors), per_degree)
