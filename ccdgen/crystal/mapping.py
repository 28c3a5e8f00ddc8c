"""Map configurations onto the reference crystal: supercell, site of each atom, strain,
displacements.

A configuration (atoms in any order, any rigid rotation and translation, any integer
supercell, moderate homogeneous strain and displacements) is described relative to a
:class:`~ccdgen.crystal.supercell.Supercell` ``S`` (lattice rows ``L = H A``) by::

    x_config[atom_of_site[s]] + shifts[atom_of_site[s]] @ C = F (P[s] + d[s]) + t

for every supercell site ``s`` (as column vectors; in row form ``(P + d) @ F.T + t``;
``P`` = ``S.positions``):

- ``F`` (3×3) the homogeneous deformation, from the cell: ``C = L Fᵀ`` (rows of ``C`` are
  the configuration's lattice vectors, row ``i`` ↔ row ``i`` of ``L``); ``det F > 0``.
  Polar parts ``F = R U``: ``R`` a rotation, ``U`` symmetric positive definite (the
  stretch, reference frame); ``strain = U − I`` (the Biot strain).
- ``t`` (Å, configuration frame) the global translation, ``d`` (``(n_atoms, 3)`` Å,
  reference frame, zero mean) the site displacements.

How it is found (both the per-frame and the batch paths do the same):

1. ``H``: from the metric of ``C`` (:meth:`Supercell.from_cell`, ``|det H| = n_atoms /
   n_basis``).  Metrically equivalent matrices tie; the ones related by a point operation
   of the crystal give the same mapping up to symmetry, and the preferred one
   (:func:`~ccdgen.crystal.supercell.canonical_choice`) is used.  When the lattice has
   more symmetry than the crystal, each inequivalent class is tried and the one with the
   smallest displacements wins.
2. Work in fractional coordinates of ``C`` (they do not depend on rotation or strain) and
   measure distances in the reference frame (strain removed).  The anchor species is
   the rarest in the basis (first in basis order on ties) and the anchor atom its first
   atom.  For each basis site ``b*`` of the anchor species, the translation that puts
   the anchor atom on ``b*`` (cell 0) is refined once by the mean offset of every atom
   from its nearest same-species site (periodic); the candidate with the smallest sum
   of squared offsets wins (ties: the smaller translation, then the lower ``b*``).  The
   translation is then replaced by its lattice-equivalent of smallest length (the
   nearest reference-lattice vector is subtracted), so an unshifted configuration in
   ASE repeat order maps to the identity.
3. Sites: each atom takes its nearest same-species site (``assignment="nearest"``; two
   atoms claiming one site is an error), or sites are assigned per species by
   ``scipy.optimize.linear_sum_assignment`` on squared periodic distances
   (``"optimal"``).  The mean offset is then added to the translation, leaving
   zero-mean displacements ``d``; every ``|d[s]| ≤ max_displacement``.  The default is
   ``DEFAULT_DISPLACEMENT_FRACTION`` = 0.5 × the reference nearest-neighbour distance
   (1.49 Å for CsPbBr3): an atom farther than that from its site is nearer the middle of
   a bond than its site.  (0.4 would reject labelled CsPbBr3 frames with 15° octahedral
   tilts, whose Br sit up to 1.28 Å = 0.43 × that distance from the cubic sites.)

:func:`map_frames` does this for whole datasets, vectorized over frames that share
``H`` and species, and falls back to :func:`map_configuration` for frames where the fast
path sees a problem (so both give the same result, and errors are the same).
Distances are exact minimum-image ones in both paths: the batch path rounds in the
Minkowski-reduced reference basis and uses a result only where every distance involved
is below half its smallest interplanar spacing (where rounding is exact); otherwise the
frame goes the per-frame path (reduced supercell basis, 27 neighbour images).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import MappingError, StructureError
from ..geometry.structure import Crystal
from .supercell import (TIE_TOL, Supercell, _fit_or_raise, _label, _strain_text, canonical_choice,
                        fit_supercell_matrices)

__all__ = ["Mapping", "FrameMappings", "map_configuration", "map_frames",
           "DEFAULT_DISPLACEMENT_FRACTION", "DEFAULT_MAX_STRAIN", "default_max_displacement"]

#: Default ``max_displacement`` as a fraction of the reference nearest-neighbour distance.
DEFAULT_DISPLACEMENT_FRACTION = 0.5
#: Default bound on the principal stretches: ``1/(1+s) ≤ σ ≤ 1+s``.
DEFAULT_MAX_STRAIN = 0.25
#: The fast path accepts a frame's ``H`` when its log-stretch is below half the gap to the
#: next inequivalent supercell matrix, minus this margin.
_GAP_MARGIN = 1e-6
#: Search bound (log-stretch) for that gap; frames strained more go the careful path.
_GAP_SEARCH = np.log1p(0.5)
#: Two candidate translations tie when their sums of squared offsets differ by less (Å²).
_SCORE_TOL = 1e-9

_OFFS27 = np.array([(i, j, k) for i in (0, -1, 1) for j in (0, -1, 1) for k in (0, -1, 1)],
                   dtype=float)


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class Mapping:
    """One configuration mapped onto a supercell (see the module docstring).

    Attributes
    ----------
    supercell : Supercell
    atom_of_site : (n_atoms,) int64 — the atom on each supercell site
    site_of_atom : (n_atoms,) int64 — inverse permutation
    shifts : (n_atoms, 3) int64 — per atom (atom order): ``pos[a] + shifts[a] @ C`` is the
        image of atom ``a`` nearest its site
    deformation : (3, 3) float64 — ``F`` with ``C = L Fᵀ``
    rotation : (3, 3) float64 — ``R`` (proper rotation), ``F = R U``
    stretch : (3, 3) float64 — ``U`` (symmetric positive definite, reference frame)
    strain : (3, 3) float64 — ``U − I``
    translation : (3,) float64, Å — ``t`` (configuration frame)
    displacements : (n_atoms, 3) float64, Å — ``d`` in site order, reference frame, zero mean
    max_distance : float, Å — ``max |d[s]|``
    frame : the frame label given (None if none)
    """

    supercell: Supercell
    atom_of_site: np.ndarray
    site_of_atom: np.ndarray
    shifts: np.ndarray
    deformation: np.ndarray
    rotation: np.ndarray
    stretch: np.ndarray
    strain: np.ndarray
    translation: np.ndarray
    displacements: np.ndarray
    max_distance: float
    frame: object = None

    @property
    def F(self) -> np.ndarray:
        return self.deformation

    @property
    def R(self) -> np.ndarray:
        return self.rotation

    @property
    def U(self) -> np.ndarray:
        return self.stretch

    def site_positions(self, positions, cell) -> np.ndarray:
        """Unwrapped configuration positions in site order: ``positions (n_atoms, 3)`` Å in
        the original atom order and the cell ``(3, 3)`` → ``(n_atoms, 3)`` float64, Å,
        ``pos[atom_of_site] + shifts[atom_of_site] @ C``."""
        x = np.asarray(positions, dtype=float)
        a = self.atom_of_site
        return x[a] + self.shifts[a] @ np.asarray(cell, dtype=float)


@dataclass(frozen=True, eq=False)
class FrameMappings:
    """Mappings of a batch of frames (from :func:`map_frames`).

    Attributes (``n`` = n_frames, ``N`` = n_atoms; rows of failed frames are -1 / NaN)
    ----------
    supercells : tuple of Supercell — the distinct supercells found
    supercell_index : (n,) int64 — index into ``supercells`` (-1 if the frame failed)
    atom_of_site, site_of_atom : (n, N) int64
    shifts : (n, N, 3) int64 — atom order
    deformation, rotation, stretch, strain : (n, 3, 3) float64
    translation : (n, 3) float64, Å
    displacements : (n, N, 3) float64, Å — site order, reference frame
    max_distance : (n,) float64, Å
    fast : (n,) bool — mapped by the vectorized path (else by :func:`map_configuration`)
    ok : (n,) bool — mapped (False only with ``on_error="skip"``)
    errors : tuple of (frame label, message) for the failed frames
    frames : (n,) the frame labels
    """

    supercells: tuple
    supercell_index: np.ndarray
    atom_of_site: np.ndarray
    site_of_atom: np.ndarray
    shifts: np.ndarray
    deformation: np.ndarray
    rotation: np.ndarray
    stretch: np.ndarray
    strain: np.ndarray
    translation: np.ndarray
    displacements: np.ndarray
    max_distance: np.ndarray
    fast: np.ndarray
    ok: np.ndarray
    errors: tuple
    frames: tuple

    def __len__(self) -> int:
        return len(self.ok)

    def mapping(self, i: int) -> Mapping:
        """Frame ``i`` (position in the batch) as a :class:`Mapping`."""
        if not self.ok[i]:
            raise MappingError(f"frame {self.frames[i]} was not mapped: {dict(self.errors)[self.frames[i]]}")
        return Mapping(self.supercells[self.supercell_index[i]], self.atom_of_site[i],
                       self.site_of_atom[i], self.shifts[i], self.deformation[i], self.rotation[i],
                       self.stretch[i], self.strain[i], self.translation[i], self.displacements[i],
                       float(self.max_distance[i]), self.frames[i])

    def site_positions(self, positions, cells) -> np.ndarray:
        """Unwrapped positions in site order: ``(n, N, 3)`` and cells ``(n, 3, 3)`` →
        ``(n, N, 3)`` float64, Å (NaN rows for failed frames)."""
        x = np.asarray(positions, dtype=float)
        c = np.asarray(cells, dtype=float)
        a = np.maximum(self.atom_of_site, 0)
        xs = np.take_along_axis(x, a[..., None], axis=1)
        sh = np.take_along_axis(self.shifts, a[..., None], axis=1).astype(float)
        out = xs + np.einsum("fni,fij->fnj", sh, c)
        out[~self.ok] = np.nan
        return out


# ----------------------------------------------------------------------------- tables
@dataclass(frozen=True, eq=False)
class _Tables:
    """Per-supercell constants for mapping (cached per Supercell object)."""

    sc: Supercell
    species: tuple  # distinct species in basis order
    basis_of: dict  # species -> (k,) basis indices
    sites_of: dict  # species -> supercell sites of that species (increasing)
    u: np.ndarray  # (n_atoms, 3) site positions, L-fractional
    h_inv: np.ndarray  # (3, 3) float H^-1
    l_red: np.ndarray  # Minkowski-reduced L (rows), Å
    nl: np.ndarray  # int, l_red = nl @ L
    nl_inv: np.ndarray
    a: np.ndarray  # reference cell
    a_inv: np.ndarray
    a_red: np.ndarray
    na: np.ndarray  # int, a_red = na @ A
    na_inv: np.ndarray
    a_reduced: bool  # na is the identity
    h_half: float  # half the smallest interplanar spacing of the reduced reference lattice, Å
    anchor: str
    anchor_basis: np.ndarray


@lru_cache(maxsize=64)
def _tables(sc: Supercell) -> _Tables:
    from ase.geometry import minkowski_reduce

    ref = sc.reference
    species = tuple(dict.fromkeys(ref.species))
    basis_of = {sp: np.array([b for b, s in enumerate(ref.species) if s == sp], dtype=np.int64)
                for sp in species}
    sp_sites = np.array(sc.species)
    sites_of = {sp: np.flatnonzero(sp_sites == sp).astype(np.int64) for sp in species}
    h_inv = np.linalg.inv(sc.matrix.astype(float))
    l_red, nl = minkowski_reduce(np.array(sc.cell))
    a_red, na = minkowski_reduce(np.array(ref.cell))
    nl = np.asarray(nl, dtype=np.int64)
    na = np.asarray(na, dtype=np.int64)
    a_red = na @ ref.cell
    l_red = nl @ sc.cell
    spacing = 1.0 / np.linalg.norm(np.linalg.inv(a_red), axis=0)
    counts = {sp: len(b) for sp, b in basis_of.items()}
    anchor = min(species, key=lambda sp: counts[sp])  # first in basis order on ties
    return _Tables(sc, species, basis_of, sites_of, sc.site_frac @ h_inv, h_inv,
                   l_red, nl, np.linalg.inv(nl.astype(float)), np.array(ref.cell),
                   np.linalg.inv(ref.cell), a_red, na, np.linalg.inv(na.astype(float)),
                   bool(np.array_equal(na, np.eye(3, dtype=np.int64))), 0.5 * float(spacing.min()),
                   anchor, basis_of[anchor])


def _supercell(reference: Crystal, h: np.ndarray) -> Supercell:
    """One Supercell object per (reference, H), so that its tables are cached."""
    return _supercell_cached(reference, tuple(int(v) for v in np.asarray(h).reshape(-1)))


@lru_cache(maxsize=64)
def _supercell_cached(reference: Crystal, h: tuple) -> Supercell:
    return Supercell(reference, np.array(h, dtype=np.int64).reshape(3, 3))


@lru_cache(maxsize=16)
def _nn_distance(reference: Crystal) -> float:
    return reference.nearest_neighbour_distance()


def default_max_displacement(reference: Crystal) -> float:
    """``DEFAULT_DISPLACEMENT_FRACTION`` × the reference nearest-neighbour distance (Å)."""
    return DEFAULT_DISPLACEMENT_FRACTION * _nn_distance(reference)


@lru_cache(maxsize=16)
def _point_rotations(reference: Crystal):
    """Fractional rotations of the reference's space group, or None if spglib fails."""
    from ..symmetry.spacegroup import space_group

    try:
        return np.asarray(space_group(reference).rotations, dtype=np.int64)
    except StructureError:
        return None


