"""Model files: Lightning checkpoints that rebuild their featurizer, and predictions.

A model file is a Lightning checkpoint (``EnergyModel.load_from_checkpoint`` reads it): the
state dict (weights, standardization buffers) and the hyperparameters, which include the
spec as plain data, the order, the cluster set and the featurizer's signature — no compiled
code.  :func:`load_model` rebuilds the featurizer from the spec (compiling kernels if the
cache is empty), checks that its signature is the one the model was trained with, and
returns a :class:`Predictor`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..errors import ModelError

FORMAT = "ccdgen-model/1"


def featurizer_record(featurizer) -> dict:
    """What a model stores to rebuild its featurizer."""
    from ..pipeline import spec_as_dict

    p = featurizer.problem
    return {"format": FORMAT, "spec": spec_as_dict(p.spec, p.options), "source": str(p.source),
            "order": featurizer.order, "clusters": list(featurizer.orbits),
            "truncated": featurizer.truncated, "signature": featurizer.signature(),
            "feature_names": {n: list(v) for n, v in featurizer.feature_names.items()},
            "site_orbits": {o.name: list(o.clusters) for o in featurizer.site_orbits}}


def build_featurizer(record: dict):
    """Rebuild (and verify) the featurizer of a model from its stored record."""
    from ..crystal.featurizer import CrystalFeaturizer
    from ..pipeline import load
    from ..spec import parse_spec

    try:
        spec = parse_spec(record["spec"])
    except KeyError as exc:
        raise ModelError(f"the model file has no featurizer record ({exc})",
                         fix="use a model written by `ccdgen train`") from None
    fz = CrystalFeaturizer(load(spec), record["order"], clusters=record["clusters"],
                           truncated=record.get("truncated"))
    if fz.signature() != record["signature"]:
        raise ModelError(
            "the featurizer rebuilt from this model's spec differs from the one it was trained with",
            why="this ccdgen derives different features from the same spec (another ccdgen version or a "
            "changed front end); the weights would be applied to the wrong inputs",
            fix=f"use the ccdgen version that trained the model, or retrain it (this is ccdgen {__version__})")
    return fz


def save_model(module, path) -> Path:
    """Write ``module`` (an EnergyModel) as a Lightning-format checkpoint, atomically."""
    import pytorch_lightning as pl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": pl.__version__, "ccdgen_version": __version__, "format": FORMAT}
    from ..fileio import atomic_path

    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)
    return path


def load_model(path) -> "Predictor":
    """Load a model file (or a training checkpoint) and rebuild its featurizer."""
    from . import torch_threads
    from .module import EnergyModel

    torch_threads()
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist", fix="train one with `ccdgen train` (-o PATH)")
    try:
        module = EnergyModel.load_from_checkpoint(str(path), map_location="cpu")
    except Exception as exc:
        raise ModelError(f"{path} is not a ccdgen model file: {type(exc).__name__}: {exc}",
                         fix="pass a file written by `ccdgen train -o`") from None
    module.eval()
    fz = build_featurizer(module.hparams.featurizer or {})
    module.attach(fz)
    return Predictor(module, fz)


class Predictor:
    """Energies, forces and stress of configurations from a trained model.

    ``predict(dataset)`` → dict with ``energy`` (n,) eV, ``forces`` (n, N, 3) eV/Å in the
    dataset's atom order, ``stress`` (n, 3, 3) eV/Å³ (ASE convention); any frame order, atom
    order or supercell of the reference.
    """

    def __init__(self, module, featurizer):
        self.module, self.featurizer = module, featurizer
        self.kind = module.hparams.kind
        module.eval()
        module.requires_grad_(False)  # inference: derivatives in the inputs only

    @property
    def hparams(self):
        return self.module.hparams

    def _inputs(self, clusters: dict, layout) -> dict:
        if self.kind == "site":
            clusters = self.featurizer.site_features(clusters, layout)
        return {n: torch.from_numpy(np.ascontiguousarray(v)) for n, v in clusters.items()}

    def evaluate_block(self, site_positions, cells, layout, clusters=None, forces: bool = True):
        """Model on frames of one supercell (site order) → (energy (B,), forces (B, N, 3) site
        order or None, stress (B, 3, 3) or None)."""
        if clusters is None:
            clusters = self.featurizer.compute(site_positions, cells, layout)
        batch = {"inputs": self._inputs(clusters, layout),
                 "n_cells": torch.full((len(cells),), float(layout.supercell.n_cells), dtype=torch.float64),
                 "positions": np.ascontiguousarray(site_positions), "cells": np.ascontiguousarray(cells),
                 "layout": layout}
        import os

        big = sum(v.numel() for v in batch["inputs"].values()) > 200_000
        if big and "CCDGEN_TORCH_THREADS" not in os.environ:  # large arrays: use every core
            from ..system import cpu_count

            torch.set_num_threads(cpu_count())
        try:
            if not forces:
                with torch.no_grad():
                    return self.module.energy(batch).numpy(), None, None
            e, f, s = self.module.energy_forces_stress(batch)
            return e.detach().numpy(), f.detach().numpy(), s.detach().numpy()
        finally:
            if big:
                from . import torch_threads

                torch_threads()

    def predict(self, dataset, batch: int = 512, forces: bool = True, progress: bool | None = None) -> dict:
        from tqdm.auto import tqdm

        n = len(dataset)
        if n == 0:
            return {"energy": np.zeros(0), "forces": None, "stress": None}
        energy = np.full(n, np.nan)
        out_f = [None] * n
        stress = np.full((n, 3, 3), np.nan)
        groups = {}
        for i, k in enumerate(dataset.n_atoms_per_frame.tolist()):
            groups.setdefault(k, []).append(i)
        bar = tqdm(total=n, desc="predict", unit="frame", disable=(not progress) if progress is not None else None,
                   leave=False)
        for idx in groups.values():
            sub = dataset[np.array(idx)]
            pos, cells, nums = sub.positions, sub.cells, sub.numbers
            maps = self.featurizer.map(pos, cells, nums, frames=[f"{i} ({dataset.source_of(i)})" for i in idx])
            xs = maps.site_positions(pos, cells)
            for si, sc in enumerate(maps.supercells):
                rows = np.flatnonzero(maps.supercell_index == si)
                layout = self.featurizer.layout(sc)
                for c0 in range(0, len(rows), batch):
                    r = rows[c0:c0 + batch]
                    e, f, s = self.evaluate_block(xs[r], np.asarray(cells[r]), layout, forces=forces)
                    for j, fr in enumerate(r):
                        gi = idx[fr]
                        energy[gi] = e[j]
                        if f is not None:
                            fa = np.empty_like(f[j])
                            fa[maps.atom_of_site[fr]] = f[j]
                            out_f[gi] = fa
                            stress[gi] = s[j]
                    bar.update(len(r))
        bar.close()
        uniform = dataset.uniform
        return {"energy": energy,
                "forces": (np.array(out_f) if uniform else out_f) if forces else None,
                "stress": stress if forces else None}
