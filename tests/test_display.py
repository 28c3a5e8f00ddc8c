"""Readable forms of the invariants and `ccdgen inspect --order`: the irrep-product
(sector) basis, the compiled basis in pair metrics and expanded in the CCDs, exact
coefficients, LaTeX, the JSON report (C and λ at full precision, near-degeneracy notes)
and the command line.  (The display tests of tests/test_invariants.py moved here.)

Independent routes: invariance under every D(g) / D_T(g) evaluated directly, counts from
the Molien series (cycle types of Γ, eigenvalues of D_T) and from the textbook degree-2
rule, ranks of values at random points against the compiled (orbit-average) basis, the
pair-metric evaluation of the compiled functions, brute-force symmetric powers.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import ase.io
import numpy as np
import pytest
from conftest import basis, example, run_cli, transform
from ase import Atoms
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdgen.errors import InternalError
from ccdgen.invariants.cached import invariant_basis
from ccdgen.invariants.display import (basis_report, ccd_symbol_names, content_label, feature_names,
                                       latex_irrep, molien_table, number_text, orbit_ccd_coefficients,
                                       pair_form, poly_expr, sector_invariants, sector_rows, snap, snap_array)
from ccdgen.invariants.molien import molien_matrices, molien_permutation
from ccdgen.invariants.sectors import (block_monomials, bombieri_weights, complete_homogeneous, multidegrees,
                                       sector_basis, symmetric_power)
from ccdgen.pipeline import transforms
from ccdgen.report import cluster_report, near_degeneracy_notes
from ccdgen.symmetry.free import polyhedron

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"

CRYSTAL = ["pair1", "pair2", "pair3", "pair4", "pair5", "pair6", "pair7", "triplet", "PbBr6"]


@lru_cache(maxsize=None)
def sectors(case: str, degree: int, truncated: bool):
    """The sector basis built WITHOUT the expected counts (so nothing is checked inside
    against the Molien series: the tests below do that independently)."""
    t = transform(case)
    k = n_used(t, truncated)
    blocks = [b for b in t.blocks if b.stop <= k]
    return sector_basis(t.D()[:, :k, :k], [(b.start, b.stop) for b in blocks], degree)


def n_used(t, truncated: bool) -> int:
    return t.n_truncated if truncated else t.n_ccd


def random_eps(t, truncated: bool, n: int, rng, scale: float = 1.0):
    """Random pair metrics (n, M); for the truncated set on the kept subspace, with the
    kept CCDs ``eta_T`` they come from."""
    if truncated:
        k = t.n_truncated
        eta = scale * rng.standard_normal((n, k))
        return eta @ t.Q_inv[:, :k].T, eta
    eps = scale * rng.standard_normal((n, t.n_ccd))
    return eps, eps @ t.Q.T


def term_scale(sb, eta: np.ndarray) -> np.ndarray:
    """(n, count): ``max_i |η_i|^d · Σ |c|`` per sector invariant — the natural size of its
    value at η, which rounding errors of η itself (e.g. of ``D(g) η``) are relative to."""
    top = np.abs(eta).max(axis=1, keepdims=True)
    return np.concatenate([top ** s.degree * np.abs(s.coefficients).sum(axis=1)[None, :] for s in sb.sectors],
                          axis=1)


def rank(a: np.ndarray, tol: float = 1e-9) -> int:
    a = a / np.maximum(np.linalg.norm(a, axis=0), 1e-300)
    s = np.linalg.svd(a, compute_uv=False)
    return int(np.sum(s > tol * s[0])) if len(s) else 0


SECTOR_CASES = [("free:tetrahedron", 4, False), ("free:octahedron", 6, False), ("free:octahedron", 6, True),
                ("free:cube", 4, False), ("free:cube", 4, True), ("free:trigonal_bipyramid", 4, False),
                ("free:trigonal_bipyramid", 4, True), ("free:icosahedron", 3, False),
                ("free:icosahedron", 3, True), ("free:square", 4, False)] + \
               [(f"CsPbBr3:{n}", 4, tr) for n in ("pair1", "pair4", "triplet", "PbBr6") for tr in (False, True)]


# ------------------------------------------------------------------ sector basis: counts
@pytest.mark.parametrize("case,degree,truncated", SECTOR_CASES)
def test_sector_counts_equal_molien(case, degree, truncated):
    t = transform(case)
    sb = sectors(case, degree, truncated)
    if truncated and t.n_truncated < t.n_ccd:
        k = t.n_truncated
        m = molien_matrices(t.D()[:, :k, :k], degree)  # eigenvalues of D_T(g)
    else:
        m = molien_permutation(t.rep.pair_perm, degree)  # cycle types of Γ, exact
    assert sb.per_degree == {d: m[d] for d in range(1, degree + 1)}
    for d in range(1, degree + 1):
        assert sum(s.n_invariants for s in sb.of_degree(d)) == m[d]
    # one entry per non-empty multidegree, in degree then descending-lexicographic order
    keys = [(s.degree, tuple(-e for e in s.multidegree)) for s in sb.sectors]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert all(sum(s.multidegree) == s.degree and s.n_invariants > 0 for s in sb.sectors)


def test_textbook_counts():
    """Degree 1: one invariant per copy of the trivial irrep; degree 2: Σ m(m+1)/2 over the
    (real-type) irreps with multiplicity m — the sums of squares and the products of copies."""
    tet = sectors("free:tetrahedron", 2, False)
    assert tet.per_degree == {1: 1, 2: 3}
    assert {content_label(transform("free:tetrahedron").blocks, s.multidegree) for s in tet.of_degree(2)} == \
        {"A1²", "E²", "T2²"}
    for case in ("free:octahedron", "free:cube", "free:icosahedron", "free:trigonal_bipyramid", "CsPbBr3:triplet"):
        t = transform(case)
        mult = {i.label: i.multiplicity for i in t.rep.irreps}
        sb = sectors(case, 2, False)
        trivial = [lab for lab in mult if lab in ("A1g", "A1", "Ag", "A1'", "A")]
        assert sb.per_degree[1] == sum(mult[lab] for lab in trivial), case
        assert sb.per_degree[2] == sum(m * (m + 1) // 2 for m in mult.values()), case
    oct_ = sectors("free:octahedron", 2, False)
    assert oct_.per_degree == {1: 2, 2: 9}  # 2A1g + 2Eg + T1u + T2g + T2u: 3 + 3 + 1 + 1 + 1


def test_example_spec_clusters_full_and_truncated():
    for t in transforms(example()):
        for truncated in (False, True):
            sb = sector_invariants(t, 3, truncated)  # checks against the Molien series inside
            case = f"CsPbBr3:{t.cluster.name}"
            k = n_used(t, truncated)
            m = molien_matrices(t.D()[:, :k, :k], 3)  # from the CCD matrices, not Γ
            assert sb.per_degree == {d: m[d] for d in (1, 2, 3)}, case
            assert sb.per_degree == basis(case, 3, truncated).per_degree


def test_a_wrong_expected_count_is_an_internal_error():
    t = transform("free:tetrahedron")
    with pytest.raises(InternalError, match="Molien"):
        sector_invariants(t, 2, False, expected={1: 1, 2: 4})


# ------------------------------------------------------------------ sector basis: invariance
@pytest.mark.parametrize("case,degree,truncated", SECTOR_CASES)
def test_sector_invariants_are_invariant_under_every_group_element(case, degree, truncated):
    t = transform(case)
    sb = sectors(case, degree, truncated)
    k = sb.n_vars
    d = t.D()[:, :k, :k]
    rng = np.random.default_rng(3)
    eta = rng.standard_normal((6, k))
    eta /= np.linalg.norm(eta, axis=1, keepdims=True)
    f0 = sb.evaluate(eta)
    scale = term_scale(sb, eta)
    worst = max(float((np.abs(sb.evaluate(eta @ d[g].T) - f0) / scale).max()) for g in range(len(d)))
    assert worst <= 1e-12, worst


SLOW_SPAN = {("free:cube", 4, False), ("free:icosahedron", 3, False)}  # many pairs, full set: seconds each


@pytest.mark.parametrize("case,degree,truncated",
                         [pytest.param(*c, marks=[pytest.mark.slow] if c in SLOW_SPAN else [])
                          for c in SECTOR_CASES if c[0] != "free:octahedron"]
                         + [("free:octahedron", 5, False), ("free:octahedron", 5, True)])
def test_sectors_are_independent_and_span_the_compiled_basis(case, degree, truncated):
    """Per degree: the sector invariants are independent, and together with the compiled
    orbit averages of that degree the rank does not grow (same space)."""
    t = transform(case)
    sb = sectors(case, degree, truncated)
    b = basis(case, degree, truncated)
    rng = np.random.default_rng(degree)
    eps, eta = random_eps(t, truncated, max(b.per_degree.values()) + 40, rng)
    values = b.evaluate(eps)
    for d in range(1, degree + 1):
        m = b.per_degree[d]
        psi = sb.evaluate(eta, degree=d)
        phi = values[:, b.degrees == d]
        assert rank(psi) == rank(phi) == m == psi.shape[1], (d, rank(psi), rank(phi), m)
        assert rank(np.concatenate([psi, phi], axis=1)) == m, d


def test_sector_basis_is_deterministic():
    a = sectors("free:octahedron", 4, False)
    t = transform("free:octahedron")
    b = sector_basis(t.D(), [(x.start, x.stop) for x in t.blocks], 4)
    assert [s.multidegree for s in a.sectors] == [s.multidegree for s in b.sectors]
    for x, y in zip(a.sectors, b.sectors):
        np.testing.assert_array_equal(x.coefficients, y.coefficients)
        np.testing.assert_array_equal(x.monomials, y.monomials)


@pytest.mark.parametrize("case,degree,truncated", [("free:octahedron", 4, True), ("free:icosahedron", 3, True),
                                                   ("free:cube", 3, False)])
def test_dense_and_applied_reynolds_agree(case, degree, truncated, monkeypatch):
    """Two routes to each sector: the projector formed densely (small sectors) and the
    projector applied factor by factor to generic vectors (large ones) give the same RREF."""
    from ccdgen.invariants import sectors as sectors_mod

    dense = sectors(case, degree, truncated)
    monkeypatch.setattr(sectors_mod, "DENSE_SECTOR_DIM", 0)
    t = transform(case)
    k = n_used(t, truncated)
    applied = sector_basis(t.D()[:, :k, :k], dense.bounds, degree)
    assert [s.multidegree for s in applied.sectors] == [s.multidegree for s in dense.sectors]
    for a, b in zip(applied.sectors, dense.sectors):
        np.testing.assert_array_equal(a.pivots, b.pivots)
        np.testing.assert_allclose(a.coefficients, b.coefficients, atol=1e-12)


def test_rref_form():
    """Each invariant has coefficient 1 on its own leading monomial, which no other
    invariant of the sector contains, and nothing before it."""
    for s in sectors("free:octahedron", 4, True).sectors:
        c = s.coefficients
        np.testing.assert_array_equal(c[:, s.pivots], np.eye(s.n_invariants))
        assert list(s.pivots) == sorted(s.pivots)
        for r, p in enumerate(s.pivots):
            assert np.all(c[r, :p] == 0)


# ------------------------------------------------------------------ degree 2 of the octahedron
def test_degree_2_of_the_octahedron_is_sums_of_squares_and_products_of_copies():
    t = transform("free:octahedron")
    sb = sectors("free:octahedron", 2, False)
    names = [(b.label, b.copy) for b in t.blocks]
    blocks = t.blocks
    assert sb.per_degree[2] == molien_permutation(t.rep.pair_perm, 2)[2] == 9
    seen = set()
    for s in sb.of_degree(2):
        used = [i for i, e in enumerate(s.multidegree) if e]
        assert s.n_invariants == 1
        row = s.coefficients[0]
        terms = {tuple(m): c for m, c in zip(s.monomials.tolist(), row) if c != 0}
        if len(used) == 1:  # Σ_k η_k² over the block, coefficient 1
            b = blocks[used[0]]
            assert terms == {(i, i): 1.0 for i in range(b.start, b.stop)}
        else:  # two copies of one irrep: η_1ᵀ B η_2 with B an intertwiner (Schur)
            b1, b2 = (blocks[i] for i in used)
            assert b1.label == b2.label and b1.copy != b2.copy
            bmat = np.zeros((b1.dim, b2.dim))
            for (i, j), c in terms.items():
                bmat[i - b1.start, j - b2.start] = c
            # independent route: Reynolds average of the bilinear form e_1 e_1ᵀ over the group
            d = t.D()
            a1, a2 = d[:, b1.start:b1.stop, b1.start:b1.stop], d[:, b2.start:b2.stop, b2.start:b2.stop]
            e = np.zeros((b1.dim, b2.dim))
            e[0, 0] = 1.0
            ref = np.einsum("gia,ab,gjb->ij", a1, e, a2) / len(d)
            np.testing.assert_allclose(bmat, ref / ref[0, 0], atol=1e-12)
            np.testing.assert_allclose(bmat @ bmat.T, (bmat @ bmat.T)[0, 0] * np.eye(b1.dim), atol=1e-12)
            assert bmat[0, 0] == 1.0 and np.all(np.isin(np.abs(np.round(bmat, 12)), [0.0, 1.0]))
        seen.add(tuple(names[i] for i in used))
    copies = {lab: [c for (l2, c) in names if l2 == lab] for lab, _ in names}
    expected = {((lab, c),) for lab, c in names}  # the squares
    expected |= {((lab, c1), (lab, c2)) for lab, cs in copies.items() for c1, c2 in itertools.combinations(cs, 2)}
    assert seen == expected  # A1g(1)·A1g(2), Eg(1)·Eg(2) and the seven squares
    rows = sector_rows(t, sector_invariants(t, 2, False), "pretty")
    squares = {r["content"]: r for r in rows if r["degree"] == 2}
    assert squares["T1u²"]["ccd"] == "η[T1u,1]² + η[T1u,2]² + η[T1u,3]²"
    assert squares["A1g(1)·A1g(2)"]["ccd"] == "η[A1g(1),1]·η[A1g(2),1]"


# ------------------------------------------------------------------ numeric building blocks
def _random_orthogonal(rng, n, order):
    return np.stack([np.linalg.qr(rng.standard_normal((n, n)))[0] for _ in range(order)])


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 4), e=st.integers(0, 4), seed=st.integers(0, 2**31 - 1))
def test_symmetric_power_brute_force(n, e, seed):
    """Sym^e(A) against direct expansion of Π_j (A x)_{α_j} at random x, and orthogonal in
    the Bombieri scaling; its trace equals h_e from Newton's identities."""
    rng = np.random.default_rng(seed)
    a = _random_orthogonal(rng, n, 2)
    s = symmetric_power(a, e)
    mons = block_monomials(n, e)
    x = rng.standard_normal((5, n))
    ax = np.einsum("gij,pj->gpi", a, x)  # (2, 5, n): A x
    lhs = np.prod(ax[:, :, mons], axis=3)  # x^α∘A  (2, 5, N)
    xm = np.prod(x[:, mons], axis=2)  # (5, N)
    np.testing.assert_allclose(lhs, np.einsum("pb,gba->gpa", xm, s), atol=1e-12)
    w = bombieri_weights(n, e)
    sh = s * (w[None, None, :] / w[None, :, None])
    np.testing.assert_allclose(sh @ np.swapaxes(sh, 1, 2), np.broadcast_to(np.eye(len(w)), sh.shape), atol=1e-12)
    h = complete_homogeneous(a, max(e, 1))
    np.testing.assert_allclose(np.trace(s, axis1=1, axis2=2), h[e], atol=1e-10)
    # h_e = Σ over multisets of eigenvalues (brute force)
    lam = np.linalg.eigvals(a[0])
    brute = sum(np.prod(lam[list(c)]) for c in itertools.combinations_with_replacement(range(n), e))
    assert abs(brute - h[e][0]) < 1e-10


