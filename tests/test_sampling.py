"""Training-set generators: symmetry-adapted modes (block-diagonal, irreducible, labelled),
strain irreps, n-sphere sampling, the uniqueness filter, interpolation, and `ccdgen sample`."""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdgen.crystal.supercell import Supercell
from ccdgen.data.io import read_dataset
from ccdgen.data.sampling import FrameBatch, rng_for
from ccdgen.data.sampling.glazer import TiltPattern, find_octahedra, glazer_frames, tilt_structure
from ccdgen.data.sampling.interpolate import interpolation_frames, map_path, path_coordinates
from ccdgen.data.sampling.irreps import mulliken_of
from ccdgen.data.sampling.modes import _apply, displacement_modes, mode_frames
from ccdgen.data.sampling.nsphere import nsphere_frames, translation_free_basis
from ccdgen.data.sampling.strain import (_canonical_strain, random_strains, strain_enumeration, strain_irreps,
                                         strain_tensor)
from ccdgen.data.sampling.unique import UniqueFilter, unique_subset
from ccdgen.errors import SpecError
from ccdgen.pipeline import load

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
DATA = REPO / "examples" / "cspbbr3" / "data"

RUTILE = """
[crystal]
lattice = [[4.594, 0.0, 0.0], [0.0, 4.594, 0.0], [0.0, 0.0, 2.959]]
species = ["Ti", "Ti", "O", "O", "O", "O"]
positions = [[0,0,0],[0.5,0.5,0.5],[0.3048,0.3048,0],[0.6952,0.6952,0],[0.8048,0.1952,0.5],[0.1952,0.8048,0.5]]
[[clusters]]
name = "pair"
kind = "pairs"
count = 1
max_length = 2.5
"""
SILICON = """
[crystal]
lattice = [[0.0, 2.715, 2.715], [2.715, 0.0, 2.715], [2.715, 2.715, 0.0]]
species = ["Si", "Si"]
positions = [[0,0,0],[0.25,0.25,0.25]]
[[clusters]]
name = "pair"
kind = "pairs"
count = 1
max_length = 2.5
"""


@lru_cache(maxsize=None)
def problem():
    return load(EXAMPLE)


@lru_cache(maxsize=None)
def modes222():
    return displacement_modes(problem(), Supercell.diagonal(problem().crystal, (2, 2, 2)))


def spec_problem(tmp_path_factory, text, name):
    path = tmp_path_factory.mktemp("specs") / f"{name}.toml"
    path.write_text(text)
    return load(path)


def block_check(m, sg, stride=1):
    """Orthonormality, block-diagonality of every ``stride``-th operation, and the character
    norms (1/|G|) Σ_g χ(g)² of every block over *all* operations of the supercell."""
    sym = m.supercell.symmetry_operations(sg)
    b = m.basis
    assert np.abs(b.T @ b - np.eye(b.shape[1])).max() < 1e-10
    mask = np.zeros((m.n_modes, m.n_modes), dtype=bool)
    for blk in m.blocks:
        mask[blk.start:blk.stop, blk.start:blk.stop] = True
    block_of = m.mode_block
    norms = np.zeros(len(m.blocks))
    for g in range(len(sym)):
        img = _apply(sym.rotations[g], sym.perms[g], b)
        diag = np.einsum("ij,ij->j", b, img)  # b_j · Γ(g) b_j
        norms += np.bincount(block_of, weights=diag, minlength=len(m.blocks)) ** 2
        if g % stride == 0:
            assert np.abs((b.T @ img)[~mask]).max() < 1e-10
    return norms / len(sym)


# ----------------------------------------------------------------------------- modes
def test_modes_orthonormal_block_diagonal_irreducible_2x2x2():
    m = modes222()
    norms = block_check(m, problem().spacegroup)
    # every block is irreducible under the supercell group: all irreps of Oh/D4h are real
    assert np.allclose(norms, 1.0)
    assert sum(b.dim for b in m.blocks) == 120


