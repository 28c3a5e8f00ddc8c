"""The command line: `inspect` (JSON and table) and `modes`, run as a subprocess."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import ase.io
import pytest
from conftest import run_cli
from ase import Atoms

from ccdgen.symmetry.free import polyhedron

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@lru_cache(maxsize=None)
def example_json():
    doc = json.loads(run_cli("inspect", EXAMPLE, "--json").stdout)
    return doc


@lru_cache(maxsize=None)
def example_text():
    return run_cli("inspect", EXAMPLE).stdout


def write_xyz(directory: Path, name: str, shape: str) -> Path:
    species, x = polyhedron(shape, radius=2.0)
    path = directory / f"{name}.xyz"
    ase.io.write(path, Atoms(["C"] * len(x), positions=x + [1.0, 2.0, 3.0]), format="xyz")
    return path


# ------------------------------------------------------------------ inspect --json
def test_json_schema():
    doc = example_json()
    assert {k: doc["space_group"][k] for k in ("symbol", "number")} == {"symbol": "Pm-3m", "number": 221}
    assert doc["space_group"]["symmetrize_shift_angstrom"] < 1e-12  # the example is ideal already
    clusters = doc["clusters"]
    assert [c["name"] for c in clusters] == ["pair1", "pair2", "pair3", "pair4", "pair5", "pair6",
                                             "pair7", "triplet", "PbBr6"]
    for c in clusters:
        for key in ("name", "species", "sites", "point_group", "pairs", "irreps", "ccd"):
            assert key in c, key
        assert set(c["point_group"]) >= {"order", "label"}
        assert set(c["ccd"]) >= {"count", "truncated", "eigenvalues"}
        n = len(c["species"])
        assert len(c["sites"]) == n
        assert len(c["pairs"]) == n * (n - 1) // 2 == c["ccd"]["count"] == len(c["ccd"]["eigenvalues"])
        assert sum(i["dim"] * i["multiplicity"] for i in c["irreps"]) == c["ccd"]["count"]
        for i in c["irreps"]:
            assert set(i) == {"label", "dim", "multiplicity"}
        ev = c["ccd"]["eigenvalues"]
        assert all(e > 0 for e in ev) and ev == sorted(ev, reverse=True)
        assert c["ccd"]["truncated"] <= c["ccd"]["count"]


def test_json_octahedron():
    oct_ = {c["name"]: c for c in example_json()["clusters"]}["PbBr6"]
    assert oct_["point_group"]["order"] == 48 and oct_["point_group"]["label"] == "Oh"
    assert oct_["ccd"]["count"] == 15 and oct_["ccd"]["truncated"] == 12
    irreps = {i["label"]: (i["dim"], i["multiplicity"]) for i in oct_["irreps"]}
    assert irreps["A1g"] == (1, 2)
    assert irreps == {"A1g": (1, 2), "Eg": (2, 2), "T1u": (3, 1), "T2g": (3, 1), "T2u": (3, 1)}
    assert oct_["species"] == ["Br"] * 6


def test_json_pairs_and_groups():
    by = {c["name"]: c for c in example_json()["clusters"]}
    assert by["pair1"]["point_group"]["order"] == 8 and by["pair1"]["point_group"]["label"] == "C4v"
    assert by["pair1"]["pairs"][0]["r0"] == pytest.approx(5.9436 / 2, abs=1e-5)
    assert by["triplet"]["point_group"]["label"] == "C2v"
    assert by["pair4"]["point_group"]["label"] == "C3v"


def test_json_cluster_filter():
    doc = json.loads(run_cli("inspect", EXAMPLE, "--json", "--cluster", "triplet", "--metric", "log").stdout)
    assert [c["name"] for c in doc["clusters"]] == ["triplet"]
    assert doc["clusters"][0]["ccd"]["metric"] == "log"


# ------------------------------------------------------------------ inspect table
def test_text_table():
    out = example_text()
    assert "Pm-3m" in out and "221" in out
    assert "Oh" in out and "PbBr6" in out
    assert "2A1g + 2Eg" in out
    assert "(dropped by truncation)" in out


# ------------------------------------------------------------------ free clusters
def test_inspect_xyz_tetrahedron(tmp_path):
    path = write_xyz(tmp_path, "tet", "tetrahedron")
    doc = json.loads(run_cli("inspect", path, "--json").stdout)
    (c,) = doc["clusters"]
    assert c["name"] == "tet"
    assert c["point_group"]["label"] == "Td" and c["point_group"]["order"] == 24
    assert {i["label"]: (i["dim"], i["multiplicity"]) for i in c["irreps"]} == {
        "A1": (1, 1), "E": (2, 1), "T2": (3, 1)}
    assert c["ccd"]["count"] == 6 and c["ccd"]["truncated"] == 6
    assert "space_group" not in doc


def test_inspect_xyz_tetrahedron_text(tmp_path):
    out = run_cli("inspect", write_xyz(tmp_path, "tet", "tetrahedron")).stdout
    assert "Td" in out and "A1 + E + T2" in out


def test_inspect_planar_square(tmp_path):
    path = write_xyz(tmp_path, "square", "square")
    doc = json.loads(run_cli("inspect", path, "--json").stdout)
    (c,) = doc["clusters"]
    assert c["point_group"]["label"] == "D4h" and c["dimension"] == 2
    assert "note" in c and "planar" in c["note"]
    out = run_cli("inspect", path).stdout
    assert "note:" in out and "planar" in out


def test_inspect_exact(tmp_path):
    out = run_cli("inspect", write_xyz(tmp_path, "tet", "tetrahedron"), "--exact").stdout
    assert "exact rows" in out and "sqrt(6)" in out


# ------------------------------------------------------------------ modes
def test_modes_png(tmp_path):
    path = write_xyz(tmp_path, "tet", "tetrahedron")
    out_dir = tmp_path / "modes"
    r = run_cli("modes", path, "-o", out_dir)
    pngs = sorted(out_dir.glob("*.png"))
    assert [p.name for p in pngs] == ["tet_modes.png"]
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1000
    assert "tet_modes.png" in r.stdout


@pytest.mark.slow
def test_modes_png_example(tmp_path):
    out_dir = tmp_path / "modes"
    run_cli("modes", EXAMPLE, "--cluster", "PbBr6", "--cluster", "triplet", "-o", out_dir)
    names = sorted(p.name for p in out_dir.glob("*.png"))
    assert names == ["PbBr6_modes.png", "triplet_modes.png"]
    for p in out_dir.glob("*.png"):
        assert p.read_bytes()[:8] == PNG_MAGIC
