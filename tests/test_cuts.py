"""PES cuts (paper Fig. 9): the generators rebuild the bundled cuts.extxyz exactly, the
structures have the defining symmetry properties, and the model/reference comparison
agrees with an independent evaluation on the file's own structures."""

import json
from pathlib import Path

import numpy as np
import pytest

from ccdgen.analysis import cuts as C
from ccdgen.errors import DataError, StructureError

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "cspbbr3" / "data"
SPEC = ROOT / "examples" / "cspbbr3" / "ccdgen.toml"


@pytest.fixture(scope="module")
def crystal():
    from ccdgen.pipeline import load

    return load(SPEC).crystal


@pytest.fixture(scope="module")
def endpoints():
    return C.read_endpoints(DATA / "endpoints.extxyz")


@pytest.fixture(scope="module")
def perovskite(crystal, endpoints):
    return C.Perovskite.detect(crystal).matched_to(endpoints["cubic"])


@pytest.fixture(scope="module")
def reference():
    return C.read_reference(DATA / "cuts.extxyz")


def test_generators_rebuild_every_bundled_frame(perovskite, endpoints, reference):
    """Every one of the 133 frames, by info["cut"] and info["x"], to 1e-6 Å (cell and positions)."""
    assert sorted(reference) == sorted(C.CUTS)
    assert sum(len(v) for v in reference.values()) == 133
    xs = {k: [x for x, _, _ in rows] for k, rows in reference.items()}
    gen = C.cut_structures(perovskite, endpoints, xs)
    for name, rows in reference.items():
        structs = gen[name][1]
        assert len(structs) == len(rows)
        for (x, at, _), s in zip(rows, structs):
            assert s.info["cut"] == name and s.info["x"] == x
            assert list(s.numbers) == list(at.numbers)
            assert np.abs(s.cell.array - at.cell.array).max() < 1e-6, (name, x)
            assert np.abs(s.positions - at.positions).max() < 1e-6, (name, x)


def test_default_grids_are_the_bundled_ones(reference):
    for name, rows in reference.items():
        np.testing.assert_allclose(C.DEFAULT_X[name], [x for x, _, _ in rows], atol=1e-12)


def test_a0_comes_from_the_relaxed_cubic_endpoint(crystal, endpoints):
    spec_a = C.Perovskite.detect(crystal).a
    p = C.Perovskite.detect(crystal).matched_to(endpoints["cubic"])
    setup = json.loads((DATA / "setup.json").read_text())
    assert abs(spec_a - 5.9436) < 1e-9  # the spec rounds a0
    assert abs(p.a - setup["a0"]) < 1e-12


@pytest.mark.parametrize("point", ["R", "M"])
def test_tilt_structure_properties(perovskite, point):
    """Independent checks of the definition: B and A fixed, X moved ⟂ to its bond by
    (a/2)·tan|θ| in the plane ⟂ z, the cell cubic; the z-stacking is in phase (M: the upper
    layer is the lower one translated by a·z) or anti-phase (R: the xy displacements flip)."""
    a = perovskite.a
    th = 11.0
    base = perovskite.supercell()
    (tilted,) = C.tilt_cut(perovskite, point, [th])
    (neg,) = C.tilt_cut(perovskite, point, [-th])
    d = tilted.positions - base.positions
    sym = np.array(base.get_chemical_symbols())
    assert np.allclose(tilted.cell.array, base.cell.array)
    assert np.abs(d[sym != "Br"]).max() == 0
    assert np.abs(d[:, 2]).max() == 0  # rotation about z: no z displacement
    moved = np.linalg.norm(d, axis=1)
    brz = [i for i in range(len(base)) if sym[i] == "Br" and i % 5 == 3]  # Br(z) of each cell
    assert np.abs(moved[brz]).max() == 0
    brxy = [i for i in range(len(base)) if sym[i] == "Br" and i % 5 in (1, 2)]
    np.testing.assert_allclose(moved[brxy], a / 2 * np.tan(np.radians(th)), rtol=1e-12)
    # perpendicular to the Pb-Br bond: Br(x) moves along y, Br(y) along x
    for i in brxy:
        along = 0 if i % 5 == 1 else 1
        assert abs(d[i, along]) == 0
    np.testing.assert_array_equal(neg.positions, tilted.positions)  # ±θ: same structure
    # z-stacking: cell index (m0, m1, m2) with m2 fastest in ase's repeat order
    n = perovskite.cell_index()
    lower = np.flatnonzero(n[:, 2] == 0)
    upper = np.array([np.flatnonzero((n == n[i] + [0, 0, 1]).all(axis=1) & (np.arange(len(n)) % 5 == i % 5))[0]
                      for i in lower])
    if point == "M":
        np.testing.assert_allclose(d[upper], d[lower], atol=1e-14)
    else:
        np.testing.assert_allclose(d[upper], -d[lower], atol=1e-14)
    # neighbouring octahedra in the plane turn in opposite senses: Br(x) of cell (0,0,0) and (1,0,0)
    bx = {tuple(n[i]): i for i in brxy if i % 5 == 1}
    assert d[bx[(0, 0, 0)], 1] == pytest.approx(-d[bx[(1, 0, 0)], 1])
    assert d[bx[(0, 0, 0)], 1] > 0  # the octahedron of cell (0, 0, 0) turns counter-clockwise