def test_zone_centre_content_is_textbook():
    """Cubic perovskite at Γ: 4 T1u (one acoustic) + 1 T2u (silent) = 15 modes."""
    gm = [b for b in modes222().blocks if b.kpoint == "0,0,0"]
    assert sorted(b.label for b in gm) == ["Γ4-"] * 4 + ["Γ5-"]
    assert sorted(b.little for b in gm) == ["T1u"] * 4 + ["T2u"]
    # the acoustic translations lie in the Γ4- blocks
    m = modes222()
    cols = np.concatenate([np.arange(b.start, b.stop) for b in gm if b.label == "Γ4-"])
    acoustic = m.acoustic
    assert np.allclose(m.basis[:, cols] @ (m.basis[:, cols].T @ acoustic), acoustic)


def test_tilt_modes_r4plus_and_m3plus_with_multiplicity():
    m = modes222()
    r4 = [b for b in m.blocks if b.label == "R4+"]
    m3 = [b for b in m.blocks if b.label == "M3+"]
    assert len(r4) == 1 and r4[0].dim == 3 and len(r4[0].arms) == 1  # one R point, 3-dim irrep
    assert len(m3) == 1 and m3[0].dim == 3 and len(m3[0].arms) == 3  # three M points, 1-dim each
    assert r4[0].orbit.startswith("Br") and m3[0].orbit.startswith("Br")


def test_tilt_labels_from_an_independent_route():
    """a0a0c- (anti-phase) lies in R4+ and a0a0c+ (in-phase) in M3+ — the tilt patterns
    are built by the Glazer generator, not from the modes; and the little co-group irreps
    computed by Burnside's algorithm and Mulliken's rules (ccdgen.symmetry) are the axial
    vector T1g at R and the z-rotation A2g at M, as the CDML table says."""
    m = modes222()
    sc = m.supercell
    net = find_octahedra(problem().crystal)
    for pattern, label in (("a0a0c-", "R4+"), ("a0a0c+", "M3+")):
        x, _ = tilt_structure(net, sc, TiltPattern.parse(pattern), [0, 0, 0.5], "displacive")
        amp = m.project(x - sc.positions)
        blk = next(b for b in m.blocks if b.label == label)
        inside = np.linalg.norm(amp[blk.start:blk.stop])
        assert inside > 0 and np.isclose(inside, np.linalg.norm(amp), rtol=1e-12)
    r4 = next(b for b in m.blocks if b.label == "R4+")
    m3 = next(b for b in m.blocks if b.label == "M3+")
    assert r4.little == "T1g" == mulliken_of("R4+")
    assert m3.little == "A2g" == mulliken_of("M3+")


def test_cdml_labels_agree_with_computed_mulliken_everywhere():
    for b in modes222().blocks:
        assert b.little == mulliken_of(b.label), b


def test_mode_vectors_live_on_one_arm_and_have_the_bloch_phase():
    m = modes222()
    sc = m.supercell
    t = sc.site_translation
    for b in m.blocks:
        for j in range(b.start, b.stop):
            v = m.basis[:, j].reshape(-1, 3)
            k = np.array([float(eval(x)) for x in b.arms[m.mode_arm[j]].split(",")])  # noqa: S307
            phase = np.cos(2 * np.pi * t @ k)
            for basis_site in range(problem().crystal.n_basis):  # v[s] = phase(s) × v[basis site]
                rows = np.flatnonzero(sc.site_basis == basis_site)
                ref = v[rows[0]] / phase[rows[0]]
                assert np.allclose(v[rows], phase[rows, None] * ref[None], atol=1e-12)


