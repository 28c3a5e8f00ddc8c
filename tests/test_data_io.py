"""Tests of ccdgen.data.io / ccdgen.data.dataset: reading (against ase.io.read), the cache,
content hashes, validation errors, atomic writes and kill-safe appends."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io.extxyz import key_val_dict_to_str, key_val_str_to_dict
from ase.stress import voigt_6_to_full_3x3_stress
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ccdgen.data.io as dio
from ccdgen.data.dataset import (
    ASE_PER_CONFIG,
    Dataset,
    FrameIndexError,
    find_duplicates,
    full_to_voigt,
    validate_dataset,
)
from ccdgen.data.io import (
    TruncatedFrameWarning,
    append_frames,
    format_frame,
    parse_comment,
    read_completed,
    read_dataset,
    write_dataset,
)
from ccdgen.errors import DataError

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "examples" / "cspbbr3" / "data"
BUNDLED = DATA / "train.extxyz.gz"


# ============================================================================ helpers
def deep_equal(a, b) -> bool:
    """Equal values *and* types (arrays: dtype and shape too; NaN equals NaN)."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype
                and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f"))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(deep_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(deep_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (float, np.floating)) and np.isnan(a):
        return bool(np.isnan(b))
    return bool(a == b)


def ase_info(atoms) -> dict:
    """What ccdgen keeps as info: ASE's info plus per-config results other than energy/stress."""
    info = dict(atoms.info)
    results = atoms.calc.results if atoms.calc is not None else {}
    for key in ASE_PER_CONFIG:
        if key not in ("energy", "stress") and key in results:
            info[key] = results[key]
    return info


def assert_same_as_ase(ds: Dataset, images) -> None:
    assert len(ds) == len(images)
    for i, a in enumerate(images):
        fr = ds[i]
        where = f"frame {i}"
        assert np.array_equal(fr.numbers, a.numbers), where
        assert np.array_equal(fr.positions, a.positions), where
        assert np.array_equal(fr.cell, a.cell.array), where
        assert np.array_equal(fr.pbc, a.pbc), where
        results = a.calc.results if a.calc is not None else {}
        if "energy" in results:
            assert fr.energy == a.get_potential_energy(), where
        else:
            assert np.isnan(fr.energy), where
        if "forces" in results:
            assert np.array_equal(fr.forces, a.get_forces()), where
        else:
            assert fr.forces is None, where
        if "stress" in results:
            assert np.array_equal(fr.stress, a.get_stress(voigt=False)), where
            assert np.array_equal(full_to_voigt(fr.stress), a.get_stress()), where
        else:
            assert fr.stress is None, where
        assert deep_equal(dict(fr.info), ase_info(a)), (where, dict(fr.info), ase_info(a))


def frame_text(n_atoms=5, energy="-10.0", extra="", shift=0.0, species=None, forces=True,
               positions=None):
    species = species or (["Pb", "Br", "Br", "Br", "Cs"] * 8)[:n_atoms]
    props = "species:S:1:pos:R:3" + (":forces:R:3" if forces else "")
    e = f" energy={energy}" if energy is not None else ""
    lines = [str(len(species)),
             f'Lattice="5.9 0.0 0.0 0.0 5.9 0.0 0.0 0.0 5.9" Properties={props}{e} {extra} pbc="T T T"']
    for k, s in enumerate(species):
        p = positions[k] if positions is not None else (0.5 * k + shift, 0.25 * k, 0.1 * k)
        row = f"{s} {p[0]!r} {p[1]!r} {p[2]!r}"
        if forces:
            row += f" {0.01 * k!r} {-0.02 * k!r} 0.0"
        lines.append(row)
    return "\n".join(lines) + "\n"


def write(tmp_path, name, text) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


P5 = ("Pb 0.0 0.0 0.0 0.1 -0.2 0.3\nBr 2.95 0.01 -0.02 -0.4 0.0 0.0\nBr 0.0 2.95 0.0 0.0 -0.4 0.0\n"
      "Br 0.0 0.0 2.95 0.0 0.0 0.5\nCs 2.95 2.95 2.95 0.0 0.0 0.0\n")