def test_volumetric_and_interpolation_properties(perovskite, endpoints):
    base = perovskite.supercell()
    for x, at in zip([-0.05, 0.03], C.volumetric_cut(perovskite, [-0.05, 0.03])):
        np.testing.assert_allclose(at.cell.array, base.cell.array * (1 + x), rtol=1e-14)
        np.testing.assert_allclose(at.get_scaled_positions(wrap=False), base.get_scaled_positions(wrap=False),
                                   atol=1e-12)
    path = C.interpolation_cut(perovskite, endpoints["P4mbm"], endpoints["Pnma"], [0, 0.5, 1, 1.5, 2])
    assert C.structure_deviation(path[0], base) < 1e-9
    for k, name in ((2, "P4mbm"), (4, "Pnma")):
        e = endpoints[name]
        np.testing.assert_allclose(path[k].cell.array, e.cell.array, atol=1e-12)
        dpos = path[k].get_scaled_positions(wrap=False) - e.get_scaled_positions(wrap=False)
        np.testing.assert_allclose(dpos - np.round(dpos), 0, atol=1e-9)  # the same crystal
    # linear in cell and fractional coordinates: the midpoints are averages
    for lo, mid, hi in ((0, 1, 2), (2, 3, 4)):
        np.testing.assert_allclose(path[mid].cell.array, (path[lo].cell.array + path[hi].cell.array) / 2, atol=1e-12)
        f = [p.cell.scaled_positions(p.positions) for p in (path[lo], path[mid], path[hi])]
        np.testing.assert_allclose(f[1], (f[0] + f[2]) / 2, atol=1e-12)


def test_bad_inputs(crystal, perovskite, endpoints):
    from dataclasses import replace

    from ccdgen.geometry.structure import Crystal

    with pytest.raises(StructureError, match="cubic reference"):
        C.Perovskite.detect(Crystal(np.diag([5.0, 5.0, 6.0]), ("Pb",), np.zeros((1, 3))))
    with pytest.raises(StructureError, match="perovskite"):
        C.Perovskite.detect(Crystal(np.eye(3) * 4.0, ("Na", "Cl"), np.array([[0, 0, 0], [0.5, 0.5, 0.5]])))
    shuffled = endpoints["P4mbm"][[1, 0] + list(range(2, 40))]
    with pytest.raises(StructureError, match="atoms of the 2×2×2 reference supercell in order"):
        C.interpolation_cut(perovskite, shuffled, endpoints["Pnma"], [0.5])
    with pytest.raises(StructureError, match="0 ≤ x ≤ 2"):
        C.interpolation_cut(perovskite, endpoints["P4mbm"], endpoints["Pnma"], [2.5])
    with pytest.raises(StructureError, match="even supercell"):
        C.tilt_cut(perovskite, "R", [1.0], repeat=(3, 3, 3))
    with pytest.raises(StructureError, match="not the reference crystal"):
        perovskite.matched_to(endpoints["Pnma"])
    assert replace(perovskite).a == perovskite.a


# ---------------------------------------------------------------------------- with a model
@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from ccdgen.data.io import read_dataset
    from ccdgen.models.checkpoint import load_model
    from ccdgen.models.train import TrainConfig, train_model

    ds = read_dataset(DATA / "train.extxyz.gz", index=":400")
    out = tmp_path_factory.mktemp("cuts-model") / "linear.ckpt"
    train_model(str(SPEC), None, TrainConfig(kind="linear", order=2), out, dataset=ds, progress=False,
                log=lambda *a: None)
    return out, load_model(out)


