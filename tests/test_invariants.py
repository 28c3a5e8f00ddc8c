"""Invariant polynomials of the CCDs (Eq. 2, Reynolds operator, Molien series):
completeness per degree, invariance, independence, the disk cache and bad input.
(Display and `ccdgen inspect --order` are tested in tests/test_display.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import basis, transform

from ccdgen.cache import list_entries
from ccdgen.ccd.evaluate import pair_metrics
from ccdgen.ccd.transform import build_transform
from ccdgen.errors import SpecError
from ccdgen.invariants import cached as cached_mod
from ccdgen.invariants.basis import derive_basis, estimate
from ccdgen.invariants.cached import invariant_basis
from ccdgen.invariants.molien import molien_matrices, molien_permutation
from ccdgen.testing import assert_rigid_invariant

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"

FREE = ["tetrahedron", "octahedron", "square", "triangle", "trigonal_bipyramid", "cube", "icosahedron"]
CRYSTAL = ["pair1", "pair2", "pair3", "pair4", "pair5", "pair6", "pair7", "triplet", "PbBr6"]
CASES = [f"free:{n}" for n in FREE] + [f"CsPbBr3:{n}" for n in CRYSTAL]
#: highest degree per case in the default run (everything else: 4)
MAX_DEGREE = {"free:octahedron": 6, "free:icosahedron": 3}


def max_degree(case: str) -> int:
    return MAX_DEGREE.get(case, 4)


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


def permute_pairs(t, g: int, eps: np.ndarray) -> np.ndarray:
    """Γ(g) eps (Eqs. 9-10): the value of pair p moves to pair g(p)."""
    out = np.empty_like(eps)
    out[:, t.rep.pair_perm[g]] = eps
    return out


def deformed(case: str, n: int = 6, seed: int = 0, amplitude: float = 0.1) -> np.ndarray:
    t = transform(case)
    rng = np.random.default_rng(seed)
    return t.cluster.positions + amplitude * t.r0.min() * rng.standard_normal((n, t.cluster.n_sites, 3))


def features_fn(case: str, truncated: bool, degree: int):
    t = transform(case)
    b = basis(case, degree, truncated)
    return lambda x: b.evaluate(pair_metrics(t, x)[0])


COUNT_CASES = [(c, tr) for c in CASES for tr in (False, True)]


# ------------------------------------------------------------------ counts = Molien
def molien_by_traces(matrices: np.ndarray, max_degree: int) -> list[int]:
    """Molien coefficients by a route that shares nothing with ccdgen's (which uses
    eigenvalues of D(g) or cycle types of Γ): the character of Sym^d on D(g) is the complete
    homogeneous symmetric polynomial h_d of its eigenvalues, obtained from the power sums
    p_k = tr(D(g)^k) by Newton's identity h_d = (1/d) Σ_k p_k h_(d-k); averaged over the group."""
    total = np.zeros(max_degree + 1)
    for dg in matrices:
        p = [None]
        power = np.eye(len(dg))
        for _ in range(max_degree):
            power = power @ dg
            p.append(np.trace(power))
        h = [1.0]
        for d in range(1, max_degree + 1):
            h.append(sum(p[k] * h[d - k] for k in range(1, d + 1)) / d)
        total += h
    avg = total / len(matrices)
    assert np.abs(avg - np.rint(avg)).max() < 1e-6
    return [int(v) for v in np.rint(avg)]


@pytest.mark.parametrize("case,truncated", COUNT_CASES)
def test_counts_equal_molien(case, truncated):
    t = transform(case)
    d = max_degree(case)
    b = basis(case, d, truncated)
    k = n_used(t, truncated)
    independent = molien_by_traces(t.D()[:, :k, :k], d)  # traces of D_T(g)^k, not eigenvalues or Γ
    assert independent[0] == 1
    expected = {deg: independent[deg] for deg in range(1, d + 1)}
    assert b.per_degree == b.molien == expected
    assert b.n_features == sum(expected.values())
    assert np.all(np.diff(b.degrees) >= 0)
    assert [int(np.sum(b.degrees == deg)) for deg in range(1, d + 1)] == [expected[deg] for deg in range(1, d + 1)]
    if not truncated:
        assert molien_permutation(t.rep.pair_perm, d)[1:] == list(expected.values())


