"""An ASE calculator for trained ccdgen models: energy, forces and stress.

    from ccdgen import Calculator
    atoms.calc = Calculator("models/cspbbr3.ckpt")
    atoms.get_potential_energy(); atoms.get_forces(); atoms.get_stress()

Any supercell of the model's reference crystal, in any atom order, rotated or translated,
works; a configuration that does not map onto the reference raises a clear
:class:`~ccdgen.errors.MappingError`.  Evaluation is batched per cluster shape in the
generated kernels (no per-atom Python loops).  Along an MD or optimizer trajectory the atoms
keep their sites, so the mapping of the previous step is checked and reused (a full mapping
runs only when the check fails, e.g. after the cell or the atom count changed).
"""

from __future__ import annotations

import numpy as np
from ase.calculators.calculator import Calculator as _ASECalculator
from ase.calculators.calculator import all_changes

from .errors import MappingError


class Calculator(_ASECalculator):
    """ASE calculator of a ccdgen model file (``ccdgen train -o MODEL``).

    Parameters
    ----------
    model : path of a model file, or a :class:`~ccdgen.models.checkpoint.Predictor`
    max_displacement : Å, passed to the mapping (default: the mapping's)
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model, max_displacement: float | None = None, **kwargs):
        super().__init__(**kwargs)
        from .models.checkpoint import Predictor, load_model

        self.predictor = model if isinstance(model, Predictor) else load_model(model)
        self.featurizer = self.predictor.featurizer
        self.max_displacement = max_displacement
        self._last = None  # (mapping, numbers) of the previous configuration

    def _map(self, atoms):
        from .crystal.mapping import map_configuration

        pos = atoms.get_positions()
        cell = atoms.cell.array
        if self._last is not None and np.array_equal(atoms.numbers, self._last[1]):
            xs = self._reuse(pos, cell)
            if xs is not None:
                return self._last[0], xs
        try:
            m = map_configuration(atoms, self.featurizer.reference, max_displacement=self.max_displacement)
        except MappingError as exc:
            raise MappingError(f"this configuration is not a supercell of the model's reference crystal: {exc.what}",
                               why=exc.why, fix=exc.fix) from None
        xs = m.site_positions(pos, cell)
        frac = xs @ np.linalg.inv(self._reference_cell(m, cell))
        self._last = (m, atoms.numbers.copy(), np.mean(frac - m.supercell.site_frac, axis=0))
        return m, xs

    @staticmethod
    def _reference_cell(m, cell) -> np.ndarray:
        """The deformed reference cell ``H⁻¹ C`` (rows): site fractions are in its basis."""
        return np.linalg.solve(m.supercell.matrix.astype(float), cell)

    def _reuse(self, pos, cell):
        """Site-ordered positions from the previous mapping, if every atom is still within
        0.45 of the shortest site separation of its (drift-corrected) site — then a full
        mapping would assign the same sites; else None."""
        m, _, shift = self._last
        try:
            a = self._reference_cell(m, cell)
            frac = pos[m.atom_of_site] @ np.linalg.inv(a)
        except np.linalg.LinAlgError:
            return None
        ref = m.supercell.site_frac + shift
        d = frac - ref
        d -= np.round(d)  # nearest image of each atom to its own site (the supercell repeats it)
        mean = d.mean(axis=0)
        dev = (d - mean) @ a
        if not np.all(np.isfinite(dev)) or np.linalg.norm(dev, axis=1).max() > 0.45 * self._site_gap():
            return None
        self._last = (m, self._last[1], shift + mean)
        return (ref + d) @ a

    def _site_gap(self) -> float:
        """Shortest distance between two sites of the reference crystal (Å)."""
        if not hasattr(self, "_gap"):
            self._gap = self.featurizer.reference.nearest_neighbour_distance()
        return self._gap

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        atoms = self.atoms
        m, xs = self._map(atoms)
        layout = self.featurizer.layout(m.supercell)
        cell = atoms.cell.array
        e, f, s = self.predictor.evaluate_block(xs[None], cell[None], layout, forces=True)
        forces = np.empty_like(f[0])
        forces[m.atom_of_site] = f[0]
        self.results["energy"] = float(e[0])
        self.results["free_energy"] = float(e[0])
        self.results["forces"] = forces
        st = s[0]
        self.results["stress"] = np.array([st[0, 0], st[1, 1], st[2, 2], st[1, 2], st[0, 2], st[0, 1]])
