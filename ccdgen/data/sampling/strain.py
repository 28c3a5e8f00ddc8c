"""Strains by irrep of the reference point group, systematic and random.

A strain is the symmetric Biot strain ``ε = U − I`` (dimensionless) applied to a frame as
``x' = x (I + ε)``, ``cell' = cell (I + ε)`` (rows; fractional coordinates unchanged).
The 6-D space of symmetric tensors, with the orthonormal (Frobenius) basis ``xx, yy, zz,
√2·yz, √2·xz, √2·xy`` (:func:`voigt_basis`), carries the representation
``Γ(R) ε = R ε Rᵀ`` of the crystal's point group (the Cartesian rotations of its space
group).  It is split by the point group's computed character table
(:class:`~ccdgen.symmetry.group.PointGroup`) into isotypic subspaces with the projectors
``P = (d/|G|) Σ χ(g) Γ(g)`` and canonical Gram–Schmidt bases — the CCD front end's
machinery — and a multiplicity is split into irreducible copies by a generic invariant
operator.  For ``Oh``: ``A1g`` (volumetric), ``Eg`` (tetragonal/orthorhombic) and ``T2g``
(shear).

Systematic enumerations (:func:`strain_enumeration`) take each irrep block, a set of
directions in it reduced to the irreducible wedge (directions related by a symmetry give
equivalent frames; one of each kept), and the given amplitudes.  Random strains
(:func:`random_strains`) are Gaussian, or uniform on a sphere of given radius, in the
whole strain space or in chosen blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...ccd.names import block_tag
from ...errors import InternalError, SpecError
from . import FrameBatch

__all__ = ["StrainBlock", "StrainIrreps", "strain_irreps", "voigt_basis", "strain_tensor",
           "strain_enumeration", "random_strains", "apply_strains", "MAX_STRAIN"]

#: Largest strain component accepted (the mapping accepts principal stretches to 25 %).
MAX_STRAIN = 0.2

_VOIGT = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
#: Names for the Oh strain irreps.
NAMES = {"A1g": "volumetric", "Eg": "tetragonal", "T2g": "shear"}


def voigt_basis() -> np.ndarray:
    """(6, 3, 3) float64: the orthonormal basis xx, yy, zz, √2·yz, √2·xz, √2·xy of
    symmetric tensors (each has Frobenius norm 1)."""
    out = np.zeros((6, 3, 3))
    for k, (i, j) in enumerate(_VOIGT):
        if i == j:
            out[k, i, i] = 1.0
        else:
            out[k, i, j] = out[k, j, i] = 1 / np.sqrt(2)
    return out


def strain_tensor(vec) -> np.ndarray:
    """Coordinates in :func:`voigt_basis` ``(..., 6)`` → symmetric tensors ``(..., 3, 3)``."""
    return np.einsum("...k,kij->...ij", np.asarray(vec, dtype=float), voigt_basis())


def _rep_matrices(rots: np.ndarray) -> np.ndarray:
    """(n, 6, 6): Γ(R) on the Voigt basis coordinates."""
    e = voigt_basis()
    img = np.einsum("gia,kab,gjb->gkij", rots, e, rots)  # R e_k Rᵀ
    return np.einsum("lij,gkij->glk", e, img)


@dataclass(frozen=True)
class StrainBlock:
    """One irreducible block: ``label`` (Mulliken, e.g. ``"Eg"``), ``name`` (volumetric,
    tetragonal, shear, or the label), ``copy`` (0 if unique), ``basis`` (d, 6) rows in
    Voigt coordinates."""

    label: str
    name: str
    copy: int
    basis: np.ndarray

    @property
    def dim(self) -> int:
        return len(self.basis)

    @property
    def key(self) -> str:
        return block_tag(self.label, self.copy)


@dataclass(frozen=True, eq=False)
class StrainIrreps:
    """The strain space split by irreps of the point group ``group`` (PointGroup)."""

    group: object
    blocks: tuple
    matrices: np.ndarray  # (order, 6, 6)

    def select(self, spec="all") -> list:
        items = [spec] if isinstance(spec, str) else list(spec)
        names = [p.strip() for it in items for p in str(it).split(",") if p.strip()]
        if not names or "all" in [n.lower() for n in names]:
            return list(self.blocks)
        out = []
        for n in names:
            hit = [b for b in self.blocks if n in (b.label, b.key, b.name)]
            if not hit:
                raise SpecError(f"no strain irrep {n!r} in point group {self.group.schoenflies}",
                                fix="strain irreps are: " + ", ".join(f"{b.key} ({b.name})" for b in self.blocks))
            out.extend(b for b in hit if b not in out)
        return out

    def describe(self) -> str:
        return " + ".join(f"{b.key} ({b.name}, dim {b.dim})" for b in self.blocks)


def strain_irreps(source) -> StrainIrreps:
    """Strain irreps of a Problem's / SpaceGroup's point group, or of Cartesian rotations
    ``(n, 3, 3)``."""
    from ...symmetry.group import PointGroup

    sg = getattr(source, "spacegroup", source)
    rots = np.asarray(getattr(sg, "cartesian_rotations", sg), dtype=float)
    keys = {}
    for r in rots:  # one per distinct matrix
        keys.setdefault(np.round(r, 8).tobytes(), r)
    rots = np.array(list(keys.values()))
    group = PointGroup.from_operations(rots, np.zeros((len(rots), 1), dtype=np.int64))
    table = group.character_table
    mats = _rep_matrices(group.rotations)
    chi_rep = np.trace(mats, axis1=1, axis2=2)
    cls = np.array([chi_rep[c[0]] for c in group.classes])
    mult = table.decompose(cls)
    blocks = []
    for r in np.flatnonzero(mult):
        chi = table.real_characters[r][group.class_of]
        d_c = table.real_dims[r] / len(table.real_of_complex[r])
        proj = d_c / group.order * np.einsum("g,gij->ij", chi, mats)
        iso = _canonical_rows(proj, int(table.real_dims[r] * mult[r]))
        label = table.labels[r]
        if mult[r] == 1:
            copies = [iso]
        elif table.real_dims[r] == 1:  # one-dimensional copies: the canonical rows themselves
            copies = [row[None] for row in iso]
        else:  # split the copies with a generic invariant operator
            from ...quasirandom import quasi_random_normal

            q = quasi_random_normal(6, 6)
            x = q + q.T
            a = iso @ sum(m @ x @ m.T for m in mats) @ iso.T
            w, u = np.linalg.eigh(a)
            dim = int(table.real_dims[r])
            copies = []
            for k in range(int(mult[r])):
                sub = u[:, k * dim:(k + 1) * dim].T @ iso
                copies.append(_canonical_rows(sub.T @ sub, dim))
        cubic = group.schoenflies in ("Oh", "O", "Td", "Th", "T")
        for k, c in enumerate(copies):
            name = NAMES.get(label, label) if cubic else label
            blocks.append(StrainBlock(label, name, k + 1 if len(copies) > 1 else 0, c))
    if sum(b.dim for b in blocks) != 6:
        raise InternalError("the strain irreps do not add up to 6 dimensions")
    return StrainIrreps(group, tuple(blocks), mats)


def _canonical_rows(proj: np.ndarray, dim: int) -> np.ndarray:
    """(dim, 6): Gram–Schmidt of the projector's columns in index order."""
    from ...linalg import canonical_span_basis

    return canonical_span_basis(lambda p: proj[:, p], proj.shape[0], dim, "strain projector").T


