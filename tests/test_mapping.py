"""Mapping configurations onto the reference: built configurations with a known
permutation, rotation, strain, translation and displacements; the labelled CsPbBr3
frames; the batch path against the per-frame path; every bad input's message."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms

from ccdgen.crystal.mapping import (DEFAULT_DISPLACEMENT_FRACTION, map_configuration, map_frames)
from ccdgen.crystal.supercell import Supercell
from ccdgen.errors import MappingError
from ccdgen.pipeline import load
from ccdgen.testing import random_rotation

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
DATA = REPO / "examples" / "cspbbr3" / "data"
A0 = 5.9436
SQRT2 = [[1, 1, 0], [-1, 1, 0], [0, 0, 2]]
MATRICES = {"2x2x2": np.diag([2, 2, 2]), "3x3x3": np.diag([3, 3, 3]), "sqrt2": np.array(SQRT2),
            "2x1x1": np.diag([2, 1, 1])}


@lru_cache(maxsize=None)
def reference():
    return load(EXAMPLE).crystal


@lru_cache(maxsize=None)
def train_frames():
    return tuple(ase.io.read(DATA / "train.extxyz.gz", ":120"))


@lru_cache(maxsize=None)
def endpoints():
    return tuple(ase.io.read(DATA / "endpoints.extxyz", ":"))


def site_translation_perm(sc, k):
    """Brute force: the supercell site at the ideal position of site s shifted by the
    reference-lattice vector k (matched by distance modulo L)."""
    linv = np.linalg.inv(sc.cell)
    y = sc.positions + np.asarray(k) @ sc.reference.cell
    diff = (y[:, None] - sc.positions[None]) @ linv
    dist = np.linalg.norm((diff - np.rint(diff)) @ sc.cell, axis=-1)
    out = np.argmin(dist, axis=1)
    assert np.all(dist[np.arange(len(y)), out] < 1e-8)
    return out


def build(sc, rng, disp=0.3, strain=0.05, lattice_shift=True):
    """A configuration with known ground truth: ideal supercell + displacements (|d| ≤
    disp) + symmetric strain (|E_ij| ≤ strain), a random rotation, a random translation
    (a reference-lattice vector plus up to 1 Å), shuffled atoms, wrapped into the cell."""
    n = sc.n_atoms
    d = rng.normal(size=(n, 3))
    d *= (disp * rng.uniform(0, 1, n) / np.linalg.norm(d, axis=1))[:, None]
    e = rng.uniform(-strain, strain, (3, 3))
    u = np.eye(3) + 0.5 * (e + e.T)
    q = random_rotation(rng)
    f = q @ u
    k = rng.integers(-3, 4, 3) if lattice_shift else np.zeros(3, int)
    small = rng.normal(size=3)
    small *= rng.uniform(0, 1.0) / np.linalg.norm(small)
    t = (k @ sc.reference.cell) @ f.T + small
    x_sites = (sc.positions + d) @ f.T + t
    order = rng.permutation(n)  # atom a sits on site order[a]
    atoms = Atoms([sc.species[s] for s in order], positions=x_sites[order], cell=sc.cell @ f.T, pbc=True)
    atoms.wrap()
    # expected: site s (ideal + k) is supercell site moved[s]
    moved = site_translation_perm(sc, k)
    return atoms, dict(site_of_atom=moved[order], U=u, R=q, F=f, d=d - d.mean(0), moved=moved,
                       t=small + f @ d.mean(0))


def check_truth(mp, truth, sc):
    assert np.array_equal(mp.supercell.matrix, sc.matrix)
    assert np.array_equal(mp.site_of_atom, truth["site_of_atom"])
    assert np.array_equal(mp.atom_of_site[mp.site_of_atom], np.arange(sc.n_atoms))
    np.testing.assert_allclose(mp.stretch, truth["U"], atol=1e-10)
    np.testing.assert_allclose(mp.rotation, truth["R"], atol=1e-10)
    np.testing.assert_allclose(mp.deformation, truth["F"], atol=1e-10)
    np.testing.assert_allclose(mp.strain, truth["U"] - np.eye(3), atol=1e-10)
    d = np.empty_like(truth["d"])
    d[truth["moved"]] = truth["d"]
    np.testing.assert_allclose(mp.displacements, d, atol=1e-9)
    np.testing.assert_allclose(mp.translation, truth["t"], atol=1e-9)
    assert np.isclose(mp.max_distance, np.linalg.norm(d, axis=1).max())


def check_identity(mp, atoms):
    """The defining relation: unwrapped positions = F (P + d) + t, and shifts give the images."""
    sc = mp.supercell
    x = mp.site_positions(atoms.positions, atoms.cell.array)
    want = (sc.positions + mp.displacements) @ mp.deformation.T + mp.translation
    np.testing.assert_allclose(x, want, atol=1e-9)
    np.testing.assert_allclose(mp.displacements.mean(0), 0, atol=1e-12)
    np.testing.assert_allclose(mp.deformation, mp.rotation @ mp.stretch, atol=1e-12)
    np.testing.assert_allclose(mp.rotation @ mp.rotation.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(mp.rotation) > 0
    np.testing.assert_allclose(mp.stretch, mp.stretch.T, atol=1e-14)
    assert np.all(np.linalg.eigvalsh(mp.stretch) > 0)
    assert mp.shifts.dtype == np.int64 and mp.atom_of_site.dtype == np.int64


# ------------------------------------------------------------------ built configurations
@pytest.mark.parametrize("name", list(MATRICES))
@pytest.mark.parametrize("seed", range(4))
def test_recovers_known_configuration(name, seed):
    sc = Supercell(reference(), MATRICES[name])
    rng = np.random.default_rng(1000 * seed + len(name))
    atoms, truth = build(sc, rng)
    mp = map_configuration(atoms, reference())  # H found from the cell
    check_truth(mp, truth, sc)
    check_identity(mp, atoms)
    mp2 = map_configuration(atoms, sc, assignment="optimal")  # H given; optimal = nearest here
    assert np.array_equal(mp2.site_of_atom, mp.site_of_atom)
    np.testing.assert_allclose(mp2.displacements, mp.displacements, atol=1e-12)


def test_unshifted_repeat_order_maps_to_identity():
    sc = Supercell.diagonal(reference(), 2)
    rng = np.random.default_rng(8)
    d = rng.uniform(-0.25, 0.25, (40, 3))
    atoms = Atoms(list(sc.species), positions=sc.positions + d, cell=sc.cell, pbc=True)
    mp = map_configuration(atoms, reference())
    assert np.array_equal(mp.atom_of_site, np.arange(40)) and not np.any(mp.shifts)
    np.testing.assert_allclose(mp.deformation, np.eye(3), atol=1e-14)
    np.testing.assert_allclose(mp.displacements, d - d.mean(0), atol=1e-12)
    np.testing.assert_allclose(mp.translation, d.mean(0), atol=1e-12)


def test_wrapped_and_unwrapped_positions_agree():
    sc = Supercell(reference(), SQRT2)
    atoms, truth = build(sc, np.random.default_rng(3))
    far = atoms.copy()
    far.positions += np.random.default_rng(4).integers(-2, 3, (len(far), 3)) @ far.cell.array
    a, b = map_configuration(atoms, reference()), map_configuration(far, reference())
    assert np.array_equal(a.site_of_atom, b.site_of_atom)
    np.testing.assert_allclose(a.site_positions(atoms.positions, atoms.cell.array),
                               b.site_positions(far.positions, far.cell.array), atol=1e-9)


def test_left_handed_cell():
    """Cell rows listed in left-handed order: the mapping still works (det H < 0, det F > 0)."""
    sc = Supercell.diagonal(reference(), 2)
    atoms, _ = build(sc, np.random.default_rng(9), lattice_shift=False)
    atoms.set_cell(atoms.cell.array[[1, 0, 2]], scale_atoms=False)
    mp = map_configuration(atoms, reference())
    assert mp.supercell.determinant == -8 and np.linalg.det(mp.deformation) > 0
    check_identity(mp, atoms)


def test_optimal_assignment_resolves_a_swap_nearest_rejects():
    sc = Supercell.diagonal(reference(), 2)
    x = sc.positions.copy()
    # Br(x) of cell 0 (site 1) pushed 2.2 Å towards Br(y) of cell 0 (site 2), 4.2 Å away
    direction = (x[2] - x[1]) / np.linalg.norm(x[2] - x[1])
    x[1] += 2.2 * direction
    atoms = Atoms(list(sc.species), positions=x, cell=sc.cell, pbc=True)
    with pytest.raises(MappingError) as info:
        map_configuration(atoms, reference(), frame=5, max_displacement=2.5)
    msg = str(info.value)
    assert "frame 5" in msg and "atoms 1 and 2" in msg and "site 2 (Br, basis 2, cell (0, 0, 0))" in msg
    assert "optimal" in msg
    mp = map_configuration(atoms, reference(), max_displacement=2.5, assignment="optimal")
    assert np.array_equal(mp.atom_of_site, np.arange(40))


# ------------------------------------------------------------------ labelled frames
def test_training_frames_map_and_survive_rigid_motions():
    rng = np.random.default_rng(21)
    ref = reference()
    for i, at in enumerate(train_frames()[:60]):
        m0 = map_configuration(at, ref, frame=i)
        check_identity(m0, at)
        assert np.linalg.norm(m0.translation) < 0.5
        order = rng.permutation(len(at))
        q = random_rotation(rng)
        small = rng.normal(size=3)
        small *= 0.8 / np.linalg.norm(small)
        moved = Atoms(np.array(at.get_chemical_symbols())[order], positions=at.positions[order] @ q.T + small,
                      cell=at.cell.array @ q.T, pbc=True)
        moved.wrap()
        m1 = map_configuration(moved, ref, frame=i)
        assert np.array_equal(m1.site_of_atom, m0.site_of_atom[order])
        np.testing.assert_allclose(m1.deformation, q @ m0.deformation, atol=1e-10)
        np.testing.assert_allclose(m1.stretch, m0.stretch, atol=1e-10)
        np.testing.assert_allclose(m1.displacements, m0.displacements, atol=1e-9)
        np.testing.assert_allclose(m1.translation, q @ m0.translation + small, atol=1e-9)


def test_training_frames_are_in_repeat_order():
    """The data README says frames are in repeat order; the mapping sees the same."""
    ms = map_frames(np.array([a.positions for a in train_frames()]),
                    np.array([a.cell.array for a in train_frames()]), train_frames()[0].numbers,
                    reference())
    assert np.all(ms.atom_of_site == np.arange(40)) and ms.ok.all()
    assert all(np.array_equal(s.matrix, np.diag([2, 2, 2])) for s in ms.supercells)
    limit = DEFAULT_DISPLACEMENT_FRACTION * reference().nearest_neighbour_distance()
    assert np.all(ms.max_distance < limit)


def test_endpoints_including_pnma():
    ref = reference()
    rng = np.random.default_rng(33)
    names = []
    for at in endpoints():
        names.append(at.info["name"])
        m0 = map_configuration(at, ref, frame=at.info["name"])
        assert np.array_equal(m0.supercell.matrix, np.diag([2, 2, 2]))
        assert np.array_equal(m0.atom_of_site, np.arange(40))
        check_identity(m0, at)
        order = rng.permutation(40)
        q = random_rotation(rng)
        moved = Atoms(np.array(at.get_chemical_symbols())[order], positions=at.positions[order] @ q.T,
                      cell=at.cell.array @ q.T, pbc=True)
        moved.wrap()
        m1 = map_configuration(moved, ref)
        assert np.array_equal(m1.site_of_atom, order)
        np.testing.assert_allclose(m1.stretch, m0.stretch, atol=1e-10)
    assert names == ["cubic", "P4mbm", "I4mcm", "Pnma"]
    # the Pnma cell is sheared (a- a- c+): F is not diagonal, U has off-diagonal parts
    pnma = map_configuration(endpoints()[3], ref)
    assert abs(pnma.strain[0, 1]) > 0.02


def test_pnma_as_a_20_atom_sqrt2_cell():
    """Fold the relaxed Pnma 40-atom frame into its √2×√2×2 primitive cell and map it."""
    ref = reference()
    pnma = endpoints()[3]
    m40 = map_configuration(pnma, ref)
    sc20 = Supercell(ref, SQRT2)
    # the 20-atom cell: the sites of sc20, taken from the 40-atom frame's unwrapped positions
    x40 = m40.site_positions(pnma.positions, pnma.cell.array)
    idx, img = Supercell.diagonal(ref, 2).locate(np.column_stack([sc20.site_basis, sc20.site_translation]))
    x20 = x40[idx] + img @ pnma.cell.array
    cell20 = sc20.cell @ m40.deformation.T
    rng = np.random.default_rng(5)
    order = rng.permutation(20)
    atoms = Atoms([sc20.species[s] for s in order], positions=x20[order], cell=cell20, pbc=True)
    atoms.wrap()
    m20 = map_configuration(atoms, ref)
    assert np.array_equal(m20.supercell.matrix, np.array(SQRT2))
    assert np.array_equal(m20.site_of_atom, order)
    np.testing.assert_allclose(m20.deformation, m40.deformation, atol=1e-10)
    d40 = m40.displacements[idx]
    np.testing.assert_allclose(m20.displacements, d40 - d40.mean(0), atol=1e-9)


# ------------------------------------------------------------------ batch path
def stack(frames):
    return (np.array([a.positions for a in frames]), np.array([a.cell.array for a in frames]))


def assert_batch_equals_per_frame(ms, frames, ref, **kw):
    for i, at in enumerate(frames):
        m = map_configuration(at, ref, **kw)
        assert np.array_equal(ms.supercells[ms.supercell_index[i]].matrix, m.supercell.matrix)
        for key in ("atom_of_site", "site_of_atom", "shifts"):
            assert np.array_equal(getattr(ms, key)[i], getattr(m, key)), (i, key)
        for key in ("deformation", "rotation", "stretch", "strain", "translation", "displacements"):
            np.testing.assert_allclose(getattr(ms, key)[i], getattr(m, key), atol=1e-10, err_msg=key)
        assert np.isclose(ms.max_distance[i], m.max_distance)
        mi = ms.mapping(i)
        assert np.array_equal(mi.site_of_atom, m.site_of_atom)


def test_batch_equals_per_frame_on_training_frames():
    frames = train_frames()
    p, c = stack(frames)
    ms = map_frames(p, c, frames[0].numbers, reference())
    assert ms.fast.all() and ms.ok.all() and not ms.errors
    assert_batch_equals_per_frame(ms, frames[:40], reference())
    slow = map_frames(p[:40], c[:40], frames[0].numbers, reference(), fast=False)
    assert not slow.fast.any()
    assert np.array_equal(slow.site_of_atom, ms.site_of_atom[:40])
    np.testing.assert_allclose(slow.displacements, ms.displacements[:40], atol=1e-10)
    np.testing.assert_allclose(ms.site_positions(p, c)[:5],
                               [ms.mapping(i).site_positions(p[i], c[i]) for i in range(5)], atol=1e-12)


def test_batch_mixed_supercells_shared_species_order():
    """Frames of two different 40-atom supercells (diagonal and sheared), one species order
    (the same shuffle), random rotations/strains: grouped by H, equal to the per-frame path."""
    ref = reference()
    rng = np.random.default_rng(17)
    frames, truths = [], []
    cells = [Supercell.diagonal(ref, 2), Supercell(ref, [[2, 0, 0], [0, 2, 0], [0, 1, 2]])]
    order = rng.permutation(40)
    for k in range(24):
        sc = cells[k % 2]
        at, truth = build(sc, rng, lattice_shift=False)
        # undo the builder's shuffle, apply the shared one
        un = np.empty(40, dtype=int)
        un[truth["site_of_atom"]] = np.arange(40)
        x = at.positions[un][order]
        frames.append(Atoms([sc.species[s] for s in order], positions=x, cell=at.cell, pbc=True))
        truths.append((sc, truth))
    p, c = stack(frames)
    ms = map_frames(p, c, frames[0].numbers, ref)
    assert ms.ok.all() and len(ms.supercells) == 2
    # diag(2,2,2) is 28 % (log-stretch) from the next inequivalent 8-cell lattice, the
    # sheared one only 13 %: strains above half the gap go the per-frame path
    assert ms.fast[::2].all() and ms.fast[1::2].sum() >= 3
    assert_batch_equals_per_frame(ms, frames, ref)
    for i, (sc, truth) in enumerate(truths):
        assert np.array_equal(ms.supercells[ms.supercell_index[i]].matrix, sc.matrix)
        np.testing.assert_allclose(ms.stretch[i], truth["U"], atol=1e-10)


def test_batch_per_frame_species_order_and_fallback():
    """Per-frame atom orders (numbers per frame), and one frame that needs the optimal
    assignment: the batch path falls back for it and still agrees."""
    ref = reference()
    rng = np.random.default_rng(23)
    sc = Supercell(ref, SQRT2)
    frames = [build(sc, rng)[0] for _ in range(6)]
    x = sc.positions.copy()
    x[1] += 2.2 * (x[2] - x[1]) / np.linalg.norm(x[2] - x[1])
    frames.append(Atoms(list(sc.species), positions=x, cell=sc.cell, pbc=True))
    p, c = stack(frames)
    z = np.array([a.numbers for a in frames])
    ms = map_frames(p, c, z, ref, max_displacement=2.5, assignment="optimal")
    assert ms.ok.all()
    assert ms.fast[:6].all() and not ms.fast[6]
    assert np.array_equal(ms.atom_of_site[6], np.arange(20))
    assert_batch_equals_per_frame(ms, frames, ref, max_displacement=2.5, assignment="optimal")


def test_batch_given_supercell():
    ref = reference()
    sc = Supercell(ref, SQRT2)
    rng = np.random.default_rng(29)
    frames = [build(sc, rng, lattice_shift=False)[0] for _ in range(5)]
    p, c = stack(frames)
    z = np.array([a.numbers for a in frames])
    a = map_frames(p, c, z, sc)
    b = map_frames(p, c, z, ref)
    assert a.fast.all() and np.array_equal(a.site_of_atom, b.site_of_atom)
    np.testing.assert_allclose(a.displacements, b.displacements, atol=1e-12)


# ------------------------------------------------------------------ bad input
def frame17():
    at = train_frames()[17].copy()
    return at


def assert_message(exc_info, *parts):
    msg = str(exc_info.value)
    for part in parts:
        assert part in msg, (part, msg)


def test_error_wrong_atom_count():
    at = frame17()
    del at[5]
    with pytest.raises(MappingError) as info:
        map_configuration(at, reference(), frame=17)
    assert_message(info, "frame 17", "39 atoms", "5 atoms per cell")
    with pytest.raises(MappingError) as info:
        map_configuration(frame17()[:35], Supercell.diagonal(reference(), 2), frame=17)
    assert_message(info, "frame 17", "35 atoms", "has 40")


def test_error_wrong_species_counts():
    at = frame17()
    at.symbols[0] = "Cs"  # a Pb becomes Cs
    with pytest.raises(MappingError) as info:
        map_configuration(at, reference(), frame=17)
    assert_message(info, "frame 17", "7 Pb atoms, expected 8", "'Cs': 9")


def test_error_unknown_species():
    at = frame17()
    at.symbols[6] = "Xe"
    with pytest.raises(MappingError) as info:
        map_configuration(at, reference(), frame=17)
    assert_message(info, "frame 17, atom 6", "'Xe'", "not in the reference")


def test_error_atom_too_far():
    at = frame17()
    m = map_configuration(at, reference())
    a = int(m.atom_of_site[1])  # the Br(x) of cell 0, pushed 1.9 Å along +x towards Pb
    at.positions[a] += m.deformation @ np.array([1.9, 0, 0])
    with pytest.raises(MappingError) as info:
        map_configuration(at, reference(), frame=17)
    limit = DEFAULT_DISPLACEMENT_FRACTION * reference().nearest_neighbour_distance()
    assert_message(info, "frame 17", f"atom {a} (Br)", "from the nearest Br site",
                   "site 1 (Br, basis 1, cell (0, 0, 0))", f"max_displacement = {limit:.3g} Å")
    # raised limit: it maps, with the large displacement on that site
    ok = map_configuration(at, reference(), max_displacement=2.2)
    assert ok.max_distance > 1.8


def test_error_optimal_assignment_names_assigned_and_nearest_site():
    sc = Supercell.diagonal(reference(), 2)
    x = sc.positions.copy()
    x[1] = x[2] + [0.3, 0, 0]  # atom 1 sits 0.3 Å from site 2; site 1 is empty
    atoms = Atoms(list(sc.species), positions=x, cell=sc.cell, pbc=True)
    with pytest.raises(MappingError) as info:
        map_configuration(atoms, reference(), frame=3)
    assert_message(info, "frame 3", "atoms 1 and 2 (Br) both claim site 2", "left empty")
    with pytest.raises(MappingError) as info:
        map_configuration(atoms, reference(), frame=3, assignment="optimal")
    assert_message(info, "frame 3", "atom", "from its assigned site", "the nearest Br site is")


def test_error_not_a_supercell():
    at = frame17()
    at.set_cell(at.cell.array @ np.diag([1.35, 1, 1]), scale_atoms=True)
    with pytest.raises(MappingError) as info:
        map_configuration(at, reference(), frame=17)
    assert_message(info, "frame 17", "no integer supercell", "8 cells", "best candidate", "max_strain")


def test_error_non_periodic_and_non_finite():
    at = frame17()
    at.pbc = [True, True, False]
    with pytest.raises(MappingError) as info:
        map_configuration(at, reference(), frame=17)
    assert_message(info, "frame 17", "not periodic")
    at = frame17()
    at.positions[9, 1] = np.nan
    with pytest.raises(MappingError) as info:
        map_configuration(at, reference(), frame=17)
    assert_message(info, "frame 17, atom 9 (Cs)", "NaN or inf")
    at = frame17()
    cell = at.cell.array.copy()
    cell[2, 2] = np.inf
    p, c = stack([frame17()])
    c[0] = cell
    with pytest.raises(MappingError) as info:
        map_frames(p, c, at.numbers, reference(), frames=[17])
    assert_message(info, "frame 17", "cell")


def test_error_in_batch_names_frame_and_skip_mode():
    frames = list(train_frames()[:8])
    bad = frames[3].copy()
    bad.positions[4] += [3.0, 0.4, 0.0]  # a Cs half-way to the next Cs site
    frames[3] = bad
    p, c = stack(frames)
    with pytest.raises(MappingError) as info:
        map_frames(p, c, frames[0].numbers, reference(), frames=range(100, 108))
    assert_message(info, "frame 103", "atom 4 (Cs)")
    ms = map_frames(p, c, frames[0].numbers, reference(), on_error="skip")
    assert ms.ok.sum() == 7 and not ms.ok[3] and ms.supercell_index[3] == -1
    assert len(ms.errors) == 1 and ms.errors[0][0] == 3 and "atom 4 (Cs)" in ms.errors[0][1]
    assert np.all(np.isnan(ms.displacements[3])) and np.all(ms.atom_of_site[3] == -1)
    with pytest.raises(MappingError, match="frame 3 was not mapped"):
        ms.mapping(3)


def test_error_bad_options():
    at = frame17()
    with pytest.raises(MappingError, match="assignment"):
        map_configuration(at, reference(), assignment="greedy")
    with pytest.raises(MappingError, match="max_displacement"):
        map_configuration(at, reference(), max_displacement=-1)
    with pytest.raises(MappingError, match="Atoms"):
        map_configuration(np.zeros((40, 3)), reference())


# ------------------------------------------------------------------ other reference settings
def skewed_setting():
    """Cubic CsPbBr3 in a non-reduced primitive basis a1, a1+a2, a1+a2+a3 (the fast path
    must round in the Minkowski-reduced basis)."""
    from ccdgen.geometry.structure import Crystal

    cr = reference()
    n = np.array([[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    cell = n @ cr.cell
    frac = cr.positions @ np.linalg.inv(cell)
    return Crystal.from_arrays(cell, cr.species, frac)


def doubled_reference():
    """CsPbBr3 with a 2×1×1 cell as its reference: two Pb sites, so the translation search
    tries two anchor sites (equal scores: the smaller translation wins)."""
    from ccdgen.geometry.structure import Crystal

    return Crystal.from_atoms(reference().to_atoms().repeat((2, 1, 1)))


@pytest.mark.parametrize("make", [skewed_setting, doubled_reference])
def test_other_reference_settings(make):
    ref = make()
    sc = Supercell.diagonal(ref, 2)
    rng = np.random.default_rng(41)
    order = rng.permutation(sc.n_atoms)
    frames, truths = [], []
    for _ in range(6):
        at, truth = build(sc, rng, disp=0.25, strain=0.03)
        mp = map_configuration(at, sc)  # H given
        check_truth(mp, truth, sc)
        check_identity(mp, at)
        check_identity(map_configuration(at, ref), at)  # H found (any of the tied matrices)
        un = np.empty(sc.n_atoms, dtype=int)
        un[truth["site_of_atom"]] = np.arange(sc.n_atoms)
        frames.append(Atoms([sc.species[s] for s in order], positions=at.positions[un][order],
                            cell=at.cell, pbc=True))
        truths.append(truth)
    p, c = stack(frames)
    ms = map_frames(p, c, frames[0].numbers, sc)
    assert ms.fast.all()
    assert_batch_equals_per_frame(ms, frames, sc)
    for i, truth in enumerate(truths):
        assert np.array_equal(ms.site_of_atom[i], order)  # frames were rebuilt in site order, shuffled
        np.testing.assert_allclose(ms.stretch[i], truth["U"], atol=1e-10)
    found = map_frames(p, c, frames[0].numbers, ref)
    assert found.ok.all()
    assert_batch_equals_per_frame(found, frames, ref)


def test_batch_with_inequivalent_tied_lattices():
    """3×3×3: the lattice 3A has the same metric as other 27-cell sublattices (rows like
    (2, 2, 1), |.| = 3), which no cubic operation relates to 3A.  Both paths try every class
    and keep the one that maps; the batch path stays vectorized."""
    from ccdgen.crystal.mapping import _gap

    ref = reference()
    sc = Supercell.diagonal(ref, 3)
    assert len(_gap(sc)[1]) > 1
    rng = np.random.default_rng(51)
    frames, truths = [], []
    for _ in range(4):
        at, truth = build(sc, rng, strain=0.02, lattice_shift=False)
        un = np.empty(sc.n_atoms, dtype=int)
        un[truth["site_of_atom"]] = np.arange(sc.n_atoms)
        frames.append(Atoms(list(sc.species), positions=at.positions[un], cell=at.cell, pbc=True))
        truths.append(truth)
    p, c = stack(frames)
    ms = map_frames(p, c, frames[0].numbers, ref)
    assert ms.fast.all() and ms.ok.all()
    assert_batch_equals_per_frame(ms, frames, ref)
    for i, truth in enumerate(truths):
        assert np.array_equal(ms.atom_of_site[i], np.arange(sc.n_atoms))
        np.testing.assert_allclose(ms.stretch[i], truth["U"], atol=1e-10)