QUIRKS = (
    # standard layout, symmetric stress, Glazer string info
    "5\n"
    'Lattice="5.9 0.0 0.0 0.0 5.9 0.0 0.0 0.0 5.9" Properties=species:S:1:pos:R:3:forces:R:3 '
    'energy=-10.5 stress="0.001 0.0002 -0.0003 0.0002 0.002 0.0001 -0.0003 0.0001 0.003" '
    'pbc="T T T" family=glazer glazer=0+- tilt_deg="5.7 5.6 12.6" seed=1001\n' + P5 +
    # no forces, no stress, int energy, skewed lattice with negative entries; comment quirks
    # (leading blanks, a tab, a bare flag, quotes of 3 kinds, escapes, JSON, "x = 3",
    # a repeated key, uid kept as text, 000 read as a number), odd species case and floats
    "5\n"
    '   Lattice="6.0 0.1 -0.2 -0.1 5.8 0.05 0.3 -0.25 6.1"  Properties=species:S:1:pos:R:3 '
    'energy=-9 \tflag name="two words" uid=007 arr={1 2 3} q=\'single quoted\' esc="a\\"b" '
    'js="_JSON {\\"a\\": [1, 2]}" x = 3 dup=1 dup=2.5 glazer=000   \n'
    "pb 1e-3 -0.0 +1.5\nbr .5 2.95E0 -1.25e-1\nBR 0 2.9 0\nBr\t0 0 3.0\nCs 3 3 3\n"
    # 10 atoms (ragged), no energy, integer lattice, pbc T F T, asymmetric stress,
    # a per-config result ASE keeps in the calculator (free_energy), int array info
    "10\n"
    'Lattice="6 0 0 0 6 0 0 0 12" Properties=species:S:1:pos:R:3:forces:R:3 pbc="T F T" '
    'stress="1 2 3 4 5 6 7 8 9" free_energy=-3.25 phase=P4mbm axes="1 0 2"\n'
    + P5 + P5.replace("Pb 0.0 0.0 0.0", "Pb 0.0 0.0 6.0").replace("Br 2.95 0.01", "Br 2.95 6.01") +
    # an empty comment line: no cell, no pbc, default Properties, no labels
    "5\n"
    "\n"
    "Pb 0 0 0\nBr 1 0 0\nBr 0 1 0\nBr 0 0 1\nCs 1 1 1\n"
    "\n\n"
)


@pytest.fixture(scope="module")
def bundled() -> Dataset:
    return read_dataset(BUNDLED)


@pytest.fixture(scope="module")
def bundled_plain(tmp_path_factory) -> Path:
    """The bundled file decompressed (ASE seeks back to each frame it reads: in a .gz that
    restarts decompression, so ASE reads a plain copy here)."""
    p = tmp_path_factory.mktemp("plain") / "train.extxyz"
    p.write_bytes(gzip.decompress(BUNDLED.read_bytes()))
    return p


# ============================================================================ reading vs ASE
def test_bundled_matches_ase_every_frame(bundled, bundled_plain):
    assert_same_as_ase(bundled, ase.io.read(bundled_plain, ":"))
    assert_same_as_ase(bundled[:3], ase.io.read(BUNDLED, ":3"))  # ASE on the .gz itself


def test_bundled_contents(bundled):
    """4,000 frames of 40 atoms, all labelled; family counts equal a plain text count."""
    assert bundled.n_frames == 4000 and bundled.n_atoms == 40
    assert bundled.has_energy.all() and bundled.has_forces.all() and bundled.has_stress.all()
    with gzip.open(BUNDLED, "rt") as fh:
        text = fh.read()
    from collections import Counter

    counted = Counter(re.findall(r" family=(\S+)", text))
    assert bundled.families() == dict(sorted(counted.items()))
    assert set(counted) == {"glazer", "strain", "nsphere", "interpolation", "minimum"}
    assert len(bundled.numbers) == 4000 and np.all(bundled.numbers == bundled.numbers[0])


def test_other_bundled_files():
    setup = json.loads((DATA / "setup.json").read_text())
    ends = read_dataset(DATA / "endpoints.extxyz")
    assert [f.info["name"] for f in ends] == ["cubic", "P4mbm", "I4mcm", "Pnma"]
    # setup.json's phase energies are the endpoint energies per formula unit (8 per frame)
    de = (ends.energies - ends.energies[0]) / 8 * 1000
    for k, name in enumerate(["cubic", "P4mbm", "I4mcm", "Pnma"]):
        assert de[k] == pytest.approx(setup[f"dE_{name}_meV_per_fu"], abs=1e-6)
    cuts = read_dataset(DATA / "cuts.extxyz", duplicates="keep")
    assert set(cuts.info_values("cut")) == {"R_antiphase", "M_inphase", "volumetric",
                                            "cubic-tetragonal-orthorhombic"}
    assert_same_as_ase(cuts, ase.io.read(DATA / "cuts.extxyz", ":"))


def test_quirks_match_ase(tmp_path):
    p = write(tmp_path, "quirks.extxyz", QUIRKS)
    ds = read_dataset(p, require=())
    assert_same_as_ase(ds, ase.io.read(p, ":"))
    assert not ds.uniform and list(ds.n_atoms_per_frame) == [5, 5, 10, 5]
    assert ds[1].forces is None and ds[1].stress is None and ds[1].energy == -9.0
    assert np.isnan(ds[2].energy) and ds[3].info == {}
    assert ds[1].info["glazer"] == 0  # ASE reads "000" as a number; so does ccdgen
    with pytest.raises(DataError, match="frames of one size"):
        ds.positions