def test_known_numbers():
    full = basis("free:octahedron", 6, False)
    cumulative = np.cumsum([full.per_degree[d] for d in range(1, 7)])
    assert cumulative[3] == 153 and cumulative[5] == 1541
    assert full.per_degree == {1: 2, 2: 9, 3: 32, 4: 110, 5: 346, 6: 1042}
    tet = basis("free:tetrahedron", 4, False)
    assert [tet.molien[d] for d in range(1, 5)] == [1, 3, 6, 11]
    assert molien_permutation(transform("free:tetrahedron").rep.pair_perm, 4) == [1, 1, 3, 6, 11]
    # the truncated PbBr6 octahedron (12 of 15 CCDs) of the paper's example, against the
    # independent trace route
    t = transform("CsPbBr3:PbBr6")
    traces = molien_by_traces(t.D()[:, :t.n_truncated, :t.n_truncated], 4)
    assert basis("CsPbBr3:PbBr6", 4, True).per_degree == {d: traces[d] for d in range(1, 5)} == {1: 1, 2: 5, 3: 14, 4: 45}
    # a pair: one CCD, one invariant per degree
    assert basis("CsPbBr3:pair1", 4, False).per_degree == {1: 1, 2: 1, 3: 1, 4: 1}


def test_molien_routes_agree_on_the_pair_representation():
    """Exact (cycle types) and floating (eigenvalues of Γ) Molien series coincide."""
    for case in ("free:cube", "free:trigonal_bipyramid", "CsPbBr3:triplet"):
        t = transform(case)
        assert molien_permutation(t.rep.pair_perm, 5) == molien_matrices(t.rep.matrices(), 5)


@pytest.mark.slow
@pytest.mark.parametrize("truncated", [False, True])
def test_icosahedron_degree_4(truncated):
    t = transform("free:icosahedron")
    b = derive_basis(t.rep.pair_perm, 4, t, truncated=truncated)
    k = n_used(t, truncated)
    expected = molien_matrices(t.D()[:, :k, :k], 4)
    assert b.per_degree == b.molien == {d: expected[d] for d in range(1, 5)}
    assert b.per_degree[4] == (7700 if not truncated else 393)


@pytest.mark.parametrize("metric", ["exp", "log", "linear", "inverse"])
def test_truncated_octahedron_degree_6_every_metric(metric):
    """The truncated subspace depends on the metric (through C); the count must not.
    (Plain first-come QR found 315 independent degree-6 invariants for the log metric.)"""
    b = basis("free:octahedron", 6, True, metric)
    t = transform("free:octahedron", metric)
    traces = molien_by_traces(t.D()[:, :t.n_truncated, :t.n_truncated], 6)
    assert b.per_degree == {d: traces[d] for d in range(1, 7)} == {1: 1, 2: 5, 3: 14, 4: 45, 5: 116, 6: 314}


# ------------------------------------------------------------------ invariance


def term_scale(b, eps: np.ndarray) -> np.ndarray:
    """The natural size of each function at eps: ``max_p |eps~_p| ** degree`` (n, F) —
    the value at ``eps~ = (m, ..., m)`` (every function is 1 at eps = 1).  Rounding errors
    of eps itself (e.g. from ``Q⁻¹ D_T(g) eta``) are relative to this, not to |phi|."""
    if b.projection is not None:
        eps = eps @ b.projection.T
    return np.abs(eps).max(axis=1, keepdims=True) ** b.degrees[None, :]


def _relative_change(before: np.ndarray, after: np.ndarray, scale=None) -> float:
    """Largest change relative to ``scale`` (default: the largest |before| per function)."""
    if scale is None:
        scale = np.abs(before).max(axis=0)
    return float((np.abs(after - before) / np.maximum(scale, 1e-300)).max())


@pytest.mark.parametrize("case,truncated", COUNT_CASES)
def test_invariant_under_every_group_element(case, truncated):
    t = transform(case)
    d = min(max_degree(case), 4)
    b = basis(case, d, truncated)
    rng = np.random.default_rng(7)
    eps, eta = random_eps(t, truncated, 8, rng)
    f0 = b.evaluate(eps)
    scale = term_scale(b, eps)
    dmat = t.D()
    k = n_used(t, truncated)
    worst = 0.0
    for g in range(t.cluster.group.order):
        if truncated:
            # D_T(g) acting on the kept CCDs, mapped back to pair metrics
            moved = (eta @ dmat[g, :k, :k].T) @ t.Q_inv[:, :k].T
        else:
            moved = permute_pairs(t, g, eps)
        worst = max(worst, _relative_change(f0, b.evaluate(moved), scale))
    assert worst <= 1e-12, worst


