"""Labelled configurations as read-only arrays: :class:`Dataset`, :class:`Frame`, validation.

A :class:`Dataset` holds ``n_frames`` configurations.  Each frame has atomic numbers,
Cartesian positions, a cell, periodic flags, optional labels — energy (eV), forces (eV/Å),
stress (eV/Å³, ASE's sign and Voigt conventions) — and an ``info`` dict (how the frame
was drawn: ``family``, ``phase``, ``tilt_deg``, ...).

Storage: the atoms of all frames are concatenated ("flat" arrays plus ``atom_offsets``).
When every frame has the same atom count — the common case — the stacked views
``positions (n_frames, n_atoms, 3)``, ``forces (n_frames, n_atoms, 3)`` and
``numbers (n_frames, n_atoms)`` are free reshapes of the flat arrays; otherwise the
per-frame views ``ds[i].positions`` are used.  Every array is read-only.

:func:`validate_dataset` checks a dataset (non-finite values, missing labels, mixed
species, duplicate frames) and raises :class:`~ccdgen.errors.DataError` naming the file
and the frame index in that file.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np

from ..errors import DataError

#: Labels a dataset can be asked to carry (``require=`` of :func:`validate_dataset`).
LABELS = ("energy", "forces", "stress")

#: Per-configuration results that ASE keeps in a calculator rather than in ``atoms.info``
#: (``ase.io.extxyz.per_config_properties``).  ``energy`` and ``stress`` have their own
#: arrays here; the others stay in ``info`` and go back to the calculator in ``to_atoms``.
ASE_PER_CONFIG = ("energy", "free_energy", "stress", "dipole", "magmom", "polarization",
                  "dielectric_tensor")

#: The source name of frames built in memory (not read from a file).
MEMORY = "<memory>"

#: Duplicate frames: same numbers, and cell and positions equal to this (Å) entry-wise.
DUPLICATE_TOL = 1e-8

_DUPLICATE_MODES = ("error", "drop", "keep")


class FrameIndexError(DataError, IndexError):
    """A frame index out of range (a :class:`DataError` that is also an ``IndexError``)."""


def _ro(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


def _freeze_info(info: Mapping) -> dict:
    out = {}
    for k, v in info.items():
        if isinstance(v, np.ndarray):
            v = _ro(np.array(v, copy=True))
        out[str(k)] = v
    return out


def voigt_to_full(voigt) -> np.ndarray:
    """ASE Voigt order ``(xx, yy, zz, yz, xz, xy)`` → symmetric ``(3, 3)`` float64."""
    s = np.asarray(voigt, dtype=float)
    xx, yy, zz, yz, xz, xy = s
    return np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])


def full_to_voigt(full) -> np.ndarray:
    """``(3, 3)`` → ASE Voigt ``(6,)``: the upper triangle, as ASE's extxyz reader takes it."""
    s = np.asarray(full, dtype=float)
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def canonical_stress(value, where: str) -> np.ndarray:
    """A stress given as Voigt ``(6,)`` or ``(3, 3)`` → symmetric ``(3, 3)`` float64 eV/Å³.

    A non-symmetric 3×3 is reduced as ASE reduces it (its upper triangle is kept), so the
    result equals ASE's ``get_stress(voigt=False)`` for the same input.
    """
    try:
        s = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{where}: the stress {value!r} is not numeric",
                        fix="give the stress as 6 Voigt values or a 3x3 matrix, eV/Å³") from None
    if s.shape == (3, 3):
        s = full_to_voigt(s)
    if s.shape != (6,):
        raise DataError(f"{where}: the stress has shape {s.shape}, expected (6,) Voigt "
                        "or (3, 3)",
                        why="a stress is a symmetric 3x3 tensor",
                        fix="write it as 9 numbers (extxyz stress=\"...\") or 6 Voigt values")
    return voigt_to_full(s)


# ----------------------------------------------------------------------------- Frame
@dataclass(frozen=True, eq=False)
class Frame:
    """One labelled configuration (a read-only view into a :class:`Dataset`).

    Attributes
    ----------
    numbers : (n_atoms,) int64 — atomic numbers
    positions : (n_atoms, 3) float64, Å — Cartesian
    cell : (3, 3) float64, Å — rows are the lattice vectors (zeros: no cell)
    pbc : (3,) bool
    energy : float, eV — NaN when the frame has no energy
    forces : (n_atoms, 3) float64, eV/Å, or None
    stress : (3, 3) float64, eV/Å³ (ASE sign convention), or None
    info : read-only mapping — the remaining key=value pairs of the frame
    source : str — the file it came from (``"<memory>"`` when built in memory)
    index : int — its frame index in that file (0-based, as ``ase.io.read`` counts)
    """

    numbers: np.ndarray
    positions: np.ndarray
    cell: np.ndarray
    pbc: np.ndarray
    energy: float
    forces: np.ndarray | None
    stress: np.ndarray | None
    info: Mapping
    source: str
    index: int

    @property
    def n_atoms(self) -> int:
        return len(self.numbers)

    @property
    def has_energy(self) -> bool:
        return not np.isnan(self.energy)

    @property
    def symbols(self) -> list[str]:
        from ase.data import chemical_symbols

        return [chemical_symbols[z] for z in self.numbers]

    def describe(self) -> str:
        return _describe(self.source, self.index)

    def to_atoms(self):
        """An ``ase.Atoms`` with a ``SinglePointCalculator`` holding the labels.

        The result matches what ``ase.io.read`` returns for the same extxyz frame:
        ``get_potential_energy()`` eV, ``get_forces()`` eV/Å, ``get_stress()`` Voigt eV/Å³,
        and ``info`` without the per-configuration results ASE keeps in the calculator.
        """
        from ase import Atoms
        from ase.calculators.singlepoint import SinglePointCalculator

        info = {k: (np.array(v) if isinstance(v, np.ndarray) else v) for k, v in self.info.items()}
        results = {}
        for key in ASE_PER_CONFIG:
            if key in info:
                results[key] = info.pop(key)
        atoms = Atoms(numbers=np.array(self.numbers), positions=np.array(self.positions),
                      cell=np.array(self.cell), pbc=np.array(self.pbc), info=info)
        if not np.isnan(self.energy):
            results["energy"] = float(self.energy)
        if self.forces is not None:
            results["forces"] = np.array(self.forces)
        if self.stress is not None:
            results["stress"] = full_to_voigt(self.stress)
        if results:
            atoms.calc = SinglePointCalculator(atoms, **results)
        return atoms


