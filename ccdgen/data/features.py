"""Featurized datasets: every frame mapped onto the reference and turned into cluster
features, in batches, in parallel, with progress, cached on disk and resumable.

:func:`featurize_dataset` maps all frames (vectorized, :func:`ccdgen.crystal.mapping.map_frames`),
groups them by supercell, and computes the cluster features chunk by chunk with the
crystal kernels (threads split the frames of a chunk).  Each finished chunk is written to
the cache at once (temp file + ``os.replace``), so a killed run keeps what it finished and
the next run computes only the missing chunks.  The cache key is the dataset's content
hash, the featurizer's signature and the chunk size — nothing else.

A :class:`FeatureSet` holds one :class:`FeatureBlock` per supercell (frames of one supercell
share a cluster layout), plus the labels in site order for training on forces and stress.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError

CACHE_KIND = "features"
#: Frames per cached chunk (part of the cache key: changing it recomputes).
CHUNK = 1024


@dataclass(frozen=True, eq=False)
class FeatureBlock:
    """Frames of one supercell with their features and labels.

    Attributes (``n`` frames of ``N`` atoms; site order = the supercell's site order)
    ----------
    layout : ccdgen.crystal.featurizer.Layout
    frames : (n,) int64 — indices of the frames in the dataset
    clusters : dict orbit name -> (n, n_clusters, F) float64 — cluster features φ
    site_positions : (n, N, 3) float64 Å — unwrapped positions, site order
    cells : (n, 3, 3) float64 Å
    atom_of_site : (n, N) int64 — the dataset atom on each site
    energy : (n,) float64 eV (NaN where absent)
    forces : (n, N, 3) float64 eV/Å in site order, or None
    stress : (n, 3, 3) float64 eV/Å³ (ASE convention), or None
    """

    layout: object
    frames: np.ndarray
    clusters: dict
    site_positions: np.ndarray
    cells: np.ndarray
    atom_of_site: np.ndarray
    energy: np.ndarray
    forces: np.ndarray | None
    stress: np.ndarray | None

    @property
    def n_frames(self) -> int:
        return len(self.frames)

    @property
    def n_atoms(self) -> int:
        return self.layout.n_atoms

    @property
    def n_cells(self) -> int:
        return self.layout.supercell.n_cells

    @property
    def volumes(self) -> np.ndarray:
        return np.abs(np.linalg.det(self.cells))

    def take(self, rows) -> "FeatureBlock":
        """A block of the frames at positions ``rows`` of this block."""
        rows = np.asarray(rows, dtype=np.int64)
        return FeatureBlock(self.layout, self.frames[rows], {k: v[rows] for k, v in self.clusters.items()},
                            self.site_positions[rows], self.cells[rows], self.atom_of_site[rows],
                            self.energy[rows], None if self.forces is None else self.forces[rows],
                            None if self.stress is None else self.stress[rows])


@dataclass(frozen=True, eq=False)
class FeatureSet:
    """A featurized dataset: blocks of frames per supercell (see :class:`FeatureBlock`).

    ``families`` and ``infos`` follow the dataset's frame order (index with ``frames``).
    """

    blocks: tuple
    n_frames: int
    featurizer_signature: str
    dataset_hash: str
    families: tuple = field(default=())

    def subset(self, frames) -> "FeatureSet":
        """The frames with these dataset indices (blocks keep their own order)."""
        want = np.zeros(self.n_frames, dtype=bool)
        want[np.asarray(frames, dtype=np.int64)] = True
        blocks = []
        for b in self.blocks:
            rows = np.flatnonzero(want[b.frames])
            if len(rows):
                blocks.append(b.take(rows))
        return FeatureSet(tuple(blocks), self.n_frames, self.featurizer_signature, self.dataset_hash, self.families)

    @property
    def frames(self) -> np.ndarray:
        return np.concatenate([b.frames for b in self.blocks]) if self.blocks else np.zeros(0, np.int64)

    def __len__(self) -> int:
        return int(sum(b.n_frames for b in self.blocks))


def _cache_folder(key: str) -> Path:
    from ..cache import cache_root

    return cache_root() / CACHE_KIND / key


def _atomic_savez(path: Path, arrays: dict) -> None:
    from ..fileio import atomic_path

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, **arrays)


def _load_chunk(path: Path, names, expect_frames: int) -> dict | None:
    try:
        with np.load(path) as z:
            out = {n: z[n] for n in names}
    except Exception:  # truncated or corrupt: recompute
        return None
    if any(v.shape[0] != expect_frames or not np.all(np.isfinite(v)) for v in out.values()):
        return None
    return out


def featurize_dataset(featurizer, dataset, *, cache: bool = True, progress: bool | None = None,
                      chunk: int = CHUNK, on_error: str = "raise") -> FeatureSet:
    """Map and featurize every frame of ``dataset`` with ``featurizer``.

    Parameters
    ----------
    featurizer : ccdgen.crystal.featurizer.CrystalFeaturizer
    dataset : ccdgen.data.dataset.Dataset
    cache : keep finished chunks on disk (``<cache>/features/<key>/``) and reuse them
    progress : show a progress bar (None: only on a terminal)
    chunk : frames per chunk (one cache file each)
    on_error : "raise" — a frame that does not map onto the reference raises a
        MappingError naming it; "skip" — such frames are left out (listed in a warning)

    Returns
    -------
    FeatureSet
    """
    from tqdm.auto import tqdm

    if len(dataset) == 0:
        raise DataError("the dataset has no frames", fix="check the file and the index/slice")
    if not dataset.uniform:
        counts = sorted(set(dataset.n_atoms_per_frame.tolist()))
        parts = [featurize_dataset(featurizer, dataset[np.flatnonzero(dataset.n_atoms_per_frame == n)],
                                   cache=cache, progress=progress, chunk=chunk, on_error=on_error)
                 for n in counts]
        offsets = [np.flatnonzero(dataset.n_atoms_per_frame == n) for n in counts]
        blocks = []
        for part, idx in zip(parts, offsets):
            for b in part.blocks:
                blocks.append(FeatureBlock(b.layout, idx[b.frames], b.clusters, b.site_positions, b.cells,
                                           b.atom_of_site, b.energy, b.forces, b.stress))
        return FeatureSet(tuple(blocks), len(dataset), featurizer.signature(), dataset.content_hash(),
                          tuple(dataset.info_values("family")))
    pos, cells, numbers = dataset.positions, dataset.cells, dataset.numbers
    labels = [f"{i} ({dataset.source_of(i)})" for i in range(len(dataset))]
    maps = featurizer.map(pos, cells, numbers, frames=labels, on_error=on_error)
    if on_error == "skip" and maps.errors:
        import warnings

        warnings.warn(f"{len(maps.errors)} frame(s) do not map onto the reference and were left out: "
                      + "; ".join(f"{f}: {m}" for f, m in maps.errors[:5]), stacklevel=2)
    site_pos = maps.site_positions(pos, cells)
    forces_site = None
    if dataset.forces is not None:
        f = np.array(dataset.forces)
        forces_site = np.take_along_axis(f, np.maximum(maps.atom_of_site, 0)[..., None], axis=1)
    signature = featurizer.signature()
    data_hash = dataset.content_hash()
    key = hashlib.sha256(json.dumps({"stage": "features/1", "dataset": data_hash, "featurizer": signature,
                                     "chunk": int(chunk), "on_error": on_error}).encode()).hexdigest()
    folder = _cache_folder(key) if cache else None
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            from ..cache import _unwritable

            raise _unwritable(folder.parent, exc) from None
    blocks = []
    total = int(maps.ok.sum())
    bar = tqdm(total=total, desc="featurize", unit="frame", disable=(not progress) if progress is not None else None,
               leave=False)
    try:
        for si, sc in enumerate(maps.supercells):
            rows = np.flatnonzero((maps.supercell_index == si) & maps.ok)
            if not len(rows):
                continue
            layout = featurizer.layout(sc)
            feats = {n: np.empty((len(rows), layout.n_clusters(n), len(featurizer.feature_names[n])))
                     for n in featurizer.orbits}
            for c0 in range(0, len(rows), chunk):
                sel = rows[c0:c0 + chunk]
                path = folder / f"sc{si}-{c0:08d}.npz" if folder is not None else None
                got = _load_chunk(path, featurizer.orbits, len(sel)) if path is not None and path.exists() else None
                if got is None:
                    got = featurizer.compute(site_pos[sel], cells[sel], layout)
                    if path is not None:
                        _atomic_savez(path, got)
                for n in featurizer.orbits:
                    feats[n][c0:c0 + len(sel)] = got[n]
                bar.update(len(sel))
            blocks.append(FeatureBlock(
                layout, rows, feats, site_pos[rows], np.array(cells[rows]), maps.atom_of_site[rows],
                np.array(dataset.energies[rows]),
                None if forces_site is None else forces_site[rows],
                None if dataset.stresses is None else np.array(dataset.stresses[rows])))
    finally:
        bar.close()
    if folder is not None:
        (folder / "meta.json").write_text(json.dumps({"key": key, "kind": CACHE_KIND, "n_frames": len(dataset),
                                                      "describe": f"features of {len(dataset)} frames",
                                                      "featurizer": signature, "dataset": data_hash, "files": {}}))
    return FeatureSet(tuple(blocks), len(dataset), signature, data_hash, tuple(dataset.info_values("family")))
