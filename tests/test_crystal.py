"""Crystal front end: CsPbBr3 space group, embedded cluster groups, orbits, supercells."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.neighborlist import neighbor_list

from ccdgen.errors import ClusterError
from ccdgen.pipeline import load
from ccdgen.testing import random_rotation

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
A0 = 5.9436

# name -> (species, pair lengths / a0, Schoenflies, order, orbit size per primitive cell)
EXPECTED = {
    "pair1": (("Br", "Pb"), [0.5], "C4v", 8, 6),  # Pb-Br bond
    "pair2": (("Br", "Br"), [0.5 ** 0.5], "C2v", 4, 12),  # cis Br-Br edge of the octahedron
    "pair3": (("Br", "Cs"), [0.5 ** 0.5], "C2v", 4, 12),
    "pair4": (("Cs", "Pb"), [0.75 ** 0.5], "C3v", 6, 8),
    "pair5": (("Br", "Br"), [1.0], "D2h", 8, 6),  # Br-Br across a cube face, parallel
    "pair6": (("Br", "Br"), [1.0], "D4h", 16, 3),  # axial Br-Pb-Br
    "pair7": (("Cs", "Cs"), [1.0], "D4h", 16, 3),
    "triplet": (("Br", "Br", "Pb"), [0.5, 0.5, 0.5 ** 0.5], "C2v", 4, 12),
    "PbBr6": (("Br",) * 6, [0.5 ** 0.5] * 12 + [1.0] * 3, "Oh", 48, 1),
}

CLUSTERS_TOML = """
[[clusters]]
name = "pair"
kind = "pairs"
count = 7
max_length = 6.5

[[clusters]]
name = "triplet"
kind = "triplets"
count = 1
max_length = 4.5