def test_modes_lower_symmetry_supercell_keep_parent_labels():
    sc = Supercell(problem().crystal, [[1, 1, 0], [-1, 1, 0], [0, 0, 2]])  # √2×√2×2
    m = displacement_modes(problem(), sc)
    block_check(m, problem().spacegroup)
    labels = {b.label for b in m.blocks}
    assert {"R4+", "M3+", "Γ4-"} <= labels
    x_blocks = [b for b in m.blocks if b.label.startswith("X")]
    assert {b.kpoint for b in x_blocks} == {"0,0,1/2"}  # the one commensurate X arm
    assert sum(b.dim for b in m.blocks) == 60


def test_modes_incommensurate_3x3x3(tmp_path_factory):
    sc = Supercell.diagonal(problem().crystal, (3, 3, 3))
    m = displacement_modes(problem(), sc)
    norms = block_check(m, problem().spacegroup, stride=23)
    assert sum(b.dim for b in m.blocks) == 405
    assert any(b.label.startswith("k(0,0,1/3)") for b in m.blocks)
    assert np.allclose(norms, 1.0)  # the supercell keeps the full point group: irreducible blocks


@pytest.mark.parametrize("which,h,zone_centre", [
    ("silicon", np.diag([2, 2, 2]), ["Γ:T1u", "Γ:T2g"]),  # diamond: acoustic Γ15 + Raman Γ25'
    ("rutile", np.diag([1, 1, 2]), None),
])
def test_modes_nonsymmorphic(tmp_path_factory, which, h, zone_centre):
    p = spec_problem(tmp_path_factory, SILICON if which == "silicon" else RUTILE, which)
    m = displacement_modes(p, Supercell(p.crystal, h))
    norms = block_check(m, p.spacegroup)
    assert np.all(np.isin(np.round(norms, 8), [1.0, 2.0, 4.0]))
    if zone_centre:
        assert sorted(b.label for b in m.blocks if b.kpoint == "0,0,0") == zone_centre
    if which == "rutile":  # zone centre of rutile: A1g+A2g+A2u+B1g+B2g+Eg+2B1u+3Eu (+ acoustic A2u+Eu)
        gm = sorted(b.little for b in m.blocks if b.kpoint == "0,0,0")
        assert gm == sorted(["A1g", "A2g", "A2u", "A2u", "B1g", "B1u", "B1u", "B2g", "Eg", "Eu", "Eu", "Eu", "Eu"])


def test_mode_frames_amplitudes_round_trip():
    m = modes222()
    b = mode_frames(m, [-0.2, 0.3], "R4+,M3+")
    assert len(b) == 6 * 2
    for k in range(len(b)):
        amp = m.project(b.positions[k] - m.supercell.positions)
        j = b.infos[k]["mode"]
        assert np.isclose(amp[j], b.infos[k]["amplitude"]) and np.isclose(np.linalg.norm(amp), abs(amp[j]))
        assert b.infos[k]["irrep"] in ("R4+", "M3+")


def test_mode_frames_around_strained_base_apply_the_deformation():
    m = modes222()
    base = glazer_frames(m.supercell, "a0a0c+", 10.0)  # rigid: the cell shrinks in x, y
    b = mode_frames(m, [0.1], "Γ4-(1)", around=base)
    ft = np.linalg.inv(m.supercell.cell) @ base.cells[0]
    for k in range(len(b)):
        d = (b.positions[k] - base.positions[0]) @ np.linalg.inv(ft)
        assert np.isclose(m.project(d)[b.infos[k]["mode"]], 0.1)
        assert b.infos[k]["around"] == "a0a0c+"


def test_mode_errors():
    m = modes222()
    with pytest.raises(SpecError, match="no displacement mode labelled"):
        m.select("R9+")
    with pytest.raises(SpecError, match="out of range"):
        mode_frames(m, [8.0], "R4+")
    with pytest.raises(SpecError, match="non-zero"):
        mode_frames(m, [0.0], "R4+")


