"""Training-set generators: configurations of a reference crystal's supercell to label.

Every generator returns a :class:`FrameBatch` — frames of one supercell in its site order
(:class:`~ccdgen.crystal.supercell.Supercell`), each tagged in ``info`` with the family
that drew it and its parameters — so batches concatenate, pass through the uniqueness
filter and are written with :func:`ccdgen.data.io.write_dataset`.

Modules
-------
:mod:`.glazer`       the octahedral tilt systems (Glazer notation), optional relaxation
:mod:`.modes`        symmetry-adapted displacement modes labelled by irrep at their k-point
:mod:`.irreps`       typed irrep tables (CDML labels of Pm-3m, textbook point-group tables)
:mod:`.strain`       strain irreps of the point group, systematic and random strains
:mod:`.nsphere`      random displacement/strain directions on spheres of given radii
:mod:`.unique`       the nearest-neighbour uniqueness filter (KD-trees, O(n log n))
:mod:`.interpolate`  interpolations (and extrapolations) between mapped structures

Randomness: each generator takes a ``numpy.random.Generator``; :func:`rng_for` derives an
independent stream per generator from one seed, so adding a generator to a run does not
change the frames of the others.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import DataError

__all__ = ["FrameBatch", "rng_for", "GENERATOR_IDS"]

#: Stream numbers of the generators (part of the seed of each one's random stream).
GENERATOR_IDS = {"glazer": 1, "modes": 2, "strain": 3, "random_strain": 4, "nsphere": 5,
                 "interpolation": 6}


def rng_for(seed: int, generator: str) -> np.random.Generator:
    """The random stream of one generator: PCG64 seeded by ``(seed, GENERATOR_IDS[generator])``."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), GENERATOR_IDS[generator]]))


@dataclass(frozen=True, eq=False)
class FrameBatch:
    """Frames of one supercell, in its site order.

    Attributes
    ----------
    numbers : (n_atoms,) int64 — atomic numbers (site order)
    positions : (n_frames, n_atoms, 3) float64, Å — Cartesian
    cells : (n_frames, 3, 3) float64, Å — rows are lattice vectors
    infos : tuple of dict, one per frame — ``family`` and the generator's parameters
    """

    numbers: np.ndarray
    positions: np.ndarray
    cells: np.ndarray
    infos: tuple = field(default=())

    def __post_init__(self):
        pos = np.asarray(self.positions, dtype=float).reshape(-1, len(self.numbers), 3)
        cells = np.asarray(self.cells, dtype=float).reshape(-1, 3, 3)
        if len(cells) != len(pos) or len(self.infos) != len(pos):
            raise DataError(f"a FrameBatch needs one cell and one info per frame: {len(pos)} "
                            f"frames, {len(cells)} cells, {len(self.infos)} infos")
        object.__setattr__(self, "numbers", np.asarray(self.numbers, dtype=np.int64))
        object.__setattr__(self, "positions", pos)
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "infos", tuple(dict(i) for i in self.infos))

    @classmethod
    def empty(cls, numbers) -> "FrameBatch":
        n = len(numbers)
        return cls(np.asarray(numbers), np.zeros((0, n, 3)), np.zeros((0, 3, 3)), ())

    @classmethod
    def concatenate(cls, batches) -> "FrameBatch":
        """Frames of several batches of the same atoms, in order."""
        batches = [b for b in batches if b is not None]
        if not batches:
            raise DataError("no frames to concatenate")
        first = batches[0].numbers
        for b in batches[1:]:
            if not np.array_equal(b.numbers, first):
                raise DataError("frames of different supercells or atom orders cannot be "
                                "concatenated", fix="generate every family with the same --supercell")
        return cls(first, np.concatenate([b.positions for b in batches]),
                   np.concatenate([b.cells for b in batches]),
                   tuple(i for b in batches for i in b.infos))

    @classmethod
    def from_atoms(cls, images) -> "FrameBatch":
        """From ``ase.Atoms`` with the same atoms in the same order (``info`` kept)."""
        images = list(images)
        if not images:
            raise DataError("no frames given")
        nums = images[0].numbers
        for i, a in enumerate(images):
            if not np.array_equal(a.numbers, nums):
                raise DataError(f"frame {i} has other atoms (or another order) than frame 0")
        return cls(nums, np.array([a.positions for a in images]), np.array([a.cell.array for a in images]),
                   tuple(dict(a.info) for a in images))

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    def subset(self, idx) -> "FrameBatch":
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        return FrameBatch(self.numbers, self.positions[idx], self.cells[idx],
                          tuple(self.infos[i] for i in idx))

    def to_atoms(self, i: int):
        """Frame ``i`` as a periodic ``ase.Atoms`` (a copy, ``info`` included)."""
        from ase import Atoms

        return Atoms(numbers=self.numbers, positions=self.positions[i].copy(), cell=self.cells[i].copy(),
                     pbc=True, info=dict(self.infos[i]))

    def to_dataset(self):
        """The frames as an unlabelled :class:`~ccdgen.data.dataset.Dataset`."""
        from ..dataset import Dataset

        return Dataset.from_arrays(self.numbers, self.positions, self.cells, infos=list(self.infos))

    def families(self) -> dict:
        """family name → number of frames (in order of first appearance)."""
        out: dict = {}
        for i in self.infos:
            f = i.get("family", "?")
            out[f] = out.get(f, 0) + 1
        return out