def test_crlf_and_last_line_without_newline(tmp_path):
    p = write(tmp_path, "lf.extxyz", QUIRKS)
    q = tmp_path / "crlf.extxyz"
    q.write_bytes(QUIRKS.replace("\n", "\r\n").encode())
    r = write(tmp_path, "no_newline.extxyz", frame_text().rstrip("\n"))
    a, b = read_dataset(p, require=()), read_dataset(q, require=())
    assert a.content_hash() == b.content_hash()
    assert_same_as_ase(b, ase.io.read(q, ":"))
    assert_same_as_ase(read_dataset(r), ase.io.read(r, ":"))


def test_index_like_ase(tmp_path, bundled):
    texts = "".join(frame_text(shift=0.1 * k, energy=str(-k)) for k in range(12))
    p = write(tmp_path, "twelve.extxyz", texts)
    for index in [":", ":5", "3:9:2", "-1", "4", "::-3", -2, slice(1, None, 4)]:
        ds = read_dataset(p, index=index)
        images = ase.io.read(p, index)
        images = images if isinstance(images, list) else [images]
        assert_same_as_ase(ds, images)
    assert list(read_dataset(p, index="3:9:2").source_index) == [3, 5, 7]
    with pytest.raises(DataError, match="frame 12 does not exist"):
        read_dataset(p, index=12)
    with pytest.raises(DataError, match="selects none"):
        read_dataset(p, index="20:")
    with pytest.raises(DataError, match="not an ASE index"):
        read_dataset(p, index="a:b")


def test_fast_path_avoids_ase_and_other_layouts_use_it(tmp_path, monkeypatch):
    calls = []
    real = ase.io.iread

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(ase.io, "iread", spy)
    read_dataset(write(tmp_path, "plain.extxyz", QUIRKS), require=())
    assert calls == []
    extra = frame_text(forces=False).replace("pos:R:3", "pos:R:3:tag:I:1:magmoms:R:1")
    extra = "\n".join(ln + f" {k} 0.5" if ln[:2] in ("Pb", "Br", "Cs") else ln
                      for k, ln in enumerate(extra.split("\n")))
    p = write(tmp_path, "tagged.extxyz", extra)
    ds = read_dataset(p, require=())
    assert len(calls) == 1
    assert_same_as_ase(ds, list(real(p, ":")))


def test_other_formats_and_voigt_stress(tmp_path):
    """A .traj file (ASE stores Voigt stress) and an ASE-written extxyz give the same data."""
    rng = np.random.default_rng(0)
    images = []
    for k in range(3):
        a = bulk("Cu", "fcc", a=3.6, cubic=True)
        a.positions += rng.normal(0, 0.05, a.positions.shape)
        voigt = rng.normal(0, 0.01, 6)
        a.calc = SinglePointCalculator(a, energy=-k - 0.5, forces=rng.normal(0, 0.1, (4, 3)),
                                       stress=voigt)
        a.info["family"] = "test"
        images.append(a)
    traj, xyz = tmp_path / "cu.traj", tmp_path / "cu.extxyz"
    ase.io.write(traj, images)
    ase.io.write(xyz, images, format="extxyz")
    d1, d2 = read_dataset(traj), read_dataset(xyz)
    for k, a in enumerate(images):
        full = voigt_6_to_full_3x3_stress(a.calc.results["stress"])
        assert np.allclose(d1[k].stress, full, rtol=0, atol=1e-15)
        assert np.allclose(d2[k].stress, full, rtol=0, atol=1e-15)
        assert d1[k].energy == d2[k].energy == -k - 0.5
        assert np.array_equal(d1[k].forces, a.calc.results["forces"])
    assert_same_as_ase(d1, ase.io.read(traj, ":"))
    assert_same_as_ase(d2, ase.io.read(xyz, ":"))
    # Voigt stress and shape checks when building from Atoms directly
    assert np.allclose(Dataset.from_atoms(images)[1].stress,
                       voigt_6_to_full_3x3_stress(images[1].calc.results["stress"]))