# ----------------------------------------------------------------------------- strain
def test_cubic_strain_irreps():
    s = strain_irreps(problem())
    assert [(b.label, b.dim, b.name) for b in s.blocks] == [("A1g", 1, "volumetric"), ("Eg", 2, "tetragonal"),
                                                          ("T2g", 3, "shear")]
    a1 = strain_tensor(s.blocks[0].basis[0])
    assert np.allclose(a1, np.eye(3) / np.sqrt(3))  # the volumetric strain is isotropic
    for e in strain_tensor(s.blocks[2].basis):
        assert np.allclose(np.diag(e), 0)  # shears are off-diagonal
    for e in strain_tensor(s.blocks[1].basis):
        assert np.isclose(np.trace(e), 0) and np.allclose(e, np.diag(np.diag(e)))  # traceless, diagonal


def test_strain_blocks_are_invariant_and_orthonormal(tmp_path_factory):
    for p in (problem(), spec_problem(tmp_path_factory, RUTILE, "rutile")):
        s = strain_irreps(p)
        basis = np.concatenate([b.basis for b in s.blocks])
        assert np.allclose(basis @ basis.T, np.eye(6))
        for blk in s.blocks:
            proj = blk.basis.T @ blk.basis
            for g in s.matrices:
                assert np.allclose(proj @ g @ blk.basis.T, g @ blk.basis.T, atol=1e-12)


def test_tetragonal_strain_content_is_textbook(tmp_path_factory):
    """4/mmm: 2A1g + B1g + B2g + Eg."""
    s = strain_irreps(spec_problem(tmp_path_factory, RUTILE, "rutile"))
    assert sorted(b.label for b in s.blocks) == ["A1g", "A1g", "B1g", "B2g", "Eg"]
    a1 = [strain_tensor(b.basis[0]) for b in s.blocks if b.label == "A1g"]
    assert np.allclose(a1[0], np.diag([1, 1, 0]) / np.sqrt(2)) and np.allclose(a1[1], np.diag([0, 0, 1]))


def test_strain_enumeration_keeps_one_per_symmetry_orbit():
    s = strain_irreps(problem())
    vecs, infos = strain_enumeration(s, [-0.02, 0.01, 0.02], directions=7)
    assert len(vecs) == len(infos) > 0
    # brute force: no two kept strains are related by an operation of the point group
    imgs = np.einsum("gij,nj->ngi", s.matrices, vecs)
    for a in range(len(vecs)):
        for b in range(a + 1, len(vecs)):
            assert np.min(np.linalg.norm(imgs[a] - vecs[b], axis=1)) > 1e-9
    for v in vecs:
        assert np.allclose(_canonical_strain(v, s.matrices), v)
    norms = np.linalg.norm(vecs, axis=1)
    assert set(np.round(norms, 12)) <= {0.01, 0.02}


def test_random_strains_on_sphere_and_in_blocks():
    s = strain_irreps(problem())
    v = random_strains(50, np.random.default_rng(1), radius=0.03, blocks=[s.blocks[1]])
    assert np.allclose(np.linalg.norm(v, axis=1), 0.03)
    assert np.allclose(v @ s.blocks[1].basis.T @ s.blocks[1].basis, v)
    with pytest.raises(SpecError, match="out of range"):
        random_strains(3, np.random.default_rng(0), sigma=0.5)


# ----------------------------------------------------------------------------- n-sphere
def test_translation_free_basis():
    b = translation_free_basis(7)
    assert np.allclose(b.T @ b, np.eye(18))
    assert np.allclose(b.reshape(7, 3, -1).sum(axis=0), 0)


