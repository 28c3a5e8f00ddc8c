"""Character tables computed from the group itself (Burnside's algorithm).

Nothing is typed in: the class multiplication coefficients ``c_ijk`` come from the
multiplication table, a generic real combination of the class matrices ``M_j`` (fixed
quasi-random coefficients, the same on every machine) (with
``(M_j)_ik = c_jik``) is diagonalised, and its eigenvectors are the central characters
``omega_chi(C_i) = |C_i| chi(C_i) / chi(1)``.  The degree follows from
``sum_i |C_i| |chi(C_i)|^2 = |G|``.

Point groups have complex irreps (e.g. the ``E`` of C3).  Cartesian and pair
representations are real, so :class:`CharacterTable` also lists the *real* (physically
irreducible) representations: a real irrep is either a real-valued complex irrep or the
sum of a complex-conjugate pair.  Real irreps carry the Mulliken labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InternalError


@dataclass(frozen=True, eq=False)
class CharacterTable:
    """Characters of a finite group.

    Attributes
    ----------
    class_sizes : (n_classes,) int
    characters : (n_irreps, n_classes) complex128
        Complex irreducible characters, trivial first, sorted by degree.
    real_characters : (n_real, n_classes) float64
        Characters of the real irreps (conjugate pairs summed).
    real_dims : (n_real,) int
    real_of_complex : tuple of tuple of int
        Which complex irreps make up each real irrep.
    labels : tuple of str
        Mulliken labels of the real irreps ("A1g", "Eg", ...), or Γ1, Γ2, ...
    """

    class_sizes: np.ndarray
    characters: np.ndarray
    real_characters: np.ndarray
    real_dims: np.ndarray
    real_of_complex: tuple
    labels: tuple

    @property
    def order(self) -> int:
        return int(self.class_sizes.sum())

    def real_characters_per_element(self, class_of: np.ndarray) -> np.ndarray:
        """(n_real, order) float64: the real characters expanded to every element."""
        return self.real_characters[:, class_of]

    def decompose(self, chi: np.ndarray) -> np.ndarray:
        """Multiplicities of each *real* irrep in a real representation.

        Parameters
        ----------
        chi : (n_classes,) float
            Character of the representation on each class.

        Returns
        -------
        (n_real,) int
        """
        inner = (self.class_sizes * chi) @ self.real_characters.T / self.order
        # a real irrep of complex type has <chi_R, chi_R> = 2, so divide by its norm
        norms = (self.class_sizes * self.real_characters**2).sum(axis=1) / self.order
        m = inner / norms
        mi = np.rint(m)
        if np.max(np.abs(m - mi), initial=0.0) > 1e-6:
            raise InternalError(f"non-integer irrep multiplicities {m}")
        return mi.astype(np.int64)


def _class_coefficients(group) -> np.ndarray:
    """c[i, j, k] = #{(x, y) : x in C_i, y in C_j, x y = z_k} for a fixed z_k in C_k."""
    table = group.multiplication_table
    classes = group.classes
    class_of = group.class_of
    inv = group.inverses
    n = len(classes)
    c = np.zeros((n, n, n), dtype=np.int64)
    for k, ck in enumerate(classes):
        z = ck[0]
        for i, ci in enumerate(classes):
            for x in ci:
                y = table[inv[x], z]  # x y = z  =>  y = x^-1 z
                c[i, class_of[y], k] += 1
    return c


def compute_character_table(group) -> CharacterTable:
    """Compute the complex and real character tables of a :class:`PointGroup`."""
    classes = group.classes
    sizes = np.array([len(c) for c in classes], dtype=np.int64)
    n = len(classes)
    order = group.order
    if n == 1:
        chars = np.ones((1, 1), dtype=complex)
    else:
        from ..quasirandom import quasi_random_normal

        coeff = _class_coefficients(group)
        for a in quasi_random_normal(10, n):
            # (M_j)_{ik} = c_{j i k};  M_j omega = omega(C_j) omega  (column eigenvector)
            m = np.einsum("j,jik->ik", a, coeff).astype(float)
            evals, vecs = np.linalg.eig(m)
            if np.min(np.abs(np.subtract.outer(evals, evals)) + np.eye(n) * 1e9) > 1e-6:
                break
        else:  # pragma: no cover - a generic combination is degenerate with probability 0
            raise InternalError("could not separate the irreps of the class algebra")
        omegas = (vecs / vecs[0:1, :]).T  # rows: omega_chi(C_i), omega(identity) = 1
        chars = []
        for w in omegas:
            deg = np.sqrt(order / np.sum(np.abs(w) ** 2 / sizes))
            chars.append(deg * w / sizes)
        chars = np.array(chars)
    # clean up: round near-integers and tiny imaginary parts
    chars = np.where(np.abs(chars.imag) < 1e-9, chars.real + 0j, chars)
    degs = np.rint(chars[:, 0].real).astype(int)
    key = [
        (degs[r], -int(np.allclose(chars[r], 1)), tuple(np.round(-chars[r].real, 6)), tuple(np.round(chars[r].imag, 6)))
        for r in range(len(chars))
    ]
    chars = chars[sorted(range(len(chars)), key=lambda r: key[r])]
    _check_orthogonality(chars, sizes, order)

    # real irreps: pair complex irreps with their conjugates
    used = set()
    real_chars, real_dims, members = [], [], []
    for r, chi in enumerate(chars):
        if r in used:
            continue
        if np.allclose(chi.imag, 0, atol=1e-9):
            used.add(r)
            real_chars.append(chi.real)
            real_dims.append(int(round(chi[0].real)))
            members.append((r,))
            continue
        partner = next(
            s for s in range(len(chars)) if s not in used and s != r and np.allclose(chars[s], chi.conj(), atol=1e-8)
        )
        used.update((r, partner))
        real_chars.append(2 * chi.real)
        real_dims.append(2 * int(round(chi[0].real)))
        members.append((r, partner))
    real_chars = np.array(real_chars)
    real_dims = np.array(real_dims)

    from .labels import mulliken_labels

    per_element = real_chars[:, group.class_of]
    labels = tuple(mulliken_labels(group.rotations, per_element))
    return CharacterTable(
        class_sizes=sizes,
        characters=chars,
        real_characters=real_chars,
        real_dims=real_dims,
        real_of_complex=tuple(members),
        labels=labels,
    )


def _check_orthogonality(chars: np.ndarray, sizes: np.ndarray, order: int) -> None:
    gram = (chars * sizes) @ chars.conj().T / order
    if not np.allclose(gram, np.eye(len(chars)), atol=1e-8):
        raise InternalError("computed characters are not orthonormal")
    if int(round(np.sum(chars[:, 0].real ** 2))) != order:
        raise InternalError("sum of squared degrees differs from the group order")