def test_units_and_signs_against_finite_differences(tmp_path):
    """Labels survive write → read with ASE's units and signs: forces = -dE/dx, and
    stress_ij = (1/V) dE/d(strain_ij) (shear components check the Voigt order)."""
    atoms = bulk("Cu", "fcc", a=3.6, cubic=True).repeat((2, 2, 1))
    atoms.positions += np.random.default_rng(1).normal(0, 0.08, atoms.positions.shape)
    atoms.set_cell(atoms.cell.array + [[0, 0.1, 0], [0, 0, 0.05], [0.08, 0, 0]], scale_atoms=False)
    atoms.calc = EMT()
    e, f, s = atoms.get_potential_energy(), atoms.get_forces(), atoms.get_stress()
    labelled = atoms.copy()
    labelled.calc = SinglePointCalculator(labelled, energy=e, forces=f, stress=s)
    p = write_dataset(tmp_path / "cu.extxyz", [labelled])
    fr = read_dataset(p, require=("energy", "forces", "stress"))[0]

    def energy(pos=None, strain=None):
        b = atoms.copy()
        if pos is not None:
            b.positions = pos
        if strain is not None:
            b.set_cell(atoms.cell.array @ (np.eye(3) + strain), scale_atoms=True)
        b.calc = EMT()
        return b.get_potential_energy()

    h = 1e-4
    for atom, c in [(0, 0), (3, 1), (7, 2)]:
        dp = atoms.positions.copy()
        dp[atom, c] += h
        dm = atoms.positions.copy()
        dm[atom, c] -= h
        assert fr.forces[atom, c] == pytest.approx(-(energy(dp) - energy(dm)) / (2 * h), abs=1e-5)
    vol = atoms.get_volume()
    for i, j in [(0, 0), (2, 2), (1, 2), (0, 1)]:
        eps = np.zeros((3, 3))
        eps[i, j] = eps[j, i] = h
        de = (energy(strain=eps) - energy(strain=-eps)) / (2 * h)
        expected = de / vol / (1 if i == j else 2)
        assert fr.stress[i, j] == pytest.approx(expected, abs=1e-6)
        assert fr.stress[j, i] == fr.stress[i, j]


# ============================================================================ comment parser
_KEYS = st.one_of(st.sampled_from(["a", "b_1", "Lattice", "stress", "virial", "uid", "UID", "pbc",
                                   "T", "x-y"]),
                  st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True))
_VALUES = st.one_of(
    st.integers(-10**20, 10**20), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
    st.text(st.characters(codec="ascii", exclude_characters="\n\r"), max_size=12),
    st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=9).map(np.array),
    st.lists(st.integers(-99, 99), min_size=2, max_size=9).map(np.array),
    st.sampled_from(["0+-", "000", "cubic-P4mbm", "T T F", "1,2,3", "nan", "-inf", "1e5", "+7",
                     "_JSON [1, 2]", "_JSON {\"k\": \"v\"}", "", "a=b"]))


def _both(line):
    try:  # ASE's frame reader maps an empty comment line to {} without parsing it
        expected = key_val_str_to_dict(line.strip()) if line.strip() else {}
    except Exception as exc:  # noqa: BLE001 - compare failure kinds
        expected = type(exc)
    try:
        got = parse_comment(line, {})
    except Exception as exc:  # noqa: BLE001
        got = type(exc)
    return got, expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_KEYS, _VALUES, max_size=6))
def test_parse_comment_equals_ase_on_written_dicts(d):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        line = key_val_dict_to_str(d)
    got, expected = _both(line)
    assert deep_equal(got, expected) or got is expected, (line, got, expected)


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=' =\t"\'{}[]\\,abT_01.-+e9', max_size=30))
def test_parse_comment_equals_ase_on_random_text(line):
    got, expected = _both(line)
    assert deep_equal(got, expected) or got is expected, (line, got, expected)


def test_parse_comment_memo_gives_fresh_arrays():
    memo = {}
    a = parse_comment('t="1 2 3" k=v', memo)
    b = parse_comment('t="1 2 3" k=v', memo)
    assert a["t"] is not b["t"] and deep_equal(a, b)


# ============================================================================ cache
def test_cache_hit_renamed_copy_and_fidelity(tmp_path, monkeypatch):
    monkeypatch.setattr(dio, "CACHE_MIN_BYTES", 0)
    monkeypatch.setenv("CCDGEN_CACHE_DIR", str(tmp_path / "cache"))
    p = write(tmp_path, "q.extxyz", QUIRKS)
    uncached = read_dataset(p, require=(), cache=False)
    first = read_dataset(p, require=())
    entries = list((tmp_path / "cache" / "datasets").iterdir())
    assert len([e for e in entries if e.is_dir() and not e.name.startswith(".")]) == 1

    def boom(*a, **k):
        raise AssertionError("parsed again")

    monkeypatch.setattr(dio, "_parse_xyz", boom)
    copy = tmp_path / "another name.xyz"
    shutil.copy(p, copy)
    again, renamed = read_dataset(p, require=()), read_dataset(copy, require=())
    for ds in (first, again, renamed):
        assert ds.content_hash() == uncached.content_hash()
        assert all(deep_equal(dict(ds.info(i)), dict(uncached.info(i))) for i in range(len(ds)))
    assert renamed.source_names == (str(copy),)
    with pytest.raises(AssertionError, match="parsed again"):
        read_dataset(p, require=(), cache=False)