def test_multidegrees():
    m = multidegrees(4, 3)
    assert len(m) == math.comb(6, 3) and np.all(m.sum(axis=1) == 3)
    assert [tuple(r) for r in m] == sorted({tuple(r) for r in m}, reverse=True)
    assert tuple(m[0]) == (3, 0, 0, 0) and tuple(m[-1]) == (0, 0, 0, 3)


# ------------------------------------------------------------------ exact numbers
@pytest.mark.parametrize("x,text", [(1.0, "1"), (-0.5, "-1/2"), (math.sqrt(3) / 2, "√3/2"),
                                    (-2 * math.sqrt(3) / 3, "-2√3/3"), (math.sqrt(2), "√2"),
                                    (6.0, "6"), ((1 + math.sqrt(5)) / 4, "(1+√5)/4"),
                                    ((3 - math.sqrt(5)) / 2, "(3-√5)/2"), (1 / math.sqrt(6), "√6/6")])
def test_snap_recognises_small_exact_numbers(x, text):
    assert number_text(x) == text
    s = snap(x * (1 + 3e-16))
    assert s is not None and s[1] == text and abs(s[0] - x) <= 1e-15 * max(1, abs(x))


def test_snap_leaves_other_numbers_alone():
    assert snap(0.123456789) is None
    assert snap(math.pi) is None
    assert snap(0.5 + 1e-9) is None  # outside the 1e-12 tolerance
    assert number_text(0.123456789) == "0.123457"
    assert number_text(1.5e-7, "latex") == "1.5 \\cdot 10^{-7}"
    vals = np.array([0.5, math.pi, -math.sqrt(2) / 2, 0.0])
    s = snap_array(vals)
    assert s["kind"].tolist() == [1, 0, 1, 3]
    assert s["value"][1] == math.pi


