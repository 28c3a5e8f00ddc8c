"""Training runs: spec + data → featurize → split → standardize → fit → evaluate → model file.

:func:`train_model` is what ``ccdgen train`` runs.  Nets train with PyTorch Lightning
(Adam, early stopping on the validation loss, CSV logs — TensorBoard too when installed —
progress bars, a checkpoint every epoch); the linear baseline is solved in closed form.
A run folder (``<model>.run/``) keeps the checkpoints and logs: running the same command
again resumes from ``last.ckpt`` and ends where an uninterrupted run ends (the batches are
a function of seed and epoch, the optimizer and callback states are in the checkpoint).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (stored in the model's hyperparameters)."""

    kind: str = "cluster"  #: cluster | site | linear
    order: int | None = None  #: invariant degree (default: the spec's max_order)
    clusters: tuple | None = None  #: cluster orbits to use (default: all)
    hidden: tuple = (8,)  #: hidden layer widths (the paper's best: one layer of 8)
    activation: str = "tanh"
    lr: float = 1e-2
    weight_decay: float = 0.0
    epochs: int = 400  #: maximum epochs (with a batch schedule: epochs per stage × stages)
    batch_size: int = 32
    batch_schedule: tuple | None = None  #: e.g. (2, 10, 100, 1000): the paper's growing sizes
    epochs_per_stage: int = 1000  #: epochs per batch size of the schedule
    patience: int = 60  #: early-stopping patience (epochs without validation improvement)
    lr_patience: int = 20  #: halve the learning rate after this many epochs without improvement
    force_weight: float = 0.0  #: w_F in the loss (eV/Å)⁻² relative to (eV/atom)⁻²
    stress_weight: float = 0.0  #: w_S in the loss
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    seed: int = 0
    whiten: str = "auto"  #: standardization: auto | always | never
    folds: int = 5  #: CV folds for the linear model's ridge strength

    def __post_init__(self):
        if self.kind not in ("cluster", "site", "linear"):
            raise ModelError(f"unknown model kind {self.kind!r}", fix="use cluster, site or linear")
        for name in ("lr", "force_weight", "stress_weight", "weight_decay"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0:
                raise ModelError(f"{name} must be a finite number ≥ 0, got {v!r}")
        if self.lr <= 0:
            raise ModelError(f"lr must be > 0, got {self.lr}")
        for name in ("epochs", "batch_size", "patience", "epochs_per_stage"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ModelError(f"{name} must be a positive integer, got {v!r}")
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ModelError(f"hidden layer widths must be positive integers, got {self.hidden}")


@dataclass
class TrainResult:
    model_path: Path
    metrics: dict  # part -> metrics dict (train, val, test)
    split: dict
    standardization: list
    run_dir: Path | None
    seconds: float
    history: Path | None = None
    extra: dict = field(default_factory=dict)


def _standardization(kind, featurizer, features, frames, whiten):
    from .standardize import fit

    want = np.zeros(features.n_frames, dtype=bool)
    want[np.asarray(frames, dtype=np.int64)] = True
    stats = {}
    if kind == "site":
        names = [o.name for o in featurizer.site_orbits]
        samples = {n: [] for n in names}
        for b in features.blocks:
            r = np.flatnonzero(want[b.frames])
            if len(r):
                sf = featurizer.site_features({k: v[r] for k, v in b.clusters.items()}, b.layout)
                for n in names:
                    samples[n].append(sf[n].reshape(-1, sf[n].shape[-1]))
    else:
        names = list(featurizer.orbits)
        samples = {n: [] for n in names}
        for b in features.blocks:
            r = np.flatnonzero(want[b.frames])
            if len(r):
                for n in names:
                    v = b.clusters[n][r]
                    samples[n].append(v.reshape(-1, v.shape[-1]))
    for n in names:
        stats[n] = fit(np.concatenate(samples[n]), whiten)
    return stats


def _inputs(kind, featurizer) -> dict:
    if kind == "site":
        return {o.name: len(featurizer.site_feature_names[o.name]) for o in featurizer.site_orbits}
    return dict(featurizer.n_features)


def _e0(features, frames) -> float:
    want = np.zeros(features.n_frames, dtype=bool)
    want[np.asarray(frames, dtype=np.int64)] = True
    vals = [b.energy[want[b.frames]] / b.n_cells for b in features.blocks]
    v = np.concatenate(vals)
    return float(np.mean(v[np.isfinite(v)]))


def evaluate(predictor, features, frames, families=None, per_frame: dict | None = None) -> dict:
    """Metrics of a predictor on the given dataset frames of a FeatureSet (features reused).
    ``per_frame``, if given, receives ``frames``, ``energy`` and ``reference`` (eV/atom)."""
    from ..analysis.metrics import errors

    sub = features.subset(frames)
    e, f, s, ref_e, ref_f, ref_s, nat, fam = [], [], [], [], [], [], [], []
    need_f = any(b.forces is not None for b in sub.blocks)
    for b in sub.blocks:
        for c0 in range(0, b.n_frames, 512):
            r = np.arange(c0, min(c0 + 512, b.n_frames))
            ee, ff, ss = predictor.evaluate_block(b.site_positions[r], b.cells[r], b.layout,
                                                  {k: v[r] for k, v in b.clusters.items()}, forces=need_f)
            e.append(ee)
            if need_f:
                f += list(ff)
                s.append(ss)
            ref_e.append(b.energy[r])
            ref_f += [None if b.forces is None else b.forces[i] for i in r]
            ref_s.append(b.stress[r] if b.stress is not None else np.full((len(r), 3, 3), np.nan))
            nat.append(np.full(len(r), b.n_atoms))
            if families:
                fam += [families[i] for i in b.frames[r]]
    if not e:
        return {"n_frames": 0}
    pred = {"energy": np.concatenate(e), "forces": f if need_f else None,
            "stress": np.concatenate(s) if need_f else None}
    if per_frame is not None:
        n = np.concatenate(nat)
        per_frame.update(frames=np.concatenate([b.frames for b in sub.blocks]), energy=pred["energy"] / n,
                         reference=np.concatenate(ref_e) / n)
    return errors(pred, np.concatenate(ref_e), np.concatenate(nat), ref_f if need_f else None,
                  np.concatenate(ref_s) if need_f else None, fam if families else None)


def train_model(spec, data, config: TrainConfig = TrainConfig(), out="models/model.ckpt", *, run_dir=None,
                resume: bool = True, progress: bool | None = None, featurizer=None, features=None, dataset=None,
                split=None, log=print) -> TrainResult:
    """Train one model and write it to ``out`` (see the module docstring).

    ``spec`` — spec path; ``data`` — one or more dataset paths (ignored when ``dataset`` or
    ``features`` is given); ``featurizer``/``features``/``split`` — reuse what a caller has
    (e.g. a CV sweep).  Returns a :class:`TrainResult` with train/val/test metrics.
    """
    import pytorch_lightning as pl

    from ..crystal.featurizer import CrystalFeaturizer
    from ..data.features import featurize_dataset
    from ..data.io import read_dataset
    from ..data.split import split_frames
    from .checkpoint import Predictor, featurizer_record, save_model
    from .linear import fit_linear, set_linear_weights
    from .module import EnergyModel
    from .standardize import summary

    from . import torch_threads

    torch_threads()
    t0 = time.perf_counter()
    out = Path(out)
    if featurizer is None:
        featurizer = CrystalFeaturizer(spec, config.order, clusters=config.clusters)
    need = ("energy",) + (("forces",) if config.force_weight > 0 else ()) + (("stress",) if config.stress_weight > 0 else ())
    if features is None:
        if dataset is None:
            dataset = read_dataset(data, require=need, progress=progress)
        features = featurize_dataset(featurizer, dataset, progress=progress)
    families = list(features.families) if features.families else None
    if split is None:
        split = split_frames(features.n_frames, config.test_fraction, config.val_fraction, config.seed)
    fit_frames = split.train if config.kind != "linear" else np.concatenate([split.train, split.val])
    stats = _standardization(config.kind, featurizer, features, fit_frames, config.whiten)
    record = featurizer_record(featurizer)
    training = {"config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
                "split": split.describe(), "dataset_hash": features.dataset_hash}
    hp = dict(kind=config.kind, inputs=_inputs(config.kind, featurizer), hidden=tuple(config.hidden),
              activation=config.activation, lr=config.lr, weight_decay=config.weight_decay,
              force_weight=config.force_weight, stress_weight=config.stress_weight, lr_patience=config.lr_patience,
              standardization={n: {"mean": s["mean"].tolist(), "transform": s["transform"].tolist()}
                               for n, s in stats.items()},
              e0=_e0(features, fit_frames), featurizer=record, training=training,
              monitor="val_loss" if len(split.val) else "train_loss")
    history = None
    extra = {"order": featurizer.order}
    if config.kind == "linear":
        module = EnergyModel(**hp).attach(featurizer)
        weights, e0, alpha, table = fit_linear(features, split, list(featurizer.orbits), stats, config.folds,
                                               config.seed)
        set_linear_weights(module, weights, e0)
        module.hparams.training["ridge_alpha"] = alpha
        extra["ridge_cv"] = table
        log(f"linear cluster expansion: ridge alpha = {alpha:.3g} (chosen by {config.folds}-fold CV on "
            f"{len(fit_frames)} training frames)")
    else:
        from .data import BatchSchedule, FeatureDataModule

        pl.seed_everything(config.seed, workers=True, verbose=False)
        module = EnergyModel(**hp).attach(featurizer)
        if config.batch_schedule:
            schedule = BatchSchedule.parse(config.batch_schedule, config.epochs_per_stage)
            max_epochs = schedule.total_epochs
        else:
            schedule = BatchSchedule.constant(config.batch_size)
            max_epochs = config.epochs
        need_geom = config.force_weight > 0 or config.stress_weight > 0
        dm = FeatureDataModule(features, featurizer, config.kind, split, schedule, config.seed, need_geom)
        run_dir = Path(run_dir) if run_dir is not None else out.with_name(out.name + ".run")
        done = _finished(run_dir, training) if resume else None
        if done is not None:  # the same run already finished: reuse its best weights
            log(f"already trained ({run_dir}): reusing its best checkpoint; pass --fresh to retrain")
            module.load_state_dict(_load_state(done["best_checkpoint"]))
            extra.update({k: done[k] for k in ("epochs", "stopped_early", "best_checkpoint")})
            history = run_dir / "logs"
        else:
            trainer, ckpt = _trainer(run_dir, max_epochs, config, progress, bool(len(split.val)), resume, training,
                                     log)
            trainer.fit(module, datamodule=dm, ckpt_path=ckpt)
            if trainer.interrupted:
                raise KeyboardInterrupt
            best = trainer.checkpoint_callback.best_model_path
            if best:
                module.load_state_dict(_load_state(best))
            history = run_dir / "logs"
            extra["epochs"] = int(trainer.current_epoch)
            extra["stopped_early"] = bool(trainer.should_stop and trainer.current_epoch < max_epochs)
            extra["best_checkpoint"] = best
            (run_dir / "done.json").write_text(json.dumps({"training": training, "max_epochs": max_epochs, **{
                k: extra[k] for k in ("epochs", "stopped_early", "best_checkpoint")}}, indent=1, sort_keys=True))
    module.eval()
    save_model(module, out)
    predictor = Predictor(module, featurizer)
    per_frame = {part: {} for part in ("train", "val", "test")}
    metrics = {part: evaluate(predictor, features, getattr(split, part), families, per_frame[part])
               for part in ("train", "val", "test") if len(getattr(split, part))}
    extra["predictions"] = {k: v for k, v in per_frame.items() if v}
    return TrainResult(out, metrics, split.describe(), summary(stats), run_dir, time.perf_counter() - t0, history,
                       extra)


def _epoch_log_class():
    import pytorch_lightning as pl

    class EpochLog(pl.Callback):
        """Progress without a terminal: a line with the errors every ``max_epochs / 10`` epochs."""

        def __init__(self, max_epochs: int, log):
            self.every = max(1, max_epochs // 10)
            self.max_epochs, self._emit = max_epochs, log
            self.t0 = time.perf_counter()

        def on_train_epoch_end(self, trainer, pl_module):
            ep = trainer.current_epoch + 1
            if ep % self.every and ep != self.max_epochs:
                return
            m = trainer.callback_metrics
            val = m.get("val_energy_rmse_meV_atom")
            tr = m.get("train_energy_rmse_meV_atom")
            rate = (time.perf_counter() - self.t0) / ep
            self._emit(f"  epoch {ep:>5}/{self.max_epochs}: energy RMSE train "
                     f"{float(tr) if tr is not None else float('nan'):.3f}, validation "
                     f"{float(val) if val is not None else float('nan'):.3f} meV/atom ({rate:.2f} s/epoch)")

    return EpochLog


def _EpochLog(max_epochs: int, log):
    return _epoch_log_class()(max_epochs, log)


def _finished(run_dir: Path, training: dict) -> dict | None:
    """The record of a finished run with these settings in ``run_dir``, or None."""
    path = run_dir / "done.json"
    try:
        done = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if done.get("training") != training or not Path(done.get("best_checkpoint") or "").is_file():
        return None
    if not (done.get("stopped_early") or done.get("epochs", 0) >= done.get("max_epochs", 1 << 30)):
        return None  # it stopped before its end (killed, or a shorter trainer): resume instead
    return done


def _load_state(path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]


def _next_version(logs: Path) -> int:
    """The first unused ``version_N`` number under ``logs``."""
    used = [int(p.name.removeprefix("version_")) for p in logs.glob("version_*")
            if p.name.removeprefix("version_").isdigit()]
    return max(used, default=-1) + 1


def _trainer(run_dir: Path, max_epochs: int, config: TrainConfig, progress, has_val: bool, resume: bool,
             training: dict, log):
    import logging
    import warnings

    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
    from pytorch_lightning.loggers import CSVLogger

    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)  # no GPU/TPU banners and tips
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=r".*overridden `transfer_batch_to_device`.*")
    warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")  # resuming
    run_dir.mkdir(parents=True, exist_ok=True)
    stamp = run_dir / "run.json"
    ckdir = run_dir / "checkpoints"
    last = ckdir / "last.ckpt"
    ckpt = None
    if last.exists():
        previous = json.loads(stamp.read_text()) if stamp.exists() else None
        if resume and previous == training:
            ckpt = str(last)
            log(f"resuming from {last}")
        elif resume:
            raise ModelError(f"{run_dir} holds a run with other settings or data",
                             why="resuming it would mix two different trainings",
                             fix="pass --fresh to start over (the old run is deleted), or another -o")
        else:
            import shutil

            shutil.rmtree(ckdir, ignore_errors=True)
            shutil.rmtree(run_dir / "logs", ignore_errors=True)
    (run_dir / "done.json").unlink(missing_ok=True)
    stamp.write_text(json.dumps(training, indent=1, sort_keys=True))
    monitor = "val_loss" if has_val else "train_loss"
    callbacks = [ModelCheckpoint(dirpath=str(ckdir), filename="best", monitor=monitor, save_top_k=1, save_last=True,
                                 every_n_epochs=1),
                 EarlyStopping(monitor=monitor, patience=config.patience)]
    # a resumed run logs into the next version_N, so the epochs logged before are kept
    # (Lightning's CSV logger deletes an existing version's metrics.csv)
    version = _next_version(run_dir / "logs") if ckpt is not None else 0
    loggers = [CSVLogger(str(run_dir), name="logs", version=version)]
    try:
        from pytorch_lightning.loggers import TensorBoardLogger
        import tensorboard  # noqa: F401

        loggers.append(TensorBoardLogger(str(run_dir), name="tensorboard", version=version))
    except Exception:  # TensorBoard is optional
        pass
    import sys

    bar = sys.stderr.isatty() if progress is None else bool(progress)
    if not bar and progress is None:  # no terminal (a log file, CI): one line every few epochs
        callbacks.append(_EpochLog(max_epochs, log))
    trainer = pl.Trainer(max_epochs=max_epochs, accelerator="cpu", devices=1, deterministic=True,
                         callbacks=callbacks, logger=loggers, enable_progress_bar=bar,
                         enable_model_summary=False, reload_dataloaders_every_n_epochs=1,
                         num_sanity_val_steps=0, log_every_n_steps=1, default_root_dir=str(run_dir),
                         limit_val_batches=1.0 if has_val else 0)
    return trainer, ckpt