def _describe(source: str, index: int) -> str:
    return f"frame {index}" if source == MEMORY else f"{source}, frame {index}"


# ----------------------------------------------------------------------------- Dataset
class Dataset:
    """Labelled configurations stored as read-only arrays (see the module docstring).

    Build one with :func:`ccdgen.data.io.read_dataset`, :meth:`from_atoms`,
    :meth:`from_arrays` or :meth:`concatenate`.  Indexing: ``ds[i]`` → :class:`Frame`;
    ``ds[a:b]``, ``ds[[i, j]]``, ``ds[mask]`` → a sub-:class:`Dataset`.

    Arrays (``n = n_frames``, ``N = total atoms``):

    - ``atom_offsets`` (n+1,) int64 — frame ``i`` owns flat atoms ``offsets[i]:offsets[i+1]``
    - ``numbers_flat`` (N,) int64; ``positions_flat`` (N, 3) float64 Å;
      ``forces_flat`` (N, 3) float64 eV/Å or None (NaN rows for frames without forces)
    - ``cells`` (n, 3, 3) float64 Å (rows); ``pbc`` (n, 3) bool
    - ``energies`` (n,) float64 eV (NaN where absent); ``has_energy`` (n,) bool
    - ``stresses`` (n, 3, 3) float64 eV/Å³ or None (NaN where absent); ``has_stress`` (n,) bool
    - ``has_forces`` (n,) bool
    - stacked (same atom count only): ``numbers`` (n, n_atoms), ``positions`` and
      ``forces`` (n, n_atoms, 3)

    The constructor is low-level: it takes ownership of the arrays and info dicts passed
    (they are made read-only in place).
    """

    def __init__(self, *, numbers_flat, positions_flat, atom_offsets, cells, pbc, energies,
                 has_energy, forces_flat, has_forces, stresses, has_stress, infos,
                 source_names, source_ids, source_index):
        n = len(cells)
        d = self.__dict__
        d["atom_offsets"] = _ro(np.ascontiguousarray(atom_offsets, dtype=np.int64))
        n_total = int(self.atom_offsets[-1]) if len(self.atom_offsets) else 0
        d["numbers_flat"] = _ro(np.ascontiguousarray(numbers_flat, dtype=np.int64).reshape(n_total))
        d["positions_flat"] = _ro(np.ascontiguousarray(positions_flat, dtype=np.float64).reshape(n_total, 3))
        d["cells"] = _ro(np.ascontiguousarray(cells, dtype=np.float64).reshape(n, 3, 3))
        d["pbc"] = _ro(np.ascontiguousarray(pbc, dtype=bool).reshape(n, 3))
        d["energies"] = _ro(np.ascontiguousarray(energies, dtype=np.float64).reshape(n))
        d["has_energy"] = _ro(np.ascontiguousarray(has_energy, dtype=bool).reshape(n))
        d["has_forces"] = _ro(np.ascontiguousarray(has_forces, dtype=bool).reshape(n))
        d["has_stress"] = _ro(np.ascontiguousarray(has_stress, dtype=bool).reshape(n))
        d["forces_flat"] = (None if forces_flat is None or not self.has_forces.any() else
                            _ro(np.ascontiguousarray(forces_flat, dtype=np.float64).reshape(n_total, 3)))
        d["stresses"] = (None if stresses is None or not self.has_stress.any() else
                         _ro(np.ascontiguousarray(stresses, dtype=np.float64).reshape(n, 3, 3)))
        d["_infos"] = tuple(infos)
        for inf in self._infos:
            for v in inf.values():
                if isinstance(v, np.ndarray):
                    v.setflags(write=False)
        d["source_names"] = tuple(str(s) for s in source_names)
        d["source_ids"] = _ro(np.ascontiguousarray(source_ids, dtype=np.int64).reshape(n))
        d["source_index"] = _ro(np.ascontiguousarray(source_index, dtype=np.int64).reshape(n))
        if len(self.atom_offsets) != n + 1 or len(self._infos) != n:
            raise DataError(f"inconsistent dataset arrays: {n} cells, {len(self.atom_offsets)} "
                            f"offsets, {len(self._infos)} info dicts")
        counts = np.diff(self.atom_offsets)
        d["n_atoms_per_frame"] = _ro(counts)
        d["_uniform"] = bool(n == 0 or np.all(counts == counts[0]))
        d["_hash"] = None

    def __setattr__(self, name, value):
        raise AttributeError(f"Dataset is read-only (cannot set {name!r}); build a new one")

    # ---------------------------------------------------------------- constructors
    @classmethod
    def empty(cls) -> "Dataset":
        """A dataset with no frames."""
        return cls(numbers_flat=np.zeros(0, np.int64), positions_flat=np.zeros((0, 3)),
                   atom_offsets=np.zeros(1, np.int64), cells=np.zeros((0, 3, 3)),
                   pbc=np.zeros((0, 3), bool), energies=np.zeros(0), has_energy=np.zeros(0, bool),
                   forces_flat=None, has_forces=np.zeros(0, bool), stresses=None,
                   has_stress=np.zeros(0, bool), infos=(), source_names=(),
                   source_ids=np.zeros(0, np.int64), source_index=np.zeros(0, np.int64))

    @classmethod
    def from_records(cls, records: Sequence[Mapping], source_names: Sequence[str]) -> "Dataset":
        """Stack per-frame records, checking shapes.

        Each record has ``numbers (n_atoms,)``, ``positions (n_atoms, 3)``, ``cell (3, 3)``,
        ``pbc (3,)``, ``energy`` (float or None), ``forces`` ((n_atoms, 3) or None),
        ``stress`` (Voigt (6,), (3, 3) or None), ``info`` (dict), ``source_id`` (index into
        ``source_names``) and ``index`` (frame index in that source).
        """
        if not records:
            ds = cls.empty()
            return ds
        n = len(records)
        counts = np.zeros(n, np.int64)
        numbers, positions, forces = [], [], []
        cells = np.zeros((n, 3, 3))
        pbc = np.zeros((n, 3), bool)
        energies = np.full(n, np.nan)
        has_e = np.zeros(n, bool)
        has_f = np.zeros(n, bool)
        has_s = np.zeros(n, bool)
        stresses = np.full((n, 3, 3), np.nan)
        infos = []
        for i, r in enumerate(records):
            where = _describe(source_names[r["source_id"]], r["index"])
            z = np.asarray(r["numbers"])
            if z.ndim != 1 or (z.size and not np.issubdtype(z.dtype, np.integer)):
                raise DataError(f"{where}: atomic numbers must be a 1-D integer array, got "
                                f"shape {z.shape} dtype {z.dtype}")
            na = len(z)
            pos = _float_array(r["positions"], (na, 3), "positions", where)
            cell = r.get("cell")
            cell = np.zeros((3, 3)) if cell is None else _float_array(cell, (3, 3), "cell", where)
            p = r.get("pbc")
            try:
                p = np.broadcast_to(np.asarray(False if p is None else p, dtype=bool), (3,))
            except ValueError:
                raise DataError(f"{where}: pbc {p!r} is not 1 or 3 booleans") from None
            counts[i] = na
            numbers.append(z.astype(np.int64))
            positions.append(pos)
            cells[i], pbc[i] = cell, p
            e = r.get("energy")
            if e is not None:
                try:
                    energies[i] = float(np.asarray(e, dtype=float).reshape(()))
                except (TypeError, ValueError):
                    raise DataError(f"{where}: the energy {e!r} is not a number",
                                    fix="give one energy per frame in eV") from None
                has_e[i] = True
            f = r.get("forces")
            if f is not None:
                forces.append(_float_array(f, (na, 3), "forces", where))
                has_f[i] = True
            else:
                forces.append(np.full((na, 3), np.nan))
            s = r.get("stress")
            if s is not None:
                stresses[i] = canonical_stress(s, where)
                has_s[i] = True
            infos.append(_freeze_info(r.get("info") or {}))
        offsets = np.concatenate([[0], np.cumsum(counts)])
        return cls(numbers_flat=np.concatenate(numbers), positions_flat=np.concatenate(positions),
                   atom_offsets=offsets, cells=cells, pbc=pbc, energies=energies, has_energy=has_e,
                   forces_flat=np.concatenate(forces), has_forces=has_f, stresses=stresses,
                   has_stress=has_s, infos=infos, source_names=source_names,
                   source_ids=[r["source_id"] for r in records],
                   source_index=[r["index"] for r in records])

    @classmethod
    def from_atoms(cls, images, source: str = MEMORY) -> "Dataset":
        """From ``ase.Atoms`` (one or an iterable); labels from each one's calculator results.

        Energy from ``calc.results["energy"]`` (eV), forces ``(n_atoms, 3)`` eV/Å, stress
        Voigt ``(6,)`` or ``(3, 3)`` eV/Å³.  Frames are numbered 0, 1, ... in ``source``.
        """
        if hasattr(images, "get_positions"):
            images = [images]
        records = [atoms_record(a, 0, i) for i, a in enumerate(images)]
        return cls.from_records(records, [source])

    @classmethod
    def from_frames(cls, frames: Iterable[Frame]) -> "Dataset":
        """From :class:`Frame` objects (e.g. picked from several datasets)."""
        names: dict[str, int] = {}
        records = []
        for k, fr in enumerate(frames):
            sid = names.setdefault(fr.source, len(names))
            records.append({"numbers": fr.numbers, "positions": fr.positions, "cell": fr.cell,
                            "pbc": fr.pbc, "energy": None if np.isnan(fr.energy) else fr.energy,
                            "forces": fr.forces, "stress": fr.stress, "info": dict(fr.info),
                            "source_id": sid,
                            "index": k if fr.source == MEMORY else fr.index})
        return cls.from_records(records, list(names))

    @classmethod
    def from_arrays(cls, numbers, positions, cells, energies=None, forces=None, stresses=None,
                    pbc=True, infos=None, source: str = MEMORY) -> "Dataset":
        """From stacked arrays of same-size frames.

        ``numbers`` (n_atoms,) or (n_frames, n_atoms) int; ``positions`` (n_frames, n_atoms, 3)
        Å; ``cells`` (n_frames, 3, 3) Å rows; ``energies`` (n_frames,) eV; ``forces``
        (n_frames, n_atoms, 3) eV/Å; ``stresses`` (n_frames, 3, 3) or (n_frames, 6) eV/Å³.
        """
        pos = np.asarray(positions, dtype=float)
        if pos.ndim != 3 or pos.shape[2] != 3:
            raise DataError(f"positions must have shape (n_frames, n_atoms, 3), got {pos.shape}")
        n, na = pos.shape[:2]
        z = np.broadcast_to(np.asarray(numbers), (n, na))
        cells = np.broadcast_to(np.asarray(cells, dtype=float), (n, 3, 3))
        pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (n, 3))
        records = []
        for i in range(n):
            records.append({"numbers": z[i], "positions": pos[i], "cell": cells[i], "pbc": pbc[i],
                            "energy": None if energies is None else energies[i],
                            "forces": None if forces is None else forces[i],
                            "stress": None if stresses is None else stresses[i],
                            "info": {} if infos is None else infos[i], "source_id": 0, "index": i})
        return cls.from_records(records, [source])

    @classmethod
    def concatenate(cls, datasets: Sequence["Dataset"]) -> "Dataset":
        """Frames of several datasets, in order (source names merged)."""
        datasets = [d for d in datasets if d.n_frames]
        if not datasets:
            return cls.empty()
        if len(datasets) == 1:
            return datasets[0]
        names: dict[str, int] = {}
        sids = []
        for d in datasets:
            remap = np.array([names.setdefault(s, len(names)) for s in d.source_names], np.int64)
            sids.append(remap[d.source_ids])
        offsets = [np.zeros(1, np.int64)]
        shift = 0
        for d in datasets:
            offsets.append(d.atom_offsets[1:] + shift)
            shift += int(d.atom_offsets[-1])
        any_f = any(d.forces_flat is not None for d in datasets)
        any_s = any(d.stresses is not None for d in datasets)

        def fl(d):
            return d.forces_flat if d.forces_flat is not None else np.full((len(d.numbers_flat), 3), np.nan)

        def st(d):
            return d.stresses if d.stresses is not None else np.full((d.n_frames, 3, 3), np.nan)

        cat = np.concatenate
        sids = cat(sids)
        index = cat([d.source_index for d in datasets])
        if MEMORY in names:  # frames built in memory are numbered by their new position
            mem = sids == names[MEMORY]
            index[mem] = np.flatnonzero(mem)
        return cls(numbers_flat=cat([d.numbers_flat for d in datasets]),
                   positions_flat=cat([d.positions_flat for d in datasets]),
                   atom_offsets=cat(offsets), cells=cat([d.cells for d in datasets]),
                   pbc=cat([d.pbc for d in datasets]), energies=cat([d.energies for d in datasets]),
                   has_energy=cat([d.has_energy for d in datasets]),
                   forces_flat=cat([fl(d) for d in datasets]) if any_f else None,
                   has_forces=cat([d.has_forces for d in datasets]),
                   stresses=cat([st(d) for d in datasets]) if any_s else None,
                   has_stress=cat([d.has_stress for d in datasets]),
                   infos=[i for d in datasets for i in d._infos], source_names=list(names),
                   source_ids=sids, source_index=index)

    # ---------------------------------------------------------------- sizes and views
    @property
    def n_frames(self) -> int:
        return len(self.cells)

    def __len__(self) -> int:
        return self.n_frames

    @property
    def uniform(self) -> bool:
        """True when every frame has the same atom count (stacked views available)."""
        return self._uniform

    @property
    def n_atoms(self) -> int:
        """The common atom count; a :class:`DataError` when frames differ."""
        self._need_uniform("n_atoms")
        return int(self.n_atoms_per_frame[0]) if self.n_frames else 0

    def _need_uniform(self, what: str):
        if not self._uniform:
            sizes = sorted(set(self.n_atoms_per_frame.tolist()))
            raise DataError(f"'{what}' needs frames of one size, but they have "
                            f"{', '.join(map(str, sizes[:5]))}{' ...' if len(sizes) > 5 else ''} atoms",
                            fix="use the per-frame views ds[i].positions, or the flat arrays "
                                "with ds.atom_offsets")

    def _stacked(self, flat, what):
        self._need_uniform(what)
        n = self.n_frames
        na = int(self.n_atoms_per_frame[0]) if n else 0
        return flat.reshape((n, na) + flat.shape[1:])

    @property
    def numbers(self) -> np.ndarray:
        """(n_frames, n_atoms) int64 — stacked atomic numbers (same-size frames only)."""
        return self._stacked(self.numbers_flat, "numbers")

    @property
    def positions(self) -> np.ndarray:
        """(n_frames, n_atoms, 3) float64, Å (same-size frames only)."""
        return self._stacked(self.positions_flat, "positions")

    @property
    def forces(self) -> np.ndarray | None:
        """(n_frames, n_atoms, 3) float64, eV/Å; NaN rows where ``has_forces`` is False; None
        when no frame has forces (same-size frames only)."""
        return None if self.forces_flat is None else self._stacked(self.forces_flat, "forces")

    @property
    def volumes(self) -> np.ndarray:
        """(n_frames,) float64, Å³ — |det(cell)|."""
        return np.abs(np.linalg.det(self.cells)) if self.n_frames else np.zeros(0)

    def info(self, i: int) -> Mapping:
        """The read-only info mapping of frame ``i``."""
        return MappingProxyType(self._infos[self._index(i)])

    def info_values(self, key: str, default=None) -> list:
        """``info[key]`` of every frame (``default`` where absent), length n_frames."""
        return [inf.get(key, default) for inf in self._infos]

    def families(self) -> dict:
        """How many frames of each ``info["family"]`` (frames without one under ``None``),
        sorted by family name."""
        counts: dict = {}
        for fam in self.info_values("family"):
            counts[fam] = counts.get(fam, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (kv[0] is None, str(kv[0]))))

    def source_of(self, i: int) -> str:
        """Where frame ``i`` came from: ``"<file>, frame <k>"``."""
        i = self._index(i)
        return _describe(self.source_names[self.source_ids[i]], int(self.source_index[i]))

    def _index(self, i) -> int:
        n = self.n_frames
        try:
            i = int(i)
        except (TypeError, ValueError):
            raise FrameIndexError(f"frame index {i!r} is not an integer") from None
        if not -n <= i < n:
            raise FrameIndexError(f"frame index {i} is out of range for a dataset of {n} frames")
        return i % n if n else i

    def frame(self, i: int) -> Frame:
        """Frame ``i`` as a read-only :class:`Frame` view."""
        i = self._index(i)
        a, b = self.atom_offsets[i], self.atom_offsets[i + 1]
        return Frame(
            numbers=self.numbers_flat[a:b], positions=self.positions_flat[a:b],
            cell=self.cells[i], pbc=self.pbc[i], energy=float(self.energies[i]),
            forces=self.forces_flat[a:b] if self.has_forces[i] else None,
            stress=self.stresses[i] if self.has_stress[i] else None,
            info=MappingProxyType(self._infos[i]),
            source=self.source_names[self.source_ids[i]], index=int(self.source_index[i]))

    def to_atoms(self, i: int):
        """Frame ``i`` as ``ase.Atoms`` with a ``SinglePointCalculator`` (see :meth:`Frame.to_atoms`)."""
        return self.frame(i).to_atoms()

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.frame(key)
        return self.subset(key)

    def __iter__(self):
        for i in range(self.n_frames):
            yield self.frame(i)

    def __repr__(self) -> str:
        size = (f"{self.n_atoms} atoms each" if self._uniform and self.n_frames else
                "varying atom counts" if self.n_frames else "empty")
        labels = [name for name, m in (("energy", self.has_energy), ("forces", self.has_forces),
                                       ("stress", self.has_stress)) if m.any()]
        return (f"Dataset({self.n_frames} frames, {size}, labels: {', '.join(labels) or 'none'}, "
                f"from {', '.join(self.source_names) or 'nothing'})")

    # ---------------------------------------------------------------- subsets
    def _frame_indices(self, idx) -> np.ndarray:
        n = self.n_frames
        if isinstance(idx, slice):
            return np.arange(n)[idx]
        a = np.asarray(idx)
        if a.dtype == bool:
            if a.shape != (n,):
                raise FrameIndexError(f"a boolean frame mask must have shape ({n},), got {a.shape}")
            return np.flatnonzero(a)
        if a.size == 0:
            return np.zeros(0, np.int64)
        if not np.issubdtype(a.dtype, np.integer):
            raise FrameIndexError(f"frame indices must be integers, a slice or a boolean mask, "
                                  f"got dtype {a.dtype}")
        a = a.reshape(-1).astype(np.int64)
        bad = (a < -n) | (a >= n)
        if bad.any():
            raise FrameIndexError(f"frame index {int(a[bad][0])} is out of range for a dataset "
                                  f"of {n} frames")
        return a % n

    def subset(self, idx) -> "Dataset":
        """The frames ``idx`` (int array, slice or boolean mask), in that order."""
        sel = self._frame_indices(idx)
        counts = self.n_atoms_per_frame[sel]
        starts = self.atom_offsets[:-1][sel]
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        atom_idx = np.repeat(starts - offsets[:-1], counts) + np.arange(offsets[-1])
        return Dataset(
            numbers_flat=self.numbers_flat[atom_idx], positions_flat=self.positions_flat[atom_idx],
            atom_offsets=offsets, cells=self.cells[sel], pbc=self.pbc[sel],
            energies=self.energies[sel], has_energy=self.has_energy[sel],
            forces_flat=None if self.forces_flat is None else self.forces_flat[atom_idx],
            has_forces=self.has_forces[sel],
            stresses=None if self.stresses is None else self.stresses[sel],
            has_stress=self.has_stress[sel], infos=[self._infos[i] for i in sel],
            source_names=self.source_names, source_ids=self.source_ids[sel],
            source_index=self.source_index[sel])

    # ---------------------------------------------------------------- identity
    def content_hash(self) -> str:
        """SHA-256 (hex) of the canonical arrays: atom counts, numbers, positions, cells,
        pbc and the labels (energies, forces, stresses with their presence masks).

        Independent of file names, ``info`` and the process (no Python ``hash``): equal for
        the same data read twice or from a renamed copy; any change of a coordinate or label
        changes it.  ``-0.0`` and ``0.0`` hash alike, as do all NaNs.
        """
        if self._hash is None:
            h = hashlib.sha256(b"ccdgen.Dataset/v1\0")

            def put(name, a):
                if a is None:
                    h.update(f"{name}:none\0".encode())
                    return
                a = np.ascontiguousarray(a)
                if a.dtype.kind == "f":
                    a = np.where(np.isnan(a), np.nan, a + 0.0).astype("<f8")
                elif a.dtype.kind in "iu":
                    a = a.astype("<i8")
                elif a.dtype.kind == "b":
                    a = a.astype("u1")
                h.update(f"{name}:{a.dtype.str}:{a.shape}\0".encode())
                h.update(a.tobytes())

            put("n_atoms", self.n_atoms_per_frame)
            put("numbers", self.numbers_flat)
            put("positions", self.positions_flat)
            put("cells", self.cells)
            put("pbc", self.pbc)
            put("has_energy", self.has_energy)
            put("energies", np.where(self.has_energy, self.energies, np.nan))
            put("has_forces", self.has_forces)
            put("forces", self.forces_flat)
            put("has_stress", self.has_stress)
            put("stresses", self.stresses)
            self.__dict__["_hash"] = h.hexdigest()
        return self._hash

    def signature(self) -> str:
        """Same as :meth:`content_hash` (the stable signature caches key on)."""
        return self.content_hash()