def _classes(tied: np.ndarray, reference: Crystal) -> list[list[int]]:
    """Partition metrically tied matrices into classes ``H ~ H Wᵀ`` (W a point operation
    of the crystal): matrices of one class give the same mapping up to symmetry."""
    if len(tied) == 1:
        return [[0]]
    rots = _point_rotations(reference)
    if rots is None:
        return [[i] for i in range(len(tied))]
    index = {h.tobytes(): i for i, h in enumerate(tied)}
    seen, classes = set(), []
    for i, h in enumerate(tied):
        if i in seen:
            continue
        members = sorted({index[k] for k in (np.ascontiguousarray(h @ w.T).tobytes() for w in rots)
                          if k in index} | {i})
        seen.update(members)
        classes.append(members)
    return classes


@lru_cache(maxsize=64)
def _gap(sc: Supercell) -> tuple[float, tuple]:
    """Returns (log-stretch gap from ``L`` to the nearest matrix with the same ``|det H|``
    that is not metrically equivalent (capped at ``_GAP_SEARCH``), the preferred matrix of
    each crystal-inequivalent class of the metrically equivalent ones, as Supercells,
    most preferred first)."""
    # the exhaustive search grows like n_cells²: for large cells look only nearby (frames with
    # less strain than half of what was searched still take the fast path)
    bound = _GAP_SEARCH if sc.n_cells <= 8 else np.log1p(0.15) if sc.n_cells <= 27 else np.log1p(0.06)
    hh, s = fit_supercell_matrices(sc.reference.cell, sc.cell, sc.n_cells, bound)
    tie = s <= TIE_TOL
    gap = float(s[~tie].min()) if np.any(~tie) else bound
    tied = hh[tie]
    reps = [tied[cls][canonical_choice(tied[cls])] for cls in _classes(tied, sc.reference)]
    reps.sort(key=lambda h: (int(np.trace(h)), tuple(h.reshape(-1).tolist())), reverse=True)
    return gap, tuple(_supercell(sc.reference, h) for h in reps)


