"""The pair permutation representation Γ(g) (Eqs. 9-10) and its irreps.

Pairs are ``(i, j)`` with ``i < j`` in lexicographic order.  An operation ``g`` sends pair
``p = (i, j)`` to ``g(p) = (perm[g, i], perm[g, j])`` and so ``eps' = Γ(g) eps`` with
``Γ(g)[g(p), p] = 1``.  Γ is stored as index arrays ``pair_perm[g, p] = g(p)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..symmetry.group import PointGroup


def pair_indices(n_sites: int) -> np.ndarray:
    """(n_pairs, 2) int: the pairs ``(i, j)``, ``i < j``, in lexicographic order."""
    i, j = np.triu_indices(n_sites, 1)
    return np.stack([i, j], axis=1)


@dataclass(frozen=True, eq=False)
class IrrepContent:
    """One real irrep in a representation: label, dimension, multiplicity, its index
    in the group's character table and its projector onto the isotypic subspace."""

    label: str
    dim: int
    multiplicity: int
    index: int


@dataclass(frozen=True, eq=False)
class PairRepresentation:
    """Γ(g) for every operation of the cluster point group.

    Attributes
    ----------
    group : PointGroup
    pairs : (n_pairs, 2) int
    pair_perm : (order, n_pairs) int — ``pair_perm[g, p]`` is the image of pair ``p``
    """

    group: PointGroup
    pairs: np.ndarray
    pair_perm: np.ndarray

    @classmethod
    def from_group(cls, group: PointGroup) -> "PairRepresentation":
        pairs = pair_indices(group.n_sites)
        lookup = {(int(i), int(j)): k for k, (i, j) in enumerate(pairs)}
        pp = np.empty((group.order, len(pairs)), dtype=np.int64)
        for g, perm in enumerate(group.permutations):
            for k, (i, j) in enumerate(pairs):
                a, b = perm[i], perm[j]
                pp[g, k] = lookup[(min(a, b), max(a, b))]
        return cls(group, pairs, pp)

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    def matrices(self) -> np.ndarray:
        """(order, n_pairs, n_pairs) float64: the permutation matrices Γ(g)."""
        order, m = self.pair_perm.shape
        out = np.zeros((order, m, m))
        g = np.repeat(np.arange(order), m)
        out[g, self.pair_perm.ravel(), np.tile(np.arange(m), order)] = 1.0
        return out

    @cached_property
    def inverse_perm(self) -> np.ndarray:
        """(order, n_pairs) int: ``inverse_perm[g, g(p)] = p``, so ``(Γ(g) y)[q] = y[inverse_perm[g, q]]``."""
        out = np.empty_like(self.pair_perm)
        rows = np.arange(self.pair_perm.shape[1])
        for g, pp in enumerate(self.pair_perm):
            out[g, pp] = rows
        return out

    @cached_property
    def characters(self) -> np.ndarray:
        """(order,) float: χ_Γ(g) = number of pairs fixed by g."""
        return (self.pair_perm == np.arange(self.n_pairs)).sum(axis=1).astype(float)

    @cached_property
    def irreps(self) -> tuple[IrrepContent, ...]:
        """The real irreps contained in Γ with their multiplicities (Σ m·d = n_pairs)."""
        table = self.group.character_table
        chi = np.array([self.characters[list(c)[0]] for c in self.group.classes])
        mult = table.decompose(chi)
        return tuple(
            IrrepContent(table.labels[r], int(table.real_dims[r]), int(mult[r]), r)
            for r in range(len(mult)) if mult[r] > 0
        )

    def projector(self, irrep_index: int) -> np.ndarray:
        """(n_pairs, n_pairs): orthogonal projector onto the isotypic subspace of a real
        irrep, ``P = (d_c / |G|) Σ_g χ_R(g) Γ(g)`` (``d_c`` the complex constituent's degree)."""
        table = self.group.character_table
        chi = table.real_characters[irrep_index][self.group.class_of]
        d_c = table.real_dims[irrep_index] / len(table.real_of_complex[irrep_index])
        m = self.n_pairs
        p = np.zeros((m, m))
        for g in range(self.group.order):
            p[self.pair_perm[g], np.arange(m)] += chi[g]
        return p * d_c / self.group.order

    def describe(self) -> str:
        """e.g. ``2A1g + 2Eg + T2g + T1u + T2u``."""
        return " + ".join(f"{'' if i.multiplicity == 1 else i.multiplicity}{i.label}" for i in self.irreps)
