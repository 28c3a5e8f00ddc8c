"""Supercells: site order (against ASE), locate, translations, cluster orbits (against a
brute-force neighbour-list enumeration), wrapping errors, metric fit, symmetry operations."""

from __future__ import annotations

from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from ase.build import make_supercell
from ase.neighborlist import neighbor_list

from ccdgen.clusters import embedded_cluster
from ccdgen.crystal.supercell import (Supercell, fit_supercell_matrices, hermite_normal_form)
from ccdgen.errors import ClusterError, MappingError, StructureError, SymmetryError
from ccdgen.geometry.structure import Crystal
from ccdgen.pipeline import load
from ccdgen.testing import random_rotation

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
A0 = 5.9436
SQRT2 = [[1, 1, 0], [-1, 1, 0], [0, 0, 2]]  # √2×√2×2 (the 20-atom Pnma cell)
MATRICES = {"2x2x2": np.diag([2, 2, 2]), "3x3x3": np.diag([3, 3, 3]), "sqrt2": np.array(SQRT2),
            "skew": np.array([[2, 0, 0], [1, 2, 0], [0, 1, 1]]),
            "left": np.array([[1, 1, 0], [1, -1, 0], [0, 0, 2]])}


@lru_cache(maxsize=None)
def problem():
    return load(EXAMPLE)


def clusters_by_name():
    return {c.name: c for c in problem().clusters}


def sorted_lengths(x):
    i, j = np.triu_indices(x.shape[-2], 1)
    return np.sort(np.linalg.norm(x[..., i, :] - x[..., j, :], axis=-1), axis=-1)


def skewed_crystal():
    """A triclinic two-site crystal (non-trivial positions and reduction)."""
    cell = [[4.0, 0.3, -0.2], [1.1, 3.7, 0.4], [0.5, -0.6, 5.2]]
    return Crystal.from_arrays(cell, ["Na", "Cl"], [[0.1, 0.2, 0.3], [0.55, 0.6, 0.8]])


# ------------------------------------------------------------------ site order and positions
@pytest.mark.parametrize("repeat", [(1, 1, 1), (2, 2, 2), (3, 1, 2), (2, 3, 4)])
def test_diagonal_is_ase_repeat_order(repeat):
    cr = problem().crystal
    sc = Supercell.diagonal(cr, repeat)
    ase_sc = cr.to_atoms().repeat(repeat)
    assert np.array_equal(sc.positions, ase_sc.positions)  # bit for bit
    assert list(sc.species) == ase_sc.get_chemical_symbols()
    assert np.array_equal(sc.cell, ase_sc.cell.array)
    assert sc.n_cells == np.prod(repeat) and sc.n_atoms == len(ase_sc)
    m = np.array(repeat)
    expected = [(m0, m1, m2) for m0 in range(m[0]) for m1 in range(m[1]) for m2 in range(m[2])]
    assert sc.translations.tolist() == [list(t) for t in expected]


def test_diagonal_skewed_reference_matches_ase():
    cr = skewed_crystal()
    sc = Supercell.diagonal(cr, (2, 3, 2))
    ase_sc = cr.to_atoms().repeat((2, 3, 2))
    np.testing.assert_allclose(sc.positions, ase_sc.positions, atol=1e-12)
    assert list(sc.species) == ase_sc.get_chemical_symbols()


@pytest.mark.parametrize("name", ["sqrt2", "skew", "left", "3x3x3"])
def test_positions_are_the_ase_make_supercell_sites(name):
    """Same set of sites as ase.build.make_supercell (an independent construction)."""
    cr = problem().crystal if name != "skew" else skewed_crystal()
    h = MATRICES[name]
    sc = Supercell(cr, h)
    ref = make_supercell(cr.to_atoms(), h)
    assert len(ref) == sc.n_atoms == abs(round(np.linalg.det(h))) * cr.n_basis
    np.testing.assert_allclose(sc.cell, ref.cell.array, atol=1e-12)
    # match modulo the supercell lattice
    diff = (sc.positions[:, None] - ref.positions[None]) @ np.linalg.inv(sc.cell)
    dist = np.linalg.norm((diff - np.rint(diff)) @ sc.cell, axis=-1)
    match = np.argmin(dist, axis=1)
    assert np.all(dist[np.arange(sc.n_atoms), match] < 1e-8)
    assert len(set(match.tolist())) == sc.n_atoms
    assert [sc.species[i] for i in range(sc.n_atoms)] == [ref.get_chemical_symbols()[j] for j in match]


