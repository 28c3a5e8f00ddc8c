"""Bad input raises the right ccdgen error class with a message naming the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

from ccdgen.ccd.evaluate import ccd_jacobian, ccds
from ccdgen.ccd.transform import build_transform
from ccdgen.clusters import check_name, free_cluster
from ccdgen.errors import (CCDGenError, ClusterError, InputArrayError, SpecError, StructureError)
from ccdgen.geometry.structure import Crystal
from ccdgen.pipeline import load, transforms
from ccdgen.symmetry.free import find_point_group, polyhedron

REPO = Path(__file__).resolve().parents[1]

CRYSTAL = """
[crystal]
lattice = [[5.9436, 0.0, 0.0], [0.0, 5.9436, 0.0], [0.0, 0.0, 5.9436]]
species = ["Pb", "Br", "Br", "Br", "Cs"]
positions = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [0.5, 0.5, 0.5]]
"""

PAIRS = """
[[clusters]]
name = "pair"
kind = "pairs"
count = 2
max_length = 4.5
"""


def write_spec(tmp_path, body: str, crystal: str = CRYSTAL, name: str = "spec.toml") -> Path:
    path = tmp_path / name
    path.write_text(crystal + body)
    return path


def sites_spec(tmp_path, sites: str, name: str = "c") -> Path:
    return write_spec(tmp_path, f'[[clusters]]\nname = "{name}"\nkind = "sites"\nsites = {sites}\n')


def tetra(name="tet"):
    sp, x = polyhedron("tetrahedron", 2.0)
    return free_cluster(x, sp, name)


def test_all_errors_share_a_base_class():
    for cls in (SpecError, StructureError, ClusterError, InputArrayError):
        assert issubclass(cls, CCDGenError)
    e = SpecError("what", why="why", fix="fix")
    assert "what" in str(e) and "Why: why" in str(e) and "Fix: fix" in str(e)


def test_a_valid_sites_spec_works(tmp_path):
    """The reference for the error cases below: the same spec with good sites loads."""
    p = load(sites_spec(tmp_path, "[[0, 0, 0], [0.5, 0, 0]]"))
    (c,) = p.clusters
    assert c.group.order == 8 and len(c.orbit) == 6
    p = load(sites_spec(tmp_path, "[[0, 0, 0, 0], [1, 0, 0, 0]]"))
    assert p.clusters[0].group.order == 8


# ------------------------------------------------------------------ duplicate sites
def test_duplicate_sites_free_cluster():
    sp, x = polyhedron("tetrahedron", 2.0)
    x = np.vstack([x, x[1] + 1e-3])
    with pytest.raises(StructureError, match=r"sites 1 and 4 .*duplicate"):
        free_cluster(x, list(sp) + ["X"], "tet")


@pytest.mark.parametrize("sites", ["[[0, 0, 0], [0.5, 0, 0], [0, 0, 0]]",
                                   "[[0.5, 0, 0], [1, 0, 0, 0]]",
                                   "[[0.5, 0, 0], [1.5, 0, 0], [-0.5, 0, 0], [1.5, 0, 0]]"])
def test_duplicate_sites_spec(tmp_path, sites):
    with pytest.raises(ClusterError, match="same site twice"):
        load(sites_spec(tmp_path, sites))


def test_collapsed_crystal_sites(tmp_path):
    bad = CRYSTAL.replace("[0.5, 0.5, 0.5]]", "[0.5, 0.0, 0.001]]")
    with pytest.raises(StructureError, match=r"only .* Å apart"):
        load(write_spec(tmp_path, PAIRS, crystal=bad))


# ------------------------------------------------------------------ too few sites
def test_single_site_free_cluster():
    with pytest.raises(StructureError, match="at least 2 sites"):
        free_cluster(np.zeros((1, 3)), ["X"], "one")
    with pytest.raises(ClusterError, match="at least 2 sites"):
        find_point_group(np.zeros((1, 3)), ["X"])


def test_single_site_spec(tmp_path):
    with pytest.raises(ClusterError, match="at least 2"):
        load(sites_spec(tmp_path, "[[0, 0, 0]]"))


def test_single_site_xyz(tmp_path):
    (tmp_path / "one.xyz").write_text("1\n\nC 0 0 0\n")
    with pytest.raises(StructureError, match="at least 2 sites"):
        load(tmp_path / "one.xyz")


# ------------------------------------------------------------------ not crystal sites
def test_site_that_is_not_a_crystal_site(tmp_path):
    with pytest.raises(ClusterError, match=r"\[0\.25, 0\.0, 0\.0\].*not a crystal site.*nearest site is Pb"):
        load(sites_spec(tmp_path, "[[0, 0, 0], [0.25, 0, 0]]"))


def test_basis_index_out_of_range(tmp_path):
    with pytest.raises(ClusterError, match="basis index out of range"):
        load(sites_spec(tmp_path, "[[0, 0, 0, 0], [7, 0, 0, 0]]"))


@pytest.mark.parametrize("sites", ['[["Pb", 0, 0], [0.5, 0, 0]]', "[[0, 0], [0.5, 0, 0]]",
                                   "[[0.5, 0, 0, 0], [0, 0, 0]]", "[[true, 0, 0], [0.5, 0, 0]]", "5"])
def test_malformed_sites(tmp_path, sites):
    with pytest.raises(SpecError, match="sites must be a list"):
        load(sites_spec(tmp_path, sites))


# ------------------------------------------------------------------ metric, sigma
def test_unknown_metric_spec(tmp_path):
    with pytest.raises(SpecError, match=r"unknown pair metric 'cubic'.*\n.*linear, log, exp, inverse"):
        load(write_spec(tmp_path, '[options]\nmetric = "cubic"\n' + PAIRS))


def test_metric_of_wrong_type_spec(tmp_path):
    with pytest.raises(SpecError, match="unknown pair metric"):
        load(write_spec(tmp_path, '[options]\nmetric = ["exp"]\n' + PAIRS))


def test_unknown_metric_override(tmp_path):
    with pytest.raises(SpecError, match="unknown pair metric 'morse'"):
        load(write_spec(tmp_path, PAIRS), metric="morse")


def test_unknown_metric_build_transform():
    with pytest.raises(SpecError, match="unknown pair metric 'cubic'"):
        build_transform(tetra(), "cubic")


@pytest.mark.parametrize("sigma", ["0", "-0.1", "0.0"])
def test_bad_sigma_spec(tmp_path, sigma):
    with pytest.raises(SpecError, match=r"sigma must be > 0"):
        load(write_spec(tmp_path, f"[options]\nsigma = {sigma}\n" + PAIRS))


def test_sigma_of_wrong_type_spec(tmp_path):
    with pytest.raises(SpecError, match="sigma must be a number, got '0.1' \\(text\\)"):
        load(write_spec(tmp_path, '[options]\nsigma = "0.1"\n' + PAIRS))


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan")])
def test_bad_sigma_build_transform(sigma):
    with pytest.raises(SpecError, match="sigma must be (a finite number )?> 0"):
        build_transform(tetra(), "exp", sigma)


# ------------------------------------------------------------------ unknown keys
@pytest.mark.parametrize("body, key, close", [
    ('[[clusters]]\nname = "pair"\nkind = "pairs"\nmax_lenght = 6.5\n', "max_lenght", "max_length"),
    ('[options]\nmetirc = "exp"\n' + PAIRS, "metirc", "metric"),
    ("[[cluster]]\nname = 'p'\nkind = 'pairs'\nmax_length = 4.0\n" + PAIRS, "cluster", "clusters"),
    ('[[clusters]]\nname = "o"\nkind = "polyhedron"\ncentre = "Pb"\nneighbors = "Br"\ncount = 6\n',
     "centre", "center"),
])
def test_unknown_key_suggests_close_match(tmp_path, body, key, close):
    with pytest.raises(SpecError, match=rf"unknown key '{key}'.*\n.*did you mean '{close}'"):
        load(write_spec(tmp_path, body))


def test_unknown_crystal_key(tmp_path):
    crystal = CRYSTAL.replace("species =", "specis =")
    with pytest.raises(SpecError, match="unknown key 'specis'.*\n.*did you mean 'species'"):
        load(write_spec(tmp_path, PAIRS, crystal=crystal))


@pytest.mark.parametrize("body, pattern", [
    ('[[clusters]]\nname = "p"\n', "missing key 'kind'"),
    ('[[clusters]]\nkind = "pears"\nmax_length = 4.0\n', "unknown kind 'pears'"),
    ('[[clusters]]\nkind = "pairs"\n', "needs key 'max_length'"),
    ('[[clusters]]\nkind = "pairs"\nmax_length = -1.0\n', "max_length must be > 0"),
    ('[[clusters]]\nkind = "pairs"\nmax_length = 4.0\ncount = 0\n', "count must be ≥ 1"),
    ('[options]\ntruncate = "some"\n' + PAIRS, "truncate must be 'auto', an integer or false"),
    ("", "no \\[\\[clusters\\]\\] given"),
])
def test_bad_values(tmp_path, body, pattern):
    with pytest.raises(SpecError, match=pattern):
        load(write_spec(tmp_path, body))


def test_clusters_not_a_list(tmp_path):
    with pytest.raises(SpecError, match="'clusters' must be a list"):
        load(write_spec(tmp_path, "", crystal="clusters = 5\n" + CRYSTAL))


def test_too_many_pair_orbits(tmp_path):
    with pytest.raises(ClusterError, match=r"asked for 9 pair orbits but only \d+"):
        load(write_spec(tmp_path, '[[clusters]]\nkind = "pairs"\nmax_length = 4.5\ncount = 9\n'))


def test_polyhedron_that_splits_a_shell(tmp_path):
    body = '[[clusters]]\nname = "o"\nkind = "polyhedron"\ncenter = "Pb"\nneighbors = "Br"\ncount = 5\n'
    with pytest.raises(ClusterError, match="do not close a shell"):
        load(write_spec(tmp_path, body))


def test_polyhedron_unknown_species(tmp_path):
    body = '[[clusters]]\nname = "o"\nkind = "polyhedron"\ncenter = "Sn"\nneighbors = "Br"\ncount = 6\n'
    with pytest.raises(SpecError, match=r"clusters\[0\]\.center: no site of species 'Sn'(.|\n)*Br, Cs, Pb"):
        load(write_spec(tmp_path, body))


# ------------------------------------------------------------------ files
def test_missing_spec_file(tmp_path):
    with pytest.raises(SpecError, match="does not exist"):
        load(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[crystal\nlattice = 3\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        load(path)


def test_unknown_spec_format(tmp_path):
    path = tmp_path / "spec.json"
    path.write_text("{}")
    with pytest.raises(SpecError, match="unknown spec format '.json'"):
        load(path)


def test_missing_structure_file(tmp_path):
    with pytest.raises(StructureError, match="missing.cif does not exist"):
        load(write_spec(tmp_path, PAIRS, crystal='[crystal]\nfile = "missing.cif"\n'))


def test_unreadable_structure_file(tmp_path):
    (tmp_path / "bad.cif").write_text("this is not a CIF file\n\x00\x01garbage\n")
    with pytest.raises(StructureError, match="cannot read structure file .*bad.cif"):
        load(write_spec(tmp_path, PAIRS, crystal='[crystal]\nfile = "bad.cif"\n'))


def test_missing_xyz(tmp_path):
    with pytest.raises(StructureError, match="does not exist"):
        load(tmp_path / "missing.xyz")


def test_non_periodic_crystal_file(tmp_path):
    (tmp_path / "mol.xyz").write_text("2\n\nC 0 0 0\nC 0 0 1.5\n")
    with pytest.raises(StructureError, match="not periodic"):
        load(write_spec(tmp_path, PAIRS, crystal='[crystal]\nfile = "mol.xyz"\n'))


def test_file_and_inline_crystal(tmp_path):
    crystal = CRYSTAL.replace("[crystal]\n", '[crystal]\nfile = "POSCAR"\n')
    with pytest.raises(SpecError, match="either 'file' or an inline structure"):
        load(write_spec(tmp_path, PAIRS, crystal=crystal))


def test_singular_lattice():
    with pytest.raises(StructureError, match="linearly dependent"):
        Crystal.from_arrays([[1, 0, 0], [2, 0, 0], [0, 0, 1]], ["X"], [[0, 0, 0]])


# ------------------------------------------------------------------ NaN, shapes
def test_nan_free_cluster():
    sp, x = polyhedron("tetrahedron", 2.0)
    x[2, 1] = np.nan
    with pytest.raises(StructureError, match=r"site\(s\) \[2\] have NaN or inf"):
        free_cluster(x, sp, "tet")


def test_nan_crystal(tmp_path):
    crystal = CRYSTAL.replace("[0.5, 0.5, 0.5]]", "[0.5, nan, 0.5]]")
    with pytest.raises(SpecError, match=r"crystal\.positions\[4\] = \[0\.5, nan, 0\.5\] contains NaN or inf"):
        load(write_spec(tmp_path, PAIRS, crystal=crystal))
    with pytest.raises(StructureError, match="NaN or inf"):  # the same rule for the Python API
        Crystal.from_arrays(np.eye(3) * 5, ["Pb"], [[0.5, np.nan, 0.5]])


def test_nan_xyz(tmp_path):
    (tmp_path / "nan.xyz").write_text("2\n\nC 0 0 0\nC 0 nan 1.5\n")
    with pytest.raises(StructureError, match="NaN"):
        load(tmp_path / "nan.xyz")


@pytest.mark.parametrize("fn", [ccds, ccd_jacobian])
def test_nan_coordinates_for_ccds(fn):
    t = build_transform(tetra())
    x = np.repeat(t.cluster.positions[None], 3, axis=0)
    x[1, 0, 0] = np.inf
    with pytest.raises(InputArrayError, match=r"cluster\(s\) \[1\] contain NaN or inf"):
        fn(t, x)


@pytest.mark.parametrize("shape", [(2, 5, 3), (2, 4, 2), (4,), (1, 1, 4, 3)])
def test_wrong_shape_for_ccds(shape):
    t = build_transform(tetra())
    with pytest.raises(InputArrayError, match=r"shape \(n_clusters, 4, 3\)"):
        ccds(t, np.zeros(shape))


def test_wrong_dtype_for_ccds():
    t = build_transform(tetra())
    with pytest.raises(InputArrayError, match="real numbers"):
        ccds(t, np.full((1, 4, 3), "a"))


@pytest.mark.parametrize("metric", ["log", "inverse"])
@pytest.mark.parametrize("fn", [ccds, ccd_jacobian])
def test_collapsed_sites_with_singular_metric(metric, fn):
    t = build_transform(tetra(), metric)
    x = np.repeat(t.cluster.positions[None], 2, axis=0)
    x[1, 3] = x[1, 1]
    with pytest.raises(InputArrayError, match=rf"cluster 1: sites 1 and 3 coincide.*'{metric}' metric"):
        fn(t, x)


@pytest.mark.parametrize("metric", ["linear", "exp"])
def test_collapsed_sites_with_regular_metric_are_fine(metric):
    t = build_transform(tetra(), metric)
    x = t.cluster.positions.copy()
    x[3] = x[1]
    assert np.all(np.isfinite(ccds(t, x)))


# ------------------------------------------------------------------ names
@pytest.mark.parametrize("name", ["Pb Br6", "1pair", "pair-1", "", "ü", "a" * 65, "x;import os"])
def test_unsafe_cluster_name(name):
    with pytest.raises(ClusterError, match="not a safe identifier"):
        check_name(name)


def test_unsafe_cluster_name_free():
    sp, x = polyhedron("tetrahedron", 2.0)
    with pytest.raises(ClusterError, match="'my tet' is not a safe identifier"):
        free_cluster(x, sp, "my tet")


def test_unsafe_cluster_name_spec(tmp_path):
    with pytest.raises(ClusterError, match="'Pb Br6' is not a safe identifier"):
        load(sites_spec(tmp_path, "[[0, 0, 0], [0.5, 0, 0]]", name="Pb Br6"))


def test_duplicate_cluster_names(tmp_path):
    body = PAIRS + '[[clusters]]\nname = "pair"\nkind = "triplets"\nmax_length = 4.5\n'
    with pytest.raises(SpecError, match=r"duplicate name\(s\) \['pair'\]"):
        load(write_spec(tmp_path, body))


# ------------------------------------------------------------------ truncation
def test_truncate_that_splits_a_block():
    sp, x = polyhedron("octahedron", 2.0)
    c = free_cluster(x, sp, "oct")
    boundaries = [b.stop for b in build_transform(c, truncate=None).blocks]
    assert 11 not in boundaries
    with pytest.raises(SpecError, match=r"truncate = 11 splits an irrep block of cluster 'oct'"
                                        r"(.|\n)*" + "block boundaries " + str(boundaries).replace("[", r"\[")
                                        .replace("]", r"\]")):
        build_transform(c, truncate=11)
    t = build_transform(c, truncate=boundaries[2])
    assert t.n_truncated == boundaries[2]


def test_truncate_that_splits_a_block_spec(tmp_path):
    body = ('[options]\ntruncate = 2\n[[clusters]]\nname = "tri"\nkind = "triplets"\ncount = 1\n'
            "max_length = 4.5\n")
    # the triplet (C2v: A1, B1, A1) has boundaries 1, 2, 3: 2 is fine
    transforms(load(write_spec(tmp_path, body)))
    oct_ = '[[clusters]]\nname = "PbBr6"\nkind = "polyhedron"\ncenter = "Pb"\nneighbors = "Br"\ncount = 6\n'
    (full,) = transforms(load(write_spec(tmp_path, "[options]\ntruncate = false\n" + oct_)))
    boundaries = [b.stop for b in full.blocks]
    bad = next(k for k in range(1, full.n_ccd) if k not in boundaries)
    body = body.replace("truncate = 2", f"truncate = {bad}") + oct_
    with pytest.raises(SpecError, match=f"truncate = {bad} splits an irrep block of cluster 'PbBr6'"):
        transforms(load(write_spec(tmp_path, body)))


# ------------------------------------------------------------------ CLI
@pytest.fixture
def bad_spec(tmp_path):
    return write_spec(tmp_path, '[[clusters]]\nname = "pair"\nkind = "pairs"\nmax_lenght = 6.5\n')


def test_cli_error_without_traceback(bad_spec):
    r = run_cli("inspect", bad_spec, check=False)
    assert r.returncode == 2
    assert "error:" in r.stderr and "max_lenght" in r.stderr and "max_length" in r.stderr
    assert "Traceback" not in r.stderr
    assert r.stdout == ""


def test_cli_error_with_traceback(bad_spec):
    r = run_cli("inspect", "--traceback", bad_spec, check=False)
    assert r.returncode != 0
    assert "Traceback" in r.stderr and "SpecError" in r.stderr


def test_cli_top_level_traceback_flag(bad_spec):
    r = run_cli("--traceback", "inspect", bad_spec, check=False)
    assert "Traceback" in r.stderr


# ------------------------------------------------------------------ the Crystal API checks what the spec checks
@pytest.mark.parametrize("cell, species, frac, pattern", [
    (np.eye(3) * 5, ["Xx"], [[0, 0, 0]], r"'Xx' is not an element symbol"),
    (np.eye(3) * 5, ["pb"], [[0, 0, 0]], r"did you mean 'Pb'"),
    (np.eye(3) * 5, [False], [[0, 0, 0]], r"YAML read .* as false: quote it"),
    (np.eye(3) * 5, [82], [[0, 0, 0]], r"not numbers \(Z = 82 is 'Pb'\)"),
    (np.eye(3) * 5, "PbBr", [[0, 0, 0]], r"must be a list of element symbols"),
    (np.diag([5.0, 5.0, -5.0]), ["Pb"], [[0, 0, 0]], r"left-handed \(volume -125 Å³ < 0\)"),
    (np.eye(3) * 0.05, ["Pb"], [[0, 0, 0]], r"only 0\.05 Å from its own periodic image"),
    ([[3.0, 0, 0], [3.05, 0.01, 0], [0, 0, 3.0]], ["Pb"], [[0, 0, 0]], r"only 0\.051 Å from its own periodic image"),
    (np.eye(3) * 1e300, ["Pb"], [[0, 0, 0]], r"absurdly large"),
])
def test_crystal_from_arrays_refuses(cell, species, frac, pattern):
    with pytest.raises(StructureError, match=pattern):
        Crystal.from_arrays(cell, species, frac)


def test_crystal_cartesian_positions():
    cell = np.array([[5.0, 0, 0], [1.0, 6.0, 0], [0.5, 0.7, 7.0]])
    frac = np.array([[0.0, 0.0, 0.0], [0.3, 0.1, 0.6]])
    a = Crystal.from_arrays(cell, ["Pb", "X"], frac)
    b = Crystal.from_arrays(cell, ["Pb", "X"], frac @ cell, cartesian=True)
    np.testing.assert_allclose(a.frac, b.frac, atol=1e-12)
    assert a.signature() == b.signature()


def test_structure_file_that_is_a_folder(tmp_path):
    with pytest.raises(StructureError, match="is a folder"):
        Crystal.read(tmp_path)
