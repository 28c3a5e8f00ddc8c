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
    def from_arrays(cls, cell, species, frac, source: str = "inline crystal",
                    cartesian: bool = False) -> "Crystal":
        """Validate and build: ``cell`` (3, 3) float Å (rows a1, a2, a3; right-handed),
        ``species`` n_basis element symbols (:func:`check_crystal_species`), ``frac``
        (n_basis, 3) fractional coordinates (Cartesian Å if ``cartesian``)."""
        try:
            cell = np.asarray(cell, dtype=float)
            frac = np.asarray(frac, dtype=float)
        except (TypeError, ValueError) as exc:
            raise StructureError(f"{source}: the lattice and positions must be arrays of numbers ({exc})") from None
        species = check_crystal_species(species, f"{source}: species")
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
        with np.errstate(over="ignore"):
            lengths = np.linalg.norm(cell, axis=1)
            vol = float(np.linalg.det(cell))
        if not np.isfinite(vol):
            raise StructureError(f"{source}: the lattice is absurdly large (lengths {lengths.tolist()} Å)",
                                 fix="the lattice vectors are in Å")
        if abs(vol) < 1e-6 or abs(vol) < 1e-9 * float(np.prod(lengths)):
            raise StructureError(
                f"{source}: the lattice vectors are linearly dependent or tiny (volume {vol:.3g} Å³)",
                fix="check the lattice; a crystal needs three independent vectors",
            )
        if vol < 0:
            raise StructureError(
                f"{source}: the lattice is left-handed (volume {vol:.6g} Å³ < 0)",
                why="volumes, stresses and the cell conventions assume det(lattice) > 0",
                fix="list the lattice vectors in right-handed order: swap two of them (and, for "
                "fractional positions, the same two columns of every position)",
            )
        if cartesian:
            frac = np.linalg.solve(cell.T, frac.T).T
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

        # every site has its own image at the shortest lattice vector: no neighbour is farther
        cutoff = self.shortest_translation() * (1 + 1e-9) + 1e-9
        d = neighbor_list("d", self.to_atoms(), cutoff)
        return float(d.min())

    def shortest_translation(self) -> float:
        """Length (Å) of the shortest non-zero lattice vector (Minkowski reduction)."""
        from ase.geometry import minkowski_reduce

        reduced, _ = minkowski_reduce(self.cell)
        return float(np.min(np.linalg.norm(reduced, axis=1)))

    def signature(self) -> str:
        h = hashlib.sha256()
        h.update(np.round(self.cell, 8).tobytes())
        h.update(np.round(self.frac, 8).tobytes())
        h.update("|".join(self.species).encode())
        return h.hexdigest()

    def _check_separation(self, source: str) -> None:
        from ase.neighborlist import neighbor_list

        shortest = self.shortest_translation()
        if shortest < MIN_SEPARATION:  # (checked first: ASE's neighbour list crawls on such cells)
            raise StructureError(
                f"{source}: every site is only {shortest:.3g} Å from its own periodic image",
                why=f"a lattice translation shorter than the minimum site separation ({MIN_SEPARATION} Å) "
                "is not a crystal",
                fix="check the lattice: its vectors are in Å",
            )
        i, j, d = neighbor_list("ijd", self.to_atoms(), MIN_SEPARATION)
        if len(i):
            k = int(np.argmin(d))
            raise StructureError(
                f"{source}: sites {i[k]} ({self.species[i[k]]}) and {j[k]} "
                f"({self.species[j[k]]}) are only {d[k]:.3g} Å apart",
                why="collapsed or duplicate sites make the structure and its symmetry ill-defined",
                fix="remove the duplicate site or fix its coordinates",
            )


def check_crystal_species(species, where: str = "species", error=StructureError) -> tuple:
    """Crystal species must be element symbols of :data:`ase.data.chemical_symbols`
    (``"X"``, ASE's dummy atom, included), since the crystal is handed to ASE and spglib.
    Returns them as a tuple of str; raises ``error`` naming the entry, with a fix
    (``pb`` → ``Pb``, ``82`` → ``Pb``, YAML's ``NO`` read as false → quote it)."""
    from ase.data import chemical_symbols

    if isinstance(species, (str, bytes)) or not hasattr(species, "__iter__"):
        raise error(f"{where} must be a list of element symbols, got {species!r}",
                    fix='e.g. ["Pb", "Br", "Br", "Br", "Cs"]')
    known = set(chemical_symbols)
    lower = {s.lower(): s for s in chemical_symbols}
    out = []
    for i, s in enumerate(species):
        if isinstance(s, (bool, np.bool_)):
            raise error(f"{where}[{i}] = {s!r}: species must be element symbols; YAML read an unquoted "
                        f"{'yes/on/true' if s else 'no/NO/No/off/false'} as {str(bool(s)).lower()}: quote it",
                        fix='write e.g. "No" (in quotes)')
        if isinstance(s, (int, np.integer)) and not isinstance(s, bool):
            hint = f" (Z = {s} is {chemical_symbols[s]!r})" if 0 < s < len(chemical_symbols) else ""
            raise error(f"{where}[{i}] = {s!r}: species must be element symbols, not numbers{hint}",
                        fix="write the symbol in quotes, e.g. \"Pb\"")
        if not isinstance(s, str):
            raise error(f"{where}[{i}] = {s!r} is not an element symbol ({type(s).__name__})",
                        fix="write the symbol in quotes, e.g. \"Pb\"")
        if s not in known:
            hint = f"did you mean {lower[s.lower()]!r}? " if s.lower() in lower else ""
            raise error(f"{where}[{i}] = {s!r} is not an element symbol",
                        why="crystal sites are chemical elements (ASE's 'X' marks a dummy site)",
                        fix=f"{hint}use a symbol of the periodic table, e.g. 'Pb', 'Br', 'Cs'")
        out.append(s)
    return tuple(out)


def read_atoms(path):
    """Read one structure with ASE; unreadable files raise :class:`StructureError`."""
    path = Path(path)
    if not path.exists():
        raise StructureError(f"structure file {path} does not exist")
    if path.is_dir():
        raise StructureError(f"structure file {path} is a folder", fix="give a structure file inside it")
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
