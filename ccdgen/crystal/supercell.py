"""Integer supercells of a reference crystal: sites, cluster orbits, symmetry operations.

Conventions
-----------
A supercell is an integer matrix ``H`` (3×3, ``det H ≠ 0``).  Its lattice vectors are the
rows of ``L = H @ A`` (Å), ``A`` being the reference cell (rows).  ``det H < 0`` is allowed:
it is the same set of sites with a left-handed lattice (``from_cell`` returns one when a
configuration's cell is left-handed relative to the reference, so that the deformation
``F`` of :mod:`ccdgen.crystal.mapping` keeps ``det F > 0``).  ``n_cells = |det H|``.

The cells inside are the reference-lattice translations ``t`` (integer, reference
fractional) that are distinct modulo the superlattice ``{m @ H : m ∈ Z³}``.  Their
canonical set and order come from the lower-triangular row Hermite normal form
``B = V @ H`` (``V`` unimodular, ``B[i, i] > 0``): ``t`` runs over the box
``0 ≤ t_i < B[i, i]`` in lexicographic order, cell index ``(t0 * B11 + t1) * B22 + t2``.
It depends only on the superlattice, and for ``H = diag(n1, n2, n3)`` it is ASE's
``Atoms.repeat((n1, n2, n3))`` order.  Supercell site ``s = cell * n_basis + b`` is basis
site ``b`` in cell ``t``; its ideal position is ``reference.positions[b] + t @ A``.

Sites of the infinite crystal are integer rows ``(b, n1, n2, n3)`` as in
:mod:`ccdgen.symmetry.spacegroup`; :meth:`Supercell.locate` maps them onto supercell sites
plus an integer supercell image, in exact integer arithmetic.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from ..errors import ClusterError, InputArrayError, MappingError, StructureError, SymmetryError
from ..geometry.structure import Crystal

__all__ = [
    "Supercell",
    "SupercellClusters",
    "SupercellSymmetry",
    "hermite_normal_form",
    "fit_supercell_matrices",
    "stretch_measure",
]

#: Candidates whose log-stretch differs by less than this are metrically equivalent (ties).
TIE_TOL = 1e-9


# ----------------------------------------------------------------------------- integers
def hermite_normal_form(h) -> tuple[np.ndarray, np.ndarray]:
    """Lower-triangular row Hermite normal form of a non-singular integer 3×3 matrix.

    Returns ``(B, V)``, both (3, 3) int64, with ``B = V @ h``, ``V`` unimodular,
    ``B`` lower triangular, ``B[i, i] > 0`` and ``0 ≤ B[i, j] < B[j, j]`` for ``i > j``.
    ``B`` depends only on the row lattice of ``h``.
    """
    b = [[int(x) for x in row] for row in np.asarray(h)]
    v = [[int(i == j) for j in range(3)] for i in range(3)]

    def sub(dst, src, q):  # row dst -= q * row src (in b and v)
        for m in (b, v):
            m[dst] = [x - q * y for x, y in zip(m[dst], m[src])]

    for piv in (2, 1, 0):  # gcd of column `piv` over rows 0..piv into row `piv`
        for r in range(piv):
            while b[r][piv] != 0:
                sub(piv, r, b[piv][piv] // b[r][piv])
                b[piv], b[r] = b[r], b[piv]
                v[piv], v[r] = v[r], v[piv]
        if b[piv][piv] < 0:
            b[piv] = [-x for x in b[piv]]
            v[piv] = [-x for x in v[piv]]
        if b[piv][piv] == 0:
            raise StructureError("the supercell matrix is singular (det H = 0)",
                                 fix="give three linearly independent integer rows")
    for i in (1, 2):
        for j in range(i - 1, -1, -1):
            sub(i, j, b[i][j] // b[j][j])
    return np.array(b, dtype=np.int64), np.array(v, dtype=np.int64)


def _int_matrix(h, what: str = "supercell matrix H") -> np.ndarray:
    try:
        arr = np.asarray(h)
        if arr.ndim == 1 and arr.shape == (3,):
            arr = np.diag(arr)
        f = np.asarray(arr, dtype=float)
    except (TypeError, ValueError) as exc:
        raise StructureError(f"the {what} is not a 3×3 array of integers: {h!r}") from exc
    if f.shape != (3, 3):
        raise StructureError(f"the {what} must have shape (3, 3), got {f.shape}",
                             fix="give H as [[h11, h12, h13], [h21, h22, h23], [h31, h32, h33]]")
    if not np.all(np.isfinite(f)) or np.any(np.abs(f - np.rint(f)) > 1e-9):
        raise StructureError(f"the {what} must have integer entries, got {f.tolist()}",
                             why="a supercell is spanned by integer combinations of the "
                             "reference lattice vectors")
    out = np.rint(f).astype(np.int64)
    if round(np.linalg.det(out)) == 0:
        raise StructureError(f"the {what} {out.tolist()} is singular (det H = 0)",
                             fix="give three linearly independent integer rows")
    return out


def _adjugate(h: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer adjugate and determinant of an integer 3×3 matrix: ``h @ adj = det * I``."""
    h = [[int(x) for x in r] for r in h]
    adj = [[0] * 3 for _ in range(3)]
    for i in range(3):
        for j in range(3):
            r = [k for k in range(3) if k != j]
            c = [k for k in range(3) if k != i]
            minor = h[r[0]][c[0]] * h[r[1]][c[1]] - h[r[0]][c[1]] * h[r[1]][c[0]]
            adj[i][j] = (-1) ** (i + j) * minor
    det = sum(h[0][k] * adj[k][0] for k in range(3))
    return np.array(adj, dtype=np.int64), int(det)