# ------------------------------------------------------------------ the compiled basis in CCDs
SYMBOL = re.compile(r"^η\[[A-Za-z0-9]+(\(\d\))?,\d\]$")


@pytest.mark.parametrize("case,degree,truncated", [("free:octahedron", 4, False), ("free:octahedron", 4, True),
                                                   ("free:octahedron", 5, True), ("CsPbBr3:triplet", 3, False),
                                                   ("free:tetrahedron", 4, False), ("free:cube", 3, True)])
def test_orbit_expansion_in_ccds_is_the_same_function(case, degree, truncated):
    """The compiled functions expanded in η (fitted numerically) against their evaluation in
    pair metrics at eps = Q⁻¹ η."""
    t = transform(case)
    b = basis(case, degree, truncated)
    k = n_used(t, truncated)
    syms = ccd_symbol_names(t, k)
    assert all(SYMBOL.match(s) for s in syms), syms
    sb = sector_invariants(t, degree, truncated)
    rng = np.random.default_rng(0)
    eta = rng.standard_normal((5, k)) * 0.3
    ref = b.evaluate(eta @ t.Q_inv[:, :k].T)
    for d in range(1, degree + 1):
        fs = np.flatnonzero(b.degrees == d)
        for f, coeffs in zip(fs, orbit_ccd_coefficients(b, t, sb, d)):
            assert all(len(idx) == d for idx in coeffs)
            val = sum(c * np.prod(eta[:, list(idx)], axis=1) for idx, c in coeffs.items())
            scale = sum(abs(c) * np.abs(np.prod(eta[:, list(idx)], axis=1)) for idx, c in coeffs.items())
            assert np.all(np.abs(val - ref[:, f]) <= 1e-9 * scale + 1e-15), (d, f)


