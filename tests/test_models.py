"""Energy models: symmetry of predictions, forces and stress as derivatives, exact weight
gradients of force training, checkpoints, resume, the linear baseline, no test leakage."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

from ccdgen.crystal.featurizer import CrystalFeaturizer

from ccdgen.data.dataset import Dataset
from ccdgen.data.features import featurize_dataset
from ccdgen.data.io import read_dataset
from ccdgen.data.split import split_frames
from ccdgen.errors import DataError, MappingError, ModelError
from ccdgen.models.checkpoint import Predictor, load_model
from ccdgen.models.train import TrainConfig, train_model
from ccdgen.testing import random_rotation

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
DATA = REPO / "examples" / "cspbbr3" / "data"
N_FRAMES = 160


@lru_cache(maxsize=None)
def setup(order: int = 2):
    fz = CrystalFeaturizer(SPEC, order)
    ds = read_dataset(DATA / "train.extxyz.gz", index=f":{N_FRAMES}")
    return fz, ds, featurize_dataset(fz, ds)


@lru_cache(maxsize=None)
def trained(kind: str, tmp: str, forces: float = 0.0):
    fz, ds, fs = setup()
    cfg = TrainConfig(kind=kind, order=2, epochs=4, batch_size=16, force_weight=forces, seed=1, hidden=(6,))
    res = train_model(SPEC, None, cfg, Path(tmp) / f"{kind}_{forces}.ckpt", featurizer=fz, features=fs,
                      progress=False, log=lambda *a: None)
    return res, Predictor(load_model(res.model_path).module, fz)


@pytest.fixture(scope="module")
def tmpdir_m(tmp_path_factory):
    return str(tmp_path_factory.mktemp("models"))


def frame_atoms(i: int = 3):
    _, ds, _ = setup()
    return ds.to_atoms(i)


# ------------------------------------------------------------------ symmetry
@pytest.mark.parametrize("kind", ["cluster", "site", "linear"])
def test_energy_is_invariant_under_rigid_motion_shuffle_and_space_group(kind, tmpdir_m):
    _, pred = trained(kind, tmpdir_m)
    fz = pred.featurizer
    a = frame_atoms(5)
    rng = np.random.default_rng(0)
    frames = [a]
    for reflect in (False, True):
        b = a.copy()
        r = random_rotation(rng, reflect)
        b.set_cell(a.cell.array @ r.T)
        b.positions = a.positions @ r.T + rng.uniform(-3, 3, 3)
        b = b[rng.permutation(len(b))]
        b.wrap()
        frames.append(b)
    # space-group images: an operation (R, perm) of the reference acts on the mapped state, the
    # displacements d'[perm s] = R d[s] and the stretch U' = R U Rᵀ; x' = U'(P + d'), C' = L U'ᵀ
    mp = fz.map(a.positions[None], a.cell.array[None], a.numbers).mapping(0)
    sc = mp.supercell
    ops = sc.symmetry_operations(fz.spacegroup)
    from ase import Atoms

    for op in rng.choice(np.arange(1, len(ops)), 4, replace=False):
        r, perm = ops.rotations[op], ops.perms[op]
        d = np.empty_like(mp.displacements)
        d[perm] = mp.displacements @ r.T
        u = r @ mp.stretch @ r.T
        x = (sc.positions + d) @ u.T
        frames.append(Atoms(sc.species, positions=x, cell=sc.cell @ u.T, pbc=True))
    e = pred.predict(Dataset.from_atoms(frames), forces=False)["energy"]
    np.testing.assert_allclose(e, e[0], rtol=1e-12, atol=0)  # 1e-12 of ~1000 eV: float64 sums


def test_a_non_symmetric_change_changes_the_energy(tmpdir_m):
    _, pred = trained("cluster", tmpdir_m)
    a = frame_atoms(5)
    b = a.copy()
    b.positions[1] += [0.05, 0.0, 0.0]
    e = pred.predict(Dataset.from_atoms([a, b]), forces=False)["energy"]
    assert abs(e[1] - e[0]) > 1e-6


# ------------------------------------------------------------- forces, stress
@pytest.mark.parametrize("kind", ["cluster", "site"])
def test_forces_and_stress_are_derivatives_of_the_energy(kind, tmpdir_m):
    _, pred = trained(kind, tmpdir_m)
    fz = pred.featurizer
    a = frame_atoms(7)
    m = fz.map(a.positions[None], a.cell.array[None], a.numbers)
    lay = fz.layout(m.supercells[0])
    x = m.site_positions(a.positions[None], a.cell.array[None])
    c = a.cell.array[None]
    e, f, s = pred.evaluate_block(x, c, lay)
    energy = lambda xx, cc: pred.evaluate_block(xx, cc, lay, forces=False)[0][0]
    h = 1e-5
    for at, d in [(0, 0), (11, 2), (39, 1)]:
        xp, xm = x.copy(), x.copy()
        xp[0, at, d] += h
        xm[0, at, d] -= h
        assert -(energy(xp, c) - energy(xm, c)) / (2 * h) == pytest.approx(f[0, at, d], rel=1e-6, abs=1e-8)
    vol = abs(np.linalg.det(c[0]))
    for i, j in [(0, 0), (1, 2), (2, 0)]:
        eps = np.zeros((3, 3))
        eps[i, j] = h
        up = (x @ (np.eye(3) + eps).T, c @ (np.eye(3) + eps).T)
        dn = (x @ (np.eye(3) - eps).T, c @ (np.eye(3) - eps).T)
        fd = (energy(*up) - energy(*dn)) / (2 * h) / vol
        assert fd == pytest.approx(s[0, i, j], rel=1e-6, abs=1e-10)


@pytest.mark.parametrize("kind", ["cluster", "site"])
def test_force_and_stress_training_gives_exact_weight_gradients(kind, tmpdir_m):
    """Autograd through the kernels' VJP/JVP vs central differences of the loss in the weights."""
    from ccdgen.models.data import BatchSchedule, FeatureDataModule
    from ccdgen.models.module import EnergyModel

    fz, ds, fs = setup()
    res, pred = trained(kind, tmpdir_m)
    hp = dict(pred.module.hparams)
    hp.update(force_weight=0.3, stress_weight=50.0)
    model = EnergyModel(**hp).attach(fz)
    model.load_state_dict(pred.module.state_dict())
    split = split_frames(len(ds), 0.2, 0.1, 0)
    dm = FeatureDataModule(fs, fz, kind, split, BatchSchedule.constant(4), need_geometry=True)
    batch = dm.batch(0, split.train[:4])
    params = [p for p in model.parameters()]
    loss = model._losses(batch, True)["loss"]
    grads = torch.autograd.grad(loss, params)
    rng = np.random.default_rng(0)
    h = 1e-6
    checked = 0
    for p, g in zip(params, grads):
        flat = p.data.view(-1)
        for k in rng.choice(flat.numel(), min(2, flat.numel()), replace=False):
            old = flat[k].item()
            flat[k] = old + h
            lp = model._losses(batch, True)["loss"].item()
            flat[k] = old - h
            lm = model._losses(batch, True)["loss"].item()
            flat[k] = old
            fd = (lp - lm) / (2 * h)
            assert g.view(-1)[k].item() == pytest.approx(fd, rel=2e-5, abs=1e-10)
            checked += 1
    assert checked >= 5