def test_unwritable_cache_still_reads(tmp_path, monkeypatch):
    blocker = tmp_path / "not a folder"
    blocker.write_text("x")
    monkeypatch.setenv("CCDGEN_CACHE_DIR", str(blocker / "cache"))
    p = write(tmp_path, "q.extxyz", QUIRKS)
    with pytest.warns(UserWarning, match="without the cache"):
        ds = read_dataset(p, require=(), cache=True)
    assert ds.n_frames == 4


# ============================================================================ content hash
def test_content_hash(tmp_path, bundled):
    sub = bundled[:50]
    p = write_dataset(tmp_path / "a.extxyz", sub)
    q = tmp_path / "b.extxyz.gz"
    q.write_bytes(gzip.compress(p.read_bytes()))
    a, b = read_dataset(p), read_dataset(q)
    assert a.content_hash() == b.content_hash() == sub.content_hash()
    # an independent route: ASE's reader + Dataset.from_atoms
    assert Dataset.from_atoms(ase.io.read(p, ":")).content_hash() == a.content_hash()
    pos = sub.positions.copy()
    pos[17, 3, 1] += 1e-6
    moved = Dataset.from_arrays(sub.numbers, pos, sub.cells, sub.energies, sub.forces, sub.stresses)
    assert moved.content_hash() != a.content_hash()
    e = sub.energies.copy()
    e[3] += 1e-9
    relabelled = Dataset.from_arrays(sub.numbers, sub.positions, sub.cells, e, sub.forces, sub.stresses)
    assert relabelled.content_hash() != a.content_hash()
    same = Dataset.from_arrays(sub.numbers, sub.positions + 0.0, sub.cells, sub.energies,
                               sub.forces, sub.stresses, infos=[{"x": 1}] * 50)
    assert same.content_hash() == a.content_hash()  # info is not part of the hash
    code = ("import sys; from ccdgen.data.io import read_dataset; "
            "print(read_dataset(sys.argv[1]).content_hash())")
    for seed in ("0", "123", "random"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True,
                             env=env, check=True, cwd=REPO)
        assert out.stdout.strip() == a.content_hash()


# ============================================================================ Dataset API
def test_dataset_indexing_and_readonly(tmp_path):
    ds = read_dataset(write(tmp_path, "q.extxyz", QUIRKS), require=())
    assert isinstance(ds[-1].info, type(ds[0].info)) and ds[-1].n_atoms == 5
    sub = ds[[2, 0]]
    assert list(sub.n_atoms_per_frame) == [10, 5]
    assert np.array_equal(sub[0].positions, ds[2].positions)
    assert np.array_equal(sub[0].forces, ds[2].forces) and sub[1].stress is not None
    assert list(ds[np.array([True, False, True, False])].source_index) == [0, 2]
    assert list(ds[1:3].source_index) == [1, 2]
    with pytest.raises(FrameIndexError):
        ds[4]
    with pytest.raises(IndexError):
        ds[[0, 7]]
    with pytest.raises(ValueError):
        ds.positions_flat[0, 0] = 1.0
    with pytest.raises(ValueError):
        ds[0].positions[0, 0] = 1.0
    with pytest.raises(AttributeError):
        ds.cells = None
    with pytest.raises(TypeError):
        ds[0].info["new"] = 1
    a = ds.to_atoms(2)
    assert "energy" not in a.calc.results and a.calc.results["free_energy"] == -3.25
    assert np.array_equal(a.get_stress(voigt=False), ds[2].stress)
    assert ds.families() == {"glazer": 1, None: 3}
    joined = Dataset.concatenate([ds, ds[:2]])
    assert joined.n_frames == 6 and joined.source_of(5) == f"{ds.source_names[0]}, frame 1"


# ============================================================================ validation errors
def _err(tmp_path, text, match, **kwargs):
    p = write(tmp_path, "bad.extxyz", text)
    with pytest.raises(DataError, match=match) as info:
        read_dataset(p, **kwargs)
    assert str(p) in str(info.value)
    return str(info.value)


def test_error_nonfinite_values(tmp_path):
    good = frame_text()
    msg = _err(tmp_path, good + frame_text(energy="nan", shift=1), r"frame 1: the energy is NaN or inf")
    assert "Fix:" in msg
    _err(tmp_path, good + frame_text(energy="inf", shift=1), r"frame 1: the energy")
    bad_pos = re.sub(r"\nBr \S+", "\nBr nan", frame_text(shift=2), count=1)
    _err(tmp_path, good + good.replace("0.5 ", "0.7 ", 1) + bad_pos,
         r"frame 2: the positions contain NaN or inf \(atom 1\)")
    bad_cell = frame_text(shift=3).replace('Lattice="5.9', 'Lattice="inf', 1)
    _err(tmp_path, good + bad_cell, r"frame 1: the cell contains NaN")
    bad_f = frame_text(shift=3).replace(" 0.01 -0.02 0.0", " nan -0.02 0.0", 1)
    _err(tmp_path, good + bad_f, r"frame 1: the forces contain NaN or inf \(atom 1\)")
    bad_s = frame_text(extra='stress="0 0 0 0 nan 0 0 0 0"', shift=1)
    _err(tmp_path, good + bad_s, r"frame 1: the stress contains NaN")