def test_basis_report_json():
    t = transform("free:octahedron")
    b = basis("free:octahedron", 3, True)
    rep = json.loads(json.dumps(basis_report(b, t, "json"), ensure_ascii=False))
    assert rep["ccd_set"] == "truncated" and rep["n_ccd_used"] == t.n_truncated
    assert list(rep["per_degree"]) == list(rep["molien"]) == ["1", "2", "3"]
    assert rep["per_degree"] == rep["molien"] == {str(d): b.molien[d] for d in (1, 2, 3)}
    assert rep["count"] == b.n_features == len(rep["functions"])
    names = [f["name"] for f in rep["functions"]]
    assert names == feature_names(b, "octahedron") and len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names)
    assert [f["degree"] for f in rep["functions"]] == b.degrees.tolist()
    assert all("ccd" not in f for f in rep["functions"])
    full = basis_report(basis("free:octahedron", 2, False), t, functions=False)
    assert full["ccd_set"] == "full" and "functions" not in full
    assert molien_table(b) == [(d, b.per_degree[d], b.molien[d]) for d in (1, 2, 3)]
    # with the expansion in CCDs: the coefficients are those of orbit_ccd_coefficients
    rep = basis_report(b, t, "json", in_ccd=True)
    sb = sector_invariants(t, 3, True)
    plain = ccd_symbol_names(t, t.n_truncated, "plain")
    for d in (1, 2, 3):
        fs = np.flatnonzero(b.degrees == d)
        for f, coeffs in zip(fs, orbit_ccd_coefficients(b, t, sb, d)):
            got = rep["functions"][f]["ccd_coefficients"]
            assert len(got) == len(coeffs) and "η[" in rep["functions"][f]["ccd"]
            for idx, c in coeffs.items():
                key = "*".join(plain[i] + (f"^{idx.count(i)}" if idx.count(i) > 1 else "")
                               for i in dict.fromkeys(idx))
                assert got[key] == c