def test_nsphere_radii_and_subspaces():
    m = modes222()
    sc = m.supercell
    base = FrameBatch(glazer_frames(sc, "a0a0a0", 8).numbers, np.array(sc.positions)[None],
                      np.array(sc.cell)[None], ({"family": "reference"},))
    b = nsphere_frames(base, 30, [0.3, 1.0], rng_for(4, "nsphere"))
    d = b.positions - sc.positions
    assert np.allclose(np.linalg.norm(d.reshape(len(b), -1), axis=1), [0.3] * 30 + [1.0] * 30)
    assert np.allclose(d.mean(axis=1), 0, atol=1e-12)
    sel = m.select("R4+,M3+")
    b2 = nsphere_frames(base, 10, [0.5], rng_for(4, "nsphere"), displacement_basis=m.basis[:, sel],
                        strain_radius=0.01)
    eps = np.einsum("ij,fjk->fik", np.linalg.inv(sc.cell), b2.cells) - np.eye(3)
    assert np.allclose(np.linalg.norm(eps, axis=(1, 2)), 0.01)
    d2 = np.einsum("fai,fij->faj", b2.positions, np.linalg.inv(np.eye(3) + eps)) - sc.positions
    amp = m.project(d2)
    assert np.allclose(np.linalg.norm(amp[:, sel], axis=1), 0.5)
    assert np.allclose(np.delete(amp, sel, axis=1), 0, atol=1e-12)
    again = nsphere_frames(base, 30, [0.3, 1.0], rng_for(4, "nsphere"))
    assert np.array_equal(again.positions, b.positions)
    with pytest.raises(SpecError, match="radii"):
        nsphere_frames(base, 3, [0.0], rng_for(0, "nsphere"))


# ----------------------------------------------------------------------------- uniqueness
def greedy_brute_force(x, thr, prior=None):
    kept = [] if prior is None else list(prior)
    out = []
    for i, v in enumerate(x):
        if all(np.linalg.norm(v - w) >= thr for w in kept):
            kept.append(v)
            out.append(i)
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("batch", [1, 7, 64, 4096])
def test_unique_filter_equals_sequential_greedy(batch):
    rng = np.random.default_rng(11)
    x = rng.normal(size=(600, 4))
    x[300:] = x[:300] + rng.normal(scale=0.05, size=(300, 4))  # near-duplicates
    prior = rng.normal(size=(40, 4))
    for thr in (0.1, 0.6):
        got = unique_subset(x, thr, prior=prior, batch=batch)
        assert np.array_equal(got, greedy_brute_force(x, thr, prior)), thr


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 300), st.integers(1, 6), st.floats(0.05, 2.0), st.integers(0, 2 ** 31 - 1),
       st.integers(1, 50))
def test_unique_filter_keeps_no_close_pair(n, dim, thr, seed, batch):
    from scipy.spatial.distance import pdist

    x = np.random.default_rng(seed).normal(size=(n, dim))
    kept = unique_subset(x, thr, batch=batch)
    if len(kept) > 1:
        assert pdist(x[kept]).min() >= thr
    # every rejected candidate has a kept one closer than the threshold before it
    rejected = np.setdiff1d(np.arange(n), kept)
    for r in rejected:
        earlier = kept[kept < r]
        assert np.min(np.linalg.norm(x[earlier] - x[r], axis=1)) < thr


def test_unique_filter_incremental_equals_one_shot():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(500, 3))
    f = UniqueFilter(0.4, 3, batch=50)
    masks = [f.add(x[i:i + 77]) for i in range(0, 500, 77)]
    assert np.array_equal(np.flatnonzero(np.concatenate(masks)), unique_subset(x, 0.4))
    assert len(f._trees) <= int(np.log2(max(f.n_kept, 1))) + 2  # logarithmic forest


def test_unique_filter_errors():
    with pytest.raises(SpecError, match="threshold"):
        UniqueFilter(0.0, 3)
    from ccdgen.errors import InputArrayError

    with pytest.raises(InputArrayError):
        UniqueFilter(0.1, 3).add(np.ones((2, 4)))


