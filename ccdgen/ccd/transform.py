"""The CCD transform ``eta = Q eps`` (Eq. 6) built as in Appendix A.

1. Correlation matrix ``C_pq = <eps_p eps_q>`` (Eq. 19) over an isotropic Gaussian of
   site displacements (standard deviation ``sigma`` Å), by deterministic quadrature
   (:mod:`ccdgen.ccd.correlation`), exactly G-symmetric (Eq. 22).
2. For each real irrep, the isotypic subspace (range of its character projector).  There
   ``C`` has ``m`` distinct eigenvalues, each ``d``-fold (``m`` copies of a ``d``-dim irrep).
   Each eigenspace is one invariant subspace: one block of CCDs labelled by the irrep.
   Inside a block the basis is canonical: Gram–Schmidt of the block projector applied to
   the unit pair vectors ``e_1, e_2, ...`` — the same basis the exact SymPy front end gives.
3. ``Q = Λ^-1/2 Vᵀ`` (Eqs. 20-21): blocks sorted by eigenvalue, largest first, so that
   ``Q C Qᵀ = I``.  Eigenvalues within :data:`TIE_GAP` (relative) are tied; ties follow the
   irrep's place in the character table, then the copy number, so the order is fixed on
   every machine.  The truncated set keeps the first ``3N - 6`` CCDs (Appendix A).

``sigma`` has one meaning everywhere: a fraction of the nearest-neighbour distance —
the crystal's for an embedded cluster, the cluster's shortest pair for a free cluster
(:attr:`ccdgen.clusters.Cluster.length_scale`).

Where an irrep occurs once, symmetry alone fixes its subspace (``V`` is exact, see
:mod:`ccdgen.ccd.exact`).  Where it repeats, the mixing of the copies comes from ``C``'s
eigenvectors, i.e. from ``sigma`` and the metric.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..clusters import Cluster
from ..errors import ClusterError, InternalError, SpecError
from ..linalg import canonical_span_basis
from .metrics import PairMetric, get_metric
from .representation import PairRepresentation

#: Blocks whose correlation eigenvalues differ by less than this (relative) are tied: their
#: order follows the irrep's place in the character table, then the copy number.
TIE_GAP = 1e-9
#: Consecutive blocks closer than this (relative gap) are reported as near-degenerate.
NEAR_DEGENERATE_GAP = 1e-3


@dataclass(frozen=True)
class CCDBlock:
    """One invariant subspace of CCDs: rows ``start:stop`` of ``Q``."""

    label: str
    dim: int
    eigenvalue: float
    start: int
    stop: int
    copy: int  # 1, 2, ... when the irrep repeats

    @property
    def name(self) -> str:
        return self.label if self.copy == 0 else f"{self.label}^({self.copy})"


@dataclass(frozen=True, eq=False)
class CCDTransform:
    """``eta = Q eps`` for one cluster.

    Attributes
    ----------
    cluster : Cluster
    rep : PairRepresentation
    metric : PairMetric
    sigma : float, Å — width of the Gaussian used for C
    r0 : (n_pairs,) float64, Å — reference pair lengths
    correlation : (n_pairs, n_pairs) — the G-symmetric C
    basis : (n_pairs, n_pairs) — V, columns orthonormal eigenvectors (block order)
    eigenvalues : (n_pairs,) — Λ, one per CCD, descending by block
    blocks : tuple of CCDBlock
    n_truncated : int — number of CCDs in the truncated set (first blocks)
    """

    cluster: Cluster
    rep: PairRepresentation
    metric: PairMetric
    sigma: float
    r0: np.ndarray
    correlation: np.ndarray
    basis: np.ndarray
    eigenvalues: np.ndarray
    blocks: tuple
    n_truncated: int

    @property
    def n_ccd(self) -> int:
        return len(self.eigenvalues)

    @cached_property
    def Q(self) -> np.ndarray:
        """(n_pairs, n_pairs): ``Q = Λ^-1/2 Vᵀ``."""
        return self.basis.T / np.sqrt(self.eigenvalues)[:, None]

    @cached_property
    def Q_inv(self) -> np.ndarray:
        """(n_pairs, n_pairs): ``Q⁻¹ = V Λ^1/2``."""
        return self.basis * np.sqrt(self.eigenvalues)[None, :]

    @cached_property
    def ccd_labels(self) -> tuple:
        """One label per CCD, e.g. ``eta_Eg(2),1`` → as tuple (irrep, copy, component)."""
        out = []
        for b in self.blocks:
            for k in range(b.dim):
                out.append((b.label, b.copy, k + 1))
        return tuple(out)

    def ccd_names(self, style: str = "plain") -> list[str]:
        """Readable CCD names: ``eta[Eg(1),1]`` (plain), ``η[Eg(1),1]`` (pretty),
        ``\\eta^{(1)}_{E_{g},1}`` (latex) — the names ``inspect`` prints."""
        from .names import ccd_names

        return ccd_names(self.ccd_labels, style)

    def D(self, k: int | None = None) -> np.ndarray:
        """(order, k, k): the leading ``k × k`` block (default: all CCDs) of
        ``D(g) = Q Γ(g) Q⁻¹`` (Eq. 11), block diagonal.  Γ acts by permutation, so
        ``Γ(g) Q⁻¹`` is ``Q⁻¹`` with permuted rows: no dense Γ is formed."""
        k = self.n_ccd if k is None else int(k)
        q, q_inv = self.Q[:k], self.Q_inv[:, :k]
        return np.stack([q @ q_inv[inv] for inv in self.rep.inverse_perm])

    def block_matrices(self, k: int | None = None) -> list:
        """The irrep blocks of ``D(g)`` among the first ``k`` CCDs: ``[(order, d, d)]`` per
        block, at a cost of ``|G| M Σ d²`` (instead of ``|G| M k²`` for :meth:`D`)."""
        k = self.n_ccd if k is None else int(k)
        inv = self.rep.inverse_perm
        out = []
        for b in self.blocks:
            if b.stop > k:
                break
            cols = self.Q_inv[:, b.start:b.stop]
            out.append(np.einsum("dm,gmc->gdc", self.Q[b.start:b.stop], cols[inv], optimize=True))
        return out

    def D_from_blocks(self, k: int | None = None) -> np.ndarray:
        """(order, k, k): ``D(g)`` assembled from :meth:`block_matrices` (the entries between
        blocks, zero up to rounding in :meth:`D`, are exactly zero here)."""
        k = self.n_ccd if k is None else int(k)
        out = np.zeros((self.rep.pair_perm.shape[0], k, k))
        for b, m in zip(self.blocks, self.block_matrices(k)):
            out[:, b.start:b.stop, b.start:b.stop] = m
        return out

    @property
    def truncated_blocks(self) -> tuple:
        return tuple(b for b in self.blocks if b.stop <= self.n_truncated)

    def signature(self) -> str:
        h = hashlib.sha256()
        h.update(self.cluster.signature().encode())
        h.update(f"{self.metric.name}|{self.sigma:.10g}|{self.n_truncated}".encode())
        h.update(np.round(self.Q, 10).tobytes())
        return h.hexdigest()


def degrees_of_freedom(cluster: Cluster) -> int:
    """Internal degrees of freedom: 1 for a pair, 3N - 5 collinear, 3N - 6 otherwise."""
    n = cluster.n_sites
    if n == 2:
        return 1
    return 3 * n - 5 if cluster.dimension == 1 else 3 * n - 6


def _canonical_basis(proj: np.ndarray, dim: int) -> np.ndarray:
    """Gram–Schmidt of ``proj @ e_p`` for p = 0, 1, ... until ``dim`` vectors (columns)."""
    return canonical_span_basis(lambda p: proj[:, p], proj.shape[0], dim)


def _canonical_basis_of_span(sub: np.ndarray, dim: int) -> np.ndarray:
    """:func:`_canonical_basis` of the projector ``sub subᵀ`` onto the span of the orthonormal
    columns ``sub`` (M, dim), without forming the M × M projector: column p is ``sub sub[p]``."""
    return canonical_span_basis(lambda p: sub @ sub[p], sub.shape[0], dim)


def build_transform(cluster: Cluster, metric: str | PairMetric = "exp", sigma: float = 0.15,
                    truncate: int | str | None = "auto") -> CCDTransform:
    """The CCD transform of a cluster.

    Parameters
    ----------
    metric : "linear" | "log" | "exp" | "inverse" or a PairMetric
    sigma : float — width of the Gaussian of site displacements for ``C`` (Eq. 19), as a
        fraction of the cluster's nearest-neighbour length scale
        (:attr:`~ccdgen.clusters.Cluster.length_scale`; paper: 0.10-0.25).
    truncate : "auto" (3N - 6, or 3N - 5 collinear, rounded to whole blocks), an int (keep
        that many CCDs, or all if the cluster has fewer; must end on a block boundary), or
        None / False (keep all).
    """
    from .correlation import correlation_matrix

    metric = metric if isinstance(metric, PairMetric) else get_metric(metric)
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float, np.floating)) or not np.isfinite(sigma) \
            or sigma <= 0:
        raise SpecError(f"sigma must be a finite number > 0, got {sigma!r}",
                        why="sigma is the width of the displacement distribution of Eq. (19)",
                        fix="use e.g. sigma = 0.15 (15 % of the nearest-neighbour distance)")
    rep = PairRepresentation.from_group(cluster.group)
    i, j = rep.pairs[:, 0], rep.pairs[:, 1]
    r0 = np.linalg.norm(cluster.positions[i] - cluster.positions[j], axis=-1)
    sigma_a = float(sigma) * cluster.length_scale
    if rep.n_pairs > 400:
        from ..progress import human_seconds, note

        note(f"{cluster.name}: correlation matrix and CCD blocks of {rep.n_pairs} pair variables "
             f"(|G| = {cluster.group.order}; about {human_seconds(3e-6 * rep.n_pairs ** 2 * 2)})")
    c = correlation_matrix(cluster.positions, rep.pairs, rep.pair_perm, cluster.group.permutations, metric, sigma_a)

    raw = []  # (eigenvalue, irrep index, copy, label, dim, basis columns)
    for irrep in rep.irreps:
        proj = rep.projector(irrep.index)
        iso = _canonical_basis(proj, irrep.dim * irrep.multiplicity)
        if irrep.multiplicity == 1:
            lam = float(np.trace(iso.T @ c @ iso) / irrep.dim)
            raw.append((lam, irrep.index, 0, irrep.label, irrep.dim, iso))
            continue
        w, u = np.linalg.eigh(iso.T @ c @ iso)
        first = None  # copy 1's basis, which later copies are aligned to
        order = np.argsort(-w, kind="stable")
        w, u = w[order], u[:, order]
        for k in range(irrep.multiplicity):
            sl = slice(k * irrep.dim, (k + 1) * irrep.dim)
            spread = np.ptp(w[sl]) / max(abs(w[sl]).max(), 1e-300)
            if spread > 1e-6:
                raise InternalError(f"eigenvalues of copy {k} of {irrep.label} are not degenerate: {w[sl]}")
            if k + 1 < irrep.multiplicity and abs(w[sl][-1] - w[(k + 1) * irrep.dim]) < TIE_GAP * abs(w[0]):
                warnings.warn(f"{cluster.name}: two copies of {irrep.label} have the same correlation "
                              "eigenvalue; their split is arbitrary", stacklevel=2)
            sub = iso @ u[:, sl]
            vecs = _canonical_basis_of_span(sub, irrep.dim)
            if k > 0:  # the same D(g) block as copy 1, so products of copies read as dot products
                vecs = _aligned(vecs, first, rep)
            else:
                first = vecs
            raw.append((float(w[sl].mean()), irrep.index, k + 1, irrep.label, irrep.dim, vecs))
    raw = _block_order(raw)
    blocks, cols, evals, start = [], [], [], 0
    for lam, _, copy, label, dim, vecs in raw:
        if lam <= 1e-14:
            raise ClusterError(f"{cluster.name}: the correlation matrix is singular in {label}",
                               fix="increase sigma")
        blocks.append(CCDBlock(label, dim, lam, start, start + dim, copy))
        cols.append(vecs)
        evals += [lam] * dim
        start += dim
    basis = np.concatenate(cols, axis=1)
    n_trunc = _truncation(cluster, blocks, truncate)
    return CCDTransform(cluster, rep, metric, sigma_a, r0, c, basis, np.array(evals), tuple(blocks), n_trunc)


def _aligned(vk: np.ndarray, v1: np.ndarray, rep: PairRepresentation) -> np.ndarray:
    """A basis of copy ``k``'s subspace (columns of ``vk``) in which the group acts by the same
    matrices as on copy 1 (``v1``): ``M = T v1`` for the equivariant map ``T = Σ_g Γ(g) vk E v1ᵀ
    Γ(g)ᵀ``, made orthonormal by its polar factor (still equivariant), with the sign/orientation
    closest to the canonical basis ``vk``."""
    from ..quasirandom import quasi_random_normal

    d = v1.shape[1]
    # T v1 = Σ_g Γ(g) vk E v1ᵀ Γ(g)ᵀ v1 with (Γᵀ v)[p] = v[g(p)] and (Γ y)[q] = y[g⁻¹(q)]
    s = np.einsum("md,gmc->gdc", v1, v1[rep.pair_perm], optimize=True)  # v1ᵀ Γ(g)ᵀ v1
    vk_inv = vk[rep.inverse_perm]  # (order, M, d): rows of Γ(g) vk
    best = None
    for e in (np.eye(d), quasi_random_normal(d, d)):
        m = np.einsum("gmd,de,gec->mc", vk_inv, e, s, optimize=True)
        if best is None or np.linalg.norm(m) > np.linalg.norm(best):
            best = m
    if np.linalg.norm(best) < 1e-8:
        raise InternalError("copies of an irrep are not related by an equivariant map")
    u, _, vt = np.linalg.svd(best, full_matrices=False)
    m = u @ vt  # polar factor: orthonormal columns, still equivariant
    if np.trace(m.T @ vk) < 0:  # real irreps of real type: the map is fixed up to a sign
        m = -m
    return m


def _block_order(raw: list) -> list:
    """Blocks by eigenvalue, largest first; eigenvalues within :data:`TIE_GAP` (relative) are
    tied and ordered by (irrep index in the character table, copy)."""
    raw = sorted(raw, key=lambda b: -b[0])
    out, k = [], 0
    while k < len(raw):
        j = k + 1
        while j < len(raw) and raw[j - 1][0] - raw[j][0] <= TIE_GAP * abs(raw[k][0]):
            j += 1
        out.extend(sorted(raw[k:j], key=lambda b: (b[1], b[2])))
        k = j
    return out


def near_degeneracies(t: "CCDTransform", gap: float = NEAR_DEGENERATE_GAP) -> list[tuple]:
    """Consecutive blocks (in CCD order) whose eigenvalues differ by less than ``gap``
    relative: ``[(block_a, block_b, relative_gap)]``.  Their order is a convention."""
    out = []
    for a, b in zip(t.blocks, t.blocks[1:]):
        rel = (a.eigenvalue - b.eigenvalue) / max(abs(a.eigenvalue), 1e-300)
        if rel < gap:
            out.append((a, b, float(rel)))
    return out


def _truncation(cluster: Cluster, blocks, truncate) -> int:
    m = blocks[-1].stop
    boundaries = [b.stop for b in blocks]
    if truncate is None or truncate is False:
        return m
    if truncate == "auto":
        k = min(degrees_of_freedom(cluster), m)
        if k in boundaries:
            return k
        k2 = next(b for b in boundaries if b >= k)
        warnings.warn(
            f"{cluster.name}: {k} = 3N-6 CCDs would split a degenerate block; keeping {k2} "
            "so the truncated set stays closed under the point group", stacklevel=3)
        return k2
    if isinstance(truncate, (int, np.integer)) and not isinstance(truncate, bool):
        if truncate < 1:
            raise SpecError(f"truncate must be ≥ 1, got {truncate}",
                            fix="use 'auto', a positive number of CCDs, or false to keep all")
        if truncate >= m:  # a cluster with fewer CCDs keeps them all
            return m
        if truncate not in boundaries:
            raise SpecError(
                f"truncate = {truncate} splits an irrep block of cluster {cluster.name!r}",
                why="a truncated set must be a union of whole invariant subspaces, or it is "
                "not closed under the point group and no invariant basis exists",
                fix=f"use one of the block boundaries {boundaries}, 'auto', or false",
            )
        return int(truncate)
    raise SpecError(f"truncate must be 'auto', an integer or false, got {truncate!r}")