def test_pair_form():
    t = transform("free:octahedron")
    b = basis("free:octahedron", 3, False)
    for f in range(b.n_features):
        size = int(b.orbit_sizes[f])
        short = pair_form(b, t, f)
        assert short.startswith("R[") and f"orbit of {size})" in short
        long = pair_form(b, t, f, expand=True)
        assert long.startswith(f"(1/{size})·(")
        assert len(long[len(f"(1/{size})·("):-1].split(" + ")) == size
        assert "ε(" in long
    tex = pair_form(b, t, b.n_features - 1, style="latex", expand=True)
    assert "\\varepsilon_" in tex and "\\frac{1}" in tex
    tb = basis("free:octahedron", 2, True)
    assert "projected" in pair_form(tb, t, 0)


def test_sector_rows_json_and_sympy():
    """JSON rows: coefficients by monomial name reproduce the sector invariant (also via
    the SymPy expression); the display string names every monomial."""
    t = transform("free:octahedron")
    sb = sector_invariants(t, 3, True)
    rows = json.loads(json.dumps(sector_rows(t, sb, "pretty"), ensure_ascii=False))
    assert len(rows) == sb.count and [r["degree"] for r in rows] == sorted(r["degree"] for r in rows)
    rng = np.random.default_rng(1)
    eta = rng.standard_normal((4, sb.n_vars))
    vals = sb.evaluate(eta)
    import sympy as sp

    syms = [sp.Symbol(s) for s in ccd_symbol_names(t, sb.n_vars)]
    for j, r in enumerate(rows):
        assert len(r["coefficients"]) == len(r["monomials"]) and r["ccd"].count("η[") >= len(r["monomials"])
        got = sum(c * np.prod(eta[:, m], axis=1) for m, c in zip(r["monomials"], r["coefficients"].values()))
        np.testing.assert_allclose(got, vals[:, j], rtol=1e-12, atol=1e-14)
        expr = poly_expr({tuple(m): c for m, c in zip(r["monomials"], r["coefficients"].values())}, t, sb.n_vars)
        fn = sp.lambdify(syms, expr, "numpy")
        np.testing.assert_allclose(fn(*eta.T) * np.ones(4), vals[:, j], rtol=1e-12, atol=1e-14)
        assert 1 <= r["index"] <= r["of"]


