"""Glazer tilt systems: notation, the 15 space groups of Howard & Stokes (spglib), the cut
frames of the bundled data, rigid octahedra, relaxation, and errors."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import spglib

from ccdgen.crystal.supercell import Supercell
from ccdgen.data.io import read_dataset
from ccdgen.data.sampling.glazer import (ALL_SYSTEMS, HOWARD_STOKES, TiltPattern, find_octahedra,
                                         glazer_frames, parse_patterns, relax_frames, tilt_structure)
from ccdgen.errors import SpecError, StructureError
from ccdgen.geometry.structure import Crystal
from ccdgen.pipeline import load

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
CUTS = REPO / "examples" / "cspbbr3" / "data" / "cuts.extxyz"

# Howard & Stokes, Acta Cryst. B54, 782 (1998), Table 1: typed here independently of the
# module's table, as (system, space-group number).
EXPECTED = {"a0a0a0": 221, "a0a0c+": 127, "a0b+b+": 139, "a+a+a+": 204, "a+b+c+": 71, "a0a0c-": 140,
            "a0b-b-": 74, "a-a-a-": 167, "a0b-c-": 12, "a-b-b-": 15, "a-b-c-": 2, "a0b+c-": 63,
            "a+b-b-": 62, "a+b-c-": 11, "a+a+c-": 137}


@lru_cache(maxsize=None)
def problem():
    return load(EXAMPLE)


@lru_cache(maxsize=None)
def supercell():
    return Supercell.diagonal(problem().crystal, (2, 2, 2))


def spacegroup_number(pos, cell, numbers, symprec=1e-4) -> int:
    ds = spglib.get_symmetry_dataset((cell, pos @ np.linalg.inv(cell), numbers), symprec=symprec)
    return int(ds.number)


def cubic(a: float) -> Crystal:
    return Crystal.from_arrays(np.eye(3) * a, ["Pb", "Br", "Br", "Br", "Cs"],
                               [[0, 0, 0], [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]])


# ----------------------------------------------------------------------------- notation
def test_fifteen_systems_match_howard_stokes():
    assert set(ALL_SYSTEMS) == set(EXPECTED) and len(ALL_SYSTEMS) == 15
    assert {k: v[1] for k, v in HOWARD_STOKES.items()} == EXPECTED


@pytest.mark.parametrize("text,norm", [("a-a-c+", "a-a-c+"), ("a⁻a⁻c⁺", "a-a-c+"), ("A0A0C−", "a0a0c-"),
                                       (" a0b+c- ", "a0b+c-")])
def test_parse_normalizes(text, norm):
    assert TiltPattern.parse(text).notation == norm


@pytest.mark.parametrize("bad", ["a-a-", "a-a-c", "x+y+z+", "a+b+c+d+", "a*a*c*", "", "a-a-c+ extra", "a+a0c+"])
def test_parse_refuses_non_glazer(bad):
    with pytest.raises(SpecError) as e:
        TiltPattern.parse(bad)
    assert "Glazer" in str(e.value) or "zero and a non-zero" in str(e.value)


def test_angles_distinct_letters_distinct_equal_letters_equal():
    for name in ALL_SYSTEMS:
        p = TiltPattern.parse(name)
        ang = p.angles(8.0)
        for i in range(3):
            for j in range(3):
                if p.signs[i] == "0" or p.signs[j] == "0":
                    continue
                same = p.letters[i] == p.letters[j]
                assert (ang[i] == ang[j]) == same, (name, ang)
        assert np.all((ang == 0) == (np.array(p.signs) == "0"))
    assert np.allclose(TiltPattern.parse("a+b-c-").angles(8.0), [8, 6, 4])


def test_parse_patterns_all_and_lists():
    assert [p.notation for p in parse_patterns("all")] == list(ALL_SYSTEMS)
    assert [p.notation for p in parse_patterns(["a0a0c+,a0a0c-", "a0a0c+"])] == ["a0a0c+", "a0a0c-"]


# ----------------------------------------------------------------------------- octahedra
def test_octahedral_network_of_cspbbr3():
    net = find_octahedra(problem().crystal)
    assert [problem().crystal.species[b] for b in net.centres] == ["Pb"]
    assert sorted(problem().crystal.species[b] for b in net.vertices) == ["Br"] * 3
    assert np.allclose(net.axes, np.eye(3))
    assert np.allclose(net.half_lengths, problem().crystal.cell[0, 0] / 2)


@pytest.mark.parametrize("model", ["rigid", "displacive"])
def test_every_system_has_its_howard_stokes_space_group(model):
    b = glazer_frames(supercell(), "all", 8.0, model=model)
    assert [i["glazer"] for i in b.infos] == list(ALL_SYSTEMS)
    for k in range(len(b)):
        got = spacegroup_number(b.positions[k], b.cells[k], b.numbers)
        assert got == EXPECTED[b.infos[k]["glazer"]], (b.infos[k]["glazer"], got)


def test_reference_is_pm3m_and_untilted_frame_is_the_reference():
    sc = supercell()
    assert spacegroup_number(np.asarray(sc.positions), np.asarray(sc.cell), glazer_frames(sc, "a0a0a0", 8).numbers) == 221
    b = glazer_frames(sc, "a0a0a0", [4, 8])
    assert len(b) == 1 and np.allclose(b.positions[0], sc.positions, atol=1e-12)


def test_displacive_model_reproduces_the_bundled_cuts():
    """The cut frames: tilt about z, Br moved by (a/2)·tan θ ⊥ Pb–Br–Pb, Pb and Cs fixed.
    The data lists −x with the frame of +x (symmetry-equivalent); compare at |x|."""
    ds = read_dataset(CUTS, require=(), duplicates="keep")
    ref = cubic(ds[0].cell[0, 0] / 2)
    sc = Supercell.diagonal(ref, (2, 2, 2))
    net = find_octahedra(ref)
    n = 0
    for i in range(ds.n_frames):
        info = ds.info(i)
        if info["cut"] not in ("R_antiphase", "M_inphase"):
            continue
        pat = TiltPattern.parse("a0a0c-" if info["cut"] == "R_antiphase" else "a0a0c+")
        x, c = tilt_structure(net, sc, pat, [0, 0, abs(info["x"])], "displacive")
        assert np.abs(x - ds[i].positions).max() < 1e-6, (info, np.abs(x - ds[i].positions).max())
        assert np.abs(c - ds[i].cell).max() < 1e-9
        n += 1
    assert n == 66


@pytest.mark.parametrize("pattern", ["a0a0c-", "a0a0c+"])
def test_negative_angle_is_a_lattice_translation_of_the_positive(pattern):
    sc = supercell()
    net = find_octahedra(problem().crystal)
    p = TiltPattern.parse(pattern)
    xp, c = tilt_structure(net, sc, p, [0, 0, 7.0], "displacive")
    xm, _ = tilt_structure(net, sc, p, [0, 0, -7.0], "displacive")
    shifted = xm + problem().crystal.cell[0]  # one primitive cell along x flips the z tilt
    frac_a = np.mod(shifted @ np.linalg.inv(c) + 1e-9, 1.0)
    frac_b = np.mod(xp @ np.linalg.inv(c) + 1e-9, 1.0)
    key = lambda f: np.lexsort(np.round(f, 8).T)  # noqa: E731
    assert np.allclose(frac_a[key(frac_a)], frac_b[key(frac_b)], atol=1e-9)


def _bonds(pos, cell, sc, net):
    from ase import Atoms

    at = Atoms(numbers=glazer_frames(sc, "a0a0a0", 8).numbers, positions=pos, cell=cell, pbc=True)
    d = at.get_all_distances(mic=True, vector=True)
    centres = np.flatnonzero(np.isin(sc.site_basis, net.centres))
    verts = np.flatnonzero(np.isin(sc.site_basis, net.vertices))
    out = []
    for c in centres:
        r = np.linalg.norm(d[c, verts], axis=1)
        out.append(np.sort(r)[:6])
    return np.array(out)


@pytest.mark.parametrize("pattern", ["a0a0c+", "a0a0c-", "a+b+c+", "a0b+b+"])
def test_rigid_model_keeps_octahedra_exactly_rigid_for_one_axis_and_in_phase(pattern):
    sc = supercell()
    net = find_octahedra(problem().crystal)
    p = TiltPattern.parse(pattern)
    x, c = tilt_structure(net, sc, p, p.angles(12.0), "rigid")
    assert np.allclose(_bonds(x, c, sc, net), net.half_lengths[0], atol=1e-10)


def test_rigid_model_tilt_angle_and_cell_contraction():
    """a0a0c+ at θ: every Pb→Br(x) bond makes the angle θ with x, and a, b shrink by cos θ."""
    sc = supercell()
    net = find_octahedra(problem().crystal)
    theta = 11.0
    x, c = tilt_structure(net, sc, TiltPattern.parse("a0a0c+"), [0, 0, theta], "rigid")
    a = problem().crystal.cell[0, 0]
    assert np.allclose(np.diag(c), [2 * a * np.cos(np.radians(theta))] * 2 + [2 * a])
    pb, brx = np.flatnonzero(sc.site_basis == 0), np.flatnonzero(sc.site_basis == 1)
    for s_pb, s_br in zip(pb, brx):  # Br(x) of the same cell is at +x/2 from its Pb
        v = x[s_br] - x[s_pb]
        ang = np.degrees(np.arccos(abs(v[0]) / np.linalg.norm(v)))
        assert abs(ang - theta) < 1e-9


def test_rigid_and_displacive_agree_to_first_order():
    sc = supercell()
    net = find_octahedra(problem().crystal)
    p = TiltPattern.parse("a-b-c-")
    ratios = []
    for t in (2.0, 1.0, 0.5):
        xr, cr = tilt_structure(net, sc, p, p.angles(t), "rigid")
        xd, _ = tilt_structure(net, sc, p, p.angles(t), "displacive")
        ratios.append(np.abs(xr - xd).max() / np.abs(xd - sc.positions).max())
    # the difference is second order in θ: relative to the first-order displacement it halves with θ
    assert ratios[0] < 0.15 and ratios[1] < ratios[0] / 1.9 and ratios[2] < ratios[1] / 1.9


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("amp", [0.0, 31.0, -45.0, float("nan"), float("inf")])
def test_amplitude_out_of_range(amp):
    with pytest.raises(SpecError, match="out of range"):
        glazer_frames(supercell(), "a0a0c+", amp)


def test_ratios_must_be_distinct():
    with pytest.raises(SpecError, match="distinct"):
        glazer_frames(supercell(), "a+b+c+", 8.0, ratios=(1.0, 1.0, 0.5))


def test_odd_supercell_refused_for_alternating_tilts():
    sc = Supercell.diagonal(problem().crystal, (3, 3, 3))
    with pytest.raises(StructureError, match="does not fit the supercell"):
        glazer_frames(sc, "a0a0c-", 8.0)
    glazer_frames(Supercell.diagonal(problem().crystal, (2, 2, 1)), "a0a0c+", 8.0)  # in-phase about z: fine


@pytest.mark.parametrize("crystal", [
    Crystal.from_arrays(np.eye(3) * 4.0, ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),  # CsCl type
    Crystal.from_arrays(np.array([[0, 2.715, 2.715], [2.715, 0, 2.715], [2.715, 2.715, 0]]), ["Si", "Si"],
                        [[0, 0, 0], [.25, .25, .25]]),
    Crystal.from_arrays(np.diag([4.594, 4.594, 2.959]), ["Ti", "Ti", "O", "O", "O", "O"],
                        [[0, 0, 0], [.5, .5, .5], [.3048, .3048, 0], [.6952, .6952, 0], [.8048, .1952, .5],
                         [.1952, .8048, .5]]),
])
def test_no_corner_sharing_octahedra(crystal):
    with pytest.raises(StructureError, match="no network of corner-sharing octahedra"):
        find_octahedra(crystal)


def test_rock_salt_octahedra_share_edges_not_corners():
    nacl = Crystal.from_arrays(np.eye(3) * 5.6, ["Na"] * 4 + ["Cl"] * 4,
                               [[0, 0, 0], [0, .5, .5], [.5, 0, .5], [.5, .5, 0],
                                [.5, 0, 0], [0, .5, 0], [0, 0, .5], [.5, .5, .5]])
    with pytest.raises(StructureError, match="not exactly two"):
        find_octahedra(nacl)


def test_already_tilted_reference_refused():
    ds = read_dataset(REPO / "examples" / "cspbbr3" / "data" / "endpoints.extxyz", require=(), duplicates="keep")
    pnma = Crystal.from_atoms(ds.to_atoms(3))
    with pytest.raises(StructureError, match="corner-sharing"):
        find_octahedra(pnma)


# ----------------------------------------------------------------------------- relaxation
def test_relaxation_keeps_the_space_group_and_lowers_the_energy():
    from ase.calculators.lj import LennardJones

    sc = supercell()
    b = glazer_frames(sc, "a0a0c+", 6.0)
    make = lambda: LennardJones(sigma=2.6, epsilon=0.05, rc=6.0, smooth=True)  # noqa: E731
    atoms = b.to_atoms(0)
    atoms.calc = make()
    e0 = atoms.get_potential_energy()
    r = relax_frames(b, make, fmax=1e-3, steps=15, cell_filter="frechet")
    atoms = r.to_atoms(0)
    atoms.calc = make()
    assert atoms.get_potential_energy() < e0
    assert r.infos[0]["relaxed"] is True and r.infos[0]["relax_steps"] > 0
    assert spacegroup_number(r.positions[0], r.cells[0], r.numbers, symprec=1e-3) == 127
    with pytest.raises(SpecError, match="cell filter"):
        relax_frames(b, make, cell_filter="bogus")