# ----------------------------------------------------------------------------- interpolation
def test_interpolation_reproduces_the_bundled_path():
    """cubic → P4/mbm → Pnma of the data: linear in cell and fractional coordinates."""
    cuts = read_dataset(DATA / "cuts.extxyz", require=(), duplicates="keep")
    ends = read_dataset(DATA / "endpoints.extxyz", require=(), duplicates="keep")
    path = map_path([ends.to_atoms(i) for i in (0, 1, 3)], problem().crystal)
    assert path.names == ("cubic", "P4mbm", "Pnma")
    sel = [i for i in range(cuts.n_frames) if cuts.info(i)["cut"] == "cubic-tetragonal-orthorhombic"]
    b = interpolation_frames(path, [cuts.info(i)["x"] for i in sel])
    for k, i in enumerate(sel):
        assert np.abs(b.positions[k] - cuts[i].positions).max() < 1e-6
        assert np.abs(b.cells[k] - cuts[i].cell).max() < 1e-6


def test_interpolation_extrapolates_and_ignores_rotation_order_translation():
    from ccdgen.testing import random_rotation

    ends = read_dataset(DATA / "endpoints.extxyz", require=(), duplicates="keep")
    a, b = ends.to_atoms(0), ends.to_atoms(2)
    xs = [-0.2, 0.0, 0.5, 1.0, 1.2]
    ref = interpolation_frames(map_path([a, b], problem().crystal), xs)
    # independent route: raw linear interpolation of cell and fractional coordinates
    fa, fb = a.get_scaled_positions(wrap=False), b.get_scaled_positions(wrap=False)
    for k, x in enumerate(xs):
        cell = (1 - x) * a.cell.array + x * b.cell.array
        assert np.allclose(ref.positions[k], ((1 - x) * fa + x * fb) @ cell, atol=1e-6)
        assert np.allclose(ref.cells[k], cell, atol=1e-6)
    rng = np.random.default_rng(5)
    moved = []
    for at in (a, b):
        at = at.copy()
        r = random_rotation(rng)
        at.set_cell(at.cell.array @ r.T, scale_atoms=True)
        at.positions += rng.normal(size=3)
        perm = rng.permutation(len(at))
        moved.append(at[perm])
    got = interpolation_frames(map_path(moved, problem().crystal), xs)
    d = got.positions - ref.positions
    assert np.allclose(d - d.mean(axis=1, keepdims=True), 0, atol=1e-6)  # up to a uniform translation
    assert np.allclose(got.cells, ref.cells, atol=1e-6)
    assert np.allclose(path_coordinates(2, 0.25, 0.5), [-0.5, -0.25, 0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5])


def test_interpolation_needs_two_structures_of_one_supercell():
    ends = read_dataset(DATA / "endpoints.extxyz", require=(), duplicates="keep")
    with pytest.raises(SpecError, match="at least two"):
        map_path([ends.to_atoms(0)], problem().crystal)
    from ccdgen.errors import MappingError

    small = problem().crystal.to_atoms()
    with pytest.raises(MappingError):
        map_path([ends.to_atoms(0), small], problem().crystal)


# ----------------------------------------------------------------------------- CLI
def cli(argv):
    import ccdgen.cli.main as main

    main.SUBCOMMANDS.setdefault("sample", "Generate training configurations.")
    main.SUBCOMMANDS.setdefault("label", "Label configurations; resumable.")
    return main.main([str(a) for a in argv])


def test_cli_glazer_all_one_frame_per_system_with_its_space_group(tmp_path, capsys):
    import spglib

    from ccdgen.data.sampling.glazer import HOWARD_STOKES

    out = tmp_path / "tilts.extxyz"
    assert cli(["sample", EXAMPLE, "--supercell", 2, 2, 2, "--glazer", "all", "--amplitude", 8, "-o", out]) == 0
    ds = read_dataset(out, require=(), duplicates="keep")
    assert ds.n_frames == 15
    seen = set()
    for i in range(ds.n_frames):
        info = ds.info(i)
        g = info["glazer"]
        seen.add(g)
        tilt = np.asarray(info["tilt_deg"])
        p = TiltPattern.parse(g)
        letters = {l: tilt[k] for k, l in enumerate(p.letters) if p.signs[k] != "0"}
        assert sorted(set(letters.values()), reverse=True) == [8.0, 6.0, 4.0][:len(set(letters))]
        fr = ds[i]
        num = spglib.get_symmetry_dataset((fr.cell, fr.positions @ np.linalg.inv(fr.cell), fr.numbers),
                                          symprec=1e-4).number
        assert num == HOWARD_STOKES[g][1], g
    assert "a-a-c+" not in seen and {"a+b-b-", "a0a0c-", "a0a0c+"} <= seen  # standard forms


