"""Crystal symmetry with spglib: space group, cluster orbits, embedded point groups.

Sites of the infinite crystal are integer rows ``(b, n1, n2, n3)``: basis site ``b`` in the
cell translated by ``n``.  A space-group operation ``(W, w)`` (fractional) sends basis
site ``b`` to ``W f_b + w = f_b' + s_b``; precomputing ``(b', s_b)`` makes applying an
operation to any cluster exact integer arithmetic: ``(b, n) -> (b', W n + s_b)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import ClusterError, StructureError
from .group import PointGroup


@dataclass(frozen=True, eq=False)
class SpaceGroup:
    """Space group of a :class:`~ccdgen.geometry.structure.Crystal` (from spglib).

    Attributes
    ----------
    number : int; international : str (Hermann–Mauguin, e.g. "Pm-3m")
    rotations : (n_ops, 3, 3) int — fractional W
    translations : (n_ops, 3) float — fractional w
    site_map : (n_ops, n_basis) int — image basis site b'
    site_shift : (n_ops, n_basis, 3) int — lattice shift s_b
    cell : (3, 3) float, Å (rows)
    """

    number: int
    international: str
    rotations: np.ndarray
    translations: np.ndarray
    site_map: np.ndarray
    site_shift: np.ndarray
    cell: np.ndarray

    @cached_property
    def cartesian_rotations(self) -> np.ndarray:
        """(n_ops, 3, 3): R = Aᵀ W A⁻ᵀ with A the cell (rows)."""
        a = self.cell
        return np.einsum("ji,njk,kl->nil", a, self.rotations, np.linalg.inv(a).T)

    def apply(self, op: int, sites: np.ndarray) -> np.ndarray:
        """Image of integer sites (k, 4) under operation ``op`` → (k, 4)."""
        b = sites[:, 0]
        n = sites[:, 1:]
        out = np.empty_like(sites)
        out[:, 0] = self.site_map[op, b]
        out[:, 1:] = n @ self.rotations[op].T + self.site_shift[op, b]
        return out


def space_group(crystal, symprec: float = 1e-3) -> SpaceGroup:
    """Space group operations of ``crystal`` in its own cell (spglib)."""
    import spglib

    _check_symprec(symprec)
    numbers = {s: i for i, s in enumerate(dict.fromkeys(crystal.species))}
    cell = (crystal.cell, crystal.frac, [numbers[s] for s in crystal.species])
    err = getattr(spglib, "error", None)
    old = getattr(err, "OLD_ERROR_HANDLING", None)
    if old is not None:  # spglib >= 2.5: raise instead of returning None (restored below)
        err.OLD_ERROR_HANDLING = False
    try:
        ds = spglib.get_symmetry_dataset(cell, symprec=symprec)
    except Exception as exc:  # spglib.error.SpglibError
        ds, why = None, str(exc)
    else:
        why = "spglib returned no dataset"
    finally:
        if old is not None:
            err.OLD_ERROR_HANDLING = old
    if ds is None:
        raise StructureError("spglib could not determine the space group", why=why,
                             fix="check the structure or change 'symprec'")
    rots = np.asarray(ds.rotations, dtype=np.int64)
    trans = np.asarray(ds.translations, dtype=float)
    n_ops, nb = len(rots), crystal.n_basis
    site_map = np.empty((n_ops, nb), dtype=np.int64)
    site_shift = np.empty((n_ops, nb, 3), dtype=np.int64)
    for k in range(n_ops):
        img = crystal.frac @ rots[k].T + trans[k]
        for b in range(nb):
            diff = img[b] - crystal.frac
            d = diff - np.rint(diff)
            dist = np.linalg.norm(d @ crystal.cell, axis=1)
            dist[[s != crystal.species[b] for s in crystal.species]] = np.inf
            bp = int(np.argmin(dist))
            if dist[bp] > 10 * symprec:
                raise StructureError(f"space-group operation {k} does not map site {b} onto a site")
            site_map[k, b] = bp
            site_shift[k, b] = np.rint(diff[bp]).astype(np.int64)
    return SpaceGroup(int(ds.number), str(ds.international), rots, trans, site_map, site_shift,
                      np.array(crystal.cell))


def _check_symprec(symprec) -> None:
    """spglib crashes the process on a NaN tolerance: refuse bad values before it sees them."""
    ok = isinstance(symprec, (int, float, np.floating)) and not isinstance(symprec, bool) and np.isfinite(symprec) \
        and symprec > 0
    if not ok:
        from ..errors import SpecError

        raise SpecError(f"symprec must be a finite number > 0 (Å), got {symprec!r}",
                        why="it is the distance within which two sites count as symmetric",
                        fix="use e.g. symprec = 1e-3")


def symmetrize_crystal(crystal, sg: SpaceGroup):
    """The crystal made exactly symmetric under its space group, in the user's setting.

    Relaxed or rounded structures are symmetric only to ``symprec``; the reference of a
    CCD model must be exactly symmetric (equivalent pairs need equal ``r0``, and the
    Cartesian operations must be exactly orthogonal).  The lattice metric ``G = A Aᵀ`` is
    averaged over the operations (``Wᵀ G W``) and the new lattice is the one with that
    metric closest to the old (same orientation); each site is replaced by the average
    of its pulled-back images.  Returns ``(crystal, max_shift_Å)``.
    """
    from ..geometry.structure import Crystal

    a = crystal.cell
    n_ops = len(sg.rotations)
    g = a @ a.T
    g_sym = sum(w.T @ g @ w for w in sg.rotations) / n_ops
    low = np.linalg.cholesky(g_sym)  # rows: a lattice with metric g_sym
    u, _, vt = np.linalg.svd(low.T @ a)
    a_new = low @ (u @ vt)  # closest to the old lattice among those with metric g_sym
    frac = crystal.frac
    acc = np.zeros_like(frac)
    for k in range(n_ops):
        w_inv = np.linalg.inv(sg.rotations[k])
        for b in range(crystal.n_basis):
            bp = sg.site_map[k, b]
            pulled = w_inv @ (frac[bp] + sg.site_shift[k, b] - sg.translations[k])
            acc[b] += pulled - np.rint(pulled - frac[b])
    frac_new = acc / n_ops
    shift = max(float(np.abs(a_new - a).max()),
                float(np.linalg.norm((frac_new - frac) @ a_new, axis=1).max()))
    return Crystal.from_arrays(a_new, crystal.species, frac_new, "symmetrized crystal"), shift


def canonical(sites: np.ndarray) -> np.ndarray:
    """Canonical representative of a cluster up to lattice translations and site order.

    Among the translates that put one of its sites in the home cell, the
    lexicographically smallest sorted list of ``(b, n1, n2, n3)`` rows.
    """
    best = None
    for s in sites:
        t = sites.copy()
        t[:, 1:] -= s[1:]
        t = t[np.lexsort(t.T[::-1])]
        key = t.tobytes()
        if best is None or key < best[0]:
            best = (key, t)
    return best[1]


def orbit(sg: SpaceGroup, sites: np.ndarray) -> list[np.ndarray]:
    """All clusters equivalent to ``sites`` under the space group, one per lattice
    translation class (the orbit per primitive cell), sorted by canonical form.

    Each member keeps the *prototype's site order*: row ``s`` of a member is the image of
    row ``s`` of ``sites`` under the operation that produced it (translated so that its
    first site lies in the home cell).  Kernels compiled for the prototype read a member's
    sites in this order, so its labelled geometry is an image of the prototype's under a
    space-group operation — not merely a cluster with the same set of pair lengths.
    """
    seen = {}
    for op in range(len(sg.rotations)):
        img = sg.apply(op, sites)
        key = canonical(img).tobytes()
        if key not in seen:
            img = img.copy()
            img[:, 1:] -= img[0, 1:]
            seen[key] = img
    return [seen[k] for k in sorted(seen)]


def embedded_point_group(crystal, sg: SpaceGroup, sites: np.ndarray) -> PointGroup:
    """Cluster point group of an embedded cluster (Eqs. 7-8).

    The space-group operations (combined with a lattice translation) that map the
    cluster onto itself, as Cartesian matrices about the cluster centroid plus the
    site permutations ``perm[g, i]``.
    """
    key = {tuple(r): i for i, r in enumerate(sites.tolist())}
    rots, perms = [], []
    for op in range(len(sg.rotations)):
        img = sg.apply(op, sites)
        # try each translation that brings image site 0 onto some cluster site
        for target in sites:
            if target[0] != img[0, 0]:
                continue
            shifted = img.copy()
            shifted[:, 1:] += target[1:] - img[0, 1:]
            p = [key.get(tuple(r)) for r in shifted.tolist()]
            if None not in p:
                rots.append(sg.cartesian_rotations[op])
                perms.append(p)
                break
    return PointGroup.from_operations(np.array(rots), np.array(perms, dtype=np.int64))


def locate_site(crystal, frac, tol: float = 1e-3) -> np.ndarray:
    """The integer site ``(b, n1, n2, n3)`` at fractional position ``frac``.

    Raises :class:`ClusterError` naming the nearest crystal site if there is none.
    """
    frac = np.asarray(frac, float)
    diff = frac - crystal.frac
    n = np.floor(diff + 0.5)
    d = np.linalg.norm((diff - n) @ crystal.cell, axis=1)
    b = int(np.argmin(d))
    if d[b] > tol:
        raise ClusterError(
            f"position {frac.tolist()} (fractional) is not a crystal site: the nearest site is "
            f"{crystal.species[b]} #{b} at {d[b]:.3g} Å",
            why="clusters are made of sites of the reference crystal",
            fix="give the exact fractional coordinates of a site (any lattice translate of "
            "a basis site), or [basis_index, n1, n2, n3]",
        )
    return np.array([b, *n[b].astype(np.int64)], dtype=np.int64)