def test_latex_output():
    t = transform("free:octahedron")
    sb = sector_invariants(t, 3, False)
    rows = sector_rows(t, sb, "latex")
    assert all("\\eta" in r["ccd"] for r in rows)
    assert any("T_{1u}" in r["content_latex"] for r in rows)
    assert any("\\sqrt{3}" in r["ccd"] for r in rows)
    assert latex_irrep("A1g") == "A_{1g}" and latex_irrep("E'") == "E'" and latex_irrep("Eg") == "E_{g}"
    # the strings are valid math: matplotlib's mathtext parses them (double superscripts fail)
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("path")
    picked = [r for r in rows if r["degree"] == 2] + [r for r in rows if r["degree"] == 3][:6]
    for r in picked:
        parser.parse(f"${r['ccd']}$")
        parser.parse(f"${r['content_latex']}$")


def test_high_degree_is_shown():
    """Any degree: the sector listing covers degree 5 and 6 (no cap)."""
    t = transform("free:octahedron")
    sb = sector_invariants(t, 6, False)
    rows = sector_rows(t, sb)
    assert [sum(1 for r in rows if r["degree"] == d) for d in (5, 6)] == [346, 1042] == \
        molien_permutation(t.rep.pair_perm, 6)[5:]
    rep = basis_report(basis("free:triangle", 5, False), transform("free:triangle"), in_ccd=True)
    assert all(fn["ccd"] and "η[" in fn["ccd"] for fn in rep["functions"])


# ------------------------------------------------------------------ JSON report
def test_json_correlation_and_eigenvalues_at_full_precision():
    for case in ("free:octahedron", "CsPbBr3:triplet", "free:icosahedron"):
        t = transform(case)
        doc = json.loads(json.dumps(cluster_report(t)))
        c = np.array(doc["ccd"]["correlation"])
        assert c.shape == (t.n_ccd, t.n_ccd)
        np.testing.assert_array_equal(c, c.T)
        np.testing.assert_array_equal(c, t.correlation)  # bit for bit
        assert doc["ccd"]["eigenvalues"] == t.eigenvalues.tolist()
        assert [b["eigenvalue"] for b in doc["ccd"]["blocks"]] == [b.eigenvalue for b in t.blocks]
        assert isinstance(doc["ccd"]["near_degeneracies"], list)