def test_cli_fixed_seed_is_byte_identical(tmp_path):
    args = ["sample", EXAMPLE, "--glazer", "a0a0c+,a+b-b-", "--modes", "R4+,M3+", "--modes-around", "glazer",
            "--mode-amplitudes", "0.2", "--strain", "all", "--random-strains", 4, "--nsphere", 40, "--radii", 0.3,
            "0.8", "--nsphere-strain", 0.01, "--min-distance", 0.02, "--unique-features", "displacement",
            "--interpolate", f"{DATA / 'endpoints.extxyz'}@0,1,3", "--seed", 7]
    assert cli(args + ["-o", tmp_path / "a.extxyz"]) == 0
    assert cli(args + ["-o", tmp_path / "b.extxyz"]) == 0
    assert (tmp_path / "a.extxyz").read_bytes() == (tmp_path / "b.extxyz").read_bytes()
    args[-1] = 8
    assert cli(args + ["-o", tmp_path / "c.extxyz"]) == 0
    assert (tmp_path / "a.extxyz").read_bytes() != (tmp_path / "c.extxyz").read_bytes()
    ds = read_dataset(tmp_path / "a.extxyz", require=(), duplicates="keep")
    fam = ds.families()
    assert {"glazer", "modes", "strain", "random_strain", "interpolation", "nsphere"} <= set(fam)


SMALL_SPEC = """
[crystal]
lattice = [[5.9436, 0.0, 0.0], [0.0, 5.9436, 0.0], [0.0, 0.0, 5.9436]]
species = ["Pb", "Br", "Br", "Br", "Cs"]
positions = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [0.5, 0.5, 0.5]]
[options]
max_order = 2
[[clusters]]
name = "pair"
kind = "pairs"
count = 2
max_length = 4.5
"""


def test_cli_nsphere_unique_with_ccd_features(tmp_path, capsys):
    """CCD features are invariant: a candidate equivalent by symmetry to a kept frame is
    rejected, while a generic one is kept."""
    spec = tmp_path / "small.toml"
    spec.write_text(SMALL_SPEC)
    out = tmp_path / "n.extxyz"
    prior = tmp_path / "prior.extxyz"
    assert cli(["sample", spec, "--glazer", "a0a0c-", "--amplitude", 6, "--tilt-model", "displacive",
                "-o", prior]) == 0
    # the same tilt about x instead of z (a symmetry image) must be rejected against the prior
    from ase.io import read, write

    a = read(prior)
    sc = Supercell.diagonal(load(spec).crystal, (2, 2, 2))
    x, c = tilt_structure(find_octahedra(sc.reference), sc, TiltPattern.parse("c-a0a0"), [6, 0, 0], "displacive")
    a.positions = x
    write(tmp_path / "image.extxyz", a)
    assert cli(["sample", spec, "--nsphere", 30, "--radii", 0.2, "--min-distance", 0.05,
                "--unique-against", prior, "-o", out]) == 0
    ds = read_dataset(out, require=(), duplicates="keep")
    assert 0 < ds.n_frames <= 30 and "kept" in capsys.readouterr().out
    from ccdgen.crystal.featurizer import CrystalFeaturizer
    from ccdgen.data.sampling.unique import frame_features

    fz = CrystalFeaturizer(spec)
    f = frame_features(FrameBatch.concatenate([FrameBatch.from_atoms([read(prior)]),
                                               FrameBatch.from_atoms([read(tmp_path / "image.extxyz")])]),
                       fz, sc, "ccd")
    assert np.allclose(f[0], f[1], rtol=1e-6) and np.abs(f[0]).max() > 1e-3  # extxyz keeps 8 decimals
    other = glazer_frames(sc, "a0a0c-", 8.0, model="displacive")
    g = frame_features(other, fz, sc, "ccd")
    filt = UniqueFilter(1e-3 * np.abs(f[0]).max(), f.shape[1], prior=f[:1])
    assert filt.add(f[1:2]).tolist() == [False]  # the symmetry image is a duplicate
    assert filt.add(g).tolist() == [True]  # a larger tilt is new