def test_truncated_set_is_closed_under_the_group():
    """D(g) is block diagonal: the kept CCDs never mix with the dropped ones."""
    for case in ("free:octahedron", "free:cube", "free:trigonal_bipyramid", "CsPbBr3:PbBr6"):
        t = transform(case)
        k = t.n_truncated
        d = t.D()
        assert np.abs(d[:, :k, k:]).max() < 1e-10 and np.abs(d[:, k:, :k]).max() < 1e-10


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(["free:octahedron", "free:tetrahedron", "CsPbBr3:PbBr6", "CsPbBr3:triplet",
                             "free:trigonal_bipyramid"]),
       truncated=st.booleans(), seed=st.integers(0, 2**32 - 1), scale=st.floats(0.01, 2.0))
def test_invariance_random_points(case, truncated, seed, scale):
    t = transform(case)
    b = basis(case, 4, truncated)
    rng = np.random.default_rng(seed)
    eps, eta = random_eps(t, truncated, 3, rng, scale)
    f0 = b.evaluate(eps)
    g = int(rng.integers(t.cluster.group.order))
    k = n_used(t, truncated)
    moved = (eta @ t.D()[g, :k, :k].T) @ t.Q_inv[:, :k].T if truncated else permute_pairs(t, g, eps)
    assert _relative_change(f0, b.evaluate(moved), term_scale(b, eps)) <= 1e-12


@pytest.mark.parametrize("case,truncated", [("free:octahedron", False), ("free:octahedron", True),
                                            ("free:trigonal_bipyramid", True), ("CsPbBr3:PbBr6", True),
                                            ("CsPbBr3:triplet", False), ("free:tetrahedron", False)])
def test_features_invariant_under_rigid_motions(case, truncated):
    fn = features_fn(case, truncated, 4)
    x = deformed(case)
    scale = np.abs(fn(x)).max()
    assert_rigid_invariant(fn, x, np.random.default_rng(3), atol=1e-12 * max(scale, 1.0), n_trials=6)


@pytest.mark.parametrize("case,truncated", [("free:octahedron", False), ("free:octahedron", True),
                                            ("free:trigonal_bipyramid", True), ("CsPbBr3:PbBr6", True),
                                            ("CsPbBr3:triplet", False), ("free:square", False)])
def test_features_invariant_under_point_group_relabelling(case, truncated):
    """Move site i to R_g (x_i - c) + c and call it perm[g, i]: the features do not change."""
    t = transform(case)
    fn = features_fn(case, truncated, 4)
    x = deformed(case, seed=5)
    f0 = fn(x)
    scale = term_scale(basis(case, 4, truncated), pair_metrics(t, x)[0])
    grp = t.cluster.group
    c = t.cluster.positions.mean(axis=0)
    for g in range(grp.order):
        moved = np.empty_like(x)
        moved[:, grp.permutations[g]] = (x - c) @ grp.rotations[g].T + c
        assert _relative_change(f0, fn(moved), scale) <= 1e-12, g


def test_relabelling_by_a_non_symmetry_changes_features():
    """Sanity check of the test above: a site swap that is no symmetry is detected."""
    t = transform("free:trigonal_bipyramid")
    fn = features_fn("free:trigonal_bipyramid", False, 2)
    x = deformed("free:trigonal_bipyramid")
    swapped = x[:, [3, 1, 2, 0, 4]]  # an equatorial with an apical site
    assert _relative_change(fn(x), fn(swapped)) > 1e-3
    assert t.cluster.group.order == 12


def test_features_vanish_at_the_reference():
    for case in ("free:octahedron", "CsPbBr3:PbBr6", "CsPbBr3:triplet"):
        t = transform(case)
        for truncated in (False, True):
            f = features_fn(case, truncated, 3)(t.cluster.positions[None] + np.array([1.0, 2.0, 3.0]))
            assert np.abs(f).max() < 1e-13


# ------------------------------------------------------------------ independence, Reynolds
@pytest.mark.parametrize("case,truncated", [(c, tr) for c in ("free:octahedron", "free:cube", "free:icosahedron",
                                                              "free:trigonal_bipyramid", "CsPbBr3:PbBr6",
                                                              "CsPbBr3:triplet", "free:tetrahedron")
                                            for tr in (False, True)])
def test_linearly_independent_per_degree(case, truncated):
    t = transform(case)
    d = min(max_degree(case), 4)
    b = basis(case, d, truncated)
    rng = np.random.default_rng(11)
    for deg in range(1, d + 1):
        cols = np.flatnonzero(b.degrees == deg)
        eps, _ = random_eps(t, truncated, len(cols) + 40, rng)
        vals = b.evaluate(eps)[:, cols]
        vals /= np.linalg.norm(vals, axis=0)
        s = np.linalg.svd(vals, compute_uv=False)
        rank = int(np.sum(s > 1e-9 * s[0]))
        assert rank == len(cols) == b.per_degree[deg], (deg, rank, len(cols))
        assert s[-1] > 1e-6 * s[0]  # well conditioned, not just barely independent