def _blk(label, copy, lam, start, dim):
    return SimpleNamespace(label=label, copy=copy, eigenvalue=lam, start=start, stop=start + dim, dim=dim)


def test_near_degeneracy_notes():
    blocks = (_blk("A1g", 1, 0.1, 0, 1), _blk("Eg", 1, 0.042, 1, 2), _blk("T2g", 0, 0.04199, 3, 3),
              _blk("T2u", 0, 0.02, 6, 3), _blk("Eg", 2, 0.0199999, 9, 2))
    notes = near_degeneracy_notes(SimpleNamespace(blocks=blocks, n_truncated=9))
    assert [n["labels"] for n in notes] == [["Eg(1)", "T2g"], ["T2u", "Eg(2)"]]
    assert [n["blocks"] for n in notes] == [[1, 2], [3, 4]]
    assert notes[0]["relative_gap"] == pytest.approx((0.042 - 0.04199) / 0.042)
    assert "convention" in notes[0]["note"] and "Eg(1) and T2g differ by" in notes[0]["note"]
    assert notes[1]["truncation_between"] and not notes[0]["truncation_between"]
    assert "truncated set ends between them" in notes[1]["note"]
    far = (_blk("A1g", 0, 0.1, 0, 1), _blk("Eg", 0, 0.09, 1, 2))
    assert near_degeneracy_notes(SimpleNamespace(blocks=far, n_truncated=3)) == []


# ------------------------------------------------------------------ CLI
def cli(*args, timeout=300, ok=True):
    r = run_cli(*args, timeout=timeout, check=ok)
    return r if not ok else r.stdout


def write_xyz(directory: Path, name: str, shape: str) -> Path:
    species, x = polyhedron(shape, radius=2.0)
    path = directory / f"{name}.xyz"
    ase.io.write(path, Atoms(["C"] * len(x), positions=x + [1.0, 2.0, 3.0]), format="xyz")
    return path


def test_cli_inspect_order_json():
    doc = json.loads(cli("inspect", EXAMPLE, "--order", "2", "--json"))
    names = [c["name"] for c in doc["clusters"]]
    assert names == CRYSTAL
    for c in doc["clusters"]:
        inv = c["invariants"]
        assert inv["per_degree"] == inv["molien"] == inv["irrep_basis_per_degree"], c["name"]
        assert set(inv["per_degree"]) == {"1", "2"}
        assert inv["count"] == len(inv["irrep_basis"]) == sum(inv["per_degree"].values())
        assert "functions" not in inv
        b = invariant_basis(transform(f"CsPbBr3:{c['name']}"), 2)
        assert inv["per_degree"] == {str(d): n for d, n in b.per_degree.items()}
        for row in inv["irrep_basis"]:
            assert set(row) >= {"degree", "content", "coefficients", "monomials", "ccd"}
    pbbr6 = doc["clusters"][-1]["invariants"]
    assert pbbr6["ccd_set"] == "truncated" and pbbr6["per_degree"] == {"1": 1, "2": 5}
    assert any(row["content"] == "T1u²" and row["ccd"] == "η[T1u,1]² + η[T1u,2]² + η[T1u,3]²"
               for row in pbbr6["irrep_basis"])
    orbits = json.loads(cli("inspect", EXAMPLE, "--order", "2", "--json", "--basis", "orbits",
                                "--cluster", "PbBr6"))["clusters"][0]["invariants"]
    assert orbits["count"] == len(orbits["functions"]) == 6
    assert orbits["functions"][0]["name"] == "PbBr6_d1_1" and "R[" in orbits["functions"][0]["pairs"]


def test_cli_inspect_order_text():
    out = cli("inspect", EXAMPLE, "--order", "3", "--cluster", "PbBr6")
    assert "d1: 1/1" in out and "d2: 5/5" in out and "d3: 14/14" in out
    assert "invariants by irrep content" in out
    assert "d2 [T1u²] = η[T1u,1]² + η[T1u,2]² + η[T1u,3]²" in out
    assert len(re.findall(r"^    d3 \[", out, flags=re.M)) == 14
    assert "PbBr6_d1_1" not in out