# ----------------------------------------------------------------------------- shared steps
def _polar(f: np.ndarray):
    """F (..., 3, 3) → (R, U, log-stretch (...,), det F (...,))."""
    w, s, vt = np.linalg.svd(f)
    r = w @ vt
    u = np.swapaxes(vt, -1, -2) @ (s[..., :, None] * vt)
    u = 0.5 * (u + np.swapaxes(u, -1, -2))
    with np.errstate(divide="ignore"):
        ls = np.max(np.abs(np.log(s)), axis=-1)
    return r, u, ls, np.linalg.det(f)


def _cvp(theta: np.ndarray, t: _Tables) -> np.ndarray:
    """Nearest reference-lattice vector to reference-fractional ``theta (m, 3)`` →
    (m, 3) int64 (reduced basis, rounding then the 27 neighbours; first minimum wins)."""
    z = theta if t.a_reduced else theta @ t.na_inv
    base = np.rint(z)
    cand = base[:, None, :] + _OFFS27[None]
    x = (z[:, None, :] - cand) @ t.a_red
    j = np.argmin(np.einsum("mki,mki->mk", x, x), axis=1)
    k = cand[np.arange(len(z)), j]
    if not t.a_reduced:
        k = k @ t.na
    return np.rint(k).astype(np.int64)


def _search_translation(nearest, q_anchor: np.ndarray, t: _Tables) -> tuple[np.ndarray, np.ndarray]:
    """Step 2 of the module docstring, for ``m`` frames at once.

    ``nearest(theta (m, 3)) -> (offsets (m, n, 3) Å, d2 (m, n) Å², exact (m,) bool)``
    assigns every atom to its nearest same-species site; ``q_anchor (m, 3)`` is the anchor
    atom in reference-fractional coordinates.  Returns ``(theta (m, 3), exact (m,))``:
    the reduced translation (reference fractional) before the final assignment.
    """
    thetas, scores, norms = [], [], []
    exact = np.ones(len(q_anchor), dtype=bool)
    multi = len(t.anchor_basis) > 1
    for b in t.anchor_basis:
        theta0 = q_anchor - t.sc.reference.frac[b]
        x, _, ex = nearest(theta0)
        exact &= ex
        theta1 = theta0 + x.mean(axis=1) @ t.a_inv
        thetas.append(theta1)
        if multi:
            _, d2, ex = nearest(theta1)
            exact &= ex
            scores.append(d2.sum(axis=1))
            red = theta1 - _cvp(theta1, t)
            norms.append(np.linalg.norm(red @ t.a, axis=1))
    if multi:
        score = np.stack(scores, 1)
        nm = np.where(score <= score.min(axis=1, keepdims=True) + _SCORE_TOL, np.stack(norms, 1), np.inf)
        pick = np.argmin(nm, axis=1)
        theta1 = np.stack(thetas, 1)[np.arange(len(pick)), pick]
    else:
        theta1 = thetas[0]
    return theta1 - _cvp(theta1, t), exact