@pytest.mark.parametrize("name", list(MATRICES))
def test_translations_are_a_residue_system(name):
    sc = Supercell(problem().crystal, MATRICES[name])
    t = sc.translations
    assert len(t) == abs(round(np.linalg.det(MATRICES[name])))
    x = (t[:, None] - t[None]) @ np.linalg.inv(MATRICES[name].astype(float))
    integral = np.all(np.abs(x - np.rint(x)) < 1e-9, axis=-1)
    assert np.array_equal(integral, np.eye(len(t), dtype=bool))  # distinct modulo H
    # the order depends only on the superlattice: another basis of it gives the same cells
    other = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1]]) @ MATRICES[name]
    assert np.array_equal(Supercell(problem().crystal, other).translations, t)


def test_hermite_normal_form_properties():
    rng = np.random.default_rng(3)
    for _ in range(50):
        h = rng.integers(-4, 5, (3, 3))
        if round(np.linalg.det(h)) == 0:
            continue
        b, v = hermite_normal_form(h)
        assert np.array_equal(b, v @ h)
        assert abs(round(np.linalg.det(v))) == 1
        assert np.all(np.triu(b, 1) == 0) and np.all(np.diag(b) > 0)
        assert all(0 <= b[i, j] < b[j, j] for i in range(3) for j in range(i))
        assert np.prod(np.diag(b)) == abs(round(np.linalg.det(h)))


@pytest.mark.parametrize("name", list(MATRICES))
def test_locate_against_positions(name):
    cr = problem().crystal if name != "skew" else skewed_crystal()
    sc = Supercell(cr, MATRICES[name])
    rng = np.random.default_rng(7)
    sites = np.column_stack([rng.integers(0, cr.n_basis, 500), rng.integers(-9, 10, (500, 3))])
    idx, img = sc.locate(sites)
    assert idx.dtype == np.int64 and img.dtype == np.int64
    want = cr.cartesian(cr.frac[sites[:, 0]] + sites[:, 1:])
    np.testing.assert_allclose(sc.positions[idx] + img @ sc.cell, want, atol=1e-9)
    assert np.all(sc.site_basis[idx] == sites[:, 0])
    # every supercell site is located onto itself with image 0
    own = np.column_stack([sc.site_basis, sc.site_translation])
    i2, m2 = sc.locate(own)
    assert np.array_equal(i2, np.arange(sc.n_atoms)) and not np.any(m2)


def test_bad_matrices():
    cr = problem().crystal
    with pytest.raises(StructureError, match="singular"):
        Supercell(cr, [[1, 0, 0], [2, 0, 0], [0, 0, 1]])
    with pytest.raises(StructureError, match="integer"):
        Supercell(cr, [[1.5, 0, 0], [0, 1, 0], [0, 0, 1]])
    with pytest.raises(StructureError, match="shape"):
        Supercell(cr, [[1, 0], [0, 1]])
    with pytest.raises(StructureError, match="positive"):
        Supercell.diagonal(cr, (2, 0, 2))


def test_signature_depends_on_matrix_and_reference():
    cr = problem().crystal
    a = Supercell.diagonal(cr, 2)
    assert a.signature() == Supercell(cr, np.diag([2, 2, 2])).signature()
    assert a.signature() != Supercell.diagonal(cr, (2, 2, 3)).signature()
    assert a.signature() != Supercell.diagonal(skewed_crystal(), 2).signature()
    assert a.to_atoms().get_chemical_formula() == "Br24Cs8Pb8"


# ------------------------------------------------------------------ cluster orbits
CLUSTER_CELLS = ["2x2x2", "3x3x3", "sqrt2"]


@pytest.mark.parametrize("cell", CLUSTER_CELLS)
def test_orbit_counts_and_geometry(cell):
    sc = Supercell(problem().crystal, MATRICES[cell])
    for c in problem().clusters:
        got = sc.clusters(c)
        assert got.name == c.name
        assert got.atoms.shape == (len(c.orbit) * sc.n_cells, c.n_sites)
        assert got.images.shape == (len(c.orbit) * sc.n_cells, c.n_sites, 3)
        x = got.positions(sc.positions, sc.cell)
        np.testing.assert_allclose(sorted_lengths(x), np.broadcast_to(sorted_lengths(c.positions),
                                                                      (got.n_clusters, c.n_pairs)),
                                   atol=1e-9)
        species = np.array(sc.species)
        assert all(sorted(species[a]) == sorted(c.species) for a in got.atoms)