def atoms_record(atoms, source_id: int, index: int) -> dict:
    """A :meth:`Dataset.from_records` record from an ``ase.Atoms`` and its calculator results."""
    results = dict(getattr(atoms.calc, "results", None) or {}) if atoms.calc is not None else {}
    info = dict(atoms.info)
    for key in ASE_PER_CONFIG:
        if key not in ("energy", "stress") and key in results:
            info[key] = results[key]
    return {"numbers": atoms.numbers, "positions": atoms.positions, "cell": atoms.cell.array,
            "pbc": atoms.pbc, "energy": results.get("energy"), "forces": results.get("forces"),
            "stress": results.get("stress"), "info": info, "source_id": source_id, "index": index}


def _float_array(value, shape, what, where) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: {what} are not numeric") from None
    if a.shape != shape:
        raise DataError(f"{where}: {what} have shape {a.shape}, expected {shape}",
                        why=f"{what} need one row of 3 numbers per atom" if what != "cell" else
                        "a cell is 3 lattice vectors of 3 numbers",
                        fix=f"check how the file stores {what}")
    return a


# ----------------------------------------------------------------------------- validation
def _frames_named(ds: Dataset, frames: np.ndarray, limit: int = 5) -> str:
    first = ds.source_of(int(frames[0]))
    if len(frames) == 1:
        return first
    more = ", ".join(ds.source_of(int(f)) for f in frames[1:limit])
    tail = f" and {len(frames) - limit} more" if len(frames) > limit else ""
    return f"{first} (also {more}{tail})"


