"""Reference crystals and free clusters: loading and validation.

A :class:`Crystal` is the reference structure of Eq. (1): a lattice (rows are the lattice
vectors, Å), species and fractional coordinates.  It is read from an inline description
or any file ASE reads (CIF, POSCAR, extxyz, ...).  Free clusters come from XYZ files.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import StructureError

#: Sites closer than this (Å) are "collapsed" / duplicates.
MIN_SEPARATION = 0.1


@dataclass(frozen=True, eq=False)
class Crystal:
    """A periodic reference structure.

    Attributes
    ----------
    cell : (3, 3) float64, Å — rows are the lattice vectors a1, a2, a3
    species : tuple of str, length n_basis
    frac : (n_basis, 3) float64 — fractional coordinates in [0, 1)
    """

    cell: np.ndarray
    species: tuple
    frac: np.ndarray

    @classmethod
    def from_arrays(cls, cell, species, frac, source: str = "inline crystal") -> "Crystal":
        cell = np.asarray(cell, dtype=float)
        frac = np.asarray(frac, dtype=float)
        species = tuple(str(s) for s in species)
        if cell.shape != (3, 3):
            raise StructureError(
                f"{source}: the lattice must be 3 vectors of 3 numbers, got shape {cell.shape}",
                fix="give 'lattice' as [[ax, ay, az], [bx, by, bz], [cx, cy, cz]] in Å",
            )
        if frac.ndim != 2 or frac.shape[1] != 3 or len(frac) != len(species):
            raise StructureError(
                f"{source}: {len(species)} species but positions of shape {frac.shape}",
                fix="give one [x, y, z] fractional position per species entry",
            )
        if len(species) == 0:
            raise StructureError(f"{source}: the crystal has no sites")
        if not (np.all(np.isfinite(cell)) and np.all(np.isfinite(frac))):
            raise StructureError(f"{source}: lattice or positions contain NaN or inf")
        vol = float(np.linalg.det(cell))
        if abs(vol) < 1e-6:
            raise StructureError(
                f"{source}: the lattice vectors are linearly dependent (volume {vol:.3g} Å³)",
                fix="check the lattice; a crystal needs three independent vectors",
            )
        frac = np.mod(frac, 1.0)
        frac[np.isclose(frac, 1.0, atol=1e-10)] = 0.0
        crystal = cls(cell, species, frac)
        crystal._check_separation(source)
        return crystal

    @classmethod
    def from_atoms(cls, atoms, source: str = "ASE Atoms") -> "Crystal":
        if not all(atoms.pbc):
            raise StructureError(
                f"{source}: the structure is not periodic in all three directions",
                why="a reference crystal needs a lattice",
                fix="use a periodic structure file (CIF, POSCAR, extxyz with a Lattice), or "
                "`ccdgen inspect file.xyz` for a free cluster",
            )
        return cls.from_arrays(atoms.cell.array, atoms.get_chemical_symbols(),
                               atoms.get_scaled_positions(wrap=False), source)

    @classmethod
    def read(cls, path) -> "Crystal":
        """Read any periodic structure file ASE understands (format from the extension)."""
        return cls.from_atoms(read_atoms(path), source=str(path))

    def to_atoms(self):
        from ase import Atoms

        return Atoms(self.species, scaled_positions=self.frac, cell=self.cell, pbc=True)

    @property
    def n_basis(self) -> int:
        return len(self.species)

    @property
    def positions(self) -> np.ndarray:
        """(n_basis, 3) Cartesian positions, Å."""
        return self.frac @ self.cell

    def cartesian(self, frac) -> np.ndarray:
        """Fractional (..., 3) → Cartesian (..., 3) Å."""
        return np.asarray(frac, float) @ self.cell

    def nearest_neighbour_distance(self) -> float:
        """Shortest distance between two sites of the crystal (Å)."""
        from ase.neighborlist import neighbor_list

        cutoff = float(np.max(np.linalg.norm(self.cell, axis=1)))
        d = neighbor_list("d", self.to_atoms(), cutoff)
        return float(d.min())

    def signature(self) -> str:
        h = hashlib.sha256()
        h.update(np.round(self.cell, 8).tobytes())
        h.update(np.round(self.frac, 8).tobytes())
        h.update("|".join(self.species).encode())
        return h.hexdigest()

    def _check_separation(self, source: str) -> None:
        atoms = self.to_atoms()
        if len(atoms) < 2:
            return
        from ase.neighborlist import neighbor_list

        i, j, d = neighbor_list("ijd", atoms, MIN_SEPARATION)
        if len(i):
            k = int(np.argmin(d))
            raise StructureError(
                f"{source}: sites {i[k]} ({self.species[i[k]]}) and {j[k]} "
                f"({self.species[j[k]]}) are only {d[k]:.3g} Å apart",
                why="collapsed or duplicate sites make the structure and its symmetry ill-defined",
                fix="remove the duplicate site or fix its coordinates",
            )


def read_atoms(path):
    """Read one structure with ASE; unreadable files raise :class:`StructureError`."""
    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file {path} does not exist")
    try:
        from ase.io import read

        return read(str(path))
    except Exception as exc:  # ASE raises many different types
        raise StructureError(
            f"cannot read structure file {path}: {type(exc).__name__}: {exc}",
            why="ASE could not parse it in the format implied by its name",
            fix="check the file, or rename it so its extension names the format "
            "(.cif, POSCAR, .vasp, .extxyz, .xyz)",
        ) from exc


def validate_cluster_positions(positions, species, source: str = "cluster") -> tuple[np.ndarray, tuple]:
    """Check a free cluster: at least 2 sites, finite, no collapsed sites.

    Returns ``(positions (n, 3) float64 Å, species tuple)``.
    """
    x = np.asarray(positions, dtype=float)
    species = tuple(str(s) for s in species)
    if x.ndim != 2 or x.shape[1] != 3:
        raise StructureError(f"{source}: positions must have shape (n_sites, 3), got {x.shape}")
    if len(species) != len(x):
        raise StructureError(f"{source}: {len(x)} positions but {len(species)} species")
    if len(x) < 2:
        raise StructureError(
            f"{source}: a cluster needs at least 2 sites, got {len(x)}",
            why="deformations are measured through pair distances",
            fix="add sites; a pair is the smallest cluster",
        )
    if not np.all(np.isfinite(x)):
        bad = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
        raise StructureError(f"{source}: site(s) {bad.tolist()} have NaN or inf coordinates")
    d = np.linalg.norm(x[:, None] - x[None], axis=-1) + np.eye(len(x)) * 1e9
    i, j = np.unravel_index(np.argmin(d), d.shape)
    if d[i, j] < MIN_SEPARATION:
        raise StructureError(
            f"{source}: sites {min(i, j)} and {max(i, j)} are only {d[i, j]:.3g} Å apart "
            "(duplicate or collapsed sites)",
            why="pair metrics need distinct sites and a reference pair length > 0",
            fix="remove the duplicate site",
        )
    return x, species


def read_cluster_xyz(path) -> tuple[np.ndarray, tuple]:
    """A free cluster from a plain XYZ file → (positions (n, 3) Å, species)."""
    atoms = read_atoms(path)
    return validate_cluster_positions(atoms.positions, atoms.get_chemical_symbols(), str(path))