def test_no_invariant_is_missing_in_the_truncated_set():
    """Every orbit average of the full set, restricted to the kept CCDs, is a combination
    of the truncated basis of the same degree (rank does not grow when they are added)."""
    t = transform("free:octahedron")
    full, trunc = basis("free:octahedron", 4, False), basis("free:octahedron", 4, True)
    rng = np.random.default_rng(2)
    eps, _ = random_eps(t, True, 200, rng)
    for deg in range(1, 5):
        a = trunc.evaluate(eps)[:, trunc.degrees == deg]
        both = np.concatenate([a, full.evaluate(eps)[:, full.degrees == deg]], axis=1)
        both /= np.linalg.norm(both, axis=0)
        s = np.linalg.svd(both, compute_uv=False)
        assert int(np.sum(s > 1e-9 * s[0])) == trunc.per_degree[deg]


def _reynolds(t, fn, eps):
    """(1/|G|) Σ_g fn(Γ(g) eps)."""
    order = t.cluster.group.order
    return sum(fn(permute_pairs(t, g, eps)) for g in range(order)) / order


@pytest.mark.parametrize("case", ["free:octahedron", "free:trigonal_bipyramid", "CsPbBr3:triplet", "free:cube"])
def test_reynolds_idempotent_and_of_the_representative(case):
    t = transform(case)
    b = basis(case, 3, False)
    rng = np.random.default_rng(4)
    eps = rng.standard_normal((5, t.n_ccd))
    f0 = b.evaluate(eps)
    # R[phi] = phi
    scale = term_scale(b, eps)
    assert _relative_change(f0, _reynolds(t, b.evaluate, eps), scale) <= 1e-12
    # phi = R[orbit representative monomial]  (Eq. 2 with exact 1/|orbit| weights)
    for f in range(b.n_features):
        rep = list(b.representative(f))
        got = _reynolds(t, lambda e: np.prod(e[:, rep], axis=1), eps)
        assert np.all(np.abs(got - f0[:, f]) <= 1e-12 * scale[:, f])
    # normalisation: every orbit average is 1 at eps = 1
    np.testing.assert_allclose(b.evaluate(np.ones((1, t.n_ccd))), 1.0, rtol=1e-14)


def test_reynolds_in_ccds_for_the_truncated_set():
    """Averaging over D_T(g) acting on eta_T gives each truncated basis function back."""
    t = transform("CsPbBr3:PbBr6")
    b = basis("CsPbBr3:PbBr6", 4, True)
    k = t.n_truncated
    rng = np.random.default_rng(8)
    eta = rng.standard_normal((5, k))
    d = t.D()[:, :k, :k]
    eps = eta @ t.Q_inv[:, :k].T
    avg = sum(b.evaluate((eta @ d[g].T) @ t.Q_inv[:, :k].T) for g in range(len(d))) / len(d)
    assert _relative_change(b.evaluate(eps), avg, term_scale(b, eps)) <= 1e-12


def test_basis_order_is_deterministic():
    t = transform("free:octahedron")
    a = derive_basis(t.rep.pair_perm, 4, t, truncated=True)
    b = derive_basis(t.rep.pair_perm, 4, t, truncated=True)
    assert a.signature() == b.signature()
    # representatives are sorted within a degree (full set: orbit order)
    full = basis("free:octahedron", 4, False)
    for d in range(1, 5):
        reps = [full.representative(f) for f in np.flatnonzero(full.degrees == d)]
        assert reps == sorted(reps)
        assert all(len(r) == d for r in reps)


# ------------------------------------------------------------------ disk cache
@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    path = tmp_path / "cache"
    monkeypatch.setenv("CCDGEN_CACHE_DIR", str(path))
    return path