def _check_finite(ds: Dataset) -> None:
    frame_of_atom = np.repeat(np.arange(ds.n_frames), ds.n_atoms_per_frame)
    checks = [
        ("positions", ~np.isfinite(ds.positions_flat).all(axis=1), True),
        ("cell", ~np.isfinite(ds.cells).all(axis=(1, 2)), False),
        ("energy", ds.has_energy & ~np.isfinite(ds.energies), False),
    ]
    if ds.forces_flat is not None:
        checks.append(("forces", ~np.isfinite(ds.forces_flat).all(axis=1)
                       & ds.has_forces[frame_of_atom], True))
    if ds.stresses is not None:
        checks.append(("stress", ~np.isfinite(ds.stresses).all(axis=(1, 2)) & ds.has_stress, False))
    for what, bad, per_atom in checks:
        if not bad.any():
            continue
        if per_atom:
            atom = int(np.flatnonzero(bad)[0])
            frames = np.unique(frame_of_atom[bad])
            local = atom - int(ds.atom_offsets[frame_of_atom[atom]])
            detail = f" (atom {local})"
        else:
            frames = np.flatnonzero(bad)
            detail = ""
        verb = {"positions": "contain", "forces": "contain", "energy": "is"}.get(what, "contains")
        raise DataError(f"{_frames_named(ds, frames)}: the {what} {verb} NaN or inf{detail}",
                        why="a non-finite value poisons every fit and feature it touches",
                        fix="relabel or remove that frame (its index is the frame's position "
                            "in the file, counting from 0)")