def test_error_missing_labels(tmp_path):
    text = frame_text() + frame_text(energy=None, shift=1) + frame_text(energy=None, shift=2)
    msg = _err(tmp_path, text, r"frame 1 \(also .*frame 2\): no energy")
    assert "require" in msg
    assert read_dataset(write(tmp_path, "ok.extxyz", text), require=()).n_frames == 3
    _err(tmp_path, frame_text(), r"frame 0: no stress", require=("energy", "stress"))
    _err(tmp_path, frame_text(forces=False), r"frame 0: no forces", require="forces")
    with pytest.raises(DataError, match="unknown required label"):
        read_dataset(write(tmp_path, "x.extxyz", frame_text()), require=("energies",))


def test_error_shapes(tmp_path):
    # forces with 2 columns (ASE route) and stress of the wrong length
    two = frame_text(forces=False).replace("species:S:1:pos:R:3", "species:S:1:pos:R:3:forces:R:2")
    two = "\n".join(ln + " 0.5 0.5" if ln[:2] in ("Pb", "Br", "Cs") else ln for ln in two.split("\n"))
    _err(tmp_path, frame_text(shift=1) + two, r"frame 1: forces have shape \(5, 2\), expected \(5, 3\)")
    _err(tmp_path, frame_text(shift=1) + frame_text(extra='stress="1 2 3 4 5 6"'),
         r"frame 1: cannot parse the comment line: .*stress")
    a = Atoms("Cu2", positions=[[0, 0, 0], [1, 1, 1]], cell=np.eye(3) * 3, pbc=True)
    a.calc = SinglePointCalculator(a, energy=1.0, stress=np.ones(4))
    with pytest.raises(DataError, match=r"frame 0: the stress has shape \(4,\)"):
        Dataset.from_atoms([a])
    a.calc = SinglePointCalculator(a, energy=1.0, forces=np.ones((3, 3)))
    with pytest.raises(DataError, match=r"frame 0: forces have shape \(3, 3\), expected \(2, 3\)"):
        Dataset.from_atoms([a])


def test_error_mixed_species(tmp_path):
    good = frame_text(n_atoms=10)
    odd = frame_text(n_atoms=10, shift=1, species=["Pb", "Br", "Br", "I", "Cs"] * 2)
    msg = _err(tmp_path, good + odd, r"frame 1: composition Br4I2Cs2Pb2 differs")
    assert "Br 4 where 6 expected" in msg and "I 2 where 0 expected" in msg
    # against a given reference: the first frame itself is off
    _err(tmp_path, odd + good, r"frame 0: composition .* differs from the reference CsPbBr3",
         composition="CsPbBr3")
    # whole numbers of formula units of one compound are fine
    ok = write(tmp_path, "ok.extxyz", frame_text(n_atoms=5) + frame_text(n_atoms=10, shift=1))
    assert read_dataset(ok, composition={"Cs": 1, "Pb": 1, "Br": 3}).n_frames == 2
    assert read_dataset(write(tmp_path, "mixed.extxyz", good + odd), check_composition=False).n_frames == 2
    _err(tmp_path, frame_text(n_atoms=5) + frame_text(n_atoms=4, shift=1),
         r"frame 1: composition Br3Pb differs .*4 atoms is no whole number of 5-atom formula units")


def test_duplicates(tmp_path):
    a, b = frame_text(), frame_text(shift=1)
    near = frame_text(energy="-11.0").replace("Br 0.5 ", "Br 0.5000000000001 ", 1)
    text = a + b + near + frame_text(shift=2)
    msg = _err(tmp_path, text, r"frame 2 duplicates .*frame 0: same species, cell and positions")
    assert "duplicates='drop'" in msg
    p = write(tmp_path, "dup.extxyz", text)
    with pytest.warns(UserWarning, match="dropped 1 duplicate"):
        dropped = read_dataset(p, duplicates="drop")
    assert list(dropped.source_index) == [0, 1, 3]
    assert read_dataset(p, duplicates="keep").n_frames == 4
    apart = a + frame_text().replace("Br 0.5 ", "Br 0.500001 ", 1)
    assert read_dataset(write(tmp_path, "apart.extxyz", apart)).n_frames == 2
    with pytest.raises(DataError, match="is not an option"):
        read_dataset(write(tmp_path, "two.extxyz", a + b), duplicates="maybe")


