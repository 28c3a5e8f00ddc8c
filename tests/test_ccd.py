"""The CCD transform (Eqs. 6-11, Appendix A): representation, Q, D(g), invariance,
equivariance, Jacobian, modes, exact SymPy rows."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ccdgen.ccd.evaluate import ccd_jacobian, ccds, modes
from ccdgen.ccd.exact import exact_block_rows, exact_Q
from ccdgen.ccd.metrics import METRICS
from ccdgen.ccd.representation import PairRepresentation
from ccdgen.ccd.transform import build_transform, degrees_of_freedom
from ccdgen.clusters import free_cluster
from ccdgen.pipeline import load
from ccdgen.symmetry.free import polyhedron
from ccdgen.testing import (assert_numeric_gradient, assert_point_group_equivariant,
                            assert_rigid_invariant)

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"

FREE = ["tetrahedron", "octahedron", "trigonal_bipyramid", "square", "triangle"]
CRYSTAL = ["pair1", "pair2", "pair3", "pair4", "pair5", "pair6", "pair7", "triplet", "PbBr6"]
CASES = [f"free:{n}" for n in FREE] + [f"CsPbBr3:{n}" for n in CRYSTAL]
METRIC_NAMES = sorted(METRICS)


@lru_cache(maxsize=None)
def example():
    return load(EXAMPLE)


@lru_cache(maxsize=None)
def cluster(case: str):
    src, name = case.split(":")
    if src == "free":
        species, x = polyhedron(name, radius=2.0)
        return free_cluster(x + np.array([0.4, -1.1, 2.3]), species, name)
    return {c.name: c for c in example().clusters}[name]


@lru_cache(maxsize=None)
def transform(case: str, metric: str = "exp"):
    return build_transform(cluster(case), metric, 0.15)


def deformed(case: str, seed: int = 0, n: int = 4, amplitude: float = 0.12) -> np.ndarray:
    """(n, n_sites, 3) random deformations of the reference cluster, Å."""
    c = cluster(case)
    rng = np.random.default_rng(seed)
    r_min = transform(case).r0.min()
    return c.positions + amplitude * r_min * rng.standard_normal((n, c.n_sites, 3))


def irrep_character(t, label: str) -> np.ndarray:
    g = t.cluster.group
    ct = g.character_table
    return ct.real_characters[ct.labels.index(label)][g.class_of]


ALL = [(c, m) for c in CASES for m in METRIC_NAMES]


# ------------------------------------------------------------------ representation
def test_tetrahedron_pair_representation():
    t = transform("free:tetrahedron")
    assert {i.label: i.multiplicity for i in t.rep.irreps} == {"A1": 1, "E": 1, "T2": 1}
    assert t.n_ccd == 6 and t.n_truncated == 6
    assert sorted(b.label for b in t.blocks) == ["A1", "E", "T2"]


@pytest.mark.parametrize("case", ["free:octahedron", "CsPbBr3:PbBr6"])
def test_octahedron_pair_representation(case):
    t = transform(case)
    assert {i.label: i.multiplicity for i in t.rep.irreps} == {"A1g": 2, "Eg": 2, "T1u": 1, "T2g": 1, "T2u": 1}
    assert set(t.rep.describe().split(" + ")) == {"2A1g", "2Eg", "T1u", "T2g", "T2u"}
    assert t.n_ccd == 15
    assert [b.label for b in t.blocks].count("A1g") == 2
    # truncated set: 3N - 6 = 12 CCDs, dropping one Eg and one A1g
    assert t.n_truncated == 12 == degrees_of_freedom(t.cluster)
    dropped = sorted(b.label for b in t.blocks if b.stop > t.n_truncated)
    assert dropped == ["A1g", "Eg"]
    kept = [b for b in t.blocks if b.stop <= t.n_truncated]
    assert sum(b.dim for b in kept) == 12 and t.truncated_blocks == tuple(kept)


@pytest.mark.parametrize("case", CASES)
def test_multiplicities_add_up(case):
    t = transform(case)
    assert sum(i.multiplicity * i.dim for i in t.rep.irreps) == t.rep.n_pairs == t.cluster.n_pairs
    assert sum(b.dim for b in t.blocks) == t.n_ccd == t.rep.n_pairs
    # blocks tile 0..M and are sorted by decreasing eigenvalue
    assert [b.start for b in t.blocks] == [0] + [b.stop for b in t.blocks[:-1]]
    lam = [b.eigenvalue for b in t.blocks]
    assert lam == sorted(lam, reverse=True)


@pytest.mark.parametrize("case", CASES)
def test_gamma_is_a_representation(case):
    t = transform(case)
    g = t.cluster.group
    mats = t.rep.matrices()
    tab = g.multiplication_table
    for a in range(g.order):
        for b in range(g.order):
            np.testing.assert_array_equal(mats[a] @ mats[b], mats[tab[a, b]])
    np.testing.assert_array_equal(t.rep.characters, np.trace(mats, axis1=1, axis2=2))


# ------------------------------------------------------------------ Q, C, D(g)
@pytest.mark.parametrize("case, metric", ALL)
def test_q_whitens_c(case, metric):
    t = transform(case, metric)
    np.testing.assert_allclose(t.Q @ t.correlation @ t.Q.T, np.eye(t.n_ccd), atol=1e-9)
    np.testing.assert_allclose(t.basis.T @ t.basis, np.eye(t.n_ccd), atol=1e-12)
    np.testing.assert_allclose(t.Q @ t.Q_inv, np.eye(t.n_ccd), atol=1e-10)
    assert np.all(t.eigenvalues > 0)


@pytest.mark.parametrize("case, metric", ALL)
def test_d_is_block_diagonal_with_irrep_traces(case, metric):
    t = transform(case, metric)
    d = t.D()
    g = t.cluster.group
    assert d.shape == (g.order, t.n_ccd, t.n_ccd)
    mask = np.zeros((t.n_ccd, t.n_ccd), dtype=bool)
    for b in t.blocks:
        mask[b.start:b.stop, b.start:b.stop] = True
        chi = irrep_character(t, b.label)
        traces = np.trace(d[:, b.start:b.stop, b.start:b.stop], axis1=1, axis2=2)
        np.testing.assert_allclose(traces, chi, atol=1e-9, err_msg=f"{case} {b.label}")
    assert np.max(np.abs(d[:, ~mask]), initial=0.0) < 1e-9
    # orthogonal, and a representation
    eye = np.broadcast_to(np.eye(t.n_ccd), d.shape)
    np.testing.assert_allclose(np.einsum("gij,gkj->gik", d, d), eye, atol=1e-9)
    tab = g.multiplication_table
    for a in range(g.order):
        np.testing.assert_allclose(np.einsum("ij,bjk->bik", d[a], d), d[tab[a]], atol=1e-9)


@pytest.mark.parametrize("case, metric", ALL)
def test_correlation_commutes_with_gamma(case, metric):
    t = transform(case, metric)
    c = t.correlation
    scale = np.abs(c).max()
    np.testing.assert_allclose(c, c.T, atol=1e-15 * scale)
    for m in t.rep.matrices():
        np.testing.assert_allclose(m @ c, c @ m, atol=1e-13 * scale)


@pytest.mark.parametrize("case", CASES)
def test_correlation_commutes_with_gamma_bit_for_bit(case):
    """Eq. (22) exactly: C is averaged over the orbits of pairs of pairs, so Γ C Γᵀ = C holds
    with no rounding at all."""
    t = transform(case, "exp")
    c = t.correlation
    for pp in t.rep.pair_perm:
        assert np.array_equal(c[np.ix_(pp, pp)], c)


@pytest.mark.parametrize("case", CASES)
def test_truncated_ccds_are_leading_ccds(case):
    t = transform(case)
    x = deformed(case, 2)
    full = ccds(t, x)
    np.testing.assert_array_equal(ccds(t, x, truncated=True), full[:, : t.n_truncated])
    np.testing.assert_allclose(ccds(t, t.cluster.positions), 0, atol=1e-14)


# ------------------------------------------------------------------ invariance
def _disp(case):
    n = cluster(case).n_sites
    return arrays(np.float64, (3, n, 3), elements=st.floats(-1, 1, allow_nan=False, width=64))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), metric=st.sampled_from(METRIC_NAMES),
       seed=st.integers(0, 2**32 - 1), data=st.data())
def test_ccds_rigid_invariant(case, metric, seed, data):
    t = transform(case, metric)
    u = data.draw(_disp(case))
    x = t.cluster.positions + 0.2 * t.r0.min() * u
    assert_rigid_invariant(lambda c: ccds(t, c), x, np.random.default_rng(seed), atol=1e-12, n_trials=4)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), metric=st.sampled_from(METRIC_NAMES), data=st.data())
def test_ccds_point_group_equivariant(case, metric, data):
    t = transform(case, metric)
    u = data.draw(_disp(case))
    x = t.cluster.positions + 0.2 * t.r0.min() * u
    assert_point_group_equivariant(t, x, atol=1e-10)


@pytest.mark.parametrize("case, metric", ALL)
def test_equivariance_fixed_examples(case, metric):
    assert_point_group_equivariant(transform(case, metric), deformed(case, 11), atol=1e-10)


def test_equivariance_detects_a_wrong_d():
    """The helper is not vacuous: a transform whose Q is not symmetry adapted fails."""
    from dataclasses import replace

    t = transform("free:tetrahedron")
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    bad = replace(t, basis=q)
    bad.__dict__.pop("Q", None)
    # D is recomputed from the bad Q, so D(g) is consistent: equivariance still holds...
    assert_point_group_equivariant(bad, deformed("free:tetrahedron"), atol=1e-9)
    # ...but it is no longer block diagonal with the irrep blocks
    d = bad.D()
    assert np.abs(d[:, 0, 1:]).max() > 1e-3
    # and a D taken from another transform does fail
    bad.__dict__["D"] = lambda: t.D()[:, ::-1, ::-1]
    with pytest.raises(AssertionError, match="eta"):
        assert_point_group_equivariant(bad, deformed("free:tetrahedron"), atol=1e-9)


# ------------------------------------------------------------------ Jacobian
@pytest.mark.parametrize("case, metric", ALL)
def test_jacobian_matches_finite_differences(case, metric):
    t = transform(case, metric)
    x = deformed(case, 3, n=2)
    assert_numeric_gradient(lambda c: ccds(t, c), lambda c: ccd_jacobian(t, c), x, h=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case", ["free:octahedron", "CsPbBr3:PbBr6", "CsPbBr3:triplet"])
def test_truncated_jacobian(case):
    t = transform(case)
    x = deformed(case, 4, n=2)
    full = ccd_jacobian(t, x)
    np.testing.assert_array_equal(ccd_jacobian(t, x, truncated=True), full[:, : t.n_truncated])
    assert_numeric_gradient(lambda c: ccds(t, c, True), lambda c: ccd_jacobian(t, c, True), x)


def test_gradient_helper_detects_errors():
    t = transform("free:tetrahedron")
    x = deformed("free:tetrahedron", n=1)
    with pytest.raises(AssertionError, match="finite differences"):
        assert_numeric_gradient(lambda c: ccds(t, c), lambda c: 1.01 * ccd_jacobian(t, c), x)


# ------------------------------------------------------------------ modes
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("truncated", [False, True])
def test_modes_orthogonal_to_rigid_motions(case, truncated):
    t = transform(case)
    m = modes(t, truncated)
    k = t.n_truncated if truncated else t.n_ccd
    assert m.shape == (k, t.cluster.n_sites, 3)
    np.testing.assert_allclose(np.abs(m).max(axis=(1, 2)) > 0, True)
    np.testing.assert_allclose(np.linalg.norm(m, axis=-1).max(axis=-1), 1.0, atol=1e-12)
    x = t.cluster.positions - t.cluster.positions.mean(axis=0)
    np.testing.assert_allclose(m.sum(axis=1), 0, atol=1e-10)  # translations
    np.testing.assert_allclose(np.cross(x[None], m).sum(axis=1), 0, atol=1e-10)  # rotations


@pytest.mark.parametrize("case", ["free:tetrahedron", "free:octahedron", "free:trigonal_bipyramid",
                                  "free:triangle", "CsPbBr3:PbBr6", "CsPbBr3:triplet"])
def test_truncated_modes_are_dual_to_the_jacobian(case):
    """For the 3N-6 truncated CCDs J is onto, so J · mode_k ∝ e_k."""
    t = transform(case)
    m = modes(t, truncated=True)
    jac = ccd_jacobian(t, t.cluster.positions, truncated=True)[0]
    prod = np.einsum("ksc,lsc->kl", jac, m)
    np.testing.assert_allclose(prod - np.diag(np.diag(prod)), 0, atol=1e-9)
    assert np.all(np.diag(prod) > 0)


# ------------------------------------------------------------------ exact rows
@pytest.mark.parametrize("case", ["free:tetrahedron", "free:octahedron", "CsPbBr3:PbBr6"])
def test_exact_rows(case):
    t = transform(case)
    rows = exact_block_rows(t)
    assert len(rows) == len(t.blocks)
    counts = {b.label: [x.label for x in t.blocks].count(b.label) for b in t.blocks}
    for b, r in zip(t.blocks, rows):
        if counts[b.label] > 1:
            assert r is None
            continue
        assert r is not None and r.shape == (b.dim, t.rep.n_pairs)
        assert not r.atoms(sp.Float), f"{b.label} has floating-point entries"
        gram = (r * r.T).applyfunc(sp.nsimplify)
        assert gram == sp.eye(b.dim)
        np.testing.assert_allclose(np.array(r.evalf(30), dtype=float), t.basis[:, b.start:b.stop].T,
                                   atol=1e-12)
    if case == "free:tetrahedron":
        assert all(r is not None for r in rows)
        a1 = rows[[b.label for b in t.blocks].index("A1")]
        assert a1 == sp.Matrix([[1] * 6]) / sp.sqrt(6)


def test_exact_q_matches_numeric_q():
    t = transform("free:octahedron")
    np.testing.assert_allclose(np.array(exact_Q(t).evalf(), dtype=float), t.Q, atol=1e-8)


# ------------------------------------------------------------------ metrics
@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_metrics_vanish_with_unit_slope(metric):
    m = METRICS[metric]
    np.testing.assert_allclose(m.value(np.array([1.0])), 0, atol=1e-15)
    np.testing.assert_allclose(m.derivative(np.array([1.0])), 1, atol=1e-15)
    s = np.linspace(0.6, 1.6, 21)
    h = 1e-6
    np.testing.assert_allclose((m.value(s + h) - m.value(s - h)) / (2 * h), m.derivative(s), rtol=1e-7)
    xs = sp.Symbol("x")
    f = sp.lambdify(xs, m.symbolic(xs), "numpy")
    np.testing.assert_allclose(f(s), m.value(s), rtol=1e-12, atol=1e-15)


def test_metrics_agree_to_first_order():
    """All four metrics give the same CCD block structure and nearly the same Q for a
    small sigma (they agree for small strain)."""
    c = cluster("free:tetrahedron")
    ts = [build_transform(c, m, 0.01) for m in METRIC_NAMES]
    for t in ts[1:]:
        assert [b.label for b in t.blocks] == [b.label for b in ts[0].blocks]
        np.testing.assert_allclose(t.Q / np.abs(t.Q).max(), ts[0].Q / np.abs(ts[0].Q).max(), atol=0.05)


def test_free_cluster_pair_representation_independent_of_site_order():
    species, x = polyhedron("octahedron", 2.0)
    perm = np.random.default_rng(0).permutation(6)
    a = PairRepresentation.from_group(free_cluster(x, species, "a").group)
    b = PairRepresentation.from_group(free_cluster(x[perm], species, "b").group)
    assert a.describe() == b.describe()
