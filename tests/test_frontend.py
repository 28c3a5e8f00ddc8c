"""A front end you can train on: exact symmetrization, one meaning of sigma, honest cache keys.

Cache keys are tested in pairs "depends on X / does not depend on Y" (as UFL tests its
signatures): a key must change with everything that changes the content and with nothing else.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

import ccdgen
from ccdgen.cache import make_key
from ccdgen.ccd.transform import build_transform
from ccdgen.clusters import free_cluster
from ccdgen.codegen.compiled import CodeOptions, kernel_source_and_key
from ccdgen.codegen.ir import lower
from ccdgen.errors import SpecError
from ccdgen.invariants.basis import derive_basis, feature_names
from ccdgen.invariants.cached import basis_key_parts
from ccdgen.pipeline import load, transforms
from ccdgen.symmetry.free import polyhedron

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"


@lru_cache(maxsize=None)
def example():
    return load(EXAMPLE)


def free(name, radius=2.0, metric="exp", sigma=0.15, truncate="auto", noise=0.0, seed=0):
    species, x = polyhedron(name, radius)
    if noise:
        x = x + noise * np.random.default_rng(seed).standard_normal(x.shape)
    return build_transform(free_cluster(x, species, name), metric, sigma, truncate)


# ------------------------------------------------------------- exact symmetrization
@pytest.mark.parametrize("name,noise", [("octahedron", 2e-4), ("octahedron", 3e-3), ("icosahedron", 1e-4),
                                        ("tetrahedron", 5e-4), ("square", 2e-4)])
def test_noisy_free_clusters_are_made_exact(name, noise):
    """From noisy input the found group maps the kept positions onto themselves to ≤ 1e-12, so
    equivalent pairs have equal r0 and the features are invariant under the group's own
    operations (on today's main: r0 spread 5.5e-4 Å and 1e-4 relative feature changes)."""
    t = free(name, noise=noise, seed=3)
    c = t.cluster
    x = c.positions - c.positions.mean(axis=0)
    for r, p in zip(c.group.rotations, c.group.permutations):
        assert np.abs(x @ r.T - x[p]).max() < 1e-12
    # pairs in one Γ-orbit have the same reference length, to rounding
    for orbit in {tuple(sorted(set(t.rep.pair_perm[:, p]))) for p in range(t.rep.n_pairs)}:
        assert np.ptp(t.r0[list(orbit)]) < 1e-12
    k = ccdgen.compile_cluster(c, order=3)
    y = c.positions + 0.1 * np.random.default_rng(1).standard_normal((4, c.n_sites, 3))
    f0 = k.features(y)
    for p in c.group.permutations:
        inv = np.argsort(p)
        assert np.abs(k.features(y[:, inv]) - f0).max() <= 1e-12 * max(1.0, np.abs(f0).max())


def test_three_milli_angstrom_noise_finds_oh_with_a_looser_symprec():
    """A fixed 1e-3 orthogonality tolerance kept a 3e-3 Å noisy octahedron at C1 for any
    symprec; the tolerance now follows symprec."""
    species, x = polyhedron("octahedron", 2.97)
    x = x + 3e-3 * np.random.default_rng(7).standard_normal(x.shape)
    c = free_cluster(x, species, "octa", symprec=2e-2)
    assert (c.group.schoenflies, c.group.order) == ("Oh", 48)


# ------------------------------------------------------------------ sigma: one meaning
def test_sigma_means_the_same_for_a_cluster_object_and_a_spec():
    """compile_cluster(Cluster) and compile_cluster(spec) give the same PbBr6 features: sigma
    is a fraction of the crystal's nearest-neighbour distance for embedded clusters either way
    (on main: 0.630 vs 0.446 Å)."""
    octa = next(c for c in example().clusters if c.name == "PbBr6")
    a = ccdgen.compile_cluster(octa, order=2)
    b = ccdgen.compile_cluster(EXAMPLE, order=2, cluster="PbBr6")
    assert a.transform.sigma == pytest.approx(0.15 * 5.9436 / 2, rel=1e-12)
    assert a.transform.sigma == b.transform.sigma
    x = octa.positions + 0.08 * np.random.default_rng(0).standard_normal((5, 6, 3))
    np.testing.assert_array_equal(a.features(x), b.features(x))


def test_free_cluster_sigma_is_a_fraction_of_its_shortest_pair():
    t = free("octahedron", radius=2.0)
    assert t.sigma == pytest.approx(0.15 * 2.0 * np.sqrt(2), rel=1e-12)


@pytest.mark.parametrize("call", [
    lambda c: ccdgen.compile_cluster(c, order=2, sigmaa=0.2),
    lambda c: ccdgen.compile_cluster(c, order=2, metrik="log"),
])
def test_unknown_overrides_are_errors(call):
    octa = next(c for c in example().clusters if c.name == "PbBr6")
    with pytest.raises(SpecError, match="unknown option"):
        call(octa)


def test_unknown_override_on_a_spec_is_an_error():
    with pytest.raises(SpecError, match="did you mean 'sigma'"):
        load(EXAMPLE, sigmaa=0.2)


# ----------------------------------------------------------- block order and ties
def test_blocks_follow_the_exact_eigenvalue_order_with_fixed_ties():
    for metric in ("linear", "log", "exp", "inverse"):
        t = free("octahedron", metric=metric)
        lam = [b.eigenvalue for b in t.blocks]
        assert all(a >= b for a, b in zip(lam, lam[1:]))


def test_truncate_n_on_a_spec_keeps_small_clusters_whole():
    """--truncate 12 on the example spec keeps 12 of the octahedron's 15 CCDs and every CCD
    of the pairs and the triplet (on main it blamed pair1 for splitting a block)."""
    ts = {t.cluster.name: t for t in transforms(load(EXAMPLE, truncate=12))}
    assert ts["PbBr6"].n_truncated == 12
    assert ts["pair1"].n_truncated == 1 and ts["triplet"].n_truncated == 3
    with pytest.raises(SpecError, match="PbBr6"):
        transforms(load(EXAMPLE, truncate=11))


# ----------------------------------------------------------------- invariant keys
def inv_key(t, degree=3, truncated=False):
    return make_key(basis_key_parts(t, degree, truncated))


def test_invariant_key_does_not_depend_on_geometry_name_or_environment(monkeypatch):
    pairs = [t for t in transforms(example()) if t.cluster.kind == "pair"]
    assert len({inv_key(t) for t in pairs}) == 1  # 7 pair orbits, one basis entry
    a, b = free("tetrahedron", radius=1.0), free("tetrahedron", radius=3.0, sigma=0.2, metric="log")
    assert inv_key(a) == inv_key(b)
    import ccdgen.cache as cache

    before = inv_key(a)
    monkeypatch.setattr(cache, "environment_fingerprint", lambda: {"numba": "0.0", "numpy": "0.0"})
    assert inv_key(a) == before


def test_invariant_key_depends_on_group_degree_and_truncated_projection():
    oct_exp, oct_log = free("octahedron"), free("octahedron", metric="log")
    assert inv_key(oct_exp, 3) != inv_key(oct_exp, 4)
    assert inv_key(free("tetrahedron")) != inv_key(free("square"))
    # a truncated set depends on the projector: metric and sigma change it
    assert inv_key(oct_exp, 3, True) != inv_key(oct_exp, 3, False)
    assert inv_key(oct_exp, 3, True) != inv_key(oct_log, 3, True)
    assert inv_key(oct_exp, 3, True) != inv_key(free("octahedron", sigma=0.2), 3, True)
    # ... but the full set does not
    assert inv_key(oct_exp, 3) == inv_key(oct_log, 3) == inv_key(free("octahedron", sigma=0.2), 3)


# -------------------------------------------------------------------- kernel keys
def kernel_key(t, degree=2, truncated=None, tile=64):
    truncated = t.n_truncated < t.n_ccd if truncated is None else truncated
    b = derive_basis(t.rep.pair_perm, degree, t, truncated)
    ir = lower(t, b, feature_names(b, t.cluster.name))
    return make_key(kernel_source_and_key(ir, CodeOptions(tile=tile))[1])


def test_kernel_key_does_not_depend_on_tables_names_sigma_or_location(tmp_path, monkeypatch):
    pairs = [t for t in transforms(example()) if t.cluster.kind == "pair"]
    assert len({kernel_key(t) for t in pairs}) == 1  # equal shapes share one module
    a = free("tetrahedron", radius=1.0)
    b = free("tetrahedron", radius=2.5, sigma=0.22)
    assert kernel_key(a) == kernel_key(b)
    before = kernel_key(a)
    monkeypatch.setenv("CCDGEN_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert kernel_key(a) == before


def test_kernel_key_depends_on_metric_order_tile_and_environment(monkeypatch):
    t = free("tetrahedron")
    base = kernel_key(t)
    assert kernel_key(free("tetrahedron", metric="log")) != base
    assert kernel_key(t, degree=3) != base
    assert kernel_key(t, tile=32) != base
    import ccdgen.codegen.compiled as compiled

    real = compiled.environment_fingerprint
    monkeypatch.setattr(compiled, "environment_fingerprint", lambda: {**real(), "numba": "9.9.9"})
    assert kernel_key(t) != base


def test_kernel_key_follows_the_printed_metric_code(monkeypatch):
    """An edit of a metric's expression changes the generated source and hence the key (on
    main the key kept only the metric's name)."""
    import dataclasses

    from ccdgen.ccd import metrics

    t = free("tetrahedron")
    base = kernel_key(t)
    changed = dataclasses.replace(metrics.METRICS["exp"], symbolic_name="1 - exp(-(x - 1)) + 0*x**2 + (x-1)**3/1e9")
    monkeypatch.setitem(metrics.METRICS, "exp", changed)
    assert kernel_key(t) != base


def test_kernel_key_follows_the_template(monkeypatch):
    from ccdgen.codegen import render

    t = free("tetrahedron")
    base = kernel_key(t)
    real = render.template_source
    monkeypatch.setattr(render, "template_source", lambda name: real(name) + "\n# an edit\n")
    render._env.cache_clear()
    try:
        assert kernel_key(t) != base
    finally:
        monkeypatch.undo()
        render._env.cache_clear()


def test_generated_source_has_no_timestamp_or_path():
    t = free("tetrahedron")
    b = derive_basis(t.rep.pair_perm, 2, t, False)
    src, _ = kernel_source_and_key(lower(t, b, feature_names(b, "x")))
    assert not re.search(r"\d{4}-\d\d-\d\d|/tmp/|/home/", src)


# ----------------------------------------------------------------- version floors
def test_dependency_floors_match_what_the_code_needs():
    """Python ≥ 3.11 (tomllib), spglib ≥ 2.5 (dataset attributes), and the installed versions
    satisfy the floors declared in pyproject.toml."""
    import tomllib
    from importlib.metadata import version

    from packaging.requirements import Requirement

    meta = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert meta["requires-python"] == ">=3.11"
    reqs = {Requirement(r).name.lower(): Requirement(r) for r in meta["dependencies"]}
    assert reqs["spglib"].specifier.contains("2.5.0") and not reqs["spglib"].specifier.contains("2.4.0")
    for name, req in reqs.items():
        assert req.specifier.contains(version(name), prereleases=True), (name, version(name), str(req))


@pytest.mark.parametrize("name", ["octahedron", "icosahedron"])
def test_copies_of_an_irrep_carry_the_same_matrices(name):
    """Repeated irreps are aligned: D(g) is the same on every copy, so Eg(1)·Eg(2) reads as the
    plain dot product of the two copies' CCDs."""
    t = free(name, truncate=None)
    d = t.D()
    by_label = {}
    for b in t.blocks:
        by_label.setdefault(b.label, []).append(b)
    repeated = [bs for bs in by_label.values() if len(bs) > 1]
    assert repeated
    for bs in repeated:
        a = bs[0]
        for b in bs[1:]:
            np.testing.assert_allclose(d[:, b.start:b.stop, b.start:b.stop], d[:, a.start:a.stop, a.start:a.stop],
                                       atol=1e-12)
    # Σ_k η_a,k η_b,k is then invariant under every D(g)
    a, b = by_label["Eg" if name == "octahedron" else "Hg"][:2]
    eta = np.random.default_rng(0).standard_normal(t.n_ccd)
    dot = lambda e: e[a.start:a.stop] @ e[b.start:b.stop]
    for dg in d:
        assert dot(dg @ eta) == pytest.approx(dot(eta), abs=1e-12)


def test_large_derivations_announce_their_cost(monkeypatch, capsys):
    from ccdgen.invariants import cached

    monkeypatch.setattr(cached, "_ANNOUNCE_ABOVE", 10)
    t = free("octahedron")
    cached.invariant_basis(t, 3, use_cache=False)
    err = capsys.readouterr().err
    assert "deriving invariants to degree 3" in err and "monomials of 15 pair variables" in err and "about" in err
