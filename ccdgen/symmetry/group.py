"""Finite point groups acting on the sites of a cluster.

A :class:`PointGroup` holds, for each operation ``g``, its Cartesian orthogonal matrix
``R_g`` (3x3) and the permutation it induces on the cluster sites::

    R_g (x_i - c) + c = x_{perm[g, i]}        (Eqs. 7-8, c = cluster centroid)

Group elements are identified by their matrices (faithful even when a planar cluster's
mirror plane fixes every site).  Everything else (multiplication table, inverses,
conjugacy classes) is derived on demand and cached on the frozen instance.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import InternalError, SymmetryError

#: Matrices are rounded to this many decimals for canonical ordering and signatures.
_DECIMALS = 6
#: Two operations are the same if their matrices differ by less than this (max entry).
MATCH_TOL = 1e-5


def _matrix_keys(rotations: np.ndarray) -> list[bytes]:
    r = np.round(np.asarray(rotations, dtype=float), _DECIMALS) + 0.0  # +0.0 kills -0.0
    return [m.tobytes() for m in r]


def _nearest(queries: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest member matrix for each query and the (Frobenius) distance."""
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(np.asarray(members).reshape(len(members), 9)).query(
        np.asarray(queries).reshape(len(queries), 9))
    return np.asarray(idx, dtype=np.int64), np.asarray(dist)


@dataclass(frozen=True, eq=False)
class PointGroup:
    """A finite group of orthogonal maps of a cluster onto itself.

    Attributes
    ----------
    rotations : (order, 3, 3) float64
        Cartesian orthogonal matrices, identity first.
    permutations : (order, n_sites) int64
        ``permutations[g, i]`` is the site that site ``i`` is carried to by ``g``.
    schoenflies, hermann_mauguin : str
        Standard labels ("Oh", "m-3m"); ``"?"`` when the group is not recognised.
    """

    rotations: np.ndarray
    permutations: np.ndarray
    schoenflies: str = "?"
    hermann_mauguin: str = "?"

    @classmethod
    def from_operations(cls, rotations, permutations, label: bool = True) -> "PointGroup":
        """Build, canonicalise (identity first, sorted by matrix) and name a group.

        Raises :class:`SymmetryError` if the operations are not closed under
        composition (usually a tolerance problem in the symmetry search).
        """
        rot = np.asarray(rotations, dtype=float)
        perm = np.asarray(permutations, dtype=np.int64)
        if rot.ndim != 3 or rot.shape[1:] != (3, 3) or perm.shape[0] != rot.shape[0]:
            raise InternalError(f"bad group arrays {rot.shape}, {perm.shape}")
        keep = []  # drop duplicates (within MATCH_TOL), keeping the first occurrence
        for i in range(len(rot)):
            if not keep or _nearest(rot[i:i + 1], rot[keep])[1][0] > MATCH_TOL:
                keep.append(i)
        rot, perm = rot[keep], perm[keep]
        keys = _matrix_keys(rot)
        ident = np.eye(3)
        is_id = [np.allclose(r, ident, atol=1e-6) for r in rot]
        order = sorted(range(len(rot)), key=lambda i: (not is_id[i], keys[i]))
        rot, perm = rot[order], perm[order]
        group = cls(np.ascontiguousarray(rot), np.ascontiguousarray(perm))
        group.check_closure()
        if label:
            from .labels import identify_point_group

            name = identify_point_group(group.rotations)
            object.__setattr__(group, "schoenflies", name.schoenflies)
            object.__setattr__(group, "hermann_mauguin", name.hermann_mauguin)
        return group

    # ------------------------------------------------------------------ basics
    @property
    def order(self) -> int:
        return int(self.rotations.shape[0])

    @property
    def n_sites(self) -> int:
        return int(self.permutations.shape[1])

    @property
    def label(self) -> str:
        return self.schoenflies

    def __repr__(self) -> str:
        return f"PointGroup({self.schoenflies!r}, order={self.order}, n_sites={self.n_sites})"

    def signature(self) -> str:
        """SHA-256 of the canonical content (rounded matrices and permutations)."""
        h = hashlib.sha256()
        h.update(np.round(self.rotations, _DECIMALS).tobytes())
        h.update(self.permutations.astype(np.int64).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------ structure
    def index_of(self, matrix: np.ndarray) -> int:
        """Index of the operation with this Cartesian matrix (KeyError if absent)."""
        idx, dist = _nearest(np.asarray(matrix, float)[None], self.rotations)
        if dist[0] > MATCH_TOL:
            raise KeyError("no operation of the group has this matrix")
        return int(idx[0])

    def check_closure(self) -> None:
        """Raise :class:`SymmetryError` unless the matrices form a group."""
        try:
            _ = self.multiplication_table
        except KeyError:
            raise SymmetryError(
                f"the {self.order} operations found do not form a group",
                why="a product of two operations is not in the set, which happens when "
                "the geometric tolerance is too loose or too tight for this structure",
                fix="symmetrize the input coordinates or change the 'symprec' tolerance",
            ) from None

    @cached_property
    def multiplication_table(self) -> np.ndarray:
        """(order, order) int: ``table[a, b]`` is the index of ``R_a @ R_b``.

        Also checks that the site permutations compose the same way.
        """
        n = self.order
        prods = np.einsum("aij,bjk->abik", self.rotations, self.rotations).reshape(-1, 3, 3)
        idx, dist = _nearest(prods, self.rotations)
        if np.max(dist, initial=0.0) > MATCH_TOL:
            raise KeyError("not closed")
        table = idx.astype(np.int64).reshape(n, n)
        # perm of (a b): site i -> perm_a[perm_b[i]]
        composed = np.take_along_axis(
            np.broadcast_to(self.permutations[:, None, :], (n, n, self.n_sites)),
            np.broadcast_to(self.permutations[None, :, :], (n, n, self.n_sites)),
            axis=2,
        )
        if not np.array_equal(composed, self.permutations[table]):
            raise SymmetryError(
                "site permutations do not compose like the matrices",
                why="two sites were matched to the same image, usually a tolerance problem",
                fix="symmetrize the coordinates or loosen 'symprec'",
            )
        return table

    @cached_property
    def inverses(self) -> np.ndarray:
        """(order,) int: index of each operation's inverse."""
        return np.argmax(self.multiplication_table == 0, axis=1)

    @cached_property
    def classes(self) -> tuple[tuple[int, ...], ...]:
        """Conjugacy classes as sorted index tuples, the identity's class first."""
        table, inv = self.multiplication_table, self.inverses
        seen = np.zeros(self.order, dtype=bool)
        out = []
        for a in range(self.order):
            if seen[a]:
                continue
            conj = {int(table[table[h, a], inv[h]]) for h in range(self.order)}
            for c in conj:
                seen[c] = True
            out.append(tuple(sorted(conj)))
        return tuple(out)

    @cached_property
    def class_of(self) -> np.ndarray:
        """(order,) int: the class index of each operation."""
        out = np.empty(self.order, dtype=np.int64)
        for k, cls_ in enumerate(self.classes):
            out[list(cls_)] = k
        return out

    @cached_property
    def character_table(self):
        """The :class:`~ccdgen.symmetry.characters.CharacterTable`, computed (not typed in)."""
        from .characters import compute_character_table

        return compute_character_table(self)

    # ---------------------------------------------------------- geometry
    def element_kinds(self) -> list[str]:
        """A short geometric name per operation: E, i, C3, S4, sigma, ..."""
        from .labels import element_symbol

        return [element_symbol(r) for r in self.rotations]