# ----------------------------------------------------------------------------- careful path
def _nearest_sites(q: np.ndarray, theta: np.ndarray, sp_atoms: dict, t: _Tables) -> dict:
    """Nearest same-species site of every atom, in O(n): for each basis site ``b`` of the
    species, the nearest reference-lattice translation of ``q − θ − f_b`` (:func:`_cvp`),
    then the best ``b``.  ``q (n, 3)`` reference-fractional atoms, ``θ (3,)`` the translation.
    Returns species -> (site (k,) int64, d2 (k,) Å², x (k, 3) Å reference frame offset atom −
    site, image (k, 3) int64 L-fractional), as :func:`_full_distances` would pick them."""
    out = {}
    ref = t.sc.reference
    for sp, idx in sp_atoms.items():
        best = None
        for b in t.basis_of[sp]:
            z = q[idx] - theta - ref.frac[b]
            k = _cvp(z, t)
            x = (z - k) @ t.a
            d2 = np.einsum("ki,ki->k", x, x)
            if best is None:
                best = [np.full(len(idx), b), k, x, d2]
            else:
                better = d2 < best[3]
                best[0][better], best[1][better], best[2][better], best[3][better] = b, k[better], x[better], d2[better]
        bb, k, x, d2 = best
        site, _ = t.sc.locate(np.column_stack([bb, k]))
        img = np.rint((q[idx] - theta) @ t.h_inv - t.u[site] - x @ t.a_inv @ t.h_inv).astype(np.int64)
        out[sp] = (site, d2, x, img)
    return out


def _full_distances(v: np.ndarray, tau: np.ndarray, u: np.ndarray, t: _Tables):
    """Periodic offsets of atoms ``v (n_a, 3)`` from sites ``u (n_s, 3)`` (both L-fractional)
    at translation ``tau (3,)``: minimum image over the reduced supercell lattice (rounding,
    then the 27 neighbours).  Returns (d2 (n_a, n_s) Å², x (n_a, n_s, 3) Å reference frame,
    image (n_a, n_s, 3) int64 L-fractional with ``v - image - tau - u`` minimal)."""
    z = (v[:, None, :] - tau - u[None, :, :]) @ t.nl_inv
    base = np.rint(z)
    cand = base[..., None, :] + _OFFS27
    x = (z[..., None, :] - cand) @ t.l_red
    d2 = np.einsum("...i,...i->...", x, x)
    j = np.argmin(d2, axis=-1)[..., None]
    x = np.take_along_axis(x, j[..., None], axis=-2)[..., 0, :]
    img = np.take_along_axis(cand, j[..., None], axis=-2)[..., 0, :] @ t.nl
    return np.take_along_axis(d2, j, axis=-1)[..., 0], x, np.rint(img).astype(np.int64)


def _careful_assign(v, q, sp_atoms: dict, t: _Tables, where: str, symbols, max_disp: float,
                    assignment: str):
    """Map one frame onto ``t.sc``: returns a dict of per-atom results, or raises MappingError."""
    n = len(v)
    h = t.sc.matrix

    def matrices(theta):
        tau = theta @ t.h_inv
        return {sp: _full_distances(v[idx], tau, t.u[t.sites_of[sp]], t) for sp, idx in sp_atoms.items()}

    def nearest(theta):  # (1, 3) -> ((1, n, 3), (1, n), (1,))
        x_all = np.empty((n, 3))
        d2_all = np.empty(n)
        for sp, (_, d2, x, _) in _nearest_sites(q, theta[0], sp_atoms, t).items():
            x_all[sp_atoms[sp]] = x
            d2_all[sp_atoms[sp]] = d2
        return x_all[None], d2_all[None], np.ones(1, dtype=bool)

    a_star = int(sp_atoms[t.anchor][0])
    theta, _ = _search_translation(nearest, q[a_star][None], t)
    theta = theta[0]
    site = np.empty(n, dtype=np.int64)
    x = np.empty((n, 3))
    img = np.empty((n, 3), dtype=np.int64)
    nearest_site = np.empty(n, dtype=np.int64)
    nearest_d = np.empty(n)
    near = _nearest_sites(q, theta, sp_atoms, t)
    tau = theta @ t.h_inv
    for sp, idx in sp_atoms.items():
        s_n, d2_n, x_n, img_n = near[sp]
        nearest_site[idx] = s_n
        nearest_d[idx] = np.sqrt(d2_n)
        if assignment == "optimal":  # needs every atom-site distance of the species
            from scipy.optimize import linear_sum_assignment

            d2, xs, im = matrices(theta)[sp]
            r, j = linear_sum_assignment(d2)
            j = j[np.argsort(r)]
            rows = np.arange(len(idx))
            site[idx] = t.sites_of[sp][j]
            x[idx] = xs[rows, j]
            img[idx] = im[rows, j]
        else:
            site[idx] = s_n
            x[idx] = x_n
            img[idx] = img_n
    del tau
    mu = x.mean(axis=0)
    d = x - mu
    dist = np.linalg.norm(d, axis=1)
    bad = np.flatnonzero(dist > max_disp)
    if len(bad):
        a = int(bad[np.argmax(dist[bad])])
        more = f" ({len(bad)} atoms are that far)" if len(bad) > 1 else ""
        if site[a] == nearest_site[a]:
            what = f"from the nearest {symbols[a]} site, {t.sc.site_label(site[a])}"
        else:
            what = (f"from its assigned {t.sc.site_label(site[a])} (the nearest {symbols[a]} site "
                    f"is {t.sc.site_label(nearest_site[a])} at {nearest_d[a]:.3g} Å)")
        raise MappingError(
            f"{where}, atom {a} ({symbols[a]}): {dist[a]:.3g} Å {what}, more than "
            f"max_displacement = {max_disp:.3g} Å{more}",
            why="every atom must sit near a site of its species in the reference supercell "
            f"H = {h.tolist()} (after removing the strain and the best translation)",
            fix="check the frame (a broken or melted structure?) and the reference crystal, or "
            "raise max_displacement",
        )
    if assignment == "nearest":
        order = np.argsort(site, kind="stable")
        dup = np.flatnonzero(site[order][1:] == site[order][:-1])
        if len(dup):
            a1, a2 = int(order[dup[0]]), int(order[dup[0] + 1])
            s = int(site[a1])
            n_free = t.sc.n_atoms - len(np.unique(site))
            raise MappingError(
                f"{where}: atoms {a1} and {a2} ({symbols[a1]}) both claim {t.sc.site_label(s)}, at "
                f"{dist[a1]:.3g} Å and {dist[a2]:.3g} Å ({n_free} site(s) left empty)",
                why="with assignment='nearest' every atom takes its nearest site, so two atoms "
                "closer to one site than to any other make the mapping ambiguous",
                fix="use assignment='optimal' (optimal assignment by periodic distance), or check "
                "the frame for a large distortion",
            )
    return dict(site=site, x=x, img=img, mu=mu, d=d, dist=dist, theta=theta + mu @ t.a_inv,
                score=float((d ** 2).sum()))