@pytest.mark.parametrize("cell", ["2x2x2", "sqrt2"])
def test_cluster_sites_follow_the_prototype_order(cell):
    """Row k, site i is the image of prototype site i under a crystal symmetry: the labelled
    geometry is R (prototype) + τ for one of the space group's Cartesian rotations R."""
    p = problem()
    sc = Supercell(p.crystal, MATRICES[cell])
    rots = p.spacegroup.cartesian_rotations
    for c in p.clusters:
        got = sc.clusters(c)
        x = got.positions(sc.positions, sc.cell)
        a = c.positions - c.positions[0]
        b = x - x[:, :1]
        species = np.array(sc.species)
        assert np.all(species[got.atoms] == np.array(c.species))
        # some R with b_k = a Rᵀ for every row k
        fits = np.stack([np.abs(b - a @ r.T).max(axis=(1, 2)) for r in rots])  # (n_ops, n_clusters)
        assert np.all(fits.min(axis=0) < 1e-9), c.name


def cluster_key(atoms, images):
    """A cluster of atoms with images, up to a supercell translation and site order."""
    k = int(np.argmin(atoms))
    return frozenset((int(a), tuple((m - images[k]).tolist())) for a, m in zip(atoms, images))


def brute_pairs(sc, species, length):
    """All pairs of atoms with these species at this distance, with their image vectors,
    counted with multiplicity (ase.neighborlist)."""
    at = sc.to_atoms()
    i, j, shift, d = neighbor_list("ijSd", at, length + 1e-3)
    sym = np.array(sc.species)
    keys = Counter()
    for a, b, s, dd in zip(i, j, shift, d):
        if abs(dd - length) < 1e-6 and sorted((sym[a], sym[b])) == sorted(species):
            keys[cluster_key(np.array([a, b]), np.array([[0, 0, 0], s]))] += 1
    assert all(v % 2 == 0 for v in keys.values())  # each pair seen from both ends
    return Counter({k: v // 2 for k, v in keys.items()})


@pytest.mark.parametrize("cell", CLUSTER_CELLS)
def test_pair_clusters_equal_brute_force(cell):
    sc = Supercell(problem().crystal, MATRICES[cell])
    groups = defaultdict(Counter)
    for c in problem().clusters:
        if c.kind != "pair":
            continue
        key = (tuple(sorted(c.species)), round(float(sorted_lengths(c.positions)[0]), 6))
        got = sc.clusters(c)
        groups[key].update(cluster_key(a, m) for a, m in zip(got.atoms, got.images))
    assert len(groups) == 6  # pair5 and pair6 are both Br-Br at a0
    for (species, length), counts in groups.items():
        assert counts == brute_pairs(sc, species, length), (species, length)


def pb_shells(sc):
    """For each Pb atom, its 6 Br neighbours (atom, image) from a neighbour list."""
    at = sc.to_atoms()
    i, j, shift = neighbor_list("ijS", at, A0 / 2 + 0.01)
    sym = np.array(sc.species)
    shells = defaultdict(list)
    for a, b, s in zip(i, j, shift):
        if sym[a] == "Pb" and sym[b] == "Br":
            shells[int(a)].append((int(b), np.array(s)))
    assert all(len(v) == 6 for v in shells.values()) and len(shells) == sc.n_cells
    return shells


@pytest.mark.parametrize("cell", CLUSTER_CELLS)
def test_octahedra_and_triplets_equal_brute_force(cell):
    sc = Supercell(problem().crystal, MATRICES[cell])
    cl = clusters_by_name()
    shells = pb_shells(sc)
    octa, trip = Counter(), Counter()
    for pb, shell in shells.items():
        octa[cluster_key(np.array([b for b, _ in shell]), np.array([s for _, s in shell]))] += 1
        xs = [sc.positions[b] + s @ sc.cell for b, s in shell]
        for p in range(6):
            for q in range(p + 1, 6):
                if abs(np.linalg.norm(xs[p] - xs[q]) - A0 / np.sqrt(2)) < 1e-6:
                    trip[cluster_key(np.array([pb, shell[p][0], shell[q][0]]),
                                     np.array([[0, 0, 0], shell[p][1], shell[q][1]]))] += 1
    got = sc.clusters(cl["PbBr6"])
    assert Counter(cluster_key(a, m) for a, m in zip(got.atoms, got.images)) == octa
    got = sc.clusters(cl["triplet"])
    assert Counter(cluster_key(a, m) for a, m in zip(got.atoms, got.images)) == trip
    assert sum(trip.values()) == 12 * sc.n_cells


def test_pb_pb_pair_meets_its_image_twice_in_2x2x2():
    p = problem()
    cr, sg = p.crystal, p.spacegroup
    pbpb = embedded_cluster(cr, sg, [[0, 0, 0, 0], [0, 1, 0, 0]], "PbPb", "pair")
    assert len(pbpb.orbit) == 3
    sc = Supercell.diagonal(cr, 2)
    got = sc.clusters(pbpb)
    assert got.n_clusters == 24
    x_axis = [k for k in range(got.n_clusters)
              if np.allclose(np.abs(np.diff(got.positions(sc.positions, sc.cell)[k], axis=0)),
                             [[A0, 0, 0]])]
    by_atoms = Counter(tuple(sorted(got.atoms[k].tolist())) for k in x_axis)
    assert by_atoms[(0, 20)] == 2  # Pb of cell 0 and Pb of cell (1, 0, 0): through +x and -x
    assert all(v == 2 for v in by_atoms.values()) and len(by_atoms) == 4
    ks = [k for k in x_axis if sorted(got.atoms[k].tolist()) == [0, 20]]
    rel = {tuple((got.images[k][1] - got.images[k][0]) * (1 if got.atoms[k][0] == 0 else -1))
           for k in ks}
    # atom 20 (x = a0) is reached directly (+x) and through the image at x = -a0 (-x)
    assert rel == {(0, 0, 0), (-1, 0, 0)}


@pytest.mark.parametrize("name, n", [("pair6", 2), ("PbBr6", 2), ("pair7", 2), ("pair1", 1)])
def test_wrapping_is_an_error_with_a_size_hint(name, n):
    sc = Supercell.diagonal(problem().crystal, 1)
    c = clusters_by_name()[name]
    if n == 1:  # Pb-Br bond: fits in one cell
        assert sc.clusters(c).n_clusters == len(c.orbit)
        return
    with pytest.raises(ClusterError) as info:
        sc.clusters(c)
    msg = str(info.value)
    assert name in msg and "wraps onto itself" in msg and f"{n}×{n}×{n}" in msg


def test_wrapping_hint_for_a_long_cluster():
    p = problem()
    long = embedded_cluster(p.crystal, p.spacegroup, [[0, 0, 0, 0], [0, 3, 0, 0]], "Pb3", "pair")
    with pytest.raises(ClusterError) as info:
        Supercell.diagonal(p.crystal, 3).clusters(long)
    assert "2×2×2" in str(info.value) and "n ≥ 4" in str(info.value)
    for n in (2, 4, 5):
        assert Supercell.diagonal(p.crystal, n).clusters(long).n_clusters == 3 * n ** 3
    with pytest.raises(ClusterError):
        Supercell.diagonal(p.crystal, 1).clusters(long)


def test_free_cluster_has_no_supercell_orbit():
    from ccdgen.clusters import free_cluster
    from ccdgen.symmetry.free import polyhedron

    sp, x = polyhedron("tetrahedron", 2.0)
    with pytest.raises(ClusterError, match="free"):
        Supercell.diagonal(problem().crystal, 2).clusters(free_cluster(x, sp, "tet"))


# ------------------------------------------------------------------ metric fit
@pytest.mark.parametrize("name", ["2x2x2", "3x3x3", "sqrt2"])
def test_from_cell_recovers_h_under_rotation_and_strain(name):
    cr = problem().crystal
    h = MATRICES[name]
    sc = Supercell(cr, h)
    rng = np.random.default_rng(11)
    for _ in range(5):
        e = rng.uniform(-0.05, 0.05, (3, 3))
        f = random_rotation(rng) @ (np.eye(3) + 0.5 * (e + e.T))
        got = Supercell.from_cell(cr, sc.cell @ f.T, n_atoms=sc.n_atoms)
        assert np.array_equal(got.matrix, h)


def test_from_cell_metric_only():
    """The fitted stretch is the same for every rotation (and is the applied one)."""
    cr = problem().crystal
    sc = Supercell.diagonal(cr, 2)
    rng = np.random.default_rng(5)
    u = np.eye(3) + np.diag([0.03, -0.02, 0.01])
    base = fit_supercell_matrices(cr.cell, sc.cell @ u, 8)
    assert np.isclose(base[1][0], np.log(1.03))
    key = sorted(h.tobytes() for h in base[0])
    assert len(key) == 24  # diag(2,2,2) times the 24 proper cubic rotations
    for _ in range(3):
        hh, s = fit_supercell_matrices(cr.cell, sc.cell @ u @ random_rotation(rng).T, 8)
        assert sorted(h.tobytes() for h in hh) == key and np.allclose(s, base[1])


def test_from_cell_left_handed_cell_gives_negative_det():
    cr = problem().crystal
    c = Supercell.diagonal(cr, 2).cell[[1, 0, 2]]  # swapped rows: left-handed
    sc = Supercell.from_cell(cr, c, n_atoms=40)
    assert sc.determinant == -8 and sc.n_cells == 8
    g = sc.cell @ sc.cell.T
    np.testing.assert_allclose(g, c @ c.T, atol=1e-9)


def test_from_cell_error_names_best_candidate_and_strain():
    cr = problem().crystal
    with pytest.raises(MappingError) as info:
        Supercell.from_cell(cr, np.diag([2.8, 2, 2]) * A0, n_atoms=40, frame=17)
    msg = str(info.value)
    assert "frame 17" in msg and "no integer supercell" in msg and "8 cells" in msg
    assert "best candidate" in msg and "%" in msg and "max_strain" in msg
    with pytest.raises(MappingError, match="not a whole number"):
        Supercell.from_cell(cr, np.eye(3) * 2 * A0, n_atoms=41)


# ------------------------------------------------------------------ symmetry operations
def compatible_count_bruteforce(sc, sg):
    """Point operations whose Cartesian rotation maps the supercell lattice onto itself."""
    n = 0
    for r in sg.cartesian_rotations:
        m = sc.cell @ r.T @ np.linalg.inv(sc.cell)
        n += bool(np.allclose(m, np.rint(m), atol=1e-8))
    return n


@pytest.mark.parametrize("name, expected", [("2x2x2", 48 * 8), ("sqrt2", 16 * 4), ("skew", None)])
def test_symmetry_operation_count(name, expected):
    p = problem()
    sc = Supercell(p.crystal, MATRICES[name])
    ops = sc.symmetry_operations(p.spacegroup)
    assert len(ops) == compatible_count_bruteforce(sc, p.spacegroup) * sc.n_cells
    if expected is not None:
        assert len(ops) == expected
    assert len({p.tobytes() for p in ops.perms}) == len(ops)  # all distinct
    assert np.array_equal(ops.perms[0], np.arange(sc.n_atoms)) and np.allclose(ops.rotations[0], np.eye(3))


@pytest.mark.parametrize("name", ["2x2x2", "sqrt2", "left"])
def test_symmetry_operations_map_ideal_sites_exactly(name):
    p = problem()
    sc = Supercell(p.crystal, MATRICES[name])
    ops = sc.symmetry_operations(p.spacegroup)
    x = sc.positions
    linv = np.linalg.inv(sc.cell)
    species = np.array(sc.species)
    for k in range(len(ops)):
        r = ops.rotations[k]
        assert np.allclose(r @ r.T, np.eye(3), atol=1e-12)
        y = x @ r.T + ops.translations[k]
        # independent match: fractional difference to the claimed image site is an integer
        diff = (y - x[ops.perms[k]]) @ linv
        np.testing.assert_allclose(diff, ops.images[k], atol=1e-9)
        assert np.array_equal(species[ops.perms[k]], species)
        np.testing.assert_allclose(ops.apply(k, x), x, atol=1e-9)


def test_symmetry_operations_form_a_group():
    p = problem()
    sc = Supercell.diagonal(p.crystal, 2)
    ops = sc.symmetry_operations(p.spacegroup)
    index = {q.tobytes(): k for k, q in enumerate(ops.perms)}
    rng = np.random.default_rng(2)
    linv = np.linalg.inv(sc.cell)
    for _ in range(60):
        i, j = rng.integers(len(ops), size=2)
        perm = ops.perms[j][ops.perms[i]]  # first i, then j
        k = index[perm.tobytes()]
        np.testing.assert_allclose(ops.rotations[k], ops.rotations[j] @ ops.rotations[i], atol=1e-12)
        tau = ops.rotations[j] @ ops.translations[i] + ops.translations[j]
        d = (tau - ops.translations[k]) @ linv
        np.testing.assert_allclose(d, np.rint(d), atol=1e-9)


def test_symmetry_operations_act_on_displacements():
    p = problem()
    sc = Supercell(p.crystal, SQRT2)
    ops = sc.symmetry_operations(p.spacegroup)
    rng = np.random.default_rng(4)
    d = rng.normal(0, 0.1, (sc.n_atoms, 3))
    for k in rng.integers(len(ops), size=10):
        x2 = ops.apply(k, sc.positions + d)
        d2 = np.empty_like(d)
        d2[ops.perms[k]] = d @ ops.rotations[k].T
        np.testing.assert_allclose(x2 - sc.positions, d2, atol=1e-9)


def test_symmetry_operations_need_the_reference_space_group():
    from ccdgen.symmetry.spacegroup import space_group

    p = problem()
    other = space_group(skewed_crystal())
    with pytest.raises(SymmetryError, match="another crystal"):
        Supercell.diagonal(p.crystal, 2).symmetry_operations(other)