def test_find_duplicates_against_brute_force():
    rng = np.random.default_rng(5)
    base = rng.normal(0, 1, (30, 6, 3))
    pos = np.concatenate([base, base[[3, 7, 7, 20]] + rng.uniform(-5e-9, 5e-9, (4, 6, 3)),
                          base[[1]] + 3e-8])
    cells = np.broadcast_to(np.eye(3) * 9, (len(pos), 3, 3))
    ds = Dataset.from_arrays(np.arange(6) + 1, pos, cells)
    got = {tuple(p) for p in find_duplicates(ds)}
    brute = set()
    for j in range(len(pos)):
        for i in range(j):
            if np.all(np.abs(pos[i] - pos[j]) <= 1e-8):
                brute.add((i, j))
                break
    assert got == brute == {(3, 30), (7, 31), (7, 32), (20, 33)}


def test_find_duplicates_frames_of_different_sizes(tmp_path):
    ds = read_dataset(write(tmp_path, "q.extxyz", QUIRKS), require=())
    both = Dataset.concatenate([ds, ds[[2, 0]]])
    assert find_duplicates(both).tolist() == [[2, 4], [0, 5]]
    assert find_duplicates(ds).tolist() == []


def test_error_files(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_dataset(tmp_path / "missing.extxyz")
    with pytest.raises(DataError, match="a folder"):
        read_dataset(tmp_path)
    _err(tmp_path, "", "has no frames")
    _err(tmp_path, "\n\n", "has no frames")
    _err(tmp_path, "hello\nworld\n", r"frame 0: expected the atom-count line")
    _err(tmp_path, frame_text() + "5\ncomment\nPb 0 0 0\n", r"frame 1: the file ends after 1 of 5")
    _err(tmp_path, frame_text() + frame_text().replace("Br 0.5 0.25 0.1", "Br 0.5 0.25"),
         r"frame 1: atom line 1 .* does not have the 7 columns")
    _err(tmp_path, frame_text() + frame_text(shift=1).replace("Cs", "Qq"),
         r"frame 1: unknown chemical symbol 'Qq'")
    _err(tmp_path, frame_text() + frame_text(extra='Lattice="1 2 3"'),
         r"frame 1: cannot parse the comment line")
    gz = tmp_path / "broken.extxyz.gz"
    gz.write_bytes(gzip.compress(frame_text().encode())[:-12])
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_dataset(gz)
    bad = tmp_path / "weird.cif"
    bad.write_text("this is no CIF\n")
    with pytest.raises(DataError, match="weird.cif"):
        read_dataset(bad)
    with pytest.raises(DataError, match="no files"):
        read_dataset([])


def test_errors_name_the_file_among_several(tmp_path):
    p = write(tmp_path, "one.extxyz", frame_text())
    q = write(tmp_path, "two.extxyz", frame_text(shift=1) + frame_text(energy="nan", shift=2))
    with pytest.raises(DataError, match=r"two\.extxyz, frame 1: the energy"):
        read_dataset([p, q])
    q = write(tmp_path, "two.extxyz", frame_text(shift=1) + frame_text(shift=2))
    r = write(tmp_path, "three.extxyz", frame_text())
    with pytest.raises(DataError, match=r"three\.extxyz, frame 0 duplicates .*one\.extxyz, frame 0"):
        read_dataset([p, q, r])
    both = read_dataset([p, r], index="0", duplicates="keep")
    assert both.source_names == (str(p), str(r)) and list(both.source_index) == [0, 0]


# ============================================================================ writing
def test_round_trip(tmp_path, bundled):
    quirky = read_dataset(write(tmp_path, "q.extxyz", QUIRKS), require=())
    for src in (bundled[:200], quirky):
        for name in ("out.extxyz", "out.extxyz.gz"):
            p = write_dataset(tmp_path / name, src)
            back = read_dataset(p, require=())
            assert back.content_hash() == src.content_hash()
            assert all(deep_equal(dict(back.info(i)), dict(src.info(i))) for i in range(len(src)))
            assert_same_as_ase(back, ase.io.read(p, ":"))
    # deterministic bytes (no timestamps)
    a = write_dataset(tmp_path / "x.extxyz.gz", bundled[:5]).read_bytes()
    assert write_dataset(tmp_path / "x.extxyz.gz", bundled[:5]).read_bytes() == a
    # ase.Atoms in, ASE writer's file out
    atoms = [bundled.to_atoms(i) for i in range(3)]
    p = write_dataset(tmp_path / "atoms.extxyz", atoms)
    assert read_dataset(p).content_hash() == bundled[:3].content_hash()


def test_write_is_atomic(tmp_path, bundled):
    p = write_dataset(tmp_path / "keep.extxyz", bundled[:3])
    before = p.read_bytes()
    frames = list(bundled[:3]) + [Dataset.from_arrays(
        bundled.numbers[0], bundled.positions[:1], bundled.cells[:1],
        infos=[{"note": "line\nbreak"}])[0]]
    with pytest.raises(DataError, match="line break"):
        write_dataset(p, frames)
    assert p.read_bytes() == before
    assert sorted(x.name for x in tmp_path.iterdir()) == ["keep.extxyz"]


# ============================================================================ resumable appends
_FRAME_SOURCE = ("Dataset.from_arrays([82, 35, 35, 35, 55], np.arange(15.0).reshape(1, 5, 3) * 0.1 + k, "
                 "np.eye(3)[None] * 5.9, energies=[-float(k)], forces=np.full((1, 5, 3), 0.01 * k), "
                 "stresses=np.eye(3)[None] * 1e-3, infos=[{'index': k}])[0]")


def _frames(n, start=0):
    """Frames k = start, ..., start + n - 1 (the same expression the kill test's child runs)."""
    return [eval(_FRAME_SOURCE, {"Dataset": Dataset, "np": np, "k": k})
            for k in range(start, start + n)]


def test_append_and_read_completed(tmp_path):
    p = tmp_path / "job.extxyz"
    assert read_completed(p).n_frames == 0
    for fr in _frames(3):
        assert append_frames(p, [fr]) == 1
    append_frames(p, _frames(2, 3))
    done = read_completed(p)
    assert list(done.info_values("index")) == [0, 1, 2, 3, 4]
    assert done.content_hash() == Dataset.from_frames(_frames(5)).content_hash()
    assert_same_as_ase(done, ase.io.read(p, ":"))
    with pytest.raises(DataError, match="compressed"):
        append_frames(tmp_path / "job.extxyz.gz", _frames(1))


@pytest.mark.parametrize("cut", ["header", "comment", "atoms", "line", "last_byte"])
def test_kill_mid_frame_then_resume(tmp_path, cut):
    p = tmp_path / "job.extxyz"
    append_frames(p, _frames(3))
    good = p.read_bytes()
    text = format_frame(_frames(1, 3)[0]).encode()
    lines = text.split(b"\n")
    part = {"header": lines[0][:1],
            "comment": b"\n".join(lines[:2])[: len(lines[0]) + 20],
            "atoms": b"\n".join(lines[:4]) + b"\n",
            "line": b"\n".join(lines[:5])[:-7],
            "last_byte": text[:-1]}[cut]
    with open(p, "ab") as fh:  # what a kill during that write leaves behind
        fh.write(part)
    with pytest.warns(TruncatedFrameWarning, match="incomplete last frame"):
        done = read_completed(p)
    assert list(done.info_values("index")) == [0, 1, 2]
    dio._KNOWN_COMPLETE.clear()  # a new process resumes the job
    with pytest.warns(TruncatedFrameWarning, match="dropping an incomplete last frame"):
        append_frames(p, _frames(2, 3))
    assert p.read_bytes().startswith(good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        final = read_completed(p)
    assert list(final.info_values("index")) == [0, 1, 2, 3, 4]
    assert_same_as_ase(final, ase.io.read(p, ":"))


def test_damage_before_the_tail_is_an_error(tmp_path):
    p = tmp_path / "job.extxyz"
    append_frames(p, _frames(3))
    text = p.read_text()
    texts = [format_frame(f) for f in _frames(3)]
    assert text == "".join(texts)
    damaged = texts[0] + "x" + texts[1] + texts[2]
    p.write_text(damaged)
    with pytest.raises(DataError, match=r"frame 1: expected the atom-count line"):
        read_completed(p)
    dio._KNOWN_COMPLETE.clear()
    with pytest.raises(DataError, match="frame 1"):
        append_frames(p, _frames(1))
    assert p.read_text() == damaged  # nothing cut or written


def test_real_kill_during_appends(tmp_path):
    """Kill -9 a process that appends frames; the complete frames survive and the job resumes."""
    p = tmp_path / "job.extxyz"
    script = textwrap.dedent(f"""
        import numpy as np
        from ccdgen.data.dataset import Dataset
        from ccdgen.data.io import append_frames
        print("ready", flush=True)
        for k in range(100000):
            append_frames({str(p)!r}, [{_FRAME_SOURCE}])
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout.readline().strip() == b"ready"
    deadline = time.time() + 20
    while (not p.exists() or p.stat().st_size < 40_000) and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedFrameWarning)
        done = read_completed(p)
    k = done.n_frames
    assert k > 0 and list(done.info_values("index")) == list(range(k))
    assert done.content_hash() == Dataset.from_frames(_frames(k)).content_hash()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TruncatedFrameWarning)
        append_frames(p, _frames(3, k))
    final = read_completed(p)
    assert list(final.info_values("index")) == list(range(k + 3))
    assert len(ase.io.read(p, ":")) == k + 3


def test_validate_dataset_direct():
    ds = Dataset.from_frames(_frames(3))
    assert validate_dataset(ds, require=("energy", "forces", "stress")) is ds
    with pytest.raises(DataError, match="frame 3 duplicates frame 0"):
        validate_dataset(Dataset.concatenate([ds, ds[:1]]))