def test_training_with_forces_and_stress_runs_through_lightning(tmp_path):
    fz, ds, fs = setup()
    cfg = TrainConfig(kind="site", order=2, epochs=2, batch_size=16, force_weight=1e-3, stress_weight=1.0, seed=0,
                      hidden=(4,))
    res = train_model(SPEC, None, cfg, tmp_path / "f.ckpt", featurizer=fz, features=fs, progress=False,
                      log=lambda *a: None)
    assert res.extra["epochs"] == 2
    assert np.isfinite(res.metrics["test"]["force_rmse_meV_A"])


# ----------------------------------------------------------------- checkpoints
def test_checkpoint_reloads_in_a_fresh_process_with_an_empty_cache(tmpdir_m, tmp_path):
    res, pred = trained("cluster", tmpdir_m)
    _, ds, _ = setup()
    sub = ds[np.arange(10)]
    here = pred.predict(sub)
    code = ("import sys, numpy as np\n"
            "from ccdgen.models.checkpoint import load_model\n"
            "from ccdgen.data.io import read_dataset\n"
            "p = load_model(sys.argv[1])\n"
            "ds = read_dataset(sys.argv[2], index=':10')\n"
            "o = p.predict(ds)\n"
            "sys.stdout.write(o['energy'].tobytes().hex() + ' ' + o['forces'].tobytes().hex() + ' ' + "
            "o['stress'].tobytes().hex())\n")
    env = {**os.environ, "CCDGEN_CACHE_DIR": str(tmp_path / "empty"), "PYTHONHASHSEED": "77"}
    r = subprocess.run([sys.executable, "-c", code, str(res.model_path), str(DATA / "train.extxyz.gz")],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    e, f, s = r.stdout.split()
    assert e == here["energy"].tobytes().hex()
    assert f == here["forces"].tobytes().hex()
    assert s == here["stress"].tobytes().hex()


def test_model_spec_mismatch_is_a_clear_error(tmpdir_m):
    _, pred = trained("cluster", tmpdir_m)
    other = CrystalFeaturizer(SPEC, 2, clusters=["pair1", "pair2", "PbBr6"])
    with pytest.raises(ModelError, match="does not match"):
        pred.module.attach(other)


def test_another_crystal_is_a_clear_error(tmpdir_m):
    from ase.build import bulk

    _, pred = trained("cluster", tmpdir_m)
    nacl = bulk("NaCl", "rocksalt", a=5.6, cubic=True).repeat(2)
    with pytest.raises(MappingError):
        pred.predict(Dataset.from_atoms([nacl]))


def test_nan_in_the_data_is_a_clear_error(tmp_path):
    text = (DATA / "endpoints.extxyz").read_text().splitlines(keepends=True)
    n = int(text[0])
    head = text[1].replace("energy=", "energy=nan ignored=", 1)
    (tmp_path / "bad.extxyz").write_text("".join([text[0], head] + text[2:n + 2]))
    with pytest.raises(DataError, match="frame 0"):
        read_dataset(tmp_path / "bad.extxyz")


def test_a_missing_model_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "nope.ckpt")