def test_evaluate_cuts_against_independent_route(model, endpoints, reference):
    """ΔE(model) − ΔE(reference) from evaluate_cuts (generated structures) equals the same
    difference computed directly on the file's frames with the plain predictor."""
    from ccdgen.data.io import read_dataset

    _, pred = model
    res = C.evaluate_cuts(pred, reference, endpoints)
    ds = read_dataset(DATA / "cuts.extxyz", duplicates="keep")
    e_model = pred.predict(ds, forces=False)["energy"]
    e_ref = np.asarray(ds.energies)
    cut = np.array(ds.info_values("cut"))
    x = np.array(ds.info_values("x"), float)
    k0 = int(np.flatnonzero((cut == "volumetric") & (np.abs(x) < 1e-12))[0])
    assert res["n_fu"] == 8
    for name in C.CUTS:
        sel = cut == name
        want = ((e_model[sel] - e_model[k0]) - (e_ref[sel] - e_ref[k0])) / 8 * 1e3
        c = res["cuts"][name]
        # the file's structures equal the generated ones to ~6e-9 Å: energies to ~1e-5 meV/f.u.
        np.testing.assert_allclose(c.deviation, want, atol=1e-4)
        np.testing.assert_allclose(c.reference, (e_ref[sel] - e_ref[k0]) / 8 * 1e3, atol=1e-9)
        assert c.max_deviation()[0] == pytest.approx(np.abs(want).max(), abs=1e-4)
    # phase energies: the README's labels for the reference
    ph = res["phases"]
    assert ph["P4mbm"]["reference_meV_fu"] == pytest.approx(-80.03, abs=0.01)
    assert ph["I4mcm"]["reference_meV_fu"] == pytest.approx(-82.93, abs=0.01)
    assert ph["Pnma"]["reference_meV_fu"] == pytest.approx(-116.82, abs=0.01)
    e_end = pred.predict(read_dataset(DATA / "endpoints.extxyz"), forces=False)["energy"]
    assert ph["Pnma"]["model_meV_fu"] == pytest.approx((e_end[3] - e_end[0]) / 8 * 1e3, abs=1e-4)


def test_reference_frame_that_is_not_the_generated_structure(model, endpoints, reference):
    _, pred = model
    bad = {k: list(v) for k, v in reference.items()}
    x, at, e = bad["M_inphase"][5]
    at = at.copy()
    at.positions[7] += [0.01, 0, 0]
    bad["M_inphase"][5] = (x, at, e)
    with pytest.raises(DataError, match=r"frame 5 of cut 'M_inphase' \(x = -11\)"):
        C.evaluate_cuts(pred, bad, endpoints)
    with pytest.raises(DataError, match="does not generate"):
        C.evaluate_cuts(pred, {**reference, "X_tilt": reference["M_inphase"]}, endpoints)


def test_cuts_command(model, tmp_path, capsys):
    import argparse

    from ccdgen.cli import cuts_cmd

    path, _ = model
    p = argparse.ArgumentParser()
    cuts_cmd.add_arguments(p)
    args = p.parse_args([str(path), "--reference", str(DATA / "cuts.extxyz"), "-o", str(tmp_path / "cuts"),
                         "--write-structures", str(tmp_path / "structs.extxyz")])
    assert cuts_cmd.run(args) == 0
    text = capsys.readouterr().out
    assert "R_antiphase" in text and "phase Pnma" in text
    js = json.loads((tmp_path / "cuts" / "cuts.json").read_text())
    assert set(js["cuts"]) == set(C.CUTS)
    assert all(v is not None and v >= 0 for v in js["max_abs_deviation_meV_fu"].values())
    assert (tmp_path / "cuts" / "cuts.png").stat().st_size > 10_000
    # the written structures are the bundled ones (the endpoints next to --reference were used)
    import ase.io

    frames = ase.io.read(tmp_path / "structs.extxyz", ":")
    ref = ase.io.read(DATA / "cuts.extxyz", ":")
    assert len(frames) == len(ref) == 133
    key = lambda a: (a.info["cut"], round(float(a.info["x"]), 9))  # noqa: E731
    by_key = {}
    for a in ref:
        by_key.setdefault(key(a), a)
    assert max(np.abs(a.positions - by_key[key(a)].positions).max() for a in frames) < 1e-6
    # model only: three cuts without endpoints, the interpolation is reported as missing
    args = p.parse_args([str(path), "-o", str(tmp_path / "cuts2")])
    assert cuts_cmd.run(args) == 0
    assert "not computed" in capsys.readouterr().out
