"""Symmetry-adapted displacement modes of a supercell, labelled by irrep at their k-point.

The displacement representation of a supercell (``3 n_atoms`` dimensions, vectors in site
order ``(s, α)``) under the space-group operations that map it onto itself
(:meth:`~ccdgen.crystal.supercell.Supercell.symmetry_operations`: ``d'[perm[s]] = R d[s]``)
is block-diagonalized in four exact steps:

1. **k-sectors.**  The supercell's lattice translations make the field a sum of Bloch
   waves at the ``n_cells`` wavevectors ``k`` with ``H k ∈ Z³`` (reference reciprocal
   coordinates).  A *sector* is a star of ``k`` together with the star of ``−k``; its real
   Bloch basis (``cos``/``sin`` of ``2π k·t`` per site and direction, only ``cos`` when
   ``2k`` is a reciprocal-lattice vector) spans an invariant subspace.
2. **Site orbits and site-symmetry pieces.**  Within a sector, the displacements of each
   orbit of reference sites are invariant; the site-symmetry group of a representative
   site splits its 3-D displacement into invariant pieces (e.g. along and across the
   Pb–Br bond for Br in Pm-3m), carried to the other sites of the orbit by the operations.
   These give the "per Wyckoff site" modes ISODISTORT lists.
3. **Irreducible blocks.**  Within each piece, ``A = Σ_p G_p X G_pᵀ`` (``G_p`` the
   operation ``p`` restricted to the piece, ``p`` over the coset representatives, ``X`` a
   fixed generic symmetric operator commuting with the translations, from
   :func:`ccdgen.quasirandom.quasi_random_normal`) commutes with the whole group, so its
   eigenspaces are irreducible invariant subspaces (a multiplicity within one piece is
   split generically: deterministic, but only the sum of the copies is canonical).
4. **Labels.**  Each block is projected onto the representative ``k`` of its sector; the
   characters of the little co-group on that projection name the small irrep: CDML /
   ISOTROPY labels from :mod:`.irreps` for Pm-3m in its standard setting (e.g. ``R4+``,
   ``M3+``, ``GM4-``), otherwise ``k(…):<Mulliken label of the little co-group>`` from the
   computed character table (``?`` where the small representation is projective).

Within a block, the basis is arm by arm (the sector's ``k``-pairs in order), each arm's
vectors by Gram–Schmidt of the block projector's columns in index order (the same
canonical choice as the CCD transform), so every vector lives on one arm.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from fractions import Fraction
from functools import cached_property

import numpy as np

from ...ccd.names import block_tag
from ...errors import InternalError, SpecError, SymmetryError
from . import FrameBatch

__all__ = ["ModeBlock", "DisplacementModes", "displacement_modes", "mode_frames"]

#: Relative tolerance for grouping commutant eigenvalues into one block.
EIG_TOL = 1e-7


# ----------------------------------------------------------------------------- results
@dataclass(frozen=True)
class ModeBlock:
    """One irreducible invariant subspace (columns ``start:stop`` of the basis).

    label : irrep label (``"R4+"`` CDML, or ``"k(0,0,1/3):A1"``)
    kpoint : representative wavevector of the sector, e.g. ``"1/2,1/2,1/2"``
    arms : the sector's wavevector pairs (one string per arm, ``"k"`` or ``"k|-k"``)
    dim : dimension; ``arm_dim`` = vectors per arm (``dim / len(arms)``)
    orbit : the site orbit it moves, e.g. ``"Br(1,2,3)"`` (species and basis sites)
    site_irrep : the site-symmetry piece, e.g. ``"A2u"`` (Mulliken label in the site group)
    little : the little co-group irrep(s) at ``kpoint`` (Mulliken), ``"?"`` if projective
    copy : 1, 2, ... among blocks with the same label (0 when the label occurs once)
    """

    label: str
    kpoint: str
    arms: tuple
    dim: int
    orbit: str
    site_irrep: str
    little: str
    copy: int
    start: int
    stop: int

    @property
    def arm_dim(self) -> int:
        return self.dim // len(self.arms)

    @property
    def name(self) -> str:
        return block_tag(self.label, self.copy)


@dataclass(frozen=True, eq=False)
class DisplacementModes:
    """Symmetry-adapted displacement modes of a supercell (see the module docstring).

    Attributes
    ----------
    supercell : Supercell
    basis : (3 n_atoms, 3 n_atoms) float64 — orthonormal; column ``m`` is mode ``m``, rows
        in site order ``(s, α)`` (Cartesian, reference frame, dimensionless unit vectors)
    blocks : tuple of ModeBlock, in column order
    mode_arm : (3 n_atoms,) int64 — arm (index into the block's ``arms``) of each mode
    cdml : bool — labels are CDML (Pm-3m in its standard setting)
    """

    supercell: object
    basis: np.ndarray
    blocks: tuple
    mode_arm: np.ndarray
    cdml: bool

    @property
    def n_modes(self) -> int:
        return self.basis.shape[1]

    @cached_property
    def mode_block(self) -> np.ndarray:
        """(n_modes,) int64: the block of each mode."""
        out = np.empty(self.n_modes, dtype=np.int64)
        for i, b in enumerate(self.blocks):
            out[b.start:b.stop] = i
        return out

    def vectors(self, modes=None) -> np.ndarray:
        """Mode vectors ``(n, n_atoms, 3)`` float64 (unit norm over the supercell) for mode
        indices ``modes`` (default all)."""
        idx = np.arange(self.n_modes) if modes is None else np.asarray(modes, dtype=np.int64).reshape(-1)
        return self.basis[:, idx].T.reshape(len(idx), -1, 3)

    def labels(self) -> list:
        """Distinct irrep labels in block order."""
        return list(dict.fromkeys(b.label for b in self.blocks))

    def select(self, spec="all") -> np.ndarray:
        """Mode indices of ``spec``: ``"all"``, a label (``"R4+"``), a block name with its
        copy (``"GM4-(2)"``), or a comma-separated list / list of those.  Raises SpecError
        naming the available labels for an unknown one."""
        items = [spec] if isinstance(spec, str) else list(spec)
        names = [p.strip() for it in items for p in str(it).split(",") if p.strip()]
        if not names or "all" in [n.lower() for n in names]:
            return np.arange(self.n_modes)
        out = []
        for n in names:
            key = n.replace("Γ", "GM")
            hit = [b for b in self.blocks if b.label.replace("Γ", "GM") == key or b.name.replace("Γ", "GM") == key]
            if not hit:
                raise SpecError(f"no displacement mode labelled {n!r} in this supercell",
                                fix=f"labels are: {', '.join(self.labels())} (or 'all')")
            for b in hit:
                out.extend(range(b.start, b.stop))
        return np.array(sorted(set(out)), dtype=np.int64)

    def project(self, displacements) -> np.ndarray:
        """Mode amplitudes (Å) of displacements ``(..., n_atoms, 3)`` Å in site order →
        ``(..., n_modes)``."""
        d = np.asarray(displacements, dtype=float)
        return d.reshape(*d.shape[:-2], -1) @ self.basis

    @cached_property
    def acoustic(self) -> np.ndarray:
        """(3 n_atoms, 3) float64: the uniform translations, orthonormal."""
        n = self.supercell.n_atoms
        a = np.zeros((n, 3, 3))
        a[:, np.arange(3), np.arange(3)] = 1.0 / np.sqrt(n)
        return a.reshape(3 * n, 3)

    def describe(self) -> str:
        """Irrep content per sector, e.g. ``GM: 4GM4- + GM5- | X: ...``."""
        parts: dict = {}
        for b in self.blocks:
            parts.setdefault(b.kpoint, {}).setdefault(b.label, 0)
            parts[b.kpoint][b.label] += 1
        return " | ".join(
            f"k=({k}): " + " + ".join(f"{'' if m == 1 else m}{lab}" for lab, m in d.items())
            for k, d in parts.items())

    def signature(self) -> str:
        h = hashlib.sha256()
        h.update(self.supercell.signature().encode())
        h.update(np.round(self.basis, 10).tobytes())
        h.update("|".join(b.name for b in self.blocks).encode())
        return h.hexdigest()


# ----------------------------------------------------------------------------- helpers
def _apply(rot: np.ndarray, perm: np.ndarray, vecs: np.ndarray) -> np.ndarray:
    """Γ(g) on columns ``vecs (3 n, m)`` (real or complex): ``out[perm[s]] = R vecs[s]``."""
    n = len(perm)
    v = vecs.reshape(n, 3, -1)
    out = np.empty_like(v)
    out[perm] = np.einsum("ij,sjm->sim", rot, v)
    return out.reshape(3 * n, -1)


def _kpoints(h: np.ndarray) -> tuple[np.ndarray, int]:
    """Numerators ``(n_cells, 3)`` int64 over the common denominator ``D = |det H|`` of
    the wavevectors ``k`` with ``H k ∈ Z³`` (reduced to ``[0, D)``), sorted."""
    from ...crystal.supercell import _adjugate

    adj, det = _adjugate(h)
    d = abs(det)
    gens = [tuple((np.sign(det) * adj[:, j]) % d) for j in range(3)]
    seen = {(0, 0, 0)}
    frontier = [(0, 0, 0)]
    while frontier:
        nxt = []
        for x in frontier:
            for g in gens:
                y = tuple((np.array(x) + np.array(g)) % d)
                if y not in seen:
                    seen.add(y)
                    nxt.append(y)
        frontier = nxt
    return np.array(sorted(seen), dtype=np.int64), d


def _kstr(kn, d: int) -> str:
    out = []
    for x in kn:
        f = Fraction(int(x), d)
        if f > Fraction(1, 2):
            f -= 1
        out.append(str(f))
    return ",".join(out)


def _generic_symmetric(m: int, salt: int = 0) -> np.ndarray:
    from ...quasirandom import quasi_random_normal

    q = quasi_random_normal(m + salt + 1, m)[salt + 1:]
    return q + q.T


def _generic_antisymmetric(m: int, salt: int = 0) -> np.ndarray:
    from ...quasirandom import quasi_random_normal

    q = quasi_random_normal(m + salt + 7, m)[salt + 7:]
    return q - q.T


def _eigenspaces(a: np.ndarray) -> list[np.ndarray]:
    """Eigenspaces (orthonormal columns) of a symmetric matrix, eigenvalues grouped to
    :data:`EIG_TOL` relative to the largest."""
    w, u = np.linalg.eigh(a)
    scale = max(float(np.abs(w).max(initial=0.0)), 1e-300)
    groups, start = [], 0
    for i in range(1, len(w) + 1):
        if i == len(w) or w[i] - w[i - 1] > EIG_TOL * scale:
            groups.append(u[:, start:i])
            start = i
    return groups


def _gram_schmidt_columns(e: np.ndarray, rank: int) -> np.ndarray:
    """Orthonormal basis (columns) of span(e) from the projector columns ``e eᵀ e_p`` in
    index order (``e`` orthonormal columns)."""
    from ...linalg import canonical_span_basis

    rows = np.flatnonzero(np.linalg.norm(e, axis=1) > 1e-10)
    return canonical_span_basis(lambda k: e @ e[rows[k]], len(rows), rank, "a mode block")


def _orth(m: np.ndarray, tol: float = 1e-8) -> np.ndarray:
    u, s, _ = np.linalg.svd(m, full_matrices=False)
    return u[:, s > tol * max(s.max(initial=0.0), 1.0)]


def _site_pieces(rots: np.ndarray, ops) -> list[np.ndarray]:
    """Invariant pieces ``(3, d)`` of R³ under the site-symmetry rotations ``rots[ops]``
    (orthonormal columns, canonical Gram–Schmidt), ordered by dimension."""
    y = _generic_symmetric(3, salt=3)
    lmat = sum(rots[p] @ y @ rots[p].T for p in ops)
    out = [_gram_schmidt_columns(v, v.shape[1]) for v in _eigenspaces(lmat)]
    return sorted(out, key=lambda v: (v.shape[1], tuple(-np.abs(np.round(v[:, 0], 8)))))


def _point_group(rots_cart: np.ndarray):
    """(PointGroup, character table) of the rotations (dummy site permutations)."""
    from ...symmetry.group import PointGroup

    pg = PointGroup.from_operations(rots_cart, np.zeros((len(rots_cart), 1), dtype=np.int64))
    return pg, pg.character_table


def _mulliken_decomposition(pg, table, rots_cart, chi) -> str:
    """Mulliken label(s) of a representation of a point group with characters ``chi`` on
    ``rots_cart`` (``"?"`` if it is not an ordinary representation, e.g. projective)."""
    idx = [pg.index_of(r) for r in rots_cart]
    per_elem = np.zeros(pg.order, dtype=complex)
    per_elem[idx] = chi
    cls_chi = []
    for c in pg.classes:
        vals = per_elem[list(c)]
        if np.max(np.abs(vals - vals[0])) > 1e-6:
            return "?"
        cls_chi.append(vals[0])
    cls_chi = np.array(cls_chi)
    m = (table.class_sizes * cls_chi) @ table.characters.conj().T / pg.order
    if np.max(np.abs(m - np.rint(m.real))) > 1e-6 or np.any(np.rint(m.real) < 0):
        return "?"
    m = np.rint(m.real).astype(int)
    parts = []
    for r, members in enumerate(table.real_of_complex):
        k = max(int(m[c]) for c in members)
        if k > 0:
            parts.append(f"{'' if k == 1 else k}{table.labels[r]}")
    return "+".join(parts) if parts else "?"


@dataclass(frozen=True, eq=False)
class _Parent:
    """The space group's coset representatives as they act on Bloch coefficients."""

    w: np.ndarray  # (n, 3, 3) int fractional rotations
    winv_t: np.ndarray  # (n, 3, 3) int: W^-T (acts on k)
    rots: np.ndarray  # (n, 3, 3) Cartesian
    site_map: np.ndarray  # (n, nb)
    site_shift: np.ndarray  # (n, nb, 3)

    def coefficient_matrix(self, g: int, kn: np.ndarray, dd: int) -> tuple[np.ndarray, np.ndarray]:
        """``(M, k')``: a Bloch field ``Re(Σ_b c_b e^{2πi k·t})`` at ``k = kn/dd`` goes to
        coefficients ``M c`` at ``k' = W^-T k``: ``c'_{b'} = e^{-2πi k'·s_b} R c_b``
        (``3 nb × 3 nb`` complex; ``k'`` as numerators mod dd)."""
        nb = self.site_map.shape[1]
        kp = (self.winv_t[g] @ kn) % dd
        m = np.zeros((3 * nb, 3 * nb), dtype=complex)
        for b in range(nb):
            bp = int(self.site_map[g, b])
            ph = np.exp(-2j * np.pi * (kp @ self.site_shift[g, b]) / dd)
            m[3 * bp:3 * bp + 3, 3 * b:3 * b + 3] = ph * self.rots[g]
        return m, kp


def _real_form(m: np.ndarray, conj: bool, trim: bool) -> np.ndarray:
    """Real matrix on coordinates ``(x, y)`` of ``c = x + i y`` of ``c -> M c`` (or
    ``conj(M c)``); only ``x`` for a k with ``2k`` a reciprocal-lattice vector."""
    if trim:
        return m.real
    a, b = m.real, m.imag
    if conj:
        return np.block([[a, -b], [-b, -a]])
    return np.block([[a, -b], [b, a]])


# ----------------------------------------------------------------------------- main
def displacement_modes(source, supercell) -> DisplacementModes:
    """Symmetry-adapted displacement modes of ``supercell`` (module docstring).

    ``source`` is a :class:`~ccdgen.pipeline.Problem` (its ``spacegroup``) or a
    :class:`~ccdgen.symmetry.spacegroup.SpaceGroup` of ``supercell.reference``.  Blocks
    are invariant under every operation of the space group that maps the supercell onto
    itself and carry one irrep of the reference space group (its small irrep at the
    sector's representative k); they are irreducible under the supercell's operations
    whenever the supercell keeps the full point symmetry (e.g. n×n×n).
    """
    from ...pipeline import Problem
    from . import irreps as table_mod

    sg = source.spacegroup if isinstance(source, Problem) else source
    if sg is None:
        raise SpecError("displacement modes need a crystal spec (a free cluster has no space group)")
    ref = supercell.reference
    if np.shape(sg.site_map)[1] != ref.n_basis or not np.allclose(sg.cell, ref.cell, atol=1e-8):
        raise SymmetryError("the space group belongs to another crystal (basis or cell differ)",
                            fix="use Problem.spacegroup with Problem.crystal")
    nc, nb, na = supercell.n_cells, ref.n_basis, supercell.n_atoms
    w = np.asarray(sg.rotations, dtype=np.int64)
    par = _Parent(w, np.array([np.rint(np.linalg.inv(x)).astype(np.int64).T for x in w]),
                  np.asarray(sg.cartesian_rotations, dtype=float), np.asarray(sg.site_map, dtype=np.int64),
                  np.asarray(sg.site_shift, dtype=np.int64))
    n_sg = len(w)
    use_cdml = (sg.number == 221 and np.allclose(np.asarray(sg.translations, dtype=float), 0, atol=1e-9)
                and np.allclose(ref.cell, ref.cell[0, 0] * np.eye(3), atol=1e-8))

    # --- wavevectors, sectors (parent stars of ±k within the commensurate set)
    kn, dd = _kpoints(supercell.matrix)
    if len(kn) != nc:
        raise InternalError(f"found {len(kn)} wavevectors for {nc} cells")
    key_of = {tuple(k): i for i, k in enumerate(kn.tolist())}

    def image(i, g):
        return tuple(((par.winv_t[g] @ kn[i]) % dd).tolist())

    neg = np.array([key_of[tuple(((-k) % dd).tolist())] for k in kn])
    trim = ~np.any((2 * kn) % dd, axis=1)

    def canon(i):
        return tuple(Fraction(int(x), dd) for x in kn[i])

    def table_name(i):
        if not use_cdml:
            return None
        half = [Fraction(int(x), dd) for x in kn[i]]
        if any(h not in (0, Fraction(1, 2)) for h in half):
            return None
        return {0: "GM", 1: "X", 2: "M", 3: "R"}[sum(1 for h in half if h)]

    def std_rank(i):  # the table's standard arm first (X = (0,1/2,0), M = (1/2,1/2,0))
        name = table_name(i)
        if name is None:
            return 1
        std = tuple(int(round(x * dd)) % dd for x in table_mod.PM3M_KPOINTS[name][0])
        return 0 if tuple(kn[i].tolist()) == std else 1

    sector_of = -np.ones(nc, dtype=np.int64)
    sectors = []
    for i in range(nc):
        if sector_of[i] >= 0:
            continue
        orb = {image(i, g) for g in range(n_sg)} | {image(int(neg[i]), g) for g in range(n_sg)}
        members = sorted((key_of[x] for x in orb if x in key_of), key=lambda m: (std_rank(m), canon(m)))
        for m in members:
            sector_of[m] = len(sectors)
        pairs, done = [], set()
        for m in members:
            if m not in done:
                done.update({m, int(neg[m])})
                pairs.append(m)
        sectors.append(pairs)
    sectors.sort(key=lambda ps: (sum(1 for x in kn[ps[0]] if x), canon(ps[0])))

    # --- site orbits and their site-symmetry pieces (carried to every site of the orbit)
    orbit_of = -np.ones(nb, dtype=np.int64)
    orbits = []
    for b in range(nb):
        if orbit_of[b] < 0:
            mem = sorted(set(par.site_map[:, b].tolist()))
            orbit_of[mem] = len(orbits)
            orbits.append(mem)
    pieces = []  # per orbit: [(site irrep label, {b: (3, d)})]
    for mem in orbits:
        b0 = mem[0]
        stab = np.flatnonzero(par.site_map[:, b0] == b0)
        pg, tab = _point_group(par.rots[stab])
        per = []
        for v in _site_pieces(par.rots, stab):
            chi = np.array([np.trace(v.T @ par.rots[p] @ v) for p in stab])
            carried = {b: par.rots[int(np.flatnonzero(par.site_map[:, b0] == b)[0])] @ v for b in mem}
            per.append((_mulliken_decomposition(pg, tab, par.rots[stab], chi), carried))
        pieces.append(per)

    t_site = supercell.site_translation
    b_site = supercell.site_basis
    species = ref.species
    raw = []
    generic_labels: dict = {}
    for si, pairs in enumerate(sectors):
        rep = pairs[0]
        k0 = kn[rep]
        tr = bool(trim[rep])
        # parent little group of ±k (the −k ones act antilinearly on the coefficients)
        lit, lit_conj, mats = [], [], []
        for g in range(n_sg):
            m, kp = par.coefficient_matrix(g, k0, dd)
            if tuple(kp.tolist()) == tuple(k0.tolist()):
                lit.append(g)
                mats.append(_real_form(m, False, tr))
            elif tuple(kp.tolist()) == tuple(kn[neg[rep]].tolist()):
                lit_conj.append(g)
                mats.append(_real_form(m, True, tr))
        cmats = {g: par.coefficient_matrix(g, k0, dd)[0] for g in lit}
        # products of the little co-group's representatives (by their Cartesian matrices)
        lr = par.rots[lit].reshape(len(lit), 9)
        prod = np.array([[int(np.argmin(np.abs(lr - (par.rots[g] @ par.rots[h]).reshape(9)).sum(axis=1)))
                          for h in lit] for g in lit])
        pg, tab = _point_group(par.rots[lit])
        name = table_name(rep)
        cdml_chars = None
        if name is not None:
            main = None
            if name in ("X", "M"):
                nz = [j for j in range(3) if kn[rep][j]]
                main = nz[0] if name == "X" else [j for j in range(3) if not kn[rep][j]][0]
            cdml_chars = table_mod.cdml_characters(name, par.w[lit], main)
        # arms: an operation carrying the representative to each pair
        arm_ops = []
        for m in pairs:
            g = next((g for g in range(n_sg) if image(rep, g) == tuple(kn[m].tolist())), None)
            conj = False
            if g is None:
                g = next(g for g in range(n_sg) if image(rep, g) == tuple(kn[neg[m]].tolist()))
                conj = True
            arm_ops.append((g, conj))
        for o, mem in enumerate(orbits):
            for pi, (site_lab, carried) in enumerate(pieces[o]):
                zc = []
                for b in mem:
                    v = carried[b]
                    for j in range(v.shape[1]):
                        col = np.zeros(3 * nb)
                        col[3 * b:3 * b + 3] = v[:, j]
                        zc.append(col)
                zc = np.array(zc).T  # (3nb, mz)
                mz = zc.shape[1]
                if tr:
                    z = zc
                    x = _generic_symmetric(mz, salt=pi + 5 * o)
                else:
                    zero = np.zeros_like(zc)
                    z = np.block([[zc, zero], [zero, zc]])  # x-part and y-part
                    a = _generic_symmetric(mz, salt=pi + 5 * o)
                    bb = _generic_antisymmetric(mz, salt=pi + 5 * o)
                    x = np.block([[a, -bb], [bb, a]])
                gs = [z.T @ mm @ z for mm in mats]
                acc = sum(g @ x @ g.T for g in gs)
                for ev in _eigenspaces(acc):
                    for g in gs:
                        if np.max(np.abs(g @ ev - ev @ (ev.T @ g @ ev)), initial=0) > 1e-7:
                            raise SymmetryError("a displacement block is not invariant (accidental "
                                                "degeneracy or an inexact space group)",
                                                fix="check the reference crystal's symmetry (symprec)")
                    y = z @ ev  # real coordinates at the representative, (dim_c, d)
                    y = _gram_schmidt_columns(y, y.shape[1])
                    cplx = y if tr else y[:3 * nb] + 1j * y[3 * nb:]
                    q = _orth(cplx)
                    dmat = {g: q.conj().T @ cmats[g] @ q for g in lit}
                    chi = np.array([np.trace(dmat[g]) for g in lit])
                    ordinary = all(np.allclose(dmat[g] @ dmat[h], dmat[lit[prod[a, c]]], atol=1e-8)
                                   for a, g in enumerate(lit) for c, h in enumerate(lit))
                    mull = _mulliken_decomposition(pg, tab, par.rots[lit], chi) if ordinary else "?"
                    label, rank = None, (99,)
                    if cdml_chars is not None:
                        names = list(cdml_chars)
                        mult = {n: float(np.real(chi @ cdml_chars[n])) / len(lit) for n in names}
                        hit = [n for n in names if abs(mult[n]) > 1e-6]
                        if hit and all(abs(mult[n] - round(mult[n])) < 1e-6 and mult[n] > 0 for n in hit):
                            label = "+".join(n if round(mult[n]) == 1 else f"{round(mult[n])}{n}" for n in hit)
                            rank = (min(names.index(n) for n in hit),)
                    if label is None:
                        ks = "Γ" if not np.any(k0) else f"k({_kstr(k0, dd)})"
                        if mull == "?":  # projective: number the distinct characters
                            sig = (si, tuple(np.round(chi, 6)))
                            if sig not in generic_labels:
                                generic_labels[sig] = 1 + sum(1 for key in generic_labels if key[0] == si)
                            mull = f"#{generic_labels[sig]}"
                        label = f"{ks}:{mull}"
                    # supercell vectors, arm by arm
                    blocks_cols, arm_of = [], []
                    for ai, ((g, conj), m) in enumerate(zip(arm_ops, pairs)):
                        mg, _ = par.coefficient_matrix(g, k0, dd)
                        ya = y if ai == 0 else _real_form(mg, conj, tr) @ y
                        ka = kn[m]
                        ph = 2 * np.pi * (t_site @ ka) / dd
                        xs = ya[:3 * nb].reshape(nb, 3, -1)[b_site]  # (na, 3, d)
                        if tr:
                            vec = xs * (np.cos(ph) / np.sqrt(nc))[:, None, None]
                        else:
                            ys = ya[3 * nb:].reshape(nb, 3, -1)[b_site]
                            vec = (xs * np.cos(ph)[:, None, None] - ys * np.sin(ph)[:, None, None]) * np.sqrt(2 / nc)
                        blocks_cols.append(vec.reshape(3 * na, -1))
                        arm_of += [ai] * vec.shape[2]
                    arms = tuple(_kstr(kn[m], dd) if trim[m] else f"{_kstr(kn[m], dd)}|{_kstr(kn[neg[m]], dd)}"
                                 for m in pairs)
                    raw.append(dict(order=(si, rank, label, o, pi), label=label, kpoint=_kstr(k0, dd),
                                    arms=arms, orbit=f"{species[mem[0]]}({','.join(map(str, mem))})",
                                    site_irrep=site_lab, little=mull, cols=np.concatenate(blocks_cols, axis=1),
                                    arm_of=arm_of))
    raw.sort(key=lambda r: r["order"])
    counts: dict = {}
    for r in raw:
        counts[r["label"]] = counts.get(r["label"], 0) + 1
    seen: dict = {}
    cols, arm_of, blocks, start = [], [], [], 0
    for r in raw:
        seen[r["label"]] = seen.get(r["label"], 0) + 1
        copy = seen[r["label"]] if counts[r["label"]] > 1 else 0
        d = r["cols"].shape[1]
        cols.append(r["cols"])
        arm_of += r["arm_of"]
        blocks.append(ModeBlock(r["label"], r["kpoint"], r["arms"], d, r["orbit"], r["site_irrep"],
                                r["little"], copy, start, start + d))
        start += d
    basis = np.concatenate(cols, axis=1)
    if basis.shape != (3 * na, 3 * na):
        raise InternalError(f"the mode basis has shape {basis.shape}, expected {(3 * na, 3 * na)}")
    err = np.abs(basis.T @ basis - np.eye(3 * na)).max()
    if err > 1e-8:
        raise InternalError(f"the mode basis is not orthonormal (error {err:.2e})")
    basis.setflags(write=False)
    return DisplacementModes(supercell, basis, tuple(blocks), np.array(arm_of, dtype=np.int64), bool(use_cdml))


# ----------------------------------------------------------------------------- frames
def _base_tag(info) -> str:
    """How a base frame is named in ``info["around"]``: its tilt system, name or family."""
    for key in ("glazer", "name", "phase", "family"):
        v = info.get(key)
        if isinstance(v, str) and v:
            return v
    return "reference"


def mode_frames(modes: DisplacementModes, amplitudes, select="all", around: FrameBatch | None = None,
                max_displacement: float | None = None) -> FrameBatch:
    """Frames displaced along single modes: for every base frame, selected mode and amplitude.

    Parameters
    ----------
    modes : DisplacementModes of the supercell
    amplitudes : Å — the mode amplitude (norm of the displacement field over the supercell;
        signed: both signs are usually distinct configurations)
    select : labels to use (:meth:`DisplacementModes.select`), default all modes (a Γ4-
        mode of one sublattice moves it relative to the others; it is no rigid translation)
    around : base frames in the supercell's site order (default: the ideal supercell);
        each base's homogeneous deformation ``F`` (``cell = L Fᵀ``) is applied to the
        displacement, so modes ride on strained or tilted structures
    max_displacement : Å, largest allowed single-atom displacement (default half the
        reference nearest-neighbour distance); larger amplitudes raise SpecError

    Frames are tagged ``family="modes"``, ``irrep`` (label with copy), ``kpoint``,
    ``mode`` (column index), ``amplitude`` (Å) and ``around`` (the base's ``glazer`` or
    ``family``, or ``"reference"``).
    """
    from ...crystal.mapping import default_max_displacement
    from .glazer import _numbers

    sc = modes.supercell
    amps = np.atleast_1d(np.asarray(amplitudes, dtype=float))
    if amps.size == 0 or not np.all(np.isfinite(amps)) or np.any(amps == 0):
        raise SpecError(f"mode amplitudes must be finite and non-zero (Å), got {amps.tolist()}",
                        fix="give e.g. --mode-amplitudes -0.1 0.1")
    idx = modes.select(select)
    vec = modes.vectors(idx)  # (m, na, 3)
    limit = default_max_displacement(sc.reference) if max_displacement is None else float(max_displacement)
    peak = np.abs(amps).max() * np.linalg.norm(vec, axis=2).max()
    if peak > limit:
        raise SpecError(f"mode amplitude {np.abs(amps).max():g} Å is out of range: an atom would move "
                        f"{peak:.3g} Å, more than {limit:.3g} Å",
                        why="beyond half the nearest-neighbour distance an atom is nearer another site "
                            "than its own, and the frame no longer maps onto the reference",
                        fix="use smaller amplitudes (the amplitude is the norm of the whole displacement field)")
    if around is None:
        around = FrameBatch(_numbers(sc), np.array(sc.positions)[None], np.array(sc.cell)[None],
                            ({"family": "reference"},))
    lat_inv = np.linalg.inv(sc.cell)
    pos, cells, infos = [], [], []
    for f in range(len(around)):
        ft = lat_inv @ around.cells[f]  # Fᵀ
        base = around.infos[f]
        tag = _base_tag(base)
        for j, m in enumerate(idx):
            blk = modes.blocks[modes.mode_block[m]]
            for a in amps:
                pos.append(around.positions[f] + a * vec[j] @ ft)
                cells.append(around.cells[f])
                infos.append({"family": "modes", "irrep": blk.name, "kpoint": blk.kpoint, "mode": int(m),
                              "amplitude": float(a), "around": tag})
    return FrameBatch(around.numbers, np.array(pos), np.array(cells), tuple(infos))