def _same_basis(a, b):
    assert a.n_vars == b.n_vars and a.max_degree == b.max_degree and a.truncated == b.truncated
    for name in ("degrees", "monomials", "offsets"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert (a.projection is None) == (b.projection is None)
    if a.projection is not None:
        np.testing.assert_array_equal(a.projection, b.projection)
    assert a.per_degree == b.per_degree and a.molien == b.molien
    assert a.signature() == b.signature()


def test_cache_second_call_is_read_back(private_cache, monkeypatch):
    t = transform("CsPbBr3:PbBr6")
    first = invariant_basis(t, 3)
    assert first.truncated == t.n_truncated  # truncating transform: truncated set by default

    def fail(*args, **kwargs):
        raise AssertionError("the basis was derived again instead of read from the cache")

    monkeypatch.setattr(cached_mod, "derive_basis", fail)
    second = invariant_basis(t, 3)
    _same_basis(first, second)
    _same_basis(first, derive_basis(t.rep.pair_perm, 3, t, truncated=True))
    (entry,) = list_entries("invariants")
    assert entry["ok"]


def test_cache_entries_per_degree_and_truncation(private_cache):
    t = transform("free:octahedron")
    keys = set()
    for degree, truncated in [(2, False), (3, False), (2, True), (3, True)]:
        b = invariant_basis(t, degree, truncated)
        assert b.max_degree == degree and (b.truncated is not None) == truncated
        new = {e["key"] for e in list_entries("invariants")} - keys
        assert len(new) == 1, (degree, truncated)
        keys |= new
    invariant_basis(t, 3, True)  # a hit: nothing new
    assert {e["key"] for e in list_entries("invariants")} == keys


def test_full_set_is_shared_between_metrics(private_cache):
    """The full-set basis does not depend on the metric: one cache entry for both."""
    a = invariant_basis(transform("free:octahedron", "exp"), 2, False)
    b = invariant_basis(transform("free:octahedron", "log"), 2, False)
    _same_basis(a, b)
    assert len(list_entries("invariants")) == 1
    invariant_basis(transform("free:octahedron", "log"), 2, True)
    assert len(list_entries("invariants")) == 2


def test_corrupt_cache_entry_is_rebuilt(private_cache):
    t = transform("CsPbBr3:PbBr6")
    original = invariant_basis(t, 3)
    (entry,) = list_entries("invariants")
    npz = Path(entry["path"]) / "basis.npz"
    data = npz.read_bytes()
    npz.write_bytes(data[: len(data) // 2])  # truncated file
    assert not list_entries("invariants")[0]["ok"]
    rebuilt = invariant_basis(t, 3)
    _same_basis(original, rebuilt)
    (entry,) = list_entries("invariants")
    assert entry["ok"] and npz.read_bytes() == data


def test_use_cache_false_writes_nothing(private_cache):
    b = invariant_basis(transform("free:tetrahedron"), 3, use_cache=False)
    assert b.per_degree == {1: 1, 2: 3, 3: 6}
    assert list_entries("invariants") == []


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("degree", [-1, -5])
def test_negative_degree(degree):
    t = transform("free:tetrahedron")
    with pytest.raises(SpecError, match="≥ 0"):
        invariant_basis(t, degree)
    with pytest.raises(SpecError):
        derive_basis(t.rep.pair_perm, degree, t)


@pytest.mark.parametrize("degree", [2.5, 2.0, "2", None, True])
def test_non_integer_degree(degree):
    t = transform("free:tetrahedron")
    with pytest.raises(SpecError, match="integer"):
        invariant_basis(t, degree)


def test_degree_zero_is_an_empty_basis():
    t = transform("free:tetrahedron")
    b = derive_basis(t.rep.pair_perm, 0, t)
    assert b.n_features == 0 and b.per_degree == {}
    assert b.evaluate(np.zeros((3, t.n_ccd))).shape == (3, 0)


def test_absurd_request_is_refused_with_its_size():
    t = transform("free:icosahedron")
    counts, n_mons = estimate(t.rep.pair_perm, 12)
    total = sum(counts[1:])
    with pytest.raises(SpecError) as err:
        invariant_basis(t, 12)
    msg = str(err.value)
    assert f"{total:,} functions" in msg and f"{n_mons:,} monomials" in msg
    assert "icosahedron" in msg and "Fix:" in msg
    with pytest.raises(SpecError):
        derive_basis(t.rep.pair_perm, 12, t)
    with pytest.raises(SpecError, match="absurdly large"):
        invariant_basis(t, 100)


def test_truncation_that_splits_a_block():
    t = transform("free:octahedron")
    boundaries = [b.stop for b in t.blocks]
    bad = next(k for k in range(1, t.n_ccd) if k not in boundaries)
    with pytest.raises(SpecError, match="splits an irrep block"):
        build_transform(t.cluster, "exp", 0.15, truncate=bad)
    ok = build_transform(t.cluster, "exp", 0.15, truncate=boundaries[1])
    assert ok.n_truncated == boundaries[1]
    b = derive_basis(ok.rep.pair_perm, 3, ok, truncated=True)
    k = ok.n_truncated
    m = molien_matrices(ok.D()[:, :k, :k], 3)
    assert b.per_degree == {d: m[d] for d in range(1, 4)}

