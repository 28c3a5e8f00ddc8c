"""The full point group of a free cluster, from its geometry alone.

Every orthogonal map ``R`` with ``R (x_i - c) = x_{pi(i)} - c`` for a species-preserving
permutation ``pi`` is found by matching a few reference sites: pick sites ``a, b, c``
whose centred positions span the cluster's space, try every candidate image triple with
the same species, radii and mutual distances, solve for ``R`` and keep it if it is
orthogonal and maps the whole cluster onto itself.  Works for any finite group,
including non-crystallographic ones (Ih, D5h, ...).

Planar clusters: the plane normal is added as a fourth reference direction whose image
is ``+/- n``, so the mirror in the plane is found.  Collinear clusters have an infinite
group (C∞v or D∞h); ccdgen keeps its finite image on the sites (a generating
C2/inversion, see :func:`find_point_group`).
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import ClusterError, SymmetryError
from .group import PointGroup, _nearest


def dimensionality(positions: np.ndarray, tol: float = 1e-3) -> int:
    """0, 1, 2 or 3: the dimension of the affine span of the sites (tol in Å)."""
    x = np.asarray(positions, float)
    x = x - x.mean(axis=0)
    if len(x) < 2:
        return 0
    s = np.linalg.svd(x, compute_uv=False)
    return int(np.sum(s > tol))


def _match_permutation(rotated: np.ndarray, x: np.ndarray, species: np.ndarray, tol: float):
    """Permutation p with rotated[i] ≈ x[p[i]] (same species), or None."""
    d = np.linalg.norm(rotated[:, None, :] - x[None, :, :], axis=-1)
    d[species[:, None] != species[None, :]] = np.inf
    p = np.argmin(d, axis=1)
    if np.max(d[np.arange(len(x)), p]) > tol or len(set(p.tolist())) != len(x):
        return None
    return p


def find_point_group(positions, species, symprec: float = 1e-3, return_positions: bool = False):
    """All orthogonal maps of a free cluster onto itself that preserve species.

    Parameters
    ----------
    positions : (n_sites, 3) float64, Å
    species : (n_sites,) str or int
    symprec : float, Å
        Largest allowed distance between a mapped site and its image.

    return_positions : bool
        Also return the positions made exactly symmetric under the group found.

    Returns
    -------
    PointGroup
        Cartesian matrices about the centroid and the induced site permutations.
    positions : (n_sites, 3) float64, Å (only if ``return_positions``)
        The input symmetrized over the group (same centroid): every operation maps it onto
        itself to rounding (~1e-15 Å), so equivalent pairs have equal lengths.
    """
    from .spacegroup import _check_symprec

    _check_symprec(symprec)
    x = np.asarray(positions, dtype=float)
    spec = np.asarray(species)
    n = len(x)
    if n < 2:
        raise ClusterError(f"a cluster needs at least 2 sites, got {n}")
    c = x.mean(axis=0)
    x = x - c
    dim = dimensionality(x, symprec)
    if dim == 1:
        group = _collinear_group(x, spec, symprec)
        exact = _symmetrize(x, group.rotations, group.permutations) + c
        return (group, exact) if return_positions else group

    radii = np.linalg.norm(x, axis=1)
    dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
    # reference sites: a, b (span a plane with the centre), c (out of that plane, if 3-D)
    order = np.argsort(-radii, kind="stable")
    a = next(i for i in order if radii[i] > symprec)
    b = next(
        i for i in order if np.linalg.norm(np.cross(x[a], x[i])) > symprec * max(radii[a], 1.0)
    )
    refs = [a, b]
    if dim == 3:
        normal = np.cross(x[a], x[b])
        cc = next(i for i in order if abs(x[i] @ normal) > symprec * np.linalg.norm(normal))
        refs.append(cc)

    def candidates(i, chosen):
        ok = (spec == spec[i]) & (np.abs(radii - radii[i]) < 2 * symprec)
        for j, img in chosen:
            ok &= np.abs(dist[:, img] - dist[i, j]) < 2 * symprec
        return np.flatnonzero(ok)

    def frame(vecs):
        v = list(vecs)
        if len(v) == 2:
            v.append(np.cross(v[0], v[1]))
        return np.array(v).T  # 3 x 3, columns

    src = frame(x[refs])
    src_inv = np.linalg.inv(src)
    # a map solved from noisy reference sites is orthogonal only to ~ noise / radius
    ortho_tol = max(1e-3, 20.0 * symprec / max(float(np.min(radii[refs])), symprec))
    rots, perms = [], []
    for imgs in _assignments(refs, candidates):
        dst_cols = [x[k] for k in imgs]
        signs = (1.0,) if dim == 3 else (1.0, -1.0)
        for s in signs:
            dst = frame(dst_cols)
            if dim == 2:
                dst[:, 2] *= s
            r = dst @ src_inv
            if not np.allclose(r @ r.T, np.eye(3), atol=ortho_tol):
                continue
            u, _, vt = np.linalg.svd(r)
            r = u @ vt  # nearest orthogonal matrix
            p = _match_permutation(x @ r.T, x, spec, symprec)
            if p is not None:
                rots.append(r)
                perms.append(p)
    if not rots:
        raise SymmetryError("no symmetry found, not even the identity", fix="check 'symprec'")
    rots, perms = _close(x, spec, np.array(rots), np.array(perms), symprec)
    rots, exact = _refine(x, rots, perms, dim)
    group = PointGroup.from_operations(rots, perms)
    if not return_positions:
        return group
    exact = _symmetrize(exact, group.rotations, group.permutations)
    return group, exact + c


def _symmetrize(x: np.ndarray, rots: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Centred sites averaged over the group: ``x_i <- (1/|G|) Σ_g R_gᵀ x_perm_g(i)``."""
    xs = np.mean([x[p] @ r for r, p in zip(rots, perms)], axis=0)
    return xs - xs.mean(axis=0)


