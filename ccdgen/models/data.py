"""Batches of featurized frames for training: a ``LightningDataModule``.

Frames of one supercell share a cluster layout, so a batch never mixes blocks.  The
training order is a permutation drawn from ``(seed, epoch)`` and the batch size may follow a
schedule over epochs (the paper's 2, 10, 100, 1000): both are functions of the epoch
alone, so a run resumed from a checkpoint sees exactly the batches an uninterrupted run
sees (the loaders are rebuilt every epoch).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from ..errors import ModelError


@dataclass(frozen=True)
class BatchSchedule:
    """Batch size per epoch: ``sizes[i]`` for ``epochs[i]`` epochs, the last size after that."""

    sizes: tuple
    epochs: tuple

    @classmethod
    def constant(cls, size: int) -> "BatchSchedule":
        return cls((int(size),), (1,))

    @classmethod
    def parse(cls, sizes, epochs_per_stage: int) -> "BatchSchedule":
        sizes = tuple(int(s) for s in sizes)
        if not sizes or any(s < 1 for s in sizes):
            raise ModelError(f"batch sizes must be positive integers, got {sizes}")
        if epochs_per_stage < 1:
            raise ModelError(f"epochs per batch-size stage must be ≥ 1, got {epochs_per_stage}")
        return cls(sizes, (int(epochs_per_stage),) * len(sizes))

    def size(self, epoch: int) -> int:
        e = 0
        for s, n in zip(self.sizes, self.epochs):
            e += n
            if epoch < e:
                return s
        return self.sizes[-1]

    @property
    def total_epochs(self) -> int:
        return int(sum(self.epochs)) if len(self.sizes) > 1 else 0


class _Source(torch.utils.data.Dataset):
    """Item = (block index, rows) → the batch dict."""

    def __init__(self, dm: "FeatureDataModule"):
        self.dm = dm

    def __len__(self):  # pragma: no cover - samplers give the keys
        return 0

    def __getitem__(self, key):
        return self.dm.batch(*key)


def _identity(x):
    return x


class FeatureDataModule(pl.LightningDataModule):
    """Training, validation and test batches over a :class:`~ccdgen.data.features.FeatureSet`.

    Parameters
    ----------
    features : FeatureSet
    featurizer : CrystalFeaturizer (site features and the geometry for force training)
    kind : "cluster" | "site" | "linear" — which inputs the batches carry
    split : ccdgen.data.split.Split
    schedule : BatchSchedule
    seed : int — shuffling seed (combined with the epoch)
    need_geometry : also carry positions and cells (force / stress training)
    """

    def __init__(self, features, featurizer, kind: str, split, schedule: BatchSchedule, seed: int = 0,
                 need_geometry: bool = False, eval_batch: int = 512):
        super().__init__()
        self.features, self.featurizer, self.kind = features, featurizer, kind
        self.split, self.schedule, self.seed = split, schedule, int(seed)
        self.need_geometry = need_geometry
        self.eval_batch = int(eval_batch)
        self._inputs = []
        for b in features.blocks:
            if kind == "site":
                inp = featurizer.site_features(b.clusters, b.layout)
            else:
                inp = b.clusters
            self._inputs.append({n: torch.from_numpy(np.ascontiguousarray(v)) for n, v in inp.items()})
        self._rows = {part: self._rows_of(getattr(split, part)) for part in ("train", "val", "test")}
        self._source = _Source(self)

    def _rows_of(self, frames) -> list:
        want = np.zeros(self.features.n_frames, dtype=bool)
        want[np.asarray(frames, dtype=np.int64)] = True
        return [np.flatnonzero(want[b.frames]) for b in self.features.blocks]

    # ------------------------------------------------------------------ batches
    def batch(self, bi: int, rows: np.ndarray) -> dict:
        b = self.features.blocks[bi]
        rows = np.asarray(rows, dtype=np.int64)
        t = torch.from_numpy(rows)
        out = {"block": bi, "rows": rows, "frames": b.frames[rows],
               "inputs": {n: v.index_select(0, t) for n, v in self._inputs[bi].items()},
               "n_cells": torch.full((len(rows),), float(b.n_cells), dtype=torch.float64),
               "n_atoms": b.n_atoms,
               "energy": torch.from_numpy(b.energy[rows])}
        if self.need_geometry:
            out["positions"] = np.ascontiguousarray(b.site_positions[rows])
            out["cells"] = np.ascontiguousarray(b.cells[rows])
            out["layout"] = b.layout
            out["forces"] = None if b.forces is None else torch.from_numpy(np.ascontiguousarray(b.forces[rows]))
            out["stress"] = None if b.stress is None else torch.from_numpy(np.ascontiguousarray(b.stress[rows]))
        return out

    def _keys(self, part: str, size: int, shuffle_epoch: int | None) -> list:
        keys = []
        for bi, rows in enumerate(self._rows[part]):
            if not len(rows):
                continue
            r = rows
            if shuffle_epoch is not None:
                rng = np.random.default_rng([self.seed, shuffle_epoch, bi])
                r = rows[rng.permutation(len(rows))]
            keys += [(bi, r[i:i + size]) for i in range(0, len(r), size)]
        if shuffle_epoch is not None and len(keys) > 1:  # interleave the blocks' batches
            order = np.random.default_rng([self.seed, shuffle_epoch]).permutation(len(keys))
            keys = [keys[i] for i in order]
        return keys

    def _loader(self, keys):
        return DataLoader(self._source, batch_size=None, sampler=keys, collate_fn=_identity, num_workers=0)

    def current_epoch(self) -> int:
        tr = getattr(self, "trainer", None)
        return int(tr.current_epoch) if tr is not None else 0

    def train_dataloader(self):
        epoch = self.current_epoch()
        return self._loader(self._keys("train", self.schedule.size(epoch), epoch))

    def val_dataloader(self):
        return self._loader(self._keys("val", self.eval_batch, None))

    def test_dataloader(self):
        return self._loader(self._keys("test", self.eval_batch, None))

    def loader(self, part: str, batch_size: int | None = None):
        """Unshuffled batches of one part ("train", "val" or "test")."""
        return self._loader(self._keys(part, batch_size or self.eval_batch, None))

    @property
    def n_train(self) -> int:
        return int(sum(len(r) for r in self._rows["train"]))
