"""`ccdgen label`: labels equal a direct calculation, a killed run resumes to the same file,
failures are logged and skipped, calculators without forces or unknown ones are refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from functools import lru_cache
from pathlib import Path

import ase.io
import numpy as np
import pytest

from ccdgen.crystal.supercell import Supercell
from ccdgen.data.io import read_dataset, write_dataset
from ccdgen.data.label import ALL_FAIL_STOP, failure_log_path, label_file, make_calculator, read_failures
from ccdgen.data.sampling import FrameBatch, rng_for
from ccdgen.data.sampling.glazer import glazer_frames
from ccdgen.data.sampling.nsphere import nsphere_frames
from ccdgen.errors import DataError, ModelError, SpecError
from ccdgen.pipeline import load

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
LJ = {"sigma": 2.6, "epsilon": 0.05, "rc": 6.0, "smooth": True}

CALCS = textwrap.dedent('''
    """Cheap stand-in calculators for the labelling tests."""
    import os
    import signal

    import numpy as np
    from ase.calculators.calculator import Calculator, all_changes
    from ase.calculators.lj import LennardJones

    LJ = dict(sigma=2.6, epsilon=0.05, rc=6.0, smooth=True)
    _calls = {"n": 0}


    class Killer(LennardJones):
        """Lennard-Jones that kills its own process (SIGKILL) on call number $KILL_AT."""

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            _calls["n"] += 1
            if _calls["n"] == int(os.environ.get("KILL_AT", "-1")):
                os.kill(os.getpid(), signal.SIGKILL)
            super().calculate(atoms, properties, system_changes)


    class Flaky(LennardJones):
        """Fails on frames whose info has fail=1 (and on NaN-marked ones returns NaN)."""

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            if atoms is not None and atoms.info.get("fail"):
                raise RuntimeError("SCF did not converge")
            super().calculate(atoms, properties, system_changes)
            if atoms is not None and atoms.info.get("nan"):
                self.results["energy"] = float("nan")


    class EnergyOnly(Calculator):
        implemented_properties = ["energy"]

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            self.results["energy"] = 0.0


    class ClaimsForces(EnergyOnly):
        implemented_properties = ["energy", "forces", "stress"]


    class NoStress(LennardJones):
        implemented_properties = ["energy", "forces"]


    def killer():
        return Killer(**LJ)


    def flaky():
        return Flaky(**LJ)


    def energy_only():
        return EnergyOnly()


    def claims_forces():
        return ClaimsForces()


    def no_stress():
        return NoStress(**LJ)
''')

RUNNER = ("import sys, ccdgen.cli.main as m; m.SUBCOMMANDS.setdefault('label', 'label'); "
          "m.SUBCOMMANDS.setdefault('sample', 'sample'); sys.exit(m.main(sys.argv[1:]))")


@lru_cache(maxsize=None)
def frames() -> FrameBatch:
    p = load(EXAMPLE)
    sc = Supercell.diagonal(p.crystal, (2, 2, 2))
    g = glazer_frames(sc, ["a0a0c+", "a0a0c-", "a-a-c+"], 8.0)
    n = nsphere_frames(g, 9, [0.2], rng_for(1, "nsphere"))
    return FrameBatch.concatenate([g, n])


@pytest.fixture()
def work(tmp_path):
    (tmp_path / "calcs.py").write_text(CALCS)
    inp = tmp_path / "in.extxyz"
    write_dataset(inp, frames().to_dataset())
    return tmp_path, inp


def run_label(*args, env=None, cwd=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([sys.executable, "-c", RUNNER, "label", *map(str, args)], capture_output=True, text=True,
                          env=e, cwd=cwd, timeout=300)


# ----------------------------------------------------------------------------- results
def test_labels_equal_a_direct_calculation(work):
    tmp, inp = work
    out = tmp / "out.extxyz"
    rep = label_file(inp, out, "lj", calc_kwargs=LJ, progress=False)
    assert (rep.n_input, rep.n_labelled, rep.n_failed) == (12, 12, 0)
    got = ase.io.read(out, ":")
    calc, _ = make_calculator("lj", LJ)
    for i, a in enumerate(got):
        ref = frames().to_atoms(i)
        ref.calc = calc
        assert np.isclose(a.get_potential_energy(), ref.get_potential_energy(), rtol=1e-14, atol=1e-12)
        assert np.allclose(a.get_forces(), ref.get_forces(), rtol=1e-13, atol=1e-13)
        assert np.allclose(a.get_stress(), ref.get_stress(), rtol=1e-13, atol=1e-15)
        assert a.info["label_index"] == i and a.info["calculator"] == "lj"
        assert a.info["family"] == frames().infos[i]["family"]
    # forces are −dE/dx (finite differences on one atom of one frame): the labels are forces
    a = frames().to_atoms(4)
    a.calc = calc
    f = a.get_forces()[7]
    h = 1e-5
    num = []
    for c in range(3):
        e = []
        for s in (1, -1):
            b = a.copy()
            b.positions[7, c] += s * h
            b.calc = calc
            e.append(b.get_potential_energy())
        num.append(-(e[0] - e[1]) / (2 * h))
    assert np.allclose(num, f, atol=1e-6)


def test_killed_run_resumes_to_the_same_file(work):
    tmp, inp = work
    ref = tmp / "ref.extxyz"
    r = run_label(inp, "-o", ref, "--calculator", f"{tmp / 'calcs.py'}:killer")
    assert r.returncode == 0, r.stderr
    out = tmp / "out.extxyz"
    r = run_label(inp, "-o", out, "--calculator", f"{tmp / 'calcs.py'}:killer", env={"KILL_AT": "6"})
    assert r.returncode == -9  # SIGKILL while computing frame 5
    assert read_dataset(out, require=()).n_frames == 5
    r = run_label(inp, "-o", out, "--calculator", f"{tmp / 'calcs.py'}:killer", env={"KILL_AT": "3"})
    assert r.returncode == -9  # killed again, two frames later (it resumed at frame 5)
    assert read_dataset(out, require=()).n_frames == 7
    r = run_label(inp, "-o", out, "--calculator", f"{tmp / 'calcs.py'}:killer")
    assert r.returncode == 0, r.stderr
    assert "7 done before" in r.stdout
    assert out.read_bytes() == ref.read_bytes()


def test_cut_tail_left_by_a_kill_is_dropped_and_redone(work):
    tmp, inp = work
    ref = tmp / "ref.extxyz"
    label_file(inp, ref, "lj", calc_kwargs=LJ, progress=False)
    data = ref.read_bytes()
    frame_len = len(data) // 12  # frames have one size here
    out = tmp / "out.extxyz"
    for cut in (4 * frame_len + frame_len // 2, 4 * frame_len + 40, 4 * frame_len - 1):
        out.write_bytes(data[:cut])
        with pytest.warns(UserWarning, match="incomplete last frame"):
            rep = label_file(inp, out, "lj", calc_kwargs=LJ, progress=False)
        assert out.read_bytes() == data
        assert rep.n_resumed in (3, 4)


def test_failed_frames_are_logged_and_skipped(work):
    tmp, inp = work
    b = frames()
    infos = [dict(i) for i in b.infos]
    infos[2]["fail"] = 1
    infos[5]["fail"] = 1
    infos[8]["nan"] = 1
    inp2 = tmp / "flaky_in.extxyz"
    write_dataset(inp2, FrameBatch(b.numbers, b.positions, b.cells, tuple(infos)).to_dataset())
    out = tmp / "out.extxyz"
    rep = label_file(inp2, out, f"{tmp / 'calcs.py'}:flaky", progress=False)
    assert (rep.n_labelled, rep.n_failed) == (9, 3)
    ds = read_dataset(out, require=("energy", "forces", "stress"))
    assert [ds.info(i)["label_index"] for i in range(ds.n_frames)] == [0, 1, 3, 4, 6, 7, 9, 10, 11]
    fails = read_failures(out)
    assert [f["index"] for f in fails] == [2, 5, 8]
    assert "SCF did not converge" in fails[0]["reason"] and "non-finite energy" in fails[2]["reason"]
    before = out.read_bytes(), failure_log_path(out).read_bytes()
    rep2 = label_file(inp2, out, f"{tmp / 'calcs.py'}:flaky", progress=False)
    assert (rep2.n_resumed, rep2.n_labelled, rep2.n_failed) == (12, 0, 0)
    assert (out.read_bytes(), failure_log_path(out).read_bytes()) == before


def test_a_cut_failure_line_is_dropped(work):
    tmp, inp = work
    out = tmp / "out.extxyz"
    label_file(inp, out, "lj", calc_kwargs=LJ, progress=False, index=":3")
    log = failure_log_path(out)
    log.write_bytes(b'{"index": 3, "reas')  # a kill while writing a failure record
    assert read_failures(out) == []
    rep = label_file(inp, out, "lj", calc_kwargs=LJ, progress=False, index=":5")
    assert rep.n_resumed == 3 and rep.n_labelled == 2


def test_all_failing_calculator_stops(work):
    tmp, _ = work
    b = frames()
    big = FrameBatch.concatenate([b, b, b])  # 36 frames (duplicates are fine to label)
    inp = tmp / "big.extxyz"
    write_dataset(inp, big.to_dataset())
    with pytest.raises(ModelError, match=f"first {ALL_FAIL_STOP} frames"):
        label_file(inp, tmp / "out.extxyz", "emt", progress=False)  # EMT has no Cs/Pb/Br
    assert len(read_failures(tmp / "out.extxyz")) == ALL_FAIL_STOP
    assert "No EMT-potential" in read_failures(tmp / "out.extxyz")[0]["reason"]


def test_max_failures(work):
    tmp, _ = work
    b = frames()
    infos = tuple({**i, "fail": 1} if k in (1, 3) else i for k, i in enumerate(b.infos))
    inp = tmp / "f.extxyz"
    write_dataset(inp, FrameBatch(b.numbers, b.positions, b.cells, infos).to_dataset())
    with pytest.raises(ModelError, match="max-failures 2"):
        label_file(inp, tmp / "out.extxyz", f"{tmp / 'calcs.py'}:flaky", progress=False, max_failures=2)
    assert read_dataset(tmp / "out.extxyz", require=()).n_frames == 2


# ----------------------------------------------------------------------------- refusals
@pytest.mark.parametrize("factory,match", [("energy_only", "returns no forces"),
                                           ("claims_forces", "returns no forces"),
                                           ("no_stress", "returns no stress")])
def test_calculator_without_forces_or_stress(work, factory, match):
    tmp, inp = work
    out = tmp / "out.extxyz"
    with pytest.raises(ModelError, match=match):
        label_file(inp, out, f"{tmp / 'calcs.py'}:{factory}", progress=False)
    assert not out.exists() or read_dataset(out, require=()).n_frames == 0


def test_no_stress_option(work):
    tmp, inp = work
    out = tmp / "out.extxyz"
    label_file(inp, out, f"{tmp / 'calcs.py'}:no_stress", progress=False, properties=("energy", "forces"))
    ds = read_dataset(out, require=("energy", "forces"))
    assert ds.n_frames == 12 and not ds.has_stress.any()


@pytest.mark.parametrize("name,match", [("emtt", "did you mean 'emt'"), ("nosuchmodule:make", "cannot import"),
                                        ("ase.calculators.emt:Nope", "no callable"),
                                        ("/no/such/file.py:make", "no such file")])
def test_unknown_calculator(name, match):
    with pytest.raises(SpecError, match=match):
        make_calculator(name)


def test_sevenn_entry_point_is_optional():
    try:
        import sevenn  # noqa: F401
    except ImportError:
        with pytest.raises(SpecError, match="pip install"):
            make_calculator("7net-mf-0")
    else:  # pragma: no cover - the optional extra is installed
        calc, _ = make_calculator("sevenn")
        assert hasattr(calc, "get_potential_energy")


def test_output_of_another_input_is_refused_and_overwrite_restarts(work):
    tmp, inp = work
    out = tmp / "out.extxyz"
    label_file(inp, out, "lj", calc_kwargs=LJ, progress=False, index=":4")
    other = tmp / "other.extxyz"
    b = frames()
    write_dataset(other, FrameBatch(b.numbers, b.positions[::-1], b.cells[::-1], b.infos[::-1]).to_dataset())
    with pytest.raises(DataError, match="does not match input frame"):
        label_file(other, out, "lj", calc_kwargs=LJ, progress=False)
    rep = label_file(other, out, "lj", calc_kwargs=LJ, progress=False, overwrite=True)
    assert rep.n_resumed == 0 and rep.n_labelled == 12
    plain = tmp / "plain.extxyz"
    write_dataset(plain, frames().to_dataset())
    with pytest.raises(DataError, match="not written by 'ccdgen label'"):
        label_file(inp, plain, "lj", calc_kwargs=LJ, progress=False)
    with pytest.raises(SpecError, match="plain extxyz"):
        label_file(inp, tmp / "x.extxyz.gz", "lj", progress=False)


def test_cli_label(work):
    tmp, inp = work
    r = run_label(inp, "-o", tmp / "o.extxyz", "--calculator", "lj", "--calc-kwargs", '{"sigma": 2.6, "rc": 6.0}',
                  "--no-progress")
    assert r.returncode == 0, r.stderr
    assert "12 of 12 input frames done" in r.stdout
    r = run_label(inp, "-o", tmp / "o2.extxyz", "--calculator", "mystery")
    assert r.returncode == 2 and "unknown calculator 'mystery'" in r.stderr and "Traceback" not in r.stderr
    r = run_label(inp, "-o", tmp / "o3.extxyz", "--calculator", f"{tmp / 'calcs.py'}:energy_only")
    assert r.returncode == 2 and "returns no forces" in r.stderr
    r = run_label(inp, "-o", tmp / "o4.extxyz", "--calculator", "lj", "--calc-kwargs", "[1, 2]")
    assert r.returncode == 2 and "JSON object" in r.stderr


def test_progress_bar_with_time_estimate(work, capsys):
    tmp, inp = work
    label_file(inp, tmp / "o.extxyz", "lj", calc_kwargs=LJ, progress=True)
    err = capsys.readouterr().err
    assert "12/12" in err and "<" in err and "frame/s" in err  # tqdm: elapsed<remaining, rate