# ----------------------------------------------------------------------------- lattice fit
def stretch_measure(deformation) -> np.ndarray:
    """Size of a deformation: ``max_i |log σ_i|`` over the singular values σ of ``F``
    (the principal stretches).  (..., 3, 3) → (...,) float64; 0 for a rotation."""
    s = np.linalg.svd(np.asarray(deformation, dtype=float), compute_uv=False)
    with np.errstate(divide="ignore"):
        return np.max(np.abs(np.log(s)), axis=-1)


def _lattice_rows(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """All integer rows ``h ≠ 0`` with ``lo ≤ |h @ a| ≤ hi`` → (k, 3) int64."""
    bound = np.ceil(hi * np.linalg.norm(np.linalg.inv(a), axis=0)).astype(np.int64)
    axes = [np.arange(-k, k + 1) for k in bound]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 3)
    length = np.linalg.norm(grid @ a, axis=1)
    return grid[(length >= lo) & (length <= hi) & (length > 0)]


def fit_supercell_matrices(reference_cell, cell, n_cells: int | None = None,
                           max_log_stretch: float = np.log1p(0.25)) -> tuple[np.ndarray, np.ndarray]:
    """Every integer ``H`` whose lattice ``H @ A`` fits ``cell`` within a stretch bound.

    Uses only the metric (Gram matrix ``cell @ cell.T``), so the answer does not depend on
    how ``cell`` is rotated.  ``H`` fits if ``cell = (H @ A) @ F.T`` with every principal
    stretch σ of ``F`` in ``[exp(-m), exp(m)]`` (``m = max_log_stretch``) and
    ``det F > 0`` (the sign of ``det H`` follows the handedness of ``cell``).  Rows are
    enumerated from their lengths (``|h_i A|`` within ``[|c_i| e^-m, |c_i| e^m]``); every
    pair of rows must pass the same bound on the generalized eigenvalues of its 2×2 metric
    (a necessary condition), then ``|det H|`` and the full 3×3 stretch are checked.

    Parameters
    ----------
    reference_cell : (3, 3) float, Å — rows ``A``
    cell : (3, 3) float, Å — rows of the configuration's cell
    n_cells : required ``|det H|`` (None: any)
    max_log_stretch : bound ``m`` on ``max |log σ|``

    Returns
    -------
    (matrices (k, 3, 3) int64, log_stretch (k,) float64), sorted by log-stretch.
    """
    a = np.asarray(reference_cell, dtype=float)
    c = np.asarray(cell, dtype=float)
    g = c @ c.T
    k_chol = np.linalg.cholesky(g)  # a rotated copy of `cell`: the metric only
    sign = np.sign(np.linalg.det(c)) * np.sign(np.linalg.det(a))
    lengths = np.sqrt(np.diag(g))
    lo, hi = np.exp(-max_log_stretch), np.exp(max_log_stretch)
    rows = [_lattice_rows(a, lengths[i] * lo, lengths[i] * hi) for i in range(3)]
    empty = (np.zeros((0, 3, 3), np.int64), np.zeros(0))
    if any(len(r) == 0 for r in rows):
        return empty
    ga = a @ a.T

    def pair_ok(i, j):  # (n_i, n_j) bool: the 2×2 metric of rows (i, j) fits
        hi_, hj_ = rows[i], rows[j]
        gii = np.einsum("ki,ij,kj->k", hi_, ga, hi_)[:, None]
        gjj = np.einsum("ki,ij,kj->k", hj_, ga, hj_)[None, :]
        gij = hi_ @ ga @ hj_.T
        qa = gii * gjj - gij ** 2  # generalized eigenvalues of (G_cell[ij], G_L[ij])
        qb = -(g[i, i] * gjj + g[j, j] * gii - 2 * g[i, j] * gij)
        qc = g[i, i] * g[j, j] - g[i, j] ** 2
        ok = qa > 1e-12 * gii * gjj
        disc = np.sqrt(np.maximum(qb ** 2 - 4 * qa * qc, 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            lam_hi = (-qb + disc) / (2 * qa)
            lam_lo = (-qb - disc) / (2 * qa)
        return ok & (lam_hi <= hi ** 2 * (1 + 1e-12)) & (lam_lo >= lo ** 2 * (1 - 1e-12))

    ok01, ok02, ok12 = pair_ok(0, 1), pair_ok(0, 2), pair_ok(1, 2)
    i0, i1 = np.nonzero(ok01)
    p, i2 = np.nonzero(ok02[i0] & ok12[i1])
    if len(p) == 0:
        return empty
    hh = np.stack([rows[0][i0[p]], rows[1][i1[p]], rows[2][i2]], axis=1)
    det = (hh[:, 0, 0] * (hh[:, 1, 1] * hh[:, 2, 2] - hh[:, 1, 2] * hh[:, 2, 1])
           - hh[:, 0, 1] * (hh[:, 1, 0] * hh[:, 2, 2] - hh[:, 1, 2] * hh[:, 2, 0])
           + hh[:, 0, 2] * (hh[:, 1, 0] * hh[:, 2, 1] - hh[:, 1, 1] * hh[:, 2, 0]))
    keep = (det != 0) & (np.sign(det) == sign)
    if n_cells is not None:
        keep &= np.abs(det) == int(n_cells)
    hh = hh[keep]
    if len(hh) == 0:
        return empty
    lat = hh @ a
    s = stretch_measure(np.swapaxes(np.linalg.solve(lat, k_chol), -1, -2))
    keep = s <= max_log_stretch * (1 + 1e-12)
    hh, s = hh[keep], s[keep]
    order = np.lexsort((np.arange(len(s)), s))
    return hh[order], s[order]


def canonical_choice(matrices) -> int:
    """Index of the preferred matrix among metrically equivalent ones: the largest trace
    (supercell axes as parallel to the reference axes as possible), then the
    lexicographically largest rows.  (k, 3, 3) int → int."""
    m = np.asarray(matrices)
    keys = [(int(np.trace(x)), tuple(x.reshape(-1).tolist())) for x in m]
    return max(range(len(m)), key=lambda i: keys[i])


def _strain_text(log_stretch: float) -> str:
    return f"{100 * np.expm1(log_stretch):.1f} %"


# ----------------------------------------------------------------------------- outputs
@dataclass(frozen=True, eq=False)
class SupercellClusters:
    """Every cluster of one orbit in a supercell.

    Attributes
    ----------
    name : str — the cluster's name
    atoms : (n_clusters, n_sites) int64 — supercell site of each cluster site
    images : (n_clusters, n_sites, 3) int64 — supercell-lattice image of each site
    Rows are orbit member major, cell translation minor.  The unwrapped positions of a
    configuration with positions ``X`` (site order) and cell ``C`` (rows, corresponding
    to ``L``) are ``X[atoms] + images @ C``.
    """

    name: str
    atoms: np.ndarray
    images: np.ndarray

    @property
    def n_clusters(self) -> int:
        return len(self.atoms)

    @property
    def n_sites(self) -> int:
        return self.atoms.shape[1]

    def positions(self, positions, cell) -> np.ndarray:
        """Unwrapped cluster geometries ``X[atoms] + images @ C``.

        ``positions (n_atoms, 3)`` Å in site order and ``cell (3, 3)`` → ``(n_clusters,
        n_sites, 3)``; or batched ``(n_frames, n_atoms, 3)``, ``(n_frames, 3, 3)`` →
        ``(n_frames, n_clusters, n_sites, 3)`` float64, Å.
        """
        x = np.asarray(positions, dtype=float)
        c = np.asarray(cell, dtype=float)
        if x.ndim == 2:
            return x[self.atoms] + self.images @ c
        return x[:, self.atoms] + np.einsum("kij,fjl->fkil", self.images.astype(float), c)


@dataclass(frozen=True, eq=False)
class SupercellSymmetry:
    """The space-group operations of the reference that map a supercell onto itself.

    Operation ``k`` acts on a configuration in site order with positions ``X`` (Å, in
    the undeformed frame, cell ``L``) as::

        X'[perms[k, s]] = rotations[k] @ X[s] + translations[k] - images[k, s] @ L

    For ideal positions ``X = supercell.positions`` this holds exactly up to rounding
    (``X' = X``).  For a configuration given as reference-frame displacements ``d``
    (site order) and stretch ``U``, the transformed state is ``d'[perms[k, s]] = R d[s]``,
    ``U' = R U Rᵀ`` (``R = rotations[k]``).  Order: space-group operation major (in the
    SpaceGroup's order, compatible ones only), cell translation minor; the identity is
    operation 0 when the space group lists the identity first (spglib does).

    Attributes
    ----------
    rotations : (n_ops, 3, 3) float64 — Cartesian orthogonal ``R``
    translations : (n_ops, 3) float64, Å — Cartesian ``τ``
    perms : (n_ops, n_atoms) int64 — image site of each site
    images : (n_ops, n_atoms, 3) int64 — supercell-lattice images (see above)
    frac_rotations : (n_ops, 3, 3) int64 — the fractional ``W`` (reference cell)
    frac_translations : (n_ops, 3) float64 — ``w + t`` (reference fractional)
    space_group_op : (n_ops,) int64 — index of the operation in the SpaceGroup
    """

    supercell: "Supercell"
    rotations: np.ndarray
    translations: np.ndarray
    perms: np.ndarray
    images: np.ndarray
    frac_rotations: np.ndarray
    frac_translations: np.ndarray
    space_group_op: np.ndarray

    def __len__(self) -> int:
        return len(self.perms)

    def apply(self, op: int, positions) -> np.ndarray:
        """Operation ``op`` on positions ``(n_atoms, 3)`` Å in site order (undeformed
        frame) → the transformed positions in site order, ``(n_atoms, 3)`` Å."""
        x = np.asarray(positions, dtype=float)
        out = np.empty_like(x)
        out[self.perms[op]] = (x @ self.rotations[op].T + self.translations[op]
                               - self.images[op] @ self.supercell.cell)
        return out


# ----------------------------------------------------------------------------- Supercell
@dataclass(frozen=True, eq=False)
class Supercell:
    """An integer supercell of the reference crystal (see the module docstring).

    Attributes
    ----------
    reference : Crystal
    matrix : (3, 3) int64 — ``H``; supercell lattice rows ``L = H @ reference.cell``
        (given as any integer 3×3 array, or three integers for a diagonal ``H``)
    translations : (n_cells, 3) int64 — reference-lattice translations of the cells, in
        canonical order (ASE ``repeat`` order for a positive diagonal ``H``); derived.
    """

    reference: Crystal
    matrix: np.ndarray
    translations: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if not isinstance(self.reference, Crystal):
            raise StructureError(f"a Supercell needs a Crystal reference, got {type(self.reference).__name__}")
        h = _int_matrix(self.matrix)
        h.setflags(write=False)
        object.__setattr__(self, "matrix", h)
        b, _ = self._hnf
        box = itertools.product(*(range(int(b[i, i])) for i in range(3)))
        t = np.array(list(box), dtype=np.int64).reshape(-1, 3)
        t.setflags(write=False)
        object.__setattr__(self, "translations", t)

    # -- constructors
    @classmethod
    def diagonal(cls, reference: Crystal, repeat) -> "Supercell":
        """``H = diag(n1, n2, n3)``: site order is ``reference.to_atoms().repeat(repeat)``."""
        r = np.asarray(repeat).reshape(-1)
        if r.shape == (1,):
            r = np.repeat(r, 3)
        if r.shape != (3,) or np.any(r < 1) or np.any(r != np.rint(r)):
            raise StructureError(f"a diagonal supercell needs three positive integers, got {repeat!r}")
        return cls(reference, np.diag(r.astype(np.int64)))

    @classmethod
    def from_matrix(cls, reference: Crystal, matrix) -> "Supercell":
        """Same as ``Supercell(reference, matrix)``."""
        return cls(reference, matrix)

    @classmethod
    def from_cell(cls, reference: Crystal, cell, max_strain: float = 0.25, *,
                  n_atoms: int | None = None, frame=None) -> "Supercell":
        """The supercell whose lattice best fits ``cell`` (rows, Å; any rotation, moderate strain).

        Compares metrics only (:func:`fit_supercell_matrices`); ``H`` minimizes the largest
        principal log-stretch ``max |log σ|`` of ``F`` (``cell = L Fᵀ``), which must satisfy
        ``1/(1+max_strain) ≤ σ ≤ 1+max_strain``.  ``n_atoms`` (if given) fixes
        ``|det H| = n_atoms / n_basis``.  Metrically equivalent matrices (the same lattice
        rotated by a symmetry of the reference lattice, or another basis of the same
        superlattice) tie; :func:`canonical_choice` picks one (largest trace, then
        lexicographically largest), so ``diag(n1, n2, n3)`` and ``[[1, 1, 0], [-1, 1, 0],
        [0, 0, 2]]`` come back as themselves.

        Raises :class:`MappingError` (naming ``frame``) when no integer supercell fits,
        with the best candidate and the strain it would need.
        """
        tied, _, _ = _fit_or_raise(reference, cell, n_atoms, max_strain, frame)
        return cls(reference, tied[canonical_choice(tied)])

    # -- basic properties
    @cached_property
    def _hnf(self) -> tuple[np.ndarray, np.ndarray]:
        return hermite_normal_form(self.matrix)

    @property
    def n_cells(self) -> int:
        return len(self.translations)

    @property
    def n_atoms(self) -> int:
        return self.n_cells * self.reference.n_basis

    @property
    def determinant(self) -> int:
        """``det H`` (negative for a left-handed supercell lattice)."""
        return _adjugate(self.matrix)[1]

    @cached_property
    def cell(self) -> np.ndarray:
        """(3, 3) float64, Å: supercell lattice rows ``L = H @ A``."""
        out = self.matrix @ self.reference.cell
        out.setflags(write=False)
        return out

    @cached_property
    def site_basis(self) -> np.ndarray:
        """(n_atoms,) int64: basis site ``b`` of each supercell site."""
        return np.tile(np.arange(self.reference.n_basis, dtype=np.int64), self.n_cells)

    @cached_property
    def site_translation(self) -> np.ndarray:
        """(n_atoms, 3) int64: cell translation ``t`` of each supercell site."""
        return np.repeat(self.translations, self.reference.n_basis, axis=0)

    @cached_property
    def site_frac(self) -> np.ndarray:
        """(n_atoms, 3) float64: ideal positions in reference fractional coordinates."""
        return self.reference.frac[self.site_basis] + self.site_translation

    @property
    def species(self) -> tuple:
        """Species of each supercell site (tuple of str, length n_atoms)."""
        return tuple(self.reference.species) * self.n_cells

    @cached_property
    def positions(self) -> np.ndarray:
        """(n_atoms, 3) float64, Å: ideal Cartesian positions (reference frame), computed
        as ``reference.positions[b] + t @ A`` like ASE's ``repeat``."""
        ref = self.reference
        out = (ref.positions[None, :, :] + (self.translations @ ref.cell)[:, None, :]).reshape(-1, 3)
        out.setflags(write=False)
        return out

    def to_atoms(self):
        """The ideal supercell as ASE ``Atoms`` (site order, cell ``L``, periodic)."""
        from ase import Atoms

        return Atoms(list(self.species), positions=np.array(self.positions), cell=np.array(self.cell), pbc=True)

    def signature(self) -> str:
        """SHA-256 of the reference crystal's signature and ``H``."""
        h = hashlib.sha256()
        h.update(self.reference.signature().encode())
        h.update(np.ascontiguousarray(self.matrix, dtype=np.int64).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        return f"Supercell(H={self.matrix.tolist()}, n_cells={self.n_cells}, n_atoms={self.n_atoms})"

    def site_label(self, s: int) -> str:
        """Readable name of supercell site ``s``, e.g. ``site 12 (Br, basis 2, cell (0, 1, 1))``."""
        b = int(self.site_basis[s])
        t = tuple(int(x) for x in self.site_translation[s])
        return f"site {int(s)} ({self.reference.species[b]}, basis {b}, cell {t})"

    # -- sites of the infinite crystal
    def locate(self, sites) -> tuple[np.ndarray, np.ndarray]:
        """Crystal sites ``(b, n1, n2, n3)`` → supercell sites and images.

        Parameters
        ----------
        sites : (..., 4) int — basis index and reference-lattice translation

        Returns
        -------
        index : (...,) int64 — supercell site
        image : (..., 3) int64 — such that the ideal position of ``(b, n)`` is
            ``positions[index] + image @ L`` (exact integer arithmetic)
        """
        s = np.asarray(sites)
        if s.shape[-1:] != (4,) or not np.issubdtype(s.dtype, np.integer):
            raise InputArrayError(f"sites must be an integer array of shape (..., 4), got "
                                  f"{s.dtype} {s.shape}", fix="give rows (basis_index, n1, n2, n3)")
        s = s.astype(np.int64)
        nb = self.reference.n_basis
        b = s[..., 0]
        if np.any(b < 0) or np.any(b >= nb):
            raise InputArrayError(f"basis index out of range 0..{nb - 1} in sites")
        hnf, v = self._hnf
        t = s[..., 1:].copy()
        k = np.empty_like(t)
        for i in (2, 1, 0):
            q = np.floor_divide(t[..., i], hnf[i, i])
            t -= q[..., None] * hnf[i]
            k[..., i] = q
        cell = (t[..., 0] * hnf[1, 1] + t[..., 1]) * hnf[2, 2] + t[..., 2]
        if np.array_equal(v, np.eye(3, dtype=np.int64)):
            image = k
        else:  # k @ v without numpy's slow integer matmul
            image = k[..., 0, None] * v[0] + k[..., 1, None] * v[1] + k[..., 2, None] * v[2]
        return cell * nb + b, image

    # -- cluster orbits
    def clusters(self, cluster) -> SupercellClusters:
        """Every cluster of ``cluster``'s orbit in this supercell.

        ``n_clusters = len(cluster.orbit) * n_cells``, orbit member major (in
        ``cluster.orbit`` order), cell translation minor.  Sites keep the orbit members'
        order, which is the prototype's (:func:`ccdgen.symmetry.spacegroup.orbit`): site
        ``i`` of every row is the image of ``cluster.sites[i]`` under a space-group
        operation and a lattice translation.  A cluster that meets its own periodic image
        is listed once per image (in a 2×2×2 CsPbBr3 cell the Pb–Pb pair along x appears
        twice: same atoms, images 0 and -x).

        Raises :class:`ClusterError` for a free cluster, a cluster of another crystal, or
        one that wraps onto the same atom twice (naming the smallest n×n×n supercell that
        holds it).
        """
        name = getattr(cluster, "name", "?")
        if getattr(cluster, "orbit", None) is None:
            raise ClusterError(f"cluster {name!r} is free, it has no crystal orbit",
                               fix="embed it in the crystal (sites / pairs / polyhedron in the spec)")
        members = np.stack([np.asarray(m, dtype=np.int64) for m in cluster.orbit])
        ref = self.reference
        nb = ref.n_basis
        if (np.any(members[..., 0] < 0) or np.any(members[..., 0] >= nb)
                or any(tuple(ref.species[b] for b in m[:, 0]) != tuple(cluster.species) for m in members)):
            raise ClusterError(f"cluster {name!r} is not a cluster of this supercell's reference crystal",
                               why="its orbit's sites are not sites of the reference with the cluster's species",
                               fix="build the cluster and the supercell from the same Problem.crystal")
        n_orb, n_sites = members.shape[:2]
        sites = np.repeat(members[:, None], self.n_cells, axis=1)
        sites[..., 1:] += self.translations[None, :, None, :]
        idx, img = self.locate(sites)
        atoms = idx.reshape(n_orb * self.n_cells, n_sites)
        images = img.reshape(n_orb * self.n_cells, n_sites, 3)
        srt = np.sort(atoms, axis=1)
        if np.any(srt[:, 1:] == srt[:, :-1]):
            self._raise_wrap(name, members)
        return SupercellClusters(name, atoms, images)

    def _raise_wrap(self, name: str, members: np.ndarray):
        ref = self.reference
        pos = ref.cartesian(ref.frac[members[0, :, 0]] + members[0, :, 1:])
        extent = float(np.max(np.linalg.norm(pos[:, None] - pos[None], axis=-1)))
        # smallest n such that no two same-basis sites differ by a multiple of n
        gcds = []
        for m in members:
            for i, j in itertools.combinations(range(len(m)), 2):
                if m[i, 0] == m[j, 0]:
                    gcds.append(int(np.gcd.reduce(np.abs(m[i, 1:] - m[j, 1:]))))
        n = 1
        while any(g % n == 0 for g in gcds):
            n += 1
        safe = max(gcds) + 1  # every n >= safe holds it
        hint = f"the smallest n×n×n that holds it is {n}×{n}×{n}"
        if safe > n:
            hint += f", and every n×n×n with n ≥ {safe} does"
        raise ClusterError(
            f"cluster {name!r} wraps onto itself in the supercell H = {self.matrix.tolist()}: two of "
            f"its sites are periodic images of the same atom",
            why=f"the cluster spans {extent:.3g} Å, and a cluster must have distinct atoms",
            fix=f"use a larger supercell: {hint}",
        )

    # -- symmetry
    def symmetry_operations(self, sg) -> SupercellSymmetry:
        """The space-group operations of the reference that map this supercell onto
        itself, combined with the ``n_cells`` internal translations.

        An operation ``(W, w)`` (fractional, reference cell) is compatible when it maps the
        superlattice onto itself, ``H Wᵀ H⁻¹`` integer; each compatible one gives
        ``n_cells`` supercell operations ``(W, w + t)``.  See :class:`SupercellSymmetry` for
        how they act.  ``sg`` must be the space group of ``self.reference`` (same cell).
        """
        ref = self.reference
        if (np.shape(sg.site_map)[1] != ref.n_basis or np.shape(sg.cell) != (3, 3)
                or not np.allclose(sg.cell, ref.cell, atol=1e-8)):
            raise SymmetryError("the space group belongs to another crystal (basis or cell differ)",
                                fix="use space_group(supercell.reference), e.g. Problem.spacegroup "
                                "with Problem.crystal")
        adj, det = _adjugate(self.matrix)
        rot = np.asarray(sg.rotations, dtype=np.int64)
        compat = [k for k in range(len(rot)) if not np.any((self.matrix @ rot[k].T @ adj) % det)]
        nc, na = self.n_cells, self.n_atoms
        b = self.site_basis
        w = rot[compat]  # (n_k, 3, 3)
        site_map = np.asarray(sg.site_map, dtype=np.int64)[compat]
        site_shift = np.asarray(sg.site_shift, dtype=np.int64)[compat]
        n = np.einsum("kij,sj->ksi", w, self.site_translation) + site_shift[:, b]  # (n_k, na, 3)
        sites = np.empty((len(compat), nc, na, 4), dtype=np.int64)
        sites[..., 0] = site_map[:, None, b]
        sites[..., 1:] = n[:, None] + self.translations[None, :, None, :]
        perms, images = self.locate(sites)
        n_ops = len(compat) * nc
        cart = np.asarray(sg.cartesian_rotations)[compat]
        frac_t = np.asarray(sg.translations, dtype=float)[compat][:, None, :] + self.translations[None]
        perms = perms.reshape(n_ops, na)
        for p in perms:
            if len(np.unique(p)) != na:
                raise SymmetryError("a space-group operation does not permute the supercell sites",
                                    why="the space group does not match the reference crystal")
        return SupercellSymmetry(
            supercell=self,
            rotations=np.repeat(cart, nc, axis=0),
            translations=frac_t.reshape(n_ops, 3) @ ref.cell,
            perms=perms,
            images=images.reshape(n_ops, na, 3),
            frac_rotations=np.repeat(w, nc, axis=0),
            frac_translations=frac_t.reshape(n_ops, 3),
            space_group_op=np.repeat(np.asarray(compat, dtype=np.int64), nc),
        )


# ----------------------------------------------------------------------------- fitting helpers
def _label(frame) -> str:
    return "configuration" if frame is None else f"frame {frame}"


def _fit_or_raise(reference: Crystal, cell, n_atoms, max_strain: float, frame):
    """Validate the cell and atom count and find the best-fitting matrices (all ties).

    Returns ``(matrices (k, 3, 3) int64, log_stretch (k,), n_cells or None)``: the
    metrically equivalent best fits.  Raises MappingError if nothing fits.
    """
    where = _label(frame)
    c = np.asarray(cell, dtype=float)
    if c.shape != (3, 3) or not np.all(np.isfinite(c)):
        raise MappingError(f"{where}: the cell is not a finite 3×3 array: {np.asarray(cell).tolist()}",
                           fix="give the configuration's lattice vectors as rows, in Å")
    vol = abs(float(np.linalg.det(c)))
    if vol < 1e-6 * max(1.0, float(np.prod(np.linalg.norm(c, axis=1)))):
        raise MappingError(f"{where}: the cell {c.round(4).tolist()} is singular (volume {vol:.3g} Å³)",
                           fix="give three independent lattice vectors")
    if not (max_strain > 0 and np.isfinite(max_strain)):
        raise MappingError(f"max_strain must be a positive number, got {max_strain!r}")
    nb = reference.n_basis
    n_cells = None
    if n_atoms is not None:
        if n_atoms % nb or n_atoms == 0:
            raise MappingError(
                f"{where}: {n_atoms} atoms is not a whole number of reference cells "
                f"({nb} atoms per cell)",
                why="a configuration must be an integer supercell of the reference crystal",
                fix="check the atom count, the frame, or the reference crystal")
        n_cells = n_atoms // nb
    m = np.log1p(max_strain)
    # widen the bound step by step: the best fit within a small bound is the best overall
    for bound in [b for b in (0.02, 0.06, 0.15) if b < m] + [m]:
        hh, s = fit_supercell_matrices(reference.cell, c, n_cells, bound)
        if len(hh) and (s[0] + TIE_TOL <= bound or bound == m):
            tied = s <= s[0] + TIE_TOL
            return hh[tied], s[tied], n_cells
    hh2, s2 = fit_supercell_matrices(reference.cell, c, n_cells, 2.5 * m)
    expected = f"with {n_cells} cells ({n_atoms} atoms / {nb} per cell)" if n_cells else ""
    if len(hh2):
        best = f"the best candidate H = {hh2[0].tolist()} needs a strain of {_strain_text(s2[0])}"
    else:
        best = f"no integer H fits within a strain of {_strain_text(2.5 * m)}"
    raise MappingError(
        f"{where}: the cell {c.round(4).tolist()} is no integer supercell of the reference "
        f"{expected}: {best}, more than max_strain = {100 * max_strain:.3g} %",
        why="the lattice must be H @ (reference cell) with integer H, up to rotation and moderate strain",
        fix="check the cell, the atom count and the reference crystal (lattice constant), "
        "or raise max_strain",
    )