[[clusters]]
name = "PbBr6"
kind = "polyhedron"
center = "Pb"
neighbors = "Br"
count = 6
"""


@lru_cache(maxsize=None)
def example():
    return load(EXAMPLE)


def by_name(problem):
    return {c.name: c for c in problem.clusters}


def sorted_lengths(x):
    i, j = np.triu_indices(len(x), 1)
    return np.sort(np.linalg.norm(x[i] - x[j], axis=-1))


def fingerprint(problem):
    """Orientation- and basis-order-independent description of every cluster."""
    out = []
    for c in problem.clusters:
        out.append((tuple(sorted(c.species)), tuple(np.round(sorted_lengths(c.positions), 4)),
                    c.group.schoenflies, c.group.order, len(c.orbit)))
    return Counter(out)


def inline_spec(tmp_path, cell, species, frac, name="spec.toml"):
    def fmt(rows):
        return "[" + ", ".join("[" + ", ".join(repr(float(v)) for v in r) + "]" for r in rows) + "]"

    text = (f"[crystal]\nlattice = {fmt(cell)}\nspecies = {list(species)!r}\n"
            f"positions = {fmt(frac)}\n".replace("'", '"') + CLUSTERS_TOML)
    path = tmp_path / name
    path.write_text(text)
    return path


# ------------------------------------------------------------------ space group
def test_space_group():
    p = example()
    assert p.spacegroup.number == 221
    assert p.spacegroup.international == "Pm-3m"
    assert len(p.spacegroup.rotations) == 48


def test_space_group_ops_map_crystal_onto_itself():
    p = example()
    cr, sg = p.crystal, p.spacegroup
    for k in range(len(sg.rotations)):
        img = cr.frac @ sg.rotations[k].T + sg.translations[k]
        expect = cr.frac[sg.site_map[k]] + sg.site_shift[k]
        np.testing.assert_allclose(img, expect, atol=1e-8)
        assert [cr.species[b] for b in sg.site_map[k]] == list(cr.species)


def test_cluster_names():
    assert [c.name for c in example().clusters] == list(EXPECTED)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_cluster_group_and_orbit(name):
    species, lengths, label, order, orbit = EXPECTED[name]
    c = by_name(example())[name]
    assert tuple(sorted(c.species)) == species
    np.testing.assert_allclose(sorted_lengths(c.positions), np.sort(lengths) * A0, atol=1e-6)
    assert c.group.schoenflies == label
    assert c.group.order == order
    assert len(c.orbit) == orbit
    assert c.sites is not None and c.sites.shape == (c.n_sites, 4)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_orbit_members_are_congruent_and_distinct(name):
    c = by_name(example())[name]
    cr = example().crystal
    keys = set()
    for member in c.orbit:
        pos = cr.cartesian(cr.frac[member[:, 0]] + member[:, 1:])
        np.testing.assert_allclose(sorted_lengths(pos), sorted_lengths(c.positions), atol=1e-8)
        assert sorted(cr.species[b] for b in member[:, 0]) == sorted(c.species)
        keys.add(member.tobytes())
    assert len(keys) == len(c.orbit)


@pytest.mark.parametrize("name", list(EXPECTED))
def test_embedded_operations_are_crystal_symmetries(name):
    """Every (R, perm) of the cluster group, as the affine map x -> R (x - c) + c, maps the
    cluster onto itself with that permutation and the whole crystal onto itself."""
    p = example()
    cr = p.crystal
    c = by_name(p)[name]
    centre = c.positions.mean(axis=0)
    a = cr.cell
    ainv = np.linalg.inv(a)
    for r, perm in zip(c.group.rotations, c.group.permutations):
        np.testing.assert_allclose((c.positions - centre) @ r.T + centre, c.positions[perm], atol=1e-8)
        assert [c.species[i] for i in perm] == list(c.species)
        # lattice onto lattice: rows of A Rᵀ A⁻¹ are integer vectors, unimodular
        w = a @ r.T @ ainv
        np.testing.assert_allclose(w, np.rint(w), atol=1e-8)
        assert abs(round(np.linalg.det(np.rint(w)))) == 1
        # every basis site onto a site of the same species
        img = ((cr.positions - centre) @ r.T + centre) @ ainv
        for b in range(cr.n_basis):
            d = img[b] - cr.frac
            d -= np.rint(d)
            hits = np.flatnonzero(np.linalg.norm(d @ a, axis=1) < 1e-6)
            assert len(hits) == 1 and cr.species[hits[0]] == cr.species[b]


@pytest.mark.parametrize("name", ["triplet", "PbBr6"])
def test_embedded_group_is_subgroup_of_free_group(name):
    """(Collinear clusters are left out: their free group is infinite and ccdgen keeps
    only its finite image on the sites.)"""
    from ccdgen.symmetry.free import find_point_group

    c = by_name(example())[name]
    assert c.dimension >= 2
    free = find_point_group(c.positions, c.species)
    assert free.order % c.group.order == 0
    for r in c.group.rotations:
        free.index_of(r)  # KeyError if absent


# ------------------------------------------------------------------ supercells
@pytest.mark.parametrize("name", list(EXPECTED))
def test_in_supercell_geometry(name):
    p = example()
    cr = p.crystal
    c = by_name(p)[name]
    sup = cr.to_atoms().repeat((2, 2, 2))
    atoms, images = c.in_supercell(n_basis=cr.n_basis, repeat=(2, 2, 2))
    n = 8 * len(c.orbit)
    assert atoms.shape == (n, c.n_sites) and images.shape == (n, c.n_sites, 3)
    pos = sup.positions[atoms] + images @ sup.cell.array
    ref = sorted_lengths(c.positions)
    species = np.array(sup.get_chemical_symbols())
    keys = set()
    for k in range(n):
        np.testing.assert_allclose(sorted_lengths(pos[k]), ref, atol=1e-8)
        assert sorted(species[atoms[k]]) == sorted(c.species)
        # the same cluster is not listed twice (up to a supercell translation)
        order = np.lexsort((images[k][:, 2], images[k][:, 1], images[k][:, 0], atoms[k]))
        rel = images[k][order] - images[k][order[0]]
        keys.add((tuple(atoms[k][order]), rel.tobytes()))
    assert len(keys) == n


def test_in_supercell_finds_every_bond():
    """pair1 clusters in a 2x2x2 supercell are exactly its Pb-Br nearest-neighbour bonds."""
    p = example()
    cr = p.crystal
    sup = cr.to_atoms().repeat((2, 2, 2))
    i, j, shift = neighbor_list("ijS", sup, 0.5 * A0 + 0.01)
    sym = np.array(sup.get_chemical_symbols())
    bonds = {(int(a), int(b), tuple(s)) for a, b, s in zip(i, j, shift) if sym[a] == "Pb"}
    atoms, images = by_name(p)["pair1"].in_supercell(cr.n_basis, (2, 2, 2))
    got = set()
    for at, im in zip(atoms, images):
        a, b = (0, 1) if sym[at[0]] == "Pb" else (1, 0)
        got.add((int(at[a]), int(at[b]), tuple((im[b] - im[a]).tolist())))
    assert got == bonds and len(got) == 48


def test_in_supercell_rejects_wrapping():
    p = example()
    with pytest.raises(ClusterError, match="wraps onto itself"):
        by_name(p)["pair6"].in_supercell(p.crystal.n_basis, (1, 1, 1))


def test_free_cluster_has_no_supercell():
    from ccdgen.clusters import free_cluster
    from ccdgen.symmetry.free import polyhedron

    sp, x = polyhedron("tetrahedron", 2.0)
    with pytest.raises(ClusterError, match="free"):
        free_cluster(x, sp, "tet").in_supercell(1, (2, 2, 2))


# ------------------------------------------------------------------ other inputs
@pytest.mark.parametrize("fname, fmt", [("POSCAR", "vasp"), ("structure.cif", "cif")])
def test_structure_files_give_same_groups(tmp_path, fname, fmt):
    atoms = example().crystal.to_atoms()
    atoms = atoms[::-1]  # a different basis order
    ase.io.write(tmp_path / fname, atoms, format=fmt)
    spec = tmp_path / "spec.toml"
    spec.write_text(f'[crystal]\nfile = "{fname}"\n' + CLUSTERS_TOML)
    p = load(spec)
    assert p.spacegroup.number == 221
    assert fingerprint(p) == fingerprint(example())


def test_rotated_and_shifted_cell_gives_same_groups(tmp_path):
    cr = example().crystal
    q = random_rotation(np.random.default_rng(3))
    cell = cr.cell @ q.T  # rotate every lattice vector
    frac = cr.frac + np.array([0.13, 0.31, 0.07])  # and move the origin
    p = load(inline_spec(tmp_path, cell, cr.species, frac))
    assert p.spacegroup.number == 221
    ref = by_name(example())
    for c in p.clusters:
        assert c.group.order == ref[c.name].group.order, c.name
        assert c.group.schoenflies == ref[c.name].group.schoenflies, c.name
        assert len(c.orbit) == len(ref[c.name].orbit)
    # the octahedron's operations are the rotated ones
    oct_ = by_name(p)["PbBr6"].group
    for r in ref["PbBr6"].group.rotations:
        oct_.index_of(q @ r @ q.T)


def test_non_cubic_setting_same_orders(tmp_path):
    """A rhombohedral-looking (non-conventional) cell of the same crystal: a supercell
    basis (a, b, a+b+c) is still Pm-3m with the same cluster groups."""
    cr = example().crystal
    m = np.array([[1, 0, 0], [0, 1, 0], [1, 1, 1]])  # det 1: same lattice
    cell = m @ cr.cell
    frac = cr.frac @ np.linalg.inv(m)  # same Cartesian positions
    p = load(inline_spec(tmp_path, cell, cr.species, frac))
    assert p.spacegroup.number == 221
    assert fingerprint(p) == fingerprint(example())


# ----------------------------------------------- non-ideal (relaxed / rounded) reference crystals
def _noisy_spec(tmp_path, noise=2e-4, seed=0):
    from ase import Atoms
    from ase.io import write

    rng = np.random.default_rng(seed)
    a = 5.9436
    cell = np.eye(3) * a + noise * rng.standard_normal((3, 3))
    frac = np.array([[0, 0, 0], [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]])
    frac = frac + noise * rng.standard_normal((5, 3)) / a
    write(tmp_path / "POSCAR", Atoms(["Pb", "Br", "Br", "Br", "Cs"], scaled_positions=frac, cell=cell, pbc=True),
          format="vasp")
    spec = tmp_path / "ccdgen.toml"
    spec.write_text('[crystal]\nfile = "POSCAR"\n\n[[clusters]]\nname = "PbBr6"\nkind = "polyhedron"\n'
                    'center = "Pb"\nneighbors = "Br"\ncount = 6\n\n[[clusters]]\nkind = "pairs"\ncount = 2\n'
                    'max_length = 5.0\n')
    return spec


def test_noisy_crystal_is_symmetrized_exactly(tmp_path):
    from ccdgen.ccd.transform import build_transform
    from ccdgen.pipeline import load

    p = load(_noisy_spec(tmp_path), symprec=1e-2)
    assert p.spacegroup.international == "Pm-3m"
    assert 0 < p.symmetrize_shift < 2e-3
    octa = next(c for c in p.clusters if c.name == "PbBr6")
    assert (octa.group.schoenflies, octa.group.order) == ("Oh", 48)
    r = octa.group.rotations
    np.testing.assert_allclose(np.einsum("gij,gkj->gik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)
    # equivalent pairs have exactly equal reference lengths, so Γ commutes with C exactly
    t = build_transform(octa)
    cis = t.r0[np.isclose(t.r0, t.r0.min(), rtol=1e-3)]
    assert np.ptp(cis) < 1e-12
    # the operations map the symmetrized crystal onto itself
    x = octa.positions - octa.positions.mean(axis=0)
    for g in range(octa.group.order):
        np.testing.assert_allclose(x @ r[g].T, x[octa.group.permutations[g]], atol=1e-10)


def test_noisy_crystal_with_tight_tolerance_finds_a_subgroup(tmp_path):
    from ccdgen.pipeline import load

    p = load(_noisy_spec(tmp_path), symprec=1e-3)
    assert len(p.spacegroup.rotations) < 48  # the noise exceeds symprec: a subgroup, still exact
    r = p.clusters[0].group.rotations
    np.testing.assert_allclose(np.einsum("gij,gkj->gik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-12)


def test_yaml_spec_equals_toml_spec(tmp_path):
    import tomllib

    import yaml

    from ccdgen.pipeline import load

    data = tomllib.loads(EXAMPLE.read_text())
    path = tmp_path / "ccdgen.yaml"
    path.write_text(yaml.safe_dump(data))
    a, b = load(EXAMPLE), load(path)
    assert [(c.name, c.group.order, c.species) for c in a.clusters] == \
        [(c.name, c.group.order, c.species) for c in b.clusters]
    assert a.options == b.options


@pytest.mark.parametrize("name", ["pair1", "pair4", "pair7", "triplet", "PbBr6"])
def test_orbit_members_keep_the_prototype_site_order(name):
    """Kernels read a member's sites in the prototype's order, so every labelled pair of a
    member must have the prototype's reference length, and the labelled member must be the
    image of the labelled prototype under a crystal symmetry (a distance-preserving map that
    also carries species)."""
    p = example()
    c = by_name(p)[name]
    crystal = p.crystal
    proto = crystal.cartesian(crystal.frac[c.sites[:, 0]] + c.sites[:, 1:])
    i, j = np.triu_indices(c.n_sites, 1)
    d0 = np.linalg.norm(proto[i] - proto[j], axis=1)
    for member in c.orbit:
        x = crystal.cartesian(crystal.frac[member[:, 0]] + member[:, 1:])
        np.testing.assert_allclose(np.linalg.norm(x[i] - x[j], axis=1), d0, atol=1e-10)
        assert [crystal.species[b] for b in member[:, 0]] == list(c.species)
        # an orthogonal map R with x - x̄ = (proto - p̄) Rᵀ, from least squares
        a, b = proto - proto.mean(0), x - x.mean(0)
        r, *_ = np.linalg.lstsq(a, b, rcond=None)
        if np.linalg.matrix_rank(a) == 3:
            np.testing.assert_allclose(r.T @ r, np.eye(3), atol=1e-9)
            assert any(np.allclose(r.T, w, atol=1e-9) for w in p.spacegroup.cartesian_rotations)