def test_cli_inspect_order_latex():
    out = cli("inspect", EXAMPLE, "--order", "2", "--format", "latex", "--cluster", "PbBr6")
    assert "\\eta_{T_{1u},1}^{2} + \\eta_{T_{1u},2}^{2} + \\eta_{T_{1u},3}^{2}" in out
    assert "2 & $T_{1u}^{2}$ & $" in out
    assert "d1: 1/1" in out and "d2: 5/5" in out
    out = cli("inspect", EXAMPLE, "--order", "2", "--format", "latex", "--cluster", "PbBr6",
                  "--basis", "orbits")
    assert "PbBr6_d1_1 = " in out and "PbBr6_d2_5 = " in out and "\\mathcal{R}" in out


def test_cli_inspect_order_in_pairs():
    out = cli("inspect", EXAMPLE, "--order", "2", "--in", "pairs", "--expand", "--cluster", "triplet",
                  "--cluster", "pair1")
    for name in ("triplet_d1_1", "triplet_d2_4", "pair1_d1_1", "pair1_d2_1"):
        assert f"{name} = " in out
    assert "ε(" in out and "(1/" in out
    out = cli("inspect", EXAMPLE, "--order", "2", "--basis", "orbits", "--cluster", "triplet")
    assert "triplet_d2_4 = R[" in out and "(orbit of" in out
    out = cli("inspect", EXAMPLE, "--order", "2", "--basis", "orbits", "--in", "ccd", "--cluster", "triplet")
    assert "triplet_d2_4 = " in out and "η[" in out


def test_cli_bad_view_combinations():
    for args in (("--basis", "irreps", "--in", "pairs"), ("--basis", "irreps", "--expand"),
                 ("--basis", "orbits", "--in", "ccd", "--expand")):
        r = cli("inspect", EXAMPLE, "--order", "2", "--cluster", "triplet", *args, ok=False)
        assert r.returncode == 2 and "Fix:" in r.stderr and "Traceback" not in r.stderr, args


def test_cli_irrep_basis():
    inv = json.loads(cli("inspect", EXAMPLE, "--order", "2", "--basis", "irreps", "--cluster", "PbBr6",
                             "--json"))["clusters"][0]["invariants"]
    assert [row["degree"] for row in inv["irrep_basis"]].count(2) == inv["per_degree"]["2"]
    row = next(r for r in inv["irrep_basis"] if r["content"] == "T1u²")
    assert row["coefficients"] == {"eta[T1u,1]^2": 1.0, "eta[T1u,2]^2": 1.0, "eta[T1u,3]^2": 1.0}


def test_cli_near_degeneracy_note_in_text_and_json():
    """Whatever the transform gives, the notes in text and JSON agree with the blocks."""
    t = transform("CsPbBr3:PbBr6")
    doc = json.loads(cli("inspect", EXAMPLE, "--json", "--cluster", "PbBr6"))
    notes = doc["clusters"][0]["ccd"]["near_degeneracies"]
    ev = [b.eigenvalue for b in t.blocks]
    expected = [i for i in range(len(ev) - 1) if (ev[i] - ev[i + 1]) / ev[i] < 1e-3]
    assert [n["blocks"][0] for n in notes] == expected
    text = cli("inspect", EXAMPLE, "--cluster", "PbBr6")
    assert text.count("differ by") == len(notes)


CLI_CALLS = [("octahedron", ["examples/clusters/octahedron.xyz", "--order", "6", "--truncate", "none"]),
             ("cube", ["{cube}", "--order", "4"]),
             ("icosahedron", ["examples/clusters/icosahedron.xyz", "--order", "3"])]


@pytest.mark.parametrize("name,args", CLI_CALLS)
def test_cli_inspect_finishes(name, args, tmp_path):
    """Regression guard for the speed of `inspect --order` (cold cache, generous limit;
    the timings themselves are measured in benchmarks, not here)."""
    cube = write_xyz(tmp_path, "cube", "cube")
    args = [a.format(cube=cube) for a in args]
    env_cache = tmp_path / "cache"
    r = subprocess.run([sys.executable, "-m", "ccdgen.cli.main", "inspect", *args, "--json"], cwd=REPO,
                       capture_output=True, text=True, timeout=60,
                       env={**os.environ, "CCDGEN_CACHE_DIR": str(env_cache)})
    assert r.returncode == 0, r.stderr
    (c,) = json.loads(r.stdout)["clusters"]
    inv = c["invariants"]
    assert inv["per_degree"] == inv["molien"] == inv["irrep_basis_per_degree"]
    assert len(inv["irrep_basis"]) == inv["count"]