# ----------------------------------------------------------------------------- directions
def _sphere_directions(dim: int, n: int) -> np.ndarray:
    """``n`` deterministic, evenly spread unit vectors in R^dim (dim 1: ±1; dim 2: a
    half-turn of angles; dim ≥ 3: a Fibonacci / R_d spread)."""
    if dim == 1:
        return np.array([[1.0], [-1.0]])[:max(1, min(n, 2))]
    if dim == 2:
        t = np.pi * np.arange(2 * n) / n
        return np.stack([np.cos(t), np.sin(t)], axis=1)
    from ...quasirandom import quasi_random_normal

    v = quasi_random_normal(n, dim)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _canonical_strain(vec: np.ndarray, mats: np.ndarray) -> np.ndarray:
    """The lexicographically largest image of a strain (6,) under the group (compared
    after rounding to 1e-12): one representative per orbit."""
    imgs = np.einsum("gij,j->gi", mats, vec) + 0.0
    order = np.lexsort((np.round(imgs, 12) + 0.0).T[::-1])
    return imgs[order[-1]]


def strain_enumeration(irreps: StrainIrreps, amplitudes, select="all", directions: int = 0):
    """Systematic strains: ``(vectors (n, 6) Voigt coordinates, infos)``.

    For each selected block: its basis directions (``directions=0``) or ``directions``
    evenly spread directions in the block, each at every amplitude (signed; the norm of
    ε), carried into the irreducible wedge (the lexicographically largest image under
    the point group, one representative per orbit); symmetry-equivalent strains are
    kept once.
    """
    amps = _check_strains(amplitudes)
    vecs, infos, seen = [], [], set()
    for blk in irreps.select(select):
        dirs = blk.basis if directions <= 0 else _sphere_directions(blk.dim, int(directions)) @ blk.basis
        for k, d in enumerate(dirs):
            for a in amps:
                v = _canonical_strain(a * d, irreps.matrices)  # its image in the irreducible wedge
                key = (np.round(v, 12) + 0.0).tobytes()
                if key in seen:
                    continue
                seen.add(key)
                vecs.append(v)
                infos.append({"family": "strain", "strain_irrep": blk.key, "strain_name": blk.name,
                              "direction": int(k), "amplitude": float(a),
                              "strain": strain_tensor(v)[[0, 1, 2, 1, 0, 0], [0, 1, 2, 2, 2, 1]]})
    return np.array(vecs).reshape(-1, 6), infos


