"""The LightningModule: energy (and optionally force and stress) training of a cluster- or
site-based net (Eqs. 13, 16-18).

Loss (Eq. 18 per atom, plus optional terms)::

    L = mean((E − E_ref)² / N²) + w_F mean((F − F_ref)²) + w_S mean((σ − σ_ref)²)

in eV²/atom², eV²/Å² and eV²/Å⁶.  Forces and stress go through the generated kernels
(:mod:`ccdgen.models.forces`), so their weight gradients are exact.  ``save_hyperparameters``
stores everything needed to rebuild the model and its featurizer — the spec (inline), the
order and cluster set, the featurizer's signature, the architecture, the standardization —
but no compiled code: a checkpoint reloads on a machine with an empty cache.
"""

from __future__ import annotations

import numpy as np
import pytorch_lightning as pl
import torch

from ..errors import ModelError
from .forces import FrameGeometry, SiteToClusters, forces_and_stress
from .nets import build_net


class EnergyModel(pl.LightningModule):
    """A trainable energy model over CCD features.

    Hyperparameters (all saved in checkpoints): ``kind`` (cluster | site | linear),
    ``inputs`` {name: n_features}, ``hidden``, ``activation``, ``lr``, ``weight_decay``,
    ``force_weight``, ``stress_weight``, ``lr_patience``, ``standardization`` {name: {mean,
    transform, ...}} as lists, ``e0`` (eV per reference cell), ``featurizer`` (its spec dict,
    order, clusters, signature) and ``training`` (split, seed, schedule — a record).
    """

    def __init__(self, kind: str, inputs: dict, hidden=(8,), activation: str = "tanh", lr: float = 1e-2,
                 weight_decay: float = 0.0, force_weight: float = 0.0, stress_weight: float = 0.0,
                 lr_patience: int = 20, standardization: dict | None = None, e0: float = 0.0,
                 featurizer: dict | None = None, training: dict | None = None, monitor: str = "val_loss"):
        super().__init__()
        self.save_hyperparameters()
        stats = {n: {"mean": np.asarray(s["mean"]), "transform": np.asarray(s["transform"])}
                 for n, s in (standardization or {}).items()}
        self.net = build_net(kind, inputs, hidden, activation, stats)
        with torch.no_grad():
            self.net.e0.fill_(float(e0))
        self._featurizer = None
        self._site_maps = {}

    # ------------------------------------------------------------------ featurizer
    def attach(self, featurizer) -> "EnergyModel":
        """Attach the compiled featurizer (needed for forces and stress)."""
        sig = (self.hparams.featurizer or {}).get("signature")
        if sig is not None and featurizer.signature() != sig:
            raise ModelError("the featurizer does not match the one this model was trained with",
                             why="features from another spec, order, cluster set or ccdgen front end "
                             "would be fed to weights that do not belong to them",
                             fix="rebuild the featurizer from the model (ccdgen.models.load_model)")
        self._featurizer = featurizer
        return self

    @property
    def featurizer(self):
        if self._featurizer is None:
            raise ModelError("no featurizer attached to the model", fix="call model.attach(featurizer) "
                             "or load it with ccdgen.models.load_model")
        return self._featurizer

    # ------------------------------------------------------------------ physics
    def energy(self, batch: dict) -> torch.Tensor:
        return self.net.energy(batch["inputs"], batch["n_cells"])

    def energy_forces_stress(self, batch: dict, create_graph: bool = False):
        """Energies (B,), forces (B, N, 3) site order and stress (B, 3, 3)."""
        inputs = {n: v.detach().requires_grad_(True) for n, v in batch["inputs"].items()}
        e = self.net.energy(inputs, batch["n_cells"])
        names = list(inputs)
        grads = torch.autograd.grad(e.sum(), [inputs[n] for n in names], create_graph=create_graph)
        g = dict(zip(names, grads))
        if self.hparams.kind == "site":
            g = self._site_map(batch["layout"])(g)
        geom = FrameGeometry(self.featurizer, batch["layout"], batch["positions"], batch["cells"],
                             tuple(self.featurizer.orbits))
        f, s = forces_and_stress(geom, g)
        return e, f, s

    def _site_map(self, layout):
        key = id(layout)
        if key not in self._site_maps:
            self._site_maps[key] = SiteToClusters(self.featurizer, layout)
        return self._site_maps[key]

    # ------------------------------------------------------------------ training
    def transfer_batch_to_device(self, batch, device, dataloader_idx):
        """Batches hold CPU tensors and the frames' geometry for the (CPU) kernels: keep them."""
        return batch

    def _needs_geometry(self) -> bool:
        return self.hparams.force_weight > 0 or self.hparams.stress_weight > 0

    def _losses(self, batch: dict, train: bool) -> dict:
        n = batch["n_atoms"]
        out = {}
        if self._needs_geometry() or (not train and "positions" in batch):
            e, f, s = self.energy_forces_stress(batch, create_graph=train and self._needs_geometry())
            if batch.get("forces") is not None:
                df = f - batch["forces"]
                out["force_mse"] = (df**2).mean()
            if batch.get("stress") is not None:
                ds = s - batch["stress"]
                out["stress_mse"] = (ds**2).mean()
        else:
            e = self.energy(batch)
        de = (e - batch["energy"]) / n
        out["energy_mse"] = (de**2).mean()
        loss = out["energy_mse"]
        if self.hparams.force_weight > 0 and "force_mse" in out:
            loss = loss + self.hparams.force_weight * out["force_mse"]
        if self.hparams.stress_weight > 0 and "stress_mse" in out:
            loss = loss + self.hparams.stress_weight * out["stress_mse"]
        out["loss"] = loss
        return out

    def training_step(self, batch, batch_idx):
        out = self._losses(batch, True)
        bs = len(batch["rows"])
        self.log("train_loss", out["loss"], on_step=False, on_epoch=True, batch_size=bs)
        self.log("train_energy_rmse_meV_atom", 1e3 * out["energy_mse"].sqrt(), on_step=False, on_epoch=True,
                 batch_size=bs)
        return out["loss"]

    def validation_step(self, batch, batch_idx):
        with torch.enable_grad():
            out = self._losses(batch, False)
        bs = len(batch["rows"])
        self.log("val_loss", out["loss"], on_step=False, on_epoch=True, batch_size=bs, prog_bar=True)
        self.log("val_energy_rmse_meV_atom", 1e3 * out["energy_mse"].sqrt(), on_step=False, on_epoch=True,
                 batch_size=bs, prog_bar=True)
        if "force_mse" in out:
            self.log("val_force_rmse_meV_A", 1e3 * out["force_mse"].sqrt(), on_step=False, on_epoch=True,
                     batch_size=bs)

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=self.hparams.lr_patience,
                                                           min_lr=1e-6)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": self.hparams.monitor}}
