"""SymPy front end: the CCD basis ``V`` in exact arithmetic where symmetry fixes it.

For an irrep that occurs once in Γ, its isotypic subspace is fixed by the group alone:
the projector ``P = (d_c/|G|) Σ_g χ(g) Γ(g)`` has exact entries (integers, or radicals such
as (1+√5)/2 for Ih) and the canonical basis — Gram–Schmidt of ``P e_1, P e_2, ...`` — is
exact (square roots of rationals).  ``Q = Λ^-1/2 Vᵀ`` then has exact rows up to the
numeric scale ``λ^-1/2`` from the correlation matrix.

Where an irrep repeats, the split into copies comes from the eigenvectors of ``C``
(Appendix A) and depends on sigma and the metric: those rows are reported numerically
(``None`` here).
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from .transform import CCDTransform

_RADICALS = [sp.sqrt(2), sp.sqrt(3), sp.sqrt(5)]


def exact_number(x: float) -> sp.Expr | None:
    """A character value as an exact number, or None if it is not in Q(√2, √3, √5)."""
    if abs(x - round(x)) < 1e-9:
        return sp.Integer(int(round(x)))
    e = sp.nsimplify(float(x), _RADICALS, tolerance=1e-10, rational=False)
    return e if abs(float(e) - x) < 1e-9 else None


def exact_block_rows(t: CCDTransform) -> list:
    """Per block of ``t``: an exact SymPy Matrix (dim x n_pairs) of rows of ``Vᵀ``, or None.

    The exact rows agree with ``t.basis`` (checked; a mismatch raises AssertionError-free
    ``ValueError`` because it would be a bug).
    """
    group = t.cluster.group
    table = group.character_table
    counts = {}
    for b in t.blocks:
        counts[b.label] = counts.get(b.label, 0) + 1
    gammas = t.rep.pair_perm
    m = t.rep.n_pairs
    out = []
    for b in t.blocks:
        if counts[b.label] > 1:
            out.append(None)
            continue
        r = table.labels.index(b.label)
        chi = table.real_characters[r][group.class_of]
        exact_chi = [exact_number(c) for c in chi]
        if any(c is None for c in exact_chi):
            out.append(None)
            continue
        d_c = sp.Rational(int(table.real_dims[r]), len(table.real_of_complex[r]))
        proj = sp.zeros(m, m)
        for g in range(group.order):
            for p in range(m):
                proj[gammas[g, p], p] += exact_chi[g]
        proj = proj * d_c / group.order
        vecs = []
        for p in range(m):
            v = proj[:, p]
            for w in vecs:
                v = v - (w.dot(v)) * w
            v = v.applyfunc(sp.radsimp)
            nrm2 = sp.radsimp(sp.expand(v.dot(v)))
            if nrm2 != 0:
                vecs.append((v / sp.sqrt(nrm2)).applyfunc(sp.radsimp))
                if len(vecs) == b.dim:
                    break
        rows = sp.Matrix.hstack(*vecs).T
        num = np.array(rows.evalf(), dtype=float)
        if not np.allclose(num, t.basis[:, b.start:b.stop].T, atol=1e-8):
            raise ValueError(f"exact and numeric bases of {b.label} differ (bug in ccdgen)")
        out.append(rows)
    return out


def exact_Q(t: CCDTransform) -> sp.Matrix:
    """``Q`` as a SymPy matrix: exact rows times ``λ^-1/2`` (a Float) where symmetry fixes
    them, Float rows elsewhere."""
    rows = []
    for b, ex in zip(t.blocks, exact_block_rows(t)):
        scale = sp.Float(1 / np.sqrt(b.eigenvalue), 12)
        if ex is None:
            ex = sp.Matrix(np.round(t.basis[:, b.start:b.stop].T, 12).tolist())
        rows.append(scale * ex)
    return sp.Matrix.vstack(*rows)