def random_strains(n: int, rng: np.random.Generator, *, sigma: float | None = None,
                   radius: float | None = None, blocks=None) -> np.ndarray:
    """``n`` random strains ``(n, 6)`` Voigt coordinates: Gaussian with standard deviation
    ``sigma`` per coordinate, or uniform on the sphere of norm ``radius``, in the span of
    ``blocks`` (StrainBlocks; default all six dimensions)."""
    if (sigma is None) == (radius is None):
        raise SpecError("give one of sigma or radius for random strains")
    size = sigma if sigma is not None else radius
    _check_strains([size])
    basis = np.eye(6) if not blocks else np.concatenate([b.basis for b in blocks])
    g = rng.standard_normal((int(n), len(basis)))
    if radius is not None:
        g = radius * g / np.linalg.norm(g, axis=1, keepdims=True)
    else:
        g = sigma * g
    return g @ basis


def _check_strains(values) -> np.ndarray:
    a = np.atleast_1d(np.asarray(values, dtype=float))
    if a.size == 0 or not np.all(np.isfinite(a)) or np.any(a == 0) or np.any(np.abs(a) > MAX_STRAIN):
        raise SpecError(f"strain amplitudes {a.tolist()} are out of range",
                        why=f"a strain amplitude is the norm of ε (dimensionless), non-zero and at most "
                            f"{MAX_STRAIN:g} (beyond that frames no longer map onto the reference)",
                        fix="give e.g. --strain-amplitudes -0.02 0.02 (2 %)")
    return a


def apply_strains(base: FrameBatch, vectors, infos=None) -> FrameBatch:
    """Every base frame strained by every strain ``vectors (n, 6)``: ``x (I + ε)``,
    ``cell (I + ε)``.  ``infos`` (one per strain) are merged into the base's info."""
    eps = strain_tensor(np.asarray(vectors, dtype=float).reshape(-1, 6))
    pos, cells, out = [], [], []
    for f in range(len(base)):
        for k, e in enumerate(eps):
            m = np.eye(3) + e
            pos.append(base.positions[f] @ m)
            cells.append(base.cells[f] @ m)
            info = dict(base.infos[f])
            if infos is not None:
                info.update(infos[k])
            out.append(info)
    return FrameBatch(base.numbers, np.array(pos), np.array(cells), tuple(out))