def _assignments(refs, candidates):
    """Yield image tuples for the reference sites, depth first with distance pruning."""

    def rec(k, chosen):
        if k == len(refs):
            yield tuple(img for _, img in chosen)
            return
        for img in candidates(refs[k], chosen):
            if any(img == c for _, c in chosen):
                continue
            yield from rec(k + 1, chosen + [(refs[k], img)])

    yield from rec(0, [])


def _close(x, spec, rots, perms, symprec, max_order: int = 480):
    """Deduplicate the operations and add the products that noisy coordinates made the
    search miss (a product of two symmetries is a symmetry)."""
    keep = []
    for i in range(len(rots)):
        if not keep or _nearest(rots[i:i + 1], rots[keep])[1][0] > 0.05:
            keep.append(i)
    rots, perms = list(rots[keep]), list(perms[keep])
    while len(rots) <= max_order:
        r = np.array(rots)
        prods = np.einsum("aij,bjk->abik", r, r).reshape(-1, 3, 3)
        d = _nearest(prods, r)[1]
        missing = prods[d > 0.05]  # distinct point operations are far apart (≥ 0.5)
        if not len(missing):
            break
        new = missing[:1]  # add one at a time: its products may cover the others
        p = _match_permutation(x @ new[0].T, x, spec, 4 * symprec)
        if p is None:
            raise SymmetryError(
                "the symmetry operations found on these coordinates are not closed",
                why="the coordinates are too far from a symmetric geometry for 'symprec'",
                fix="symmetrize the coordinates or change 'symprec' (Å)",
            )
        rots.append(new[0])
        perms.append(p)
    return np.array(rots), np.array(perms)


def _refine(x: np.ndarray, rots: np.ndarray, perms: np.ndarray, dim: int, sweeps: int = 4):
    """Make operations found on slightly noisy coordinates exact (to ~1e-13); returns the
    refined matrices and the symmetrized centred sites.

    Alternates (1) symmetrizing the centred sites over the operations,
    ``x_i <- (1/|G|) Σ_g R_gᵀ x_perm_g(i)``, and (2) refitting every ``R_g`` as the
    orthogonal map that best sends the symmetrized ``x_i`` to ``x_perm_g(i)`` (Kabsch, with
    the plane normal as an extra point for planar clusters so mirrors keep their sign).
    """
    rots = rots.copy()
    normal = None
    if dim == 2:
        normal = np.linalg.svd(x - x.mean(axis=0))[2][2]
    for _ in range(sweeps):
        xs = np.mean([x[p] @ r for r, p in zip(rots, perms)], axis=0)  # R^T x_p(i) as rows
        xs -= xs.mean(axis=0)
        for k, (r, p) in enumerate(zip(rots, perms)):
            src, dst = xs, xs[p]
            if normal is not None:
                sign = np.sign(normal @ r @ normal)
                src = np.vstack([src, normal])
                dst = np.vstack([dst, sign * normal])
            u, _, vt = np.linalg.svd(dst.T @ src)
            rots[k] = u @ vt
    return rots, _symmetrize(x, rots, perms)


def _collinear_group(x, spec, symprec) -> PointGroup:
    """Finite image of C∞v / D∞h on a collinear cluster: E, plus the inversion if the
    cluster is symmetric about its centre.  The matrices are those of a generating set
    (identity, and -1 for the reversal), labelled C∞v or D∞h."""
    rots = [np.eye(3)]
    perms = [np.arange(len(x))]
    p = _match_permutation(-x, x, spec, symprec)
    if p is not None:
        rots.append(-np.eye(3))
        perms.append(p)
    g = PointGroup.from_operations(np.array(rots), np.array(perms), label=False)
    name = ("D∞h", "∞/mm") if p is not None else ("C∞v", "∞m")
    object.__setattr__(g, "schoenflies", name[0])
    object.__setattr__(g, "hermann_mauguin", name[1])
    return g


def polyhedron(name: str, radius: float = 1.0) -> tuple[list[str], np.ndarray]:
    """Ideal test clusters: tetrahedron, octahedron, cube, square, triangle,
    trigonal_bipyramid, icosahedron.  Returns (species, positions (n, 3) Å)."""
    phi = (1 + 5**0.5) / 2
    shapes = {
        "tetrahedron": [(1, 1, 1), (1, -1, -1), (-1, 1, -1), (-1, -1, 1)],
        "octahedron": [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)],
        "cube": list(itertools.product((-1, 1), repeat=3)),
        "square": [(1, 0, 0), (0, 1, 0), (-1, 0, 0), (0, -1, 0)],
        "triangle": [(1, 0, 0), (-0.5, 3**0.5 / 2, 0), (-0.5, -(3**0.5) / 2, 0)],
        "trigonal_bipyramid": [
            (1, 0, 0), (-0.5, 3**0.5 / 2, 0), (-0.5, -(3**0.5) / 2, 0), (0, 0, 1.2), (0, 0, -1.2)
        ],
        "icosahedron": [
            p
            for a, b in itertools.product((-1, 1), repeat=2)
            for p in ((0, a, b * phi), (a, b * phi, 0), (b * phi, 0, a))
        ],
    }
    if name not in shapes:
        raise ClusterError(f"unknown test polyhedron {name!r}", fix=f"use one of {sorted(shapes)}")
    pos = np.array(shapes[name], dtype=float)
    pos *= radius / np.max(np.linalg.norm(pos, axis=1))
    return ["X"] * len(pos), pos
