"""Interpolations (and extrapolations) between structures, e.g. cubic → P4/mbm → Pnma.

Each structure (any atom order, rotation, translation; the same integer supercell of the
reference) is mapped onto the reference crystal
(:func:`~ccdgen.crystal.mapping.map_configuration`): its atoms are put in the supercell's
site order (unwrapped next to their sites) and its cell ``C = L Fᵀ`` is split into a
rotation and the stretch ``U`` (``F = R U``).  Along the path, the stretch and the site
fractional coordinates ``f = x C⁻¹`` are interpolated linearly,

    U(λ) = (1 − λ) U_j + λ U_j+1,   f(λ) = (1 − λ) f_j + λ f_j+1,
    cell(λ) = L U(λ),   x(λ) = f(λ) cell(λ),

segment ``j`` for path coordinate ``x ∈ [j, j + 1]`` (``λ = x − j``); ``x`` below 0 or
above ``n − 1`` extrapolates the first or last segment.  The rotation is dropped (frames
come out in the reference orientation), so for unrotated inputs this is exactly the
linear interpolation of cell and fractional coordinates.
"""

from __future__ import annotations

import numpy as np

from ...errors import MappingError, SpecError
from . import FrameBatch

__all__ = ["PathStructures", "map_path", "interpolation_frames", "path_coordinates"]


class PathStructures:
    """Mapped structures of a path: ``supercell``, ``stretch`` (m, 3, 3), ``frac``
    (m, n_atoms, 3) site fractional coordinates, ``names`` (m,)."""

    def __init__(self, supercell, stretch, frac, names):
        self.supercell = supercell
        self.stretch = np.asarray(stretch, dtype=float)
        self.frac = np.asarray(frac, dtype=float)
        self.names = tuple(names)

    def __len__(self) -> int:
        return len(self.names)


def _name(atoms, i: int) -> str:
    for key in ("name", "phase", "glazer"):
        v = atoms.info.get(key)
        if isinstance(v, str) and v:
            return v
    return f"s{i}"


def map_path(structures, reference, supercell=None, names=None) -> PathStructures:
    """Map ``structures`` (ase.Atoms, at least two) onto ``reference`` (Crystal) in one
    supercell (the first structure's, unless given).  Raises MappingError naming the
    structure that does not map."""
    from ...crystal.mapping import map_configuration

    structures = list(structures)
    if len(structures) < 2:
        raise SpecError(f"an interpolation needs at least two structures, got {len(structures)}",
                        fix="give e.g. --interpolate cubic.extxyz tetragonal.extxyz orthorhombic.extxyz")
    stretch, frac = [], []
    for i, a in enumerate(structures):
        label = names[i] if names is not None else _name(a, i)
        try:
            m = map_configuration(a, reference, supercell=supercell, frame=f"structure {i} ({label})")
        except MappingError as exc:
            if supercell is not None:
                raise MappingError(f"{exc.what}", why=(exc.why + "; " if exc.why else "") +
                                   "every structure of a path must be the same supercell as the first",
                                   fix=exc.fix) from None
            raise
        supercell = m.supercell
        x = m.site_positions(a.positions, a.cell.array)
        frac.append(x @ np.linalg.inv(a.cell.array))
        stretch.append(m.stretch)
    nm = tuple(names) if names is not None else tuple(_name(a, i) for i, a in enumerate(structures))
    return PathStructures(supercell, np.array(stretch), np.array(frac), nm)


def path_coordinates(n_structures: int, step: float = 0.05, extrapolate: float = 0.2) -> np.ndarray:
    """Path coordinates ``x`` from ``−extrapolate`` to ``n − 1 + extrapolate`` by ``step``
    (rounded to 12 digits)."""
    if not (np.isfinite(step) and step > 0) or not (np.isfinite(extrapolate) and extrapolate >= 0):
        raise SpecError(f"interpolation step {step!r} must be > 0 and extrapolation {extrapolate!r} ≥ 0")
    span = (n_structures - 1) + 2 * extrapolate
    k = int(np.floor(span / step + 1e-9)) + 1
    return np.round(-extrapolate + step * np.arange(k), 12)


def interpolation_frames(path: PathStructures, xs) -> FrameBatch:
    """Frames at path coordinates ``xs`` (module docstring), tagged ``family=
    "interpolation"``, ``path`` (names joined by ``>``), ``lambda`` (the path coordinate)
    and ``segment``."""
    from ..sampling.glazer import _numbers

    xs = np.atleast_1d(np.asarray(xs, dtype=float))
    if not np.all(np.isfinite(xs)):
        raise SpecError("interpolation coordinates must be finite")
    m = len(path)
    lat = np.asarray(path.supercell.cell, dtype=float)
    seg = np.clip(np.floor(xs).astype(np.int64), 0, m - 2)
    lam = xs - seg
    u = (1 - lam)[:, None, None] * path.stretch[seg] + lam[:, None, None] * path.stretch[seg + 1]
    f = (1 - lam)[:, None, None] * path.frac[seg] + lam[:, None, None] * path.frac[seg + 1]
    cells = np.einsum("ij,fkj->fik", lat, u)  # L Uᵀ
    pos = np.einsum("fai,fij->faj", f, cells)
    name = ">".join(path.names)
    infos = tuple({"family": "interpolation", "path": name, "lambda": float(x), "segment": int(s)}
                  for x, s in zip(xs, seg))
    return FrameBatch(_numbers(path.supercell), pos, cells, infos)