# ---------------------------------------------------------------------- resume
RESUME_CODE = """
import sys, time
from pathlib import Path
import ccdgen.models.module as m
m.EnergyModel.on_train_epoch_end = lambda self: time.sleep(0.4)  # slow, not different
from ccdgen.crystal.featurizer import CrystalFeaturizer
from ccdgen.data.io import read_dataset
from ccdgen.data.features import featurize_dataset
from ccdgen.models.train import TrainConfig, train_model
fz = CrystalFeaturizer(sys.argv[1], 2)
fs = featurize_dataset(fz, read_dataset(sys.argv[2], index=':{n}'))
cfg = TrainConfig(kind='cluster', order=2, epochs=8, batch_size=16, seed=3, hidden=(5,), patience=100)
train_model(sys.argv[1], None, cfg, sys.argv[3], featurizer=fz, features=fs, progress=False, log=lambda *a: None)
"""


def _run_training(out: Path, env, kill_after_epoch: int | None = None):
    code = RESUME_CODE.format(n=N_FRAMES)
    proc = subprocess.Popen([sys.executable, "-c", code, str(SPEC), str(DATA / "train.extxyz.gz"), str(out)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if kill_after_epoch is None:
        _, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, err[-2000:]
        return
    last = out.with_name(out.name + ".run") / "checkpoints" / "last.ckpt"
    t0 = time.time()
    while time.time() - t0 < 600:
        if last.exists():
            try:
                if torch.load(last, map_location="cpu", weights_only=False)["epoch"] >= kill_after_epoch:
                    break
            except Exception:
                pass
        if proc.poll() is not None:
            raise AssertionError("the training finished before it could be killed")
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_where_an_uninterrupted_run_ends(tmp_path):
    env = {**os.environ, "CCDGEN_CACHE_DIR": os.environ["CCDGEN_CACHE_DIR"]}
    setup()  # features in the shared cache
    _run_training(tmp_path / "a.ckpt", env)
    _run_training(tmp_path / "b.ckpt", env, kill_after_epoch=3)
    assert not (tmp_path / "b.ckpt").exists()
    _run_training(tmp_path / "b.ckpt", env)  # the same command again: resumes
    sa = torch.load(tmp_path / "a.ckpt", weights_only=False)["state_dict"]
    sb = torch.load(tmp_path / "b.ckpt", weights_only=False)["state_dict"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def test_resuming_finished_epochs_matches_an_uninterrupted_run(tmp_path):
    """In-process version of the kill test: stop after 3 of 6 epochs (max_epochs reached),
    then the same run continued from last.ckpt equals 6 epochs at once."""
    from ccdgen.models import train as T

    fz, ds, fs = setup()
    cfg = TrainConfig(kind="cluster", order=2, epochs=6, batch_size=16, seed=3, hidden=(5,), patience=100)
    a = train_model(SPEC, None, cfg, tmp_path / "a.ckpt", featurizer=fz, features=fs, progress=False,
                    log=lambda *x: None)
    real = T._trainer

    def short(run_dir, max_epochs, *args, **kw):
        return real(run_dir, 3, *args, **kw)

    T._trainer = short
    try:
        train_model(SPEC, None, cfg, tmp_path / "b.ckpt", featurizer=fz, features=fs, progress=False,
                    log=lambda *x: None)
    finally:
        T._trainer = real
    b = train_model(SPEC, None, cfg, tmp_path / "b.ckpt", featurizer=fz, features=fs, progress=False,
                    log=lambda *x: None)
    assert b.extra["epochs"] == a.extra["epochs"]
    sa = torch.load(a.model_path, weights_only=False)["state_dict"]
    sb = torch.load(b.model_path, weights_only=False)["state_dict"]
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    # the resumed run's logs keep the first segment's epochs (Lightning's CSV logger would
    # delete them if the second segment reused version_0): same per-epoch errors as run a
    import csv

    def epochs(logs):
        out = {}
        for f in sorted(logs.glob("version_*/metrics.csv")):
            for row in csv.DictReader(f.open()):
                if row.get("train_energy_rmse_meV_atom"):
                    out[int(row["epoch"])] = float(row["train_energy_rmse_meV_atom"])
        return out

    ea, eb = epochs(tmp_path / "a.ckpt.run" / "logs"), epochs(tmp_path / "b.ckpt.run" / "logs")
    assert sorted(eb) == sorted(ea) == list(range(6))
    assert eb == pytest.approx(ea, rel=1e-12)


# ---------------------------------------------------------------- linear model
def test_ridge_matches_the_normal_equations():
    from ccdgen.models.linear import _ridge

    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 7))
    y = x @ rng.standard_normal(7) + 0.1 * rng.standard_normal(60) + 3.0
    s = np.full(60, 0.2)
    for alpha in (1e-8, 0.3, 10.0):
        w, e0 = _ridge(x, y, s, alpha)
        # augmented normal equations with an unpenalized intercept column s
        a = np.column_stack([x, s])
        reg = np.diag([alpha] * 7 + [0.0])
        sol = np.linalg.solve(a.T @ a + reg, a.T @ y)
        np.testing.assert_allclose(np.r_[w, e0], sol, rtol=1e-8, atol=1e-10)


def test_linear_model_predictions_are_its_design_times_its_weights(tmpdir_m):
    from ccdgen.models.linear import design
    from ccdgen.models.nets import _key

    res, pred = trained("linear", tmpdir_m)
    fz, ds, fs = setup()
    names = list(fz.orbits)
    net = pred.module.net
    trans = {n: getattr(net, f"transform_{_key(n)}").numpy() for n in names}
    w = np.concatenate([net.nets[_key(n)][0].weight.detach().numpy()[0] for n in names])
    frames = np.arange(len(ds))
    x, y, s = design(fs, frames, names, trans)
    e = pred.predict(ds, forces=False)["energy"] / ds.n_atoms_per_frame
    np.testing.assert_allclose(e, x @ w + net.e0.item() * s, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- no leakage
@pytest.mark.parametrize("kind", ["cluster", "linear"])
def test_test_frames_never_enter_training_or_standardization(kind, tmp_path):
    """Scramble every test frame's features and labels: the trained model must not change."""
    from ccdgen.data.features import FeatureBlock, FeatureSet

    fz, ds, fs = setup()
    split = split_frames(fs.n_frames, 0.2, 0.1, 5)
    b = fs.blocks[0]
    test = np.isin(b.frames, split.test)
    scrambled = {n: np.where(test[:, None, None], 37.0 * v + 5.0, v) for n, v in b.clusters.items()}
    bad = FeatureBlock(b.layout, b.frames, scrambled, b.site_positions, b.cells, b.atom_of_site,
                       np.where(test, b.energy + 1e3, b.energy), b.forces, b.stress)
    fs_bad = FeatureSet((bad,), fs.n_frames, fs.featurizer_signature, fs.dataset_hash, fs.families)
    cfg = TrainConfig(kind=kind, order=2, epochs=3, batch_size=16, seed=2, hidden=(4,))
    a = train_model(SPEC, None, cfg, tmp_path / "a.ckpt", featurizer=fz, features=fs, split=split, progress=False,
                    log=lambda *x: None)
    c = train_model(SPEC, None, cfg, tmp_path / "c.ckpt", featurizer=fz, features=fs_bad, split=split,
                    progress=False, log=lambda *x: None)
    sa = torch.load(a.model_path, weights_only=False)["state_dict"]
    sc = torch.load(c.model_path, weights_only=False)["state_dict"]
    for k in sa:
        assert torch.equal(sa[k], sc[k]), k
    assert a.metrics["test"]["energy_rmse_meV_atom"] != c.metrics["test"]["energy_rmse_meV_atom"]


# ------------------------------------------------------------------ calculator
def test_calculator_energy_forces_stress_and_an_optimizer(tmpdir_m):
    from ase.optimize import BFGS

    from ccdgen import Calculator

    _, pred = trained("cluster", tmpdir_m)
    a = frame_atoms(11)
    ref = pred.predict(Dataset.from_atoms([a]))
    a.calc = Calculator(pred)
    assert a.get_potential_energy() == pytest.approx(ref["energy"][0], abs=1e-10)
    np.testing.assert_allclose(a.get_forces(), ref["forces"][0], atol=1e-10)
    st = ref["stress"][0]
    np.testing.assert_allclose(a.get_stress(), [st[0, 0], st[1, 1], st[2, 2], st[1, 2], st[0, 2], st[0, 1]],
                               atol=1e-12)
    e0 = a.get_potential_energy()
    BFGS(a, logfile=None).run(fmax=0.5, steps=5)
    assert a.get_potential_energy() < e0
    # a moved configuration reuses the mapping and still agrees with a full prediction
    again = pred.predict(Dataset.from_atoms([a.copy()]))
    assert a.get_potential_energy() == pytest.approx(again["energy"][0], abs=1e-9)


def test_calculator_refuses_another_crystal(tmpdir_m):
    from ase.build import bulk

    from ccdgen import Calculator

    _, pred = trained("cluster", tmpdir_m)
    nacl = bulk("NaCl", "rocksalt", a=5.6, cubic=True).repeat(2)
    nacl.calc = Calculator(pred)
    with pytest.raises(MappingError, match="reference crystal"):
        nacl.get_potential_energy()


# ------------------------------------------------------------------------- CLI
def test_cli_train_predict_evaluate(tmp_path):
    from ccdgen.cli.main import main

    model = tmp_path / "m.ckpt"
    assert main(["train", str(SPEC), str(DATA / "train.extxyz.gz"), "--index", ":80", "--model", "linear",
                 "-o", str(model), "--plots", str(tmp_path / "plots"), "--quiet"]) == 0
    assert (tmp_path / "plots" / "parity.png").stat().st_size > 1000
    out = tmp_path / "pred.extxyz"
    assert main(["predict", str(model), str(DATA / "endpoints.extxyz"), "-o", str(out)]) == 0
    got = read_dataset(out)
    assert len(got) == 4 and got.forces is not None and got.stresses is not None
    assert main(["evaluate", str(model), str(DATA / "endpoints.extxyz"), "--json"]) == 0


def test_batch_schedule_grows_like_the_paper():
    """2, 10, 100, 1000 with 3 epochs each: sizes by epoch, and a run follows it."""
    from ccdgen.models.data import BatchSchedule, FeatureDataModule

    s = BatchSchedule.parse((2, 10, 100, 1000), 3)
    assert [s.size(e) for e in range(14)] == [2] * 3 + [10] * 3 + [100] * 3 + [1000] * 5
    assert s.total_epochs == 12
    fz, ds, fs = setup()
    split = split_frames(len(ds), 0.2, 0.1, 0)
    dm = FeatureDataModule(fs, fz, "cluster", split, s, 0)
    n_train = len(split.train)
    sizes = []
    for epoch in (0, 4, 11):
        keys = dm._keys("train", s.size(epoch), epoch)
        assert sum(len(k[1]) for k in keys) == n_train  # every training frame once per epoch
        sizes.append(max(len(k[1]) for k in keys))
    assert sizes == [2, 10, min(1000, n_train)]