def _check_required(ds: Dataset, require) -> None:
    require = (require,) if isinstance(require, str) else tuple(require or ())
    for label in require:
        if label not in LABELS:
            raise DataError(f"unknown required label {label!r}",
                            fix=f"choose among {', '.join(LABELS)}")
        have = {"energy": ds.has_energy, "forces": ds.has_forces, "stress": ds.has_stress}[label]
        missing = np.flatnonzero(~have)
        if missing.size:
            raise DataError(f"{_frames_named(ds, missing)}: no {label}",
                            why=f"the {label} was asked for (require={require!r}) and "
                                f"{missing.size} of {ds.n_frames} frames lack it",
                            fix=f"label those frames, or drop '{label}' from require")


def _formula(symbols_counts) -> str:
    return "".join(f"{s}{c if c != 1 else ''}" for s, c in symbols_counts)


def _check_composition(ds: Dataset, composition) -> None:
    from ase.data import atomic_numbers, chemical_symbols

    n = ds.n_frames
    if n == 0:
        return
    zmax = max(int(ds.numbers_flat.max(initial=0)), 0) + 1
    if ds.uniform and np.array_equal(ds.numbers.min(axis=0), ds.numbers.max(axis=0)):
        # every frame has the species of frame 0 in the same order (the common case)
        counts = np.broadcast_to(np.bincount(ds.numbers[0], minlength=zmax), (n, zmax))
    else:
        frame_of_atom = np.repeat(np.arange(n), ds.n_atoms_per_frame)
        counts = np.bincount(frame_of_atom * zmax + ds.numbers_flat,
                             minlength=n * zmax).reshape(n, zmax)
    if composition is None:
        ref = counts[0]
        ref_name = f"that of {ds.source_of(0)}"
    else:
        if isinstance(composition, str):
            from ase.formula import Formula

            try:
                comp = Formula(composition).count()
            except ValueError as exc:
                raise DataError(f"composition {composition!r} is not a chemical formula: {exc}") from None
        else:
            comp = dict(composition)
        zs = {}
        for sym, c in comp.items():
            if sym not in atomic_numbers or int(c) != c or c < 0:
                raise DataError(f"composition entry {sym}: {c} is not an element with a count",
                                fix="give e.g. 'CsPbBr3' or {'Cs': 1, 'Pb': 1, 'Br': 3}")
            zs[atomic_numbers[sym]] = int(c)
        width = max(zmax, max(zs, default=0) + 1)
        if width > zmax:
            counts = np.pad(counts, ((0, 0), (0, width - zmax)))
            zmax = width
        ref = np.zeros(zmax, np.int64)
        for z, c in zs.items():
            ref[z] = c
        ref_name = f"the reference {composition if isinstance(composition, str) else dict(comp)}"
    g_ref = np.gcd.reduce(ref) or 1
    red_ref = ref // g_ref
    g = np.gcd.reduce(counts, axis=1)
    g[g == 0] = 1
    bad = np.flatnonzero(np.any(counts // g[:, None] != red_ref[None, :], axis=1))
    if bad.size == 0:
        return
    j = int(bad[0])
    have = counts[j]
    zs = np.flatnonzero(have | red_ref)
    have_s = _formula((chemical_symbols[z], int(have[z])) for z in zs if have[z])
    units = have.sum() / max(red_ref.sum(), 1)
    if units == int(units) and units > 0:
        expect = red_ref * int(units)
        diffs = ", ".join(f"{chemical_symbols[z]} {int(have[z])} where {int(expect[z])} expected"
                          for z in zs if have[z] != expect[z])
    else:
        diffs = (f"{int(have.sum())} atoms is no whole number of {int(red_ref.sum())}-atom "
                 "formula units")
    raise DataError(f"{_frames_named(ds, bad)}: composition {have_s} differs from {ref_name} "
                    f"({diffs})",
                    why="a dataset describes one compound; mixed species break the mapping "
                        "onto the reference crystal",
                    fix="remove those frames, or pass the intended composition")


def find_duplicates(ds: Dataset, tol: float = DUPLICATE_TOL) -> np.ndarray:
    """Pairs of duplicate frames: same atomic numbers (in order) and cell and positions
    equal entry-wise to ``tol`` Å.

    Returns ``(n_pairs, 2)`` int64 rows ``(earlier, later)``, one per later frame (its first
    earlier match), sorted by the later index.  Cost O(n log n): frames are sorted by a fixed
    linear projection of their coordinates and only neighbours within the projection bound
    are compared.
    """
    n = ds.n_frames
    if n < 2:
        return np.zeros((0, 2), np.int64)
    counts = ds.n_atoms_per_frame
    golden = 0.6180339887498949
    w_cell = 1.0 + (np.arange(9) * golden * 0.5) % 1.0
    cells9 = ds.cells.reshape(n, 9)
    if ds.uniform:
        na = int(counts[0])
        w = 1.0 + (np.arange(3 * na) * golden) % 1.0
        pos = ds.positions_flat.reshape(n, 3 * na)
        s = pos @ w + cells9 @ w_cell
        mag = np.abs(pos) @ w + np.abs(cells9) @ w_cell
        wsum = np.full(n, w.sum() + w_cell.sum())
    else:
        frame_of_atom = np.repeat(np.arange(n), counts)
        local = np.arange(len(ds.numbers_flat)) - ds.atom_offsets[:-1][frame_of_atom]
        w_atom = 1.0 + ((3 * local[:, None] + np.arange(3)) * golden) % 1.0
        s = (np.bincount(frame_of_atom, weights=(ds.positions_flat * w_atom).sum(1), minlength=n)
             + cells9 @ w_cell)
        mag = (np.bincount(frame_of_atom, weights=np.abs(ds.positions_flat * w_atom).sum(1),
                           minlength=n) + np.abs(cells9) @ w_cell)
        wsum = np.bincount(frame_of_atom, weights=w_atom.sum(1), minlength=n) + w_cell.sum()
    best = np.full(n, -1, np.int64)
    for na in np.unique(counts):
        grp = np.flatnonzero(counts == na)
        if len(grp) < 2:
            continue
        order = grp[np.argsort(s[grp], kind="stable")]
        ss = s[order]
        bound = tol * wsum[order] + 1e-12 * mag[order] + 1e-300
        hi = np.searchsorted(ss, ss + bound.max(), side="right")
        reach = hi - np.arange(len(order)) - 1
        if not reach.any():
            continue
        p = np.repeat(np.arange(len(order)), reach)
        q = p + 1 + (np.arange(len(p)) - np.repeat(np.cumsum(reach) - reach, reach))
        a, b = order[p], order[q]
        for c0 in range(0, len(a), 20000):
            ia, ib = a[c0:c0 + 20000], b[c0:c0 + 20000]
            ok = np.all(np.abs(ds.cells[ia] - ds.cells[ib]) <= tol, axis=(1, 2))
            ia, ib = ia[ok], ib[ok]
            if len(ia) == 0:
                continue
            sa = ds.atom_offsets[ia][:, None] + np.arange(na)
            sb = ds.atom_offsets[ib][:, None] + np.arange(na)
            ok = (np.all(ds.numbers_flat[sa] == ds.numbers_flat[sb], axis=1)
                  & np.all(np.abs(ds.positions_flat[sa] - ds.positions_flat[sb]) <= tol, axis=(1, 2)))
            lo, late = np.minimum(ia[ok], ib[ok]), np.maximum(ia[ok], ib[ok])
            for e, l in zip(lo.tolist(), late.tolist()):
                if best[l] < 0 or e < best[l]:
                    best[l] = e
    later = np.flatnonzero(best >= 0)
    return np.stack([best[later], later], axis=1) if later.size else np.zeros((0, 2), np.int64)


def validate_dataset(ds: Dataset, require=("energy",), *, composition=None,
                     check_composition: bool = True, duplicates: str = "error",
                     duplicate_tol: float = DUPLICATE_TOL) -> Dataset:
    """Check ``ds`` and return it (or, with ``duplicates="drop"``, it without repeats).

    Raises :class:`DataError` naming the file and frame index for: NaN/inf positions, cells,
    energies, forces or stresses; a label in ``require`` (subset of ``"energy"``,
    ``"forces"``, ``"stress"``) missing in some frame; a frame whose reduced composition
    differs from the first frame's (or from ``composition``, a formula such as ``"CsPbBr3"``
    or a mapping symbol → count; frames may hold any whole number of formula units);
    duplicate frames (:func:`find_duplicates`) when ``duplicates="error"``.
    ``duplicates="drop"`` keeps the first of each set (with a warning), ``"keep"`` allows them.
    """
    if duplicates not in _DUPLICATE_MODES:
        raise DataError(f"duplicates={duplicates!r} is not an option",
                        fix=f"choose one of {', '.join(_DUPLICATE_MODES)}")
    _check_finite(ds)
    _check_required(ds, require)
    if check_composition:
        _check_composition(ds, composition)
    if duplicates == "keep":
        return ds
    pairs = find_duplicates(ds, duplicate_tol)
    if len(pairs) == 0:
        return ds
    if duplicates == "error":
        e, l = (int(x) for x in pairs[0])
        more = f" ({len(pairs) - 1} more frames repeat earlier ones)" if len(pairs) > 1 else ""
        raise DataError(f"{ds.source_of(l)} duplicates {ds.source_of(e)}: same species, cell and "
                        f"positions to {duplicate_tol:g} Å{more}",
                        why="repeated frames weigh a configuration twice and leak between "
                            "training and test splits",
                        fix="remove the repeat, pass duplicates='drop' to keep the first of "
                            "each, or duplicates='keep' where repeats are intended (e.g. two "
                            "cuts through the same point)")
    keep = np.ones(ds.n_frames, bool)
    keep[pairs[:, 1]] = False
    warnings.warn(f"dropped {len(pairs)} duplicate frame(s), first {ds.source_of(int(pairs[0, 1]))} "
                  f"(= {ds.source_of(int(pairs[0, 0]))})", stacklevel=2)
    return ds.subset(keep)