def _validate(positions, cell, symbols, pbc, where: str):
    x = np.asarray(positions, dtype=float)
    if x.ndim != 2 or x.shape[1] != 3:
        raise MappingError(f"{where}: positions must have shape (n_atoms, 3), got {x.shape}")
    if len(symbols) != len(x):
        raise MappingError(f"{where}: {len(x)} positions but {len(symbols)} species")
    if pbc is not None and not np.all(pbc):
        raise MappingError(
            f"{where}: the configuration is not periodic in all three directions (pbc = "
            f"{np.asarray(pbc).tolist()}), so no atom can be mapped onto a crystal site",
            why="a crystal configuration needs a cell periodic along all three lattice vectors",
            fix="set pbc=True (with the supercell as the cell)")
    bad = np.flatnonzero(~np.all(np.isfinite(x), axis=1))
    if len(bad):
        a = int(bad[0])
        raise MappingError(f"{where}, atom {a} ({symbols[a]}): its position {x[a].tolist()} is "
                           f"NaN or inf ({len(bad)} atom(s) affected)",
                           fix="remove or repair the frame")
    c = np.asarray(cell, dtype=float)
    if c.shape != (3, 3) or not np.all(np.isfinite(c)):
        raise MappingError(f"{where}: the cell is not a finite 3×3 array: {np.asarray(cell).tolist()}",
                           fix="give the configuration's lattice vectors as rows, in Å")
    return x, c


def _check_species(symbols, reference: Crystal, n_cells: int, where: str) -> dict:
    """Per-species atom indices; raise for unknown species or wrong counts."""
    known = set(reference.species)
    sym = np.array(symbols, dtype=object)
    for a, s in enumerate(symbols):
        if s not in known:
            raise MappingError(f"{where}, atom {a}: species {s!r} is not in the reference crystal "
                               f"(species {sorted(known)})",
                               fix="check the frame's species and the reference crystal")
    out = {}
    for sp in dict.fromkeys(reference.species):
        idx = np.flatnonzero(sym == sp).astype(np.int64)
        per_cell = reference.species.count(sp)
        if len(idx) != per_cell * n_cells:
            counts = {s: int(np.sum(sym == s)) for s in dict.fromkeys(reference.species)}
            raise MappingError(
                f"{where}: {len(idx)} {sp} atoms, expected {per_cell * n_cells} ({n_cells} cells × "
                f"{per_cell} {sp} per cell); the frame has {counts}",
                why="a configuration must hold every site of the reference supercell exactly once",
                fix="check the frame (missing or extra atoms, wrong species labels)")
        out[sp] = idx
    return out


