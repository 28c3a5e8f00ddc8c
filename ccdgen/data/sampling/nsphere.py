"""Random directions on n-spheres in the displacement and strain subspaces.

A frame is ``x = (P + r·u) (I + ε)``, ``cell = L (I + ε)`` with ``P`` the base positions
(site order), ``u`` a direction drawn uniformly on the unit sphere of a displacement
subspace (default: every displacement but the three uniform translations; or the span of
chosen symmetry-adapted modes) scaled to the radius ``r`` (Å, the norm of the whole
displacement field), and ``ε`` a strain drawn uniformly on the sphere of radius ``s`` in a
strain subspace (default all six dimensions; or chosen strain irreps; ``s = 0``: none).
Uniform directions come from normalized Gaussian vectors (``numpy.random.Generator``).
"""

from __future__ import annotations

import numpy as np

from ...errors import SpecError
from . import FrameBatch
from .modes import _base_tag
from .strain import strain_tensor

__all__ = ["nsphere_frames", "translation_free_basis"]


def translation_free_basis(n_atoms: int) -> np.ndarray:
    """(3 n_atoms, 3 n_atoms − 3) orthonormal basis of displacements with zero mean."""
    # Helmert-like construction: orthonormal complement of the uniform translations
    a = np.zeros((n_atoms, n_atoms - 1))
    for j in range(1, n_atoms):
        a[:j, j - 1] = 1.0 / np.sqrt(j * (j + 1))
        a[j, j - 1] = -j / np.sqrt(j * (j + 1))
    out = np.zeros((n_atoms, 3, n_atoms - 1, 3))
    for c in range(3):
        out[:, c, :, c] = a
    return out.reshape(3 * n_atoms, 3 * (n_atoms - 1))


def _directions(rng, n: int, basis: np.ndarray, n_atoms: int) -> np.ndarray:
    g = rng.standard_normal((n, basis.shape[1]))
    return ((g / np.linalg.norm(g, axis=1, keepdims=True)) @ basis.T).reshape(n, n_atoms, 3)


def nsphere_frames(base: FrameBatch, n: int, radii, rng: np.random.Generator, *,
                   displacement_basis=None, strain_radius: float = 0.0, strain_basis=None,
                   max_displacement: float | None = None) -> FrameBatch:
    """``n`` random frames per radius around each base frame (module docstring).

    Parameters
    ----------
    base : FrameBatch of base frames (site order); frames are drawn around base frame
        ``k % len(base)`` for the ``k``-th frame of each radius
    n : frames per radius
    radii : Å — displacement norms ``r`` (each > 0)
    rng : the random stream
    displacement_basis : (3 n_atoms, m) orthonormal columns (default: all but the uniform
        translations)
    strain_radius : norm of ε (0: no strain)
    strain_basis : (k, 6) orthonormal rows in Voigt coordinates (default all six)
    max_displacement : Å — a direction that moves one atom farther is redrawn (from the same
        stream; SpecError if that keeps happening)

    Frames are tagged ``family="nsphere"``, ``radius`` (Å), ``strain_radius``, ``around``.
    """
    radii = np.atleast_1d(np.asarray(radii, dtype=float))
    if radii.size == 0 or not np.all(np.isfinite(radii)) or np.any(radii <= 0):
        raise SpecError(f"n-sphere radii must be finite and > 0 (Å), got {radii.tolist()}",
                        fix="give e.g. --radii 0.2 0.5 1.0")
    if int(n) < 1:
        raise SpecError(f"the number of n-sphere frames per radius must be ≥ 1, got {n!r}")
    s_rad = float(strain_radius)
    if not np.isfinite(s_rad) or s_rad < 0 or s_rad > 0.2:
        raise SpecError(f"the n-sphere strain radius {strain_radius!r} must be in [0, 0.2]")
    na = base.n_atoms
    db = translation_free_basis(na) if displacement_basis is None else np.asarray(displacement_basis, float)
    sb = np.eye(6) if strain_basis is None else np.asarray(strain_basis, dtype=float)
    n = int(n)
    pos, cells, infos = [], [], []
    for r in radii:
        disp = _directions(rng, n, db, na) * r
        if max_displacement is not None:  # redraw the rare direction that moves one atom too far
            for _ in range(50):
                bad = np.flatnonzero(np.linalg.norm(disp, axis=2).max(axis=1) > max_displacement)
                if not len(bad):
                    break
                disp[bad] = _directions(rng, len(bad), db, na) * r
            else:
                raise SpecError(f"n-sphere radius {r:g} Å is out of range: random directions keep moving "
                                f"an atom by more than {max_displacement:.3g} Å",
                                why="an atom that far from its site no longer maps onto the reference",
                                fix="use smaller radii (the radius is the norm of the whole displacement field)")
        if s_rad > 0:
            h = rng.standard_normal((n, sb.shape[0]))
            eps = strain_tensor(s_rad * (h / np.linalg.norm(h, axis=1, keepdims=True)) @ sb)
        else:
            eps = np.zeros((n, 3, 3))
        which = np.arange(n) % len(base)
        m = np.eye(3) + eps  # (n, 3, 3)
        pos.append(np.einsum("fai,fij->faj", base.positions[which] + disp, m))
        cells.append(np.einsum("fai,fij->faj", base.cells[which], m))
        for k in range(n):
            bi = base.infos[which[k]]
            infos.append({"family": "nsphere", "radius": float(r), "strain_radius": s_rad,
                          "around": _base_tag(bi)})
    return FrameBatch(base.numbers, np.concatenate(pos), np.concatenate(cells), tuple(infos))