@pytest.mark.parametrize("args,expect", [
    (["--glazer", "a-a-q+"], "not Glazer notation"),
    (["--glazer", "all", "--amplitude", "40"], "out of range"),
    (["--modes", "Z9+"], "no displacement mode"),
    ([], "no generator"),
    (["--glazer", "all", "--supercell", "3", "3", "3"], "does not fit the supercell"),
    (["--glazer", "all", "--supercell", "2", "2"], "3 integers"),
    (["--strain", "A2u"], "no strain irrep"),
])
def test_cli_bad_input_clear_errors(tmp_path, capsys, args, expect):
    rc = cli(["sample", EXAMPLE, *args, "-o", tmp_path / "x.extxyz"])
    err = capsys.readouterr().err
    assert rc == 2 and expect in err and "Traceback" not in err


def test_cli_no_octahedra_error(tmp_path, capsys):
    spec = tmp_path / "rutile.toml"
    spec.write_text(RUTILE)
    rc = cli(["sample", spec, "--glazer", "all", "-o", tmp_path / "x.extxyz"])
    err = capsys.readouterr().err
    assert rc == 2 and "no network of corner-sharing octahedra" in err
    assert cli(["sample", spec, "--modes", "all", "--supercell", 1, 1, 2, "-o", tmp_path / "m.extxyz"]) == 0


def test_cli_list(capsys):
    assert cli(["sample", EXAMPLE, "--list"]) == 0
    out = capsys.readouterr().out
    assert "a-b-c-" in out and "R4+" in out and "M3+" in out and "T2g" in out


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))


def test_cli_modes_around_any_structure(tmp_path):
    """A base structure in another atom order, rotated and translated: the mode rides on
    it in the reference frame (mapped displacements differ by exactly amplitude × mode)."""
    from ase.io import write

    from ccdgen.crystal.mapping import map_configuration
    from ccdgen.testing import random_rotation

    ends = read_dataset(DATA / "endpoints.extxyz", require=(), duplicates="keep")
    a = ends.to_atoms(3)  # Pnma
    rng = np.random.default_rng(2)
    a.set_cell(a.cell.array @ random_rotation(rng).T, scale_atoms=True)
    a.positions += [0.3, -0.2, 0.1]
    a = a[rng.permutation(len(a))]
    write(tmp_path / "base.extxyz", a)
    out = tmp_path / "m.extxyz"
    assert cli(["sample", EXAMPLE, "--modes", "R4+", "--mode-amplitudes", 0.25, "--modes-around",
                tmp_path / "base.extxyz", "-o", out]) == 0
    ds = read_dataset(out, require=(), duplicates="keep")
    m = modes222()
    base = map_configuration(a, problem().crystal, supercell=m.supercell)
    for i in range(ds.n_frames):
        mp = map_configuration(ds.to_atoms(i), problem().crystal, supercell=m.supercell)
        amp = m.project(mp.displacements - base.displacements)
        j = ds.info(i)["mode"]
        assert np.isclose(amp[j], 0.25, atol=1e-6) and np.linalg.norm(np.delete(amp, j)) < 1e-6
        assert ds.info(i)["around"] == "Pnma"