def _map_arrays(x, c, symbols, reference, supercell, frame, max_disp, assignment, max_strain,
                pbc=None) -> Mapping:
    where = _label(frame)
    if assignment not in ("nearest", "optimal"):
        raise MappingError(f"assignment must be 'nearest' or 'optimal', got {assignment!r}")
    x, c = _validate(x, c, symbols, pbc, where)
    n = len(x)
    nb = reference.n_basis
    m = np.log1p(max_strain)
    if supercell is not None:
        if n != supercell.n_atoms:
            raise MappingError(
                f"{where}: {n} atoms, but the supercell H = {supercell.matrix.tolist()} has "
                f"{supercell.n_atoms} ({supercell.n_cells} cells × {nb} atoms)",
                fix="check the frame, or let the supercell be found from the cell (supercell=None)")
        candidates = [[supercell.matrix]]
    else:
        if n == 0 or n % nb:
            raise MappingError(
                f"{where}: {n} atoms is not a whole number of reference cells ({nb} atoms per cell)",
                why="a configuration must be an integer supercell of the reference crystal",
                fix="check the atom count, the frame, or the reference crystal")
    sp_atoms = _check_species(symbols, reference, n // nb, where)
    if supercell is None:
        tied, _, _ = _fit_or_raise(reference, c, n, max_strain, frame)
        candidates = [[tied[i] for i in cls] for cls in _classes(tied, reference)]
    results = []
    first_error = None
    for cls in candidates:
        h = cls[canonical_choice(np.array(cls))]
        sc = supercell if supercell is not None else _supercell(reference, h)
        t = _tables(sc)
        f = (np.linalg.solve(sc.cell, c)).T
        r, u, ls, det = _polar(f)
        if det <= 0 or ls > m * (1 + 1e-12):
            raise MappingError(
                f"{where}: the cell {c.round(4).tolist()} does not fit the supercell H = "
                f"{sc.matrix.tolist()}: " + ("it is a mirror image (det F < 0)" if det <= 0 else
                                             f"it needs a strain of {_strain_text(ls)}, more than "
                                             f"max_strain = {100 * max_strain:.3g} %"),
                fix="check the cell and its lattice-vector order, or pass supercell=None")
        v = x @ np.linalg.inv(c)
        q = v @ sc.matrix
        try:
            res = _careful_assign(v, q, sp_atoms, t, where, symbols, max_disp, assignment)
        except MappingError as exc:
            first_error = first_error or exc
            continue
        results.append((res["score"], -len(results), sc, t, f, r, u, res))
    if not results:
        raise first_error
    if len(results) > 1:  # among the best classes, the preferred matrix
        best = min(res[0] for res in results)
        results = [res for res in results if res[0] <= best + _SCORE_TOL]
        pick = canonical_choice(np.array([res[2].matrix for res in results]))
        results = [results[pick]]
    _, _, sc, t, f, r, u, res = results[0]
    site = res["site"]
    aos = np.empty(n, dtype=np.int64)
    aos[site] = np.arange(n)
    tau = res["theta"] @ t.h_inv
    return Mapping(sc, aos, site, -res["img"], f, r, u, u - np.eye(3), tau @ c, res["d"][aos],
                   float(res["dist"].max()), frame)


def _check_max_strain(max_strain) -> float:
    try:
        ms = float(max_strain)
    except (TypeError, ValueError):
        ms = float("nan")
    if not (ms > 0 and np.isfinite(ms)):
        raise MappingError(f"max_strain must be a positive number (0.25 = 25 %), got {max_strain!r}")
    return ms


def _resolve_max_disp(reference, max_displacement):
    if max_displacement is None:
        return default_max_displacement(reference)
    md = float(max_displacement)
    if not (md > 0 and np.isfinite(md)):
        raise MappingError(f"max_displacement must be a positive number of Å, got {max_displacement!r}")
    return md


def _reference_of(reference, supercell):
    if isinstance(reference, Supercell):
        if supercell is not None and supercell is not reference:
            raise MappingError("give the supercell either as `reference` or as `supercell`, not both")
        return reference.reference, reference
    if not isinstance(reference, Crystal):
        raise MappingError(f"reference must be a Crystal or a Supercell, got {type(reference).__name__}")
    if supercell is not None and supercell.reference is not reference:
        if supercell.reference.signature() != reference.signature():
            raise MappingError("the supercell belongs to another reference crystal")
    return reference, supercell


def map_configuration(atoms, reference, *, supercell: Supercell | None = None, frame=None,
                      max_displacement: float | None = None, assignment: str = "nearest",
                      max_strain: float = DEFAULT_MAX_STRAIN) -> Mapping:
    """Map one configuration onto the reference crystal (see the module docstring).

    Parameters
    ----------
    atoms : ase.Atoms — any atom order, rotation, translation, integer supercell
    reference : Crystal, or a Supercell (then ``H`` is given)
    supercell : Supercell — fixes ``H`` (default: found from the cell)
    frame : label used in error messages (e.g. the frame index)
    max_displacement : Å, largest allowed ``|d[s]|``; default
        ``DEFAULT_DISPLACEMENT_FRACTION`` (0.4) × the reference nearest-neighbour distance
    assignment : "nearest" (two atoms claiming a site is an error) or "optimal"
    max_strain : bound on the principal stretches, ``1/(1+s) ≤ σ ≤ 1+s``

    Raises :class:`MappingError` naming the frame (and the atom) for bad input.
    """
    ref, sc = _reference_of(reference, supercell)
    where = _label(frame)
    try:
        symbols = atoms.get_chemical_symbols()
        x, c, pbc = atoms.get_positions(), atoms.cell.array, atoms.pbc
    except AttributeError as exc:
        raise MappingError(f"{where}: expected an ase.Atoms, got {type(atoms).__name__}") from exc
    return _map_arrays(x, c, symbols, ref, sc, frame, _resolve_max_disp(ref, max_displacement),
                       assignment, _check_max_strain(max_strain), pbc)


# ----------------------------------------------------------------------------- fast path
def _fast_chunk(p, c, f, r, u, sp_atoms: dict, t: _Tables, max_disp: float, nearest_mode: bool,
                check_possible: bool = False):
    """Vectorized mapping of ``m`` frames onto ``t.sc``.  ``p (m, n, 3)``, ``c (m, 3, 3)``,
    ``f, r, u (m, 3, 3)`` (deformation and its polar parts).

    Returns ``(results, ok (m,), certain_error (m,), score (m,))``: ``ok`` frames are
    mapped exactly as the careful path would; ``certain_error`` frames are ones the careful
    path is sure to reject for this supercell (exact nearest sites with an atom too far,
    a collision under ``assignment="nearest"``, or, with ``check_possible``, two anchor
    atoms whose separation no pair of sites matches within ``2 max_disp``: then no
    translation or assignment fits); others must go the careful path."""
    m, n = p.shape[:2]
    ref = t.sc.reference
    q = np.matmul(p, np.linalg.solve(c, np.broadcast_to(t.sc.matrix.astype(float), c.shape)))
    h_half2 = t.h_half ** 2
    groups = [(idx, q[:, idx], t.basis_of[sp], ref.frac[t.basis_of[sp]]) for sp, idx in sp_atoms.items()]
    a_red = t.a_red
    diag = np.diag(a_red) if np.count_nonzero(a_red - np.diag(np.diag(a_red))) == 0 else None

    def assign(theta, full=False):
        """Nearest site of each atom: per basis site of its species, round in the reduced
        reference basis; keep the closest (a running minimum, no 4-D arrays)."""
        x = np.empty((m, n, 3))
        d2 = np.empty((m, n))
        if full:
            bas = np.empty((m, n), dtype=np.int64)
            tr = np.empty((m, n, 3))
        for idx, qs, bs, fb in groups:
            zq = qs - theta[:, None, :]
            for j in range(len(bs)):
                z = zq - fb[j]
                if not t.a_reduced:
                    z = z @ t.na_inv
                base = np.rint(z)
                xs = z - base
                xs = xs * diag if diag is not None else xs @ a_red
                dd = np.einsum("mni,mni->mn", xs, xs)
                if j == 0:
                    xb, db = xs, dd
                    if full:
                        bb, tb = np.full(dd.shape, bs[0]), base
                else:
                    better = dd < db
                    b3 = better[..., None]
                    xb = np.where(b3, xs, xb)
                    db = np.where(better, dd, db)
                    if full:
                        bb = np.where(better, bs[j], bb)
                        tb = np.where(b3, base, tb)
            x[:, idx] = xb
            d2[:, idx] = db
            if full:
                bas[:, idx] = bb
                tr[:, idx] = tb
        exact = np.all(d2 < h_half2, axis=1)
        if full:
            return x, d2, exact, bas, tr
        return x, d2, exact

    a_star = int(sp_atoms[t.anchor][0])
    theta, exact = _search_translation(assign, q[:, a_star], t)
    x, d2, ex, bas, tr = assign(theta, full=True)
    exact &= ex
    tr = np.rint(tr).astype(np.int64)
    if not t.a_reduced:
        tr = tr @ t.na
    sites = np.concatenate([bas[..., None], tr], axis=-1)
    site, image = t.sc.locate(sites)
    mu = x.mean(axis=1)
    d = x - mu[:, None, :]
    dist = np.sqrt(np.einsum("mni,mni->mn", d, d))
    far = np.any(dist > max_disp, axis=1)
    collision = ~np.all(np.sort(site, axis=1) == np.arange(n)[None], axis=1)
    ok = exact & ~far & ~collision
    certain_error = exact & (far | (collision & nearest_mode))
    if check_possible:
        certain_error |= _impossible(q, sp_atoms[t.anchor], t, max_disp)
    site = np.where(ok[:, None], site, np.arange(n)[None])  # keep invalid rows a permutation
    aos = np.empty_like(site)
    np.put_along_axis(aos, site, np.broadcast_to(np.arange(n), site.shape), axis=1)
    theta = theta + mu @ t.a_inv
    tau = theta @ t.h_inv
    return dict(atom_of_site=aos, site_of_atom=site, shifts=-image, deformation=f, rotation=r,
                stretch=u, strain=u - np.eye(3), translation=np.einsum("mi,mij->mj", tau, c),
                displacements=np.take_along_axis(d, aos[..., None], axis=1),
                max_distance=dist.max(axis=1)), ok, certain_error, np.einsum("mni,mni->m", d, d)


def _impossible(q: np.ndarray, anchors: np.ndarray, t: _Tables, max_disp: float) -> np.ndarray:
    """(m,) bool: frames that cannot map onto ``t.sc`` at all.  If every ``|d| ≤ max_disp``,
    each anchor atom's position relative to the first one is within ``2 max_disp`` of
    ``frac_b − frac_b' + n`` (anchor basis sites b, b', lattice vector n), whatever the
    translation and assignment; the nearest such vector is found exactly (reduced basis,
    27 neighbours)."""
    fb = t.sc.reference.frac[t.anchor_basis]
    combos = (fb[:, None, :] - fb[None, :, :]).reshape(-1, 3)
    rel = q[:, anchors[1:]] - q[:, anchors[:1]]  # (m, k, 3)
    best = np.full(rel.shape[:2], np.inf)
    for cvec in combos:
        z = rel - cvec
        if not t.a_reduced:
            z = z @ t.na_inv
        cand = np.rint(z)[..., None, :] + _OFFS27
        x = (z[..., None, :] - cand) @ t.a_red
        best = np.minimum(best, np.einsum("...i,...i->...", x, x).min(axis=-1))
    return np.any(best > (2 * max_disp) ** 2 * (1 + 1e-9), axis=1)


def _fast_classes(p, c, reps: tuple, sp_atoms: dict, max_disp: float, nearest_mode: bool):
    """The fast path over the crystal-inequivalent tied supercells ``reps`` (most preferred
    first), choosing per frame as the careful path does: the smallest sum of squared
    displacements among the classes that map, ties to the preferred.  Returns
    ``(results with "class" (m,), good (m,))``; ``good`` is False where the careful path
    must decide."""
    m = len(p)
    results, oks, scores = [], [], []
    decided = np.ones(m, dtype=bool)
    for rep in reps:
        f = np.swapaxes(np.linalg.solve(np.broadcast_to(rep.cell, (m, 3, 3)), c), -1, -2)
        r, u, _, _ = _polar(f)
        res, ok, certain, score = _fast_chunk(p, c, f, r, u, sp_atoms, _tables(rep), max_disp,
                                              nearest_mode, check_possible=len(reps) > 1)
        decided &= ok | certain
        results.append(res)
        oks.append(ok)
        scores.append(np.where(ok, score, np.inf))
    score = np.stack(scores, 1)
    best = score.min(axis=1)
    pick = np.argmax(score <= best[:, None] + _SCORE_TOL, axis=1)  # first (preferred) of the tied
    good = decided & np.isfinite(best)
    if len(reps) == 1:
        out = dict(results[0])
    else:
        rows = np.arange(m)
        out = {key: np.stack([res[key] for res in results], axis=1)[rows, pick] for key in results[0]}
    out["class"] = pick
    return out, good


def _symbols_of(numbers) -> list:
    from ase.data import chemical_symbols

    arr = np.asarray(numbers)
    if arr.dtype.kind in "iu":
        return [chemical_symbols[int(z)] if 0 < int(z) < len(chemical_symbols) else f"Z={int(z)}"
                for z in arr]
    return [str(s) for s in arr]


def map_frames(positions, cells, numbers, reference, *, supercell: Supercell | None = None,
               max_displacement: float | None = None, assignment: str = "nearest",
               max_strain: float = DEFAULT_MAX_STRAIN, frames=None, on_error: str = "raise",
               fast: bool = True, chunk: int = 256) -> FrameMappings:
    """Map a batch of frames onto the reference crystal (vectorized; see the module docstring).

    Parameters
    ----------
    positions : (n_frames, n_atoms, 3) float, Å (atoms in any order, wrapped or not)
    cells : (n_frames, 3, 3) float, Å (rows)
    numbers : (n_atoms,) or (n_frames, n_atoms) atomic numbers (or symbols)
    reference, supercell, max_displacement, assignment, max_strain : as in
        :func:`map_configuration`
    frames : (n_frames,) labels for messages (default 0, 1, ...)
    on_error : "raise" (the first failing frame raises its MappingError) or "skip"
        (failed frames get ``ok = False`` and their message in ``errors``)
    fast : False maps every frame with :func:`map_configuration` (for comparisons)
    chunk : frames per vectorized block (memory: ~ chunk × n_atoms × 1 kB)

    Frames that share species and ``H`` are mapped together.  ``H`` is accepted for a
    frame without a search when its log-stretch is below half the gap to the nearest
    inequivalent matrix (then no other matrix can fit better).  Frames where the fast
    path finds any problem (a collision, an atom too far, non-finite values, an
    ambiguous ``H``) are redone by the per-frame path, which gives the same answer or the
    error.
    """
    ref, sc_given = _reference_of(reference, supercell)
    if on_error not in ("raise", "skip"):
        raise MappingError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    if assignment not in ("nearest", "optimal"):
        raise MappingError(f"assignment must be 'nearest' or 'optimal', got {assignment!r}")
    pos = np.asarray(positions, dtype=float)
    cel = np.asarray(cells, dtype=float)
    if pos.ndim != 3 or pos.shape[2] != 3:
        raise MappingError(f"positions must have shape (n_frames, n_atoms, 3), got {pos.shape}")
    nf, n = pos.shape[:2]
    if cel.shape != (nf, 3, 3):
        raise MappingError(f"cells must have shape ({nf}, 3, 3), got {cel.shape}")
    num = np.asarray(numbers)
    if num.shape == (n,):
        num = np.broadcast_to(num, (nf, n))
    if num.shape != (nf, n):
        raise MappingError(f"numbers must have shape ({n},) or ({nf}, {n}), got {num.shape}")
    labels = tuple(range(nf)) if frames is None else tuple(frames)
    if len(labels) != nf:
        raise MappingError(f"frames must have {nf} labels, got {len(labels)}")
    max_disp = _resolve_max_disp(ref, max_displacement)
    max_strain = _check_max_strain(max_strain)
    m = np.log1p(max_strain)
    nb = ref.n_basis

    out = dict(
        atom_of_site=np.full((nf, n), -1, np.int64), site_of_atom=np.full((nf, n), -1, np.int64),
        shifts=np.zeros((nf, n, 3), np.int64), deformation=np.full((nf, 3, 3), np.nan),
        rotation=np.full((nf, 3, 3), np.nan), stretch=np.full((nf, 3, 3), np.nan),
        strain=np.full((nf, 3, 3), np.nan), translation=np.full((nf, 3), np.nan),
        displacements=np.full((nf, n, 3), np.nan), max_distance=np.full(nf, np.nan))
    sc_index = np.full(nf, -1, np.int64)
    is_fast = np.zeros(nf, dtype=bool)
    supercells: list[Supercell] = []
    sc_pos: dict[bytes, int] = {}

    def sc_id(sc: Supercell) -> int:
        key = np.ascontiguousarray(sc.matrix).tobytes()
        if key not in sc_pos:
            sc_pos[key] = len(supercells)
            supercells.append(sc)
        return sc_pos[key]

    careful: list[int] = []
    if fast:
        if np.all(num == num[:1]):  # the common case: one species list for all frames
            uniq, inverse = num[:1], np.zeros(nf, dtype=np.int64)
        else:
            uniq, inverse = np.unique(num, axis=0, return_inverse=True)
        finite = np.all(np.isfinite(pos), axis=(1, 2)) & np.all(np.isfinite(cel), axis=(1, 2))
        with np.errstate(all="ignore"):
            vol = np.abs(np.linalg.det(np.where(finite[:, None, None], cel, np.eye(3))))
        finite &= vol > 1e-6
        for g in range(len(uniq)):
            members = np.flatnonzero((inverse.reshape(-1) == g))
            symbols = _symbols_of(uniq[g])
            try:
                if n == 0 or n % nb:
                    raise MappingError("atom count")
                sp_atoms = _check_species(symbols, ref, n // nb, "")
            except MappingError:
                careful.extend(members.tolist())
                continue
            careful.extend(members[~finite[members]].tolist())
            pending = members[finite[members]]
            known: list[Supercell] = [sc_given] if sc_given is not None else []
            done_seeds = set()
            while len(pending):
                accepted = np.zeros(len(pending), dtype=bool)
                for sc in known:
                    rest = np.flatnonzero(~accepted)
                    if not len(rest):
                        break
                    fr = pending[rest]
                    if sc_given is not None:
                        limit, reps = m, (sc,)
                    else:
                        gap, reps = _gap(sc)
                        limit = min(m, 0.5 * gap - _GAP_MARGIN)
                    f = np.swapaxes(np.linalg.solve(np.broadcast_to(sc.cell, (len(fr), 3, 3)), cel[fr]), -1, -2)
                    _, _, ls, det = _polar(f)
                    hit = (det > 0) & (ls <= limit)
                    if not np.any(hit):
                        continue
                    accepted[rest[hit]] = True
                    sel = fr[hit]
                    for s0 in range(0, len(sel), chunk):
                        idx = sel[s0:s0 + chunk]
                        res, good = _fast_classes(pos[idx], cel[idx], reps, sp_atoms, max_disp,
                                                  assignment == "nearest")
                        for key, arr in res.items():
                            if key != "class":
                                out[key][idx[good]] = arr[good]
                        for k, rep in enumerate(reps):
                            pick = good & (res["class"] == k)
                            if np.any(pick):
                                sc_index[idx[pick]] = sc_id(rep)
                        is_fast[idx[good]] = True
                        careful.extend(idx[~good].tolist())
                pending = pending[~accepted]
                if not len(pending) or sc_given is not None:
                    careful.extend(pending.tolist())
                    break
                seed = int(pending[0])
                if seed in done_seeds:  # its own H did not accept it: per-frame path
                    careful.append(seed)
                    pending = pending[1:]
                    continue
                done_seeds.add(seed)
                try:
                    tied, _, _ = _fit_or_raise(ref, cel[seed], n, max_strain, labels[seed])
                except MappingError:
                    careful.append(seed)
                    pending = pending[1:]
                    continue
                new = _supercell(ref, tied[canonical_choice(tied)])
                if any(np.array_equal(new.matrix, s.matrix) for s in known):
                    careful.append(seed)
                    pending = pending[1:]
                    continue
                known.append(new)
    else:
        careful = list(range(nf))

    errors = []
    for i in sorted(set(careful)):
        symbols = _symbols_of(num[i])
        try:
            mp = _map_arrays(pos[i], cel[i], symbols, ref, sc_given, labels[i], max_disp,
                             assignment, max_strain)
        except MappingError as exc:
            if on_error == "raise":
                raise
            errors.append((labels[i], str(exc)))
            continue
        for key in out:
            out[key][i] = getattr(mp, key)
        sc_index[i] = sc_id(mp.supercell)
    ok = sc_index >= 0
    return FrameMappings(tuple(supercells), sc_index, out["atom_of_site"], out["site_of_atom"],
                         out["shifts"], out["deformation"], out["rotation"], out["stretch"],
                         out["strain"], out["translation"], out["displacements"],
                         out["max_distance"], is_fast, ok, tuple(errors), labels)
