"""Crystal features (Eqs. 13, 15), forces and stress of whole configurations.

Independent routes: per-cluster kernels on brute-force gathered coordinates, finite
differences of energies, brute-force site sums, space-group operations applied to atoms.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

from ccdgen.crystal.featurizer import CrystalFeaturizer
from ccdgen.crystal.supercell import Supercell
from ccdgen.errors import InputArrayError, MappingError, SpecError
from ccdgen.testing import random_rotation

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
DATA = REPO / "examples" / "cspbbr3" / "data"


@lru_cache(maxsize=None)
def fz(order: int = 2):
    return CrystalFeaturizer(SPEC, order)


def config(sc: Supercell, n: int = 3, amp: float = 0.12, strain: float = 0.02, seed: int = 0):
    """Random configurations of a supercell: displaced sites and a strained cell (site order)."""
    rng = np.random.default_rng(seed)
    eps = strain * rng.standard_normal((n, 3, 3))
    f = np.eye(3) + 0.5 * (eps + eps.transpose(0, 2, 1))
    x = np.einsum("fij,nj->fni", f, sc.positions) + amp * rng.standard_normal((n, sc.n_atoms, 3))
    cells = np.einsum("ij,fkj->fik", sc.cell, f)
    return x, cells


def multiset(rows: np.ndarray, decimals: int = 9) -> np.ndarray:
    """Rows sorted lexicographically (after rounding): compares multisets of feature vectors."""
    r = np.round(rows, decimals) + 0.0
    return r[np.lexsort(r.T[::-1])]


# ----------------------------------------------------------------- features
@pytest.mark.parametrize("matrix", [(2, 2, 2), [[1, 1, 0], [-1, 1, 0], [0, 0, 2]], (3, 3, 3)])
def test_features_equal_per_cluster_kernels_on_gathered_coordinates(matrix):
    f = fz()
    sc = Supercell.from_matrix(f.reference, np.diag(matrix) if len(np.shape(matrix)) == 1 else matrix)
    lay = f.layout(sc)
    x, cells = config(sc, 2)
    got = f.compute(x, cells, lay)
    for name in f.orbits:
        k = f.kernels[name]
        scl = sc.clusters(f.clusters[name])
        assert lay.n_clusters(name) == len(f.clusters[name].orbit) * sc.n_cells
        xc = x[:, scl.atoms] + np.einsum("kse,fed->fksd", scl.images.astype(float), cells)
        want = k.features(xc.reshape(-1, k.n_sites, 3)).reshape(len(x), -1, k.n_features)
        np.testing.assert_allclose(got[name], want, rtol=0, atol=1e-13)


def test_features_invariant_under_rigid_motion_and_shuffle():
    f = fz()
    sc = Supercell.diagonal(f.reference, 2)
    x, cells = config(sc, 1, seed=4)
    from ase import Atoms

    atoms = Atoms(sc.species, positions=x[0], cell=cells[0], pbc=True)
    base = f.featurize_atoms(atoms)
    rng = np.random.default_rng(9)
    for reflect in (False, True):
        r = random_rotation(rng, reflect)
        b = atoms.copy()
        b.set_cell(cells[0] @ r.T, scale_atoms=False)
        b.positions = atoms.positions @ r.T + rng.uniform(-4, 4, 3)
        b = b[rng.permutation(len(b))]
        b.wrap()
        other = f.featurize_atoms(b)
        for name in f.orbits:
            np.testing.assert_allclose(multiset(other.clusters[name][0]), multiset(base.clusters[name][0]),
                                       atol=1e-9)


def test_features_are_the_same_for_a_space_group_image_of_the_configuration():
    """Every operation of the reference space group that maps the 2×2×2 supercell onto itself
    permutes cluster rows within each orbit and site rows within each site orbit."""
    f = fz()
    sc = Supercell.diagonal(f.reference, 2)
    ops = sc.symmetry_operations(f.spacegroup)
    x, _ = config(sc, 1, strain=0.0, seed=2)
    cells = sc.cell[None].copy()
    lay = f.layout(sc)
    base = f.compute(x, cells, lay)
    base_sites = f.site_features(base, lay)
    rng = np.random.default_rng(3)
    for op in rng.choice(len(ops), 12, replace=False):
        xo = ops.apply(int(op), x[0])[None]
        got = f.compute(xo, cells, lay)
        for name in f.orbits:
            np.testing.assert_allclose(multiset(got[name][0]), multiset(base[name][0]), atol=1e-9)
        sites = f.site_features(got, lay)
        for o in f.site_orbits:
            np.testing.assert_allclose(multiset(sites[o.name][0]), multiset(base_sites[o.name][0]), atol=1e-9)


def test_a_non_symmetry_changes_the_features():
    """The check above can fail: swapping two Br sites of different orientation is no symmetry."""
    f = fz()
    sc = Supercell.diagonal(f.reference, 2)
    x, cells = config(sc, 1, strain=0.0, seed=2)
    lay = f.layout(sc)
    y = x.copy()
    y[0, [1, 2]] = y[0, [2, 1]]  # Br(x) and Br(y) of cell 0 trade places
    a, b = f.compute(x, cells, lay)["PbBr6"][0], f.compute(y, cells, lay)["PbBr6"][0]
    assert np.abs(multiset(a) - multiset(b)).max() > 1e-3


def test_site_features_are_brute_force_sums_over_containing_clusters():
    f = fz()
    sc = Supercell.diagonal(f.reference, 2)
    lay = f.layout(sc)
    x, cells = config(sc, 2, seed=5)
    feats = f.compute(x, cells, lay)
    sites = f.site_features(feats, lay)
    for o in f.site_orbits:
        rows = np.flatnonzero(np.isin(sc.site_basis, o.basis))
        for k, s in enumerate(rows[:5]):
            parts = []
            for name in o.clusters:
                scl = sc.clusters(f.clusters[name])
                contains = np.any(scl.atoms == s, axis=1)
                parts.append(feats[name][:, contains].sum(axis=1))
            np.testing.assert_allclose(sites[o.name][:, k], np.concatenate(parts, axis=1), atol=1e-12)


# ------------------------------------------------------------- forces and stress
def _energy(f, lay, w):
    return lambda x, c: sum((f.compute(x, c, lay)[n] * w[n]).sum(axis=(1, 2)) for n in f.orbits)


@pytest.mark.parametrize("matrix", [(2, 2, 2), [[1, 1, 0], [-1, 1, 0], [0, 0, 2]]])
def test_forces_and_stress_are_finite_differences(matrix):
    """For E = Σ_orbits Σ_clusters w·φ with random weights: dE/dx from the fused VJP equals central
    differences, and the strain derivative W equals dE/dε of a homogeneous strain of positions and
    cell (so stress = W/V in ASE's convention)."""
    f = fz()
    sc = Supercell.from_matrix(f.reference, np.diag(matrix) if len(np.shape(matrix)) == 1 else matrix)
    lay = f.layout(sc)
    x, cells = config(sc, 2, seed=7)
    rng = np.random.default_rng(1)
    feats = f.compute(x, cells, lay)
    w = {n: rng.standard_normal(v.shape) for n, v in feats.items()}
    grad, vir, fused = f.vjp(x, cells, lay, w, with_features=True)
    for n in f.orbits:
        np.testing.assert_array_equal(fused[n], feats[n])
    e = _energy(f, lay, w)
    h = 1e-5
    for (fr, a, d) in [(0, 0, 0), (1, 13, 2), (0, sc.n_atoms - 1, 1)]:
        xp, xm = x.copy(), x.copy()
        xp[fr, a, d] += h
        xm[fr, a, d] -= h
        fd = (e(xp, cells) - e(xm, cells))[fr] / (2 * h)
        assert fd == pytest.approx(grad[fr, a, d], rel=1e-6, abs=1e-8)
    for (i, j) in [(0, 0), (0, 1), (2, 1)]:
        eps = np.zeros((3, 3))
        eps[i, j] = h

        def strained(s):
            m = np.eye(3) + s
            return x @ m.T, cells @ m.T

        fd = (e(*strained(eps)) - e(*strained(-eps))) / (2 * h)
        np.testing.assert_allclose(vir[:, i, j], fd, rtol=1e-6, atol=1e-7)


def test_jvp_is_the_directional_derivative_and_the_adjoint_of_the_vjp():
    f = fz()
    sc = Supercell.diagonal(f.reference, 2)
    lay = f.layout(sc)
    x, cells = config(sc, 2, seed=8)
    rng = np.random.default_rng(2)
    t = rng.standard_normal(x.shape)
    s = 0.1 * rng.standard_normal((2, 3, 3))
    jv = f.jvp(x, cells, lay, t, s)
    h = 1e-6
    step = lambda k: (x + k * t + k * np.einsum("fij,fnj->fni", s, x),
                      cells + k * np.einsum("fij,fkj->fki", s, cells))
    plus, minus = f.compute(*step(h), lay), f.compute(*step(-h), lay)
    for n in f.orbits:
        np.testing.assert_allclose(jv[n], (plus[n] - minus[n]) / (2 * h), rtol=1e-5, atol=1e-8)
    w = {n: rng.standard_normal(v.shape) for n, v in jv.items()}
    grad, vir, _ = f.vjp(x, cells, lay, w)
    lhs = sum((jv[n] * w[n]).sum() for n in f.orbits)
    assert lhs == pytest.approx((grad * t).sum() + (vir * s).sum(), rel=1e-12)


def test_threads_give_identical_results():
    from ccdgen.codegen.compiled import get_num_threads, set_num_threads

    f = fz()
    sc = Supercell.diagonal(f.reference, 3)
    lay = f.layout(sc)
    x, cells = config(sc, 1, seed=6)
    w = {n: np.ones((1, lay.n_clusters(n), len(f.feature_names[n]))) for n in f.orbits}
    n0 = get_num_threads()
    try:
        set_num_threads(1)
        a = f.compute(x, cells, lay), f.vjp(x, cells, lay, w)
        set_num_threads(2)
        b = f.compute(x, cells, lay), f.vjp(x, cells, lay, w)
    finally:
        set_num_threads(n0)
    for n in f.orbits:
        np.testing.assert_array_equal(a[0][n], b[0][n])
    np.testing.assert_allclose(a[1][0], b[1][0], atol=1e-12)  # private buffers sum in another order


# --------------------------------------------------------------------- datasets
def test_featurize_dataset_cache_and_resume(monkeypatch):
    from ccdgen.data.features import featurize_dataset
    from ccdgen.data.io import read_dataset

    f = fz()
    ds = read_dataset(DATA / "train.extxyz.gz", index=":120")
    calls = []
    real = f.compute

    def counting(*a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # killed during the third chunk
        return real(*a, **k)

    monkeypatch.setattr(f, "compute", counting)
    with pytest.raises(KeyboardInterrupt):
        featurize_dataset(f, ds, chunk=50)
    calls.clear()
    monkeypatch.setattr(f, "compute", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    fs = featurize_dataset(f, ds, chunk=50)
    assert len(calls) == 1  # the two finished chunks came from the cache
    calls.clear()
    fs2 = featurize_dataset(f, ds, chunk=50)
    assert not calls
    b, b2 = fs.blocks[0], fs2.blocks[0]
    for n in f.orbits:
        np.testing.assert_array_equal(b.clusters[n], b2.clusters[n])
    # the cached features are the features
    direct = real(b.site_positions, b.cells, b.layout)
    for n in f.orbits:
        np.testing.assert_array_equal(direct[n], b.clusters[n])


def test_a_frame_of_another_crystal_is_a_clear_error_naming_it():
    from ase.build import bulk

    from ccdgen.data.dataset import Dataset
    from ccdgen.data.features import featurize_dataset

    nacl = bulk("NaCl", "rocksalt", a=5.6, cubic=True).repeat(2)
    with pytest.raises(MappingError, match="frame 0"):
        featurize_dataset(fz(), Dataset.from_atoms([nacl]), cache=False)


def test_bad_arrays_are_clear_errors():
    f = fz()
    sc = Supercell.diagonal(f.reference, 2)
    lay = f.layout(sc)
    x, cells = config(sc, 1)
    with pytest.raises(InputArrayError, match="n_frames"):
        f.compute(x[:, :10], cells, lay)
    y = x.copy()
    y[0, 3, 1] = np.nan
    with pytest.raises(InputArrayError, match="NaN"):
        f.compute(y, cells, lay)
    with pytest.raises(SpecError, match="no cluster orbit"):
        CrystalFeaturizer(SPEC, 2, clusters=["pair1", "nope"])


def test_collapsed_atoms_are_a_clear_error():
    f = CrystalFeaturizer(SPEC, 2, metric="log")
    sc = Supercell.diagonal(f.reference, 2)
    lay = f.layout(sc)
    x, cells = config(sc, 1, amp=0.0, strain=0.0)
    x[0, 1] = x[0, 0]  # a Br on top of its Pb
    with pytest.raises(InputArrayError, match="coincide"):
        f.compute(x, cells, lay)


def test_signature_depends_on_order_clusters_and_metric_only():
    a = fz(2)
    assert a.signature() == CrystalFeaturizer(SPEC, 2).signature()
    assert a.signature() != CrystalFeaturizer(SPEC, 3).signature()
    assert a.signature() != CrystalFeaturizer(SPEC, 2, clusters=["pair1", "PbBr6"]).signature()
    assert a.signature() != CrystalFeaturizer(SPEC, 2, metric="log").signature()


def test_cli_featurize_writes_one_array_per_orbit(tmp_path):
    from ccdgen.cli.main import main

    out = tmp_path / "f.npz"
    assert main(["featurize", str(SPEC), str(DATA / "train.extxyz.gz"), "--index", ":20", "--order", "2",
                 "-o", str(out)]) == 0
    z = np.load(out)
    f = fz()
    for n in f.orbits:
        assert z[n].shape == (20, len(f.clusters[n].orbit) * 8, len(f.feature_names[n]))
        assert list(z[f"feature_names/{n}"]) == list(f.feature_names[n])
    assert z["site/Br"].shape[:2] == (20, 24) and z["site/Pb"].shape[:2] == (20, 8)
