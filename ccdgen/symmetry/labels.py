"""Names of point-group operations, of point groups and of their irreps.

Everything here is a pure function of Cartesian orthogonal matrices (numpy only), so it
works in any orientation: the groups are recognised from their geometric elements
(rotation orders, axes, mirrors), never from the coordinate frame.  Only where a naming
convention is genuinely ambiguous (which of two classes of ``C2'`` axes defines ``B1``,
which mirror is ``σv``, which ``C2`` of ``D2`` is "z") are the Cartesian axes used to break
the tie, as documented in :func:`mulliken_labels`.

Public functions
----------------
:func:`element_symbol`
    ``"E"``, ``"i"``, ``"σ"``, ``"C3"``, ``"C5^2"``, ``"S4"``, ``"S10^3"`` for one matrix.
:func:`identify_point_group`
    Schoenflies and Hermann–Mauguin names of any finite point group.
:func:`mulliken_labels`
    Mulliken labels (``"A1g"``, ``"E'"``, ``"T2u"``, ...) of the real irreps.

Numerical tolerance: the matrices must be orthogonal to about ``1e-6`` (the same
accuracy :class:`~ccdgen.symmetry.group.PointGroup` needs for its closure test).
Rotation angles are matched to fractions ``2πp/q`` with ``q <=`` :data:`MAX_AXIS_ORDER`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

#: Largest rotation order recognised (an angle must be ``2πp/q`` with ``q`` at most this).
MAX_AXIS_ORDER = 200
#: Tolerance on ``angle / 2π`` when matching it to a fraction ``p/q``.
_FRAC_TOL = 1e-5
#: Tolerance for matrix equality, orthogonality and axis (anti)parallelism.
_TOL = 1e-5


class PointGroupName(NamedTuple):
    """Schoenflies (``"D4h"``) and Hermann–Mauguin short (``"4/mmm"``) names."""

    schoenflies: str
    hermann_mauguin: str


_UNKNOWN = PointGroupName("?", "?")


# ----------------------------------------------------------------------------- elements
@dataclass(frozen=True)
class _Element:
    """Geometric description of one orthogonal matrix.

    proper : det = +1
    n, k : the operation is ``C_n^k`` (proper) or ``S_n^k`` (improper); ``n = 1`` for
        E and σ, ``n = 2, k = 1`` for C2 and i.  For proper ones, and improper ones with
        even ``n``, ``k <= n/2``; for improper with odd ``n``, ``k`` is odd.
    axis : (3,) unit vector (rotation axis, or mirror normal for σ), or None for E and i.
    symbol : the string returned by :func:`element_symbol`.
    """

    proper: bool
    n: int
    k: int
    axis: Optional[np.ndarray]
    symbol: str


def _fraction(x: float) -> Optional[tuple[int, int]]:
    """Smallest-denominator ``(p, q)`` with ``|x - p/q| < _FRAC_TOL``, ``0 <= x <= 1/2``."""
    q = np.arange(1, MAX_AXIS_ORDER + 1)
    p = np.rint(q * x)
    ok = np.abs(x - p / q) < _FRAC_TOL
    if not ok.any():
        return None
    i = int(np.argmax(ok))
    return int(p[i]), int(q[i])


def _analyse(r: np.ndarray) -> Optional[_Element]:
    """Describe one (3, 3) orthogonal matrix; None if it is not orthogonal / not finite order."""
    r = np.asarray(r, dtype=float)
    if r.shape != (3, 3) or not np.all(np.isfinite(r)):
        return None
    if not np.allclose(r @ r.T, np.eye(3), atol=_TOL):
        return None
    det = float(np.linalg.det(r))
    proper = det > 0
    p_mat = r if proper else -r  # proper part: r = ±p_mat
    axial = 0.5 * np.array(
        [p_mat[2, 1] - p_mat[1, 2], p_mat[0, 2] - p_mat[2, 0], p_mat[1, 0] - p_mat[0, 1]]
    )
    sin_t = float(np.linalg.norm(axial))
    cos_t = 0.5 * (float(np.trace(p_mat)) - 1.0)
    theta = float(np.arctan2(sin_t, cos_t))  # rotation angle of p_mat, in [0, π]
    if theta < 1e-7:
        axis = None
    elif sin_t > 0.5:
        axis = axial / sin_t
    else:  # near π: eigenvector of the symmetric part with eigenvalue 1
        w, v = np.linalg.eigh(0.5 * (p_mat + p_mat.T))
        axis = v[:, -1]
    if axis is not None:
        # deterministic sign: first clearly non-zero component positive
        j = int(np.argmax(np.abs(axis) > 1e-6))
        axis = axis * np.sign(axis[j])
    if proper:
        frac = _fraction(theta / (2 * np.pi))
        if frac is None:
            return None
        k, n = frac
        if k == 0:
            return _Element(True, 1, 0, None, "E")
        sym = f"C{n}" if k == 1 else f"C{n}^{k}"
        return _Element(True, n, k, axis, sym)
    # improper: r = σh C(φ) about the same axis, φ = π - θ
    frac = _fraction((np.pi - theta) / (2 * np.pi))
    if frac is None:
        return None
    k, n = frac
    if k == 0:
        return _Element(False, 1, 1, axis, "σ")
    if n == 2:
        return _Element(False, 2, 1, None, "i")
    if n % 2 == 1 and k % 2 == 0:  # S_n^k with n odd is improper only for odd k
        k = n - k
    sym = f"S{n}" if k == 1 else f"S{n}^{k}"
    return _Element(False, n, k, axis, sym)


def element_symbol(r: np.ndarray) -> str:
    """Schoenflies symbol of one operation.

    Parameters
    ----------
    r : (3, 3) float
        A Cartesian orthogonal matrix.

    Returns
    -------
    str
        ``"E"`` (identity), ``"i"`` (inversion), ``"σ"`` (mirror), ``"Cn"`` for a
        rotation by ``2π/n``, ``"Cn^k"`` for a rotation by ``2πk/n`` with
        ``gcd(k, n) = 1`` and ``1 < k <= n/2`` (``"C5^2"``), ``"Sn"`` / ``"Sn^k"`` for the
        rotation-reflection ``σh C(2πk/n)`` (``"S4"``, ``"S6"``, ``"S10^3"``; for odd
        ``n`` the odd power is used, e.g. ``"S5^3"``).  Rotation by ``2πk/n`` and by
        ``-2πk/n`` get the same symbol (the axis direction is not part of it).
        ``"?"`` if the matrix is not orthogonal or not of finite order
        (``n <=`` :data:`MAX_AXIS_ORDER`).
    """
    el = _analyse(r)
    return "?" if el is None else el.symbol


# ------------------------------------------------------------------- group recognition
def _is_group(rots: np.ndarray) -> bool:
    """Closure, identity and distinctness of a (G, 3, 3) set, with tolerance ``_TOL``."""
    g = len(rots)
    if g == 0:
        return False
    flat = rots.reshape(g, 9)
    d = np.abs(flat[:, None, :] - flat[None, :, :]).max(axis=2)
    if np.any(d[~np.eye(g, dtype=bool)] < _TOL):
        return False  # duplicates
    if not np.any(np.abs(flat - np.eye(3).ravel()).max(axis=1) < _TOL):
        return False
    for a in range(g):
        prods = np.einsum("ij,bjk->bik", rots[a], rots).reshape(g, 9)
        dist = np.abs(prods[:, None, :] - flat[None, :, :]).max(axis=2)
        if not np.all(dist.min(axis=1) < _TOL):
            return False
    return True


def _parallel(u: np.ndarray, v: np.ndarray) -> bool:
    return abs(abs(float(u @ v)) - 1.0) < _TOL


def _perpendicular(u: np.ndarray, v: np.ndarray) -> bool:
    return abs(float(u @ v)) < _TOL


def _rotation_group_kind(elems: list[_Element]) -> Optional[tuple[str, int]]:
    """Kind of a finite group of proper rotations: ("C", n), ("D", n), ("T"|"O"|"I", 0)."""
    m = len(elems)
    orders = [e.n for e in elems]
    if max(orders) == m:
        return ("C", m)
    axes3: list[np.ndarray] = []
    for e in elems:
        if e.n >= 3 and not any(_parallel(e.axis, a) for a in axes3):
            axes3.append(e.axis)
    if len(axes3) > 1:
        return {12: ("T", 0), 24: ("O", 0), 60: ("I", 0)}.get(m)
    if m % 2 == 0:
        return ("D", m // 2)
    return None


_CUBIC_HM = {
    "T": "23", "Th": "m-3", "Td": "-43m", "O": "432", "Oh": "m-3m", "I": "532", "Ih": "m-3-5",
}


def _hm_symbol(family: str, n: int) -> str:
    """Hermann–Mauguin short symbol; crystallographic conventions generalised to any n."""
    if family in _CUBIC_HM:
        return _CUBIC_HM[family]
    if family == "C1":
        return "1"
    if family == "Ci":
        return "-1"
    if family == "Cs":
        return "m"
    if family == "Cn":
        return f"{n}"
    if family == "S2n":  # n here is the S order N = 2m
        m = n // 2
        return f"-{n}" if m % 2 == 0 else f"-{m}"
    if family == "Cnh":
        return f"{n}/m" if n % 2 == 0 else f"-{2 * n}"
    if family == "Cnv":
        if n == 2:
            return "mm2"
        return f"{n}mm" if n % 2 == 0 else f"{n}m"
    if family == "Dn":
        return f"{n}22" if n % 2 == 0 else f"{n}2"
    if family == "Dnh":
        if n == 2:
            return "mmm"
        return f"{n}/mmm" if n % 2 == 0 else f"-{2 * n}m2"
    if family == "Dnd":
        return f"-{2 * n}2m" if n % 2 == 0 else f"-{n}m"
    return "?"  # pragma: no cover


def _schoenflies(family: str, n: int) -> str:
    if family in ("C1", "Ci", "Cs") or family in _CUBIC_HM:
        return family
    if family == "S2n":
        return f"S{n}"
    return {"Cn": "C{}", "Cnh": "C{}h", "Cnv": "C{}v", "Dn": "D{}", "Dnh": "D{}h", "Dnd": "D{}d"}[
        family
    ].format(n)


@dataclass(frozen=True)
class _GroupInfo:
    family: str  # "C1","Ci","Cs","Cn","S2n","Cnh","Cnv","Dn","Dnh","Dnd","T",...,"Ih"
    n: int  # principal proper order (for "S2n": the S order 2m)
    elements: tuple
    inversion: Optional[int]  # index of -1, if present

    @property
    def name(self) -> PointGroupName:
        return PointGroupName(_schoenflies(self.family, self.n), _hm_symbol(self.family, self.n))


def _classify(rotations) -> Optional[_GroupInfo]:
    """Recognise a finite point group; None if the input is not one."""
    rots = np.asarray(rotations, dtype=float)
    if rots.ndim != 3 or rots.shape[1:] != (3, 3):
        return None
    elems = [_analyse(r) for r in rots]
    if any(e is None for e in elems) or not _is_group(rots):
        return None
    proper = [e for e in elems if e.proper]
    inv = next((i for i, e in enumerate(elems) if e.symbol == "i"), None)
    h = _rotation_group_kind(proper)
    if h is None:
        return None
    hk, hn = h
    fam: Optional[tuple[str, int]] = None
    if len(proper) == len(elems):
        fam = {"C": ("Cn", hn), "D": ("Dn", hn)}.get(hk, (hk, 0))
        if fam == ("Cn", 1):
            fam = ("C1", 1)
    elif 2 * len(proper) != len(elems):
        return None
    elif inv is not None:
        if hk == "C":
            if hn == 1:
                fam = ("Ci", 1)
            elif hn % 2 == 0:
                fam = ("Cnh", hn)
            else:
                fam = ("S2n", 2 * hn)
        elif hk == "D":
            fam = ("Dnh", hn) if hn % 2 == 0 else ("Dnd", hn)
        else:
            fam = (hk + "h", 0)
    else:
        # isomorphic rotation group K = H ∪ {-g : g improper}
        k_elems = [e if e.proper else _analyse(-rots[i]) for i, e in enumerate(elems)]
        if any(e is None for e in k_elems):
            return None
        kk = _rotation_group_kind(k_elems)
        if kk is None:
            return None
        kk_, kn = kk
        if kk_ == "C" and hk == "C" and kn == 2 * hn:
            if hn == 1:
                fam = ("Cs", 1)
            elif hn % 2 == 1:
                fam = ("Cnh", hn)
            else:
                fam = ("S2n", 2 * hn)
        elif kk_ == "D" and hk == "C" and kn == hn:
            fam = ("Cnv", hn)
        elif kk_ == "D" and hk == "D" and kn == 2 * hn:
            fam = ("Dnh", hn) if hn % 2 == 1 else ("Dnd", hn)
        elif kk_ == "O" and hk == "T":
            fam = ("Td", 0)
    if fam is None:
        return None
    return _GroupInfo(fam[0], fam[1], tuple(elems), inv)


def identify_point_group(rotations) -> PointGroupName:
    """Schoenflies and Hermann–Mauguin names of a finite point group.

    Parameters
    ----------
    rotations : (G, 3, 3) float
        All operations of the group (Cartesian orthogonal matrices, any order, any
        orientation of the group in space).

    Returns
    -------
    PointGroupName
        Schoenflies: ``C1, Ci, Cs, Cn, Cnv, Cnh, Dn, Dnh, Dnd, S2n, T, Td, Th, O, Oh, I,
        Ih`` (``Ci`` not ``S2``, ``Cs`` not ``C1h``, ``S6`` not ``C3i``, ``S10`` not
        ``C5i``).  Hermann–Mauguin: the standard short symbols for the 32 crystallographic
        groups (``"m-3m"``, ``"4/mmm"``, ``"-42m"``, ``"mm2"``, ...) and the same patterns
        for any ``n``: ``Cn`` → ``"n"``; ``Cnh`` → ``"n/m"`` (n even) / ``"-(2n)"`` (n
        odd); ``S2n`` → ``"-(2n)"`` (n even) / ``"-n"`` (n odd); ``Cnv`` → ``"nmm"`` /
        ``"nm"``; ``Dn`` → ``"n22"`` / ``"n2"``; ``Dnh`` → ``"n/mmm"`` / ``"-(2n)m2"``;
        ``Dnd`` → ``"-(2n)2m"`` / ``"-nm"``; ``I`` → ``"532"``, ``Ih`` → ``"m-3-5"``.
        ``("?", "?")`` if the matrices are not orthogonal or not a finite group.
    """
    info = _classify(rotations)
    return _UNKNOWN if info is None else info.name


# ------------------------------------------------------------------------ Mulliken
_LETTERS = {1: "A", 2: "E", 3: "T", 4: "G", 5: "H"}


def _cartesian_key(v: np.ndarray, prefer_small: bool) -> tuple:
    """Sort key: vectors most (or least) aligned with x, then y, then z come first."""
    c = np.round(np.abs(v), 8)
    return tuple(c) if prefer_small else tuple(-c)


def _principal(info: _GroupInfo) -> Optional[int]:
    """Index of the operation whose character decides A vs B (and numbers the E's)."""
    els = info.elements
    fam, n = info.family, info.n
    if fam == "S2n":
        m = n // 2
        if m % 2 == 0:  # S4, S8, ...: no inversion, use S_2m itself
            return next(i for i, e in enumerate(els) if not e.proper and e.n == n and e.k == 1)
        n = m  # S6 = C3i, S10, ...: use the proper C_m
    elif fam == "Dnd" and n % 2 == 0:  # D2d, D4d, ...: use S_2n
        return next(i for i, e in enumerate(els) if not e.proper and e.n == 2 * n and e.k == 1)
    if n < 2:
        return None
    return next(i for i, e in enumerate(els) if e.proper and e.n == n and e.k == 1)


def _dedupe(labels: list[str]) -> list[str]:
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    seen: dict[str, int] = {}
    out = []
    for lab in labels:
        if counts[lab] > 1:
            seen[lab] = seen.get(lab, 0) + 1
            out.append(f"{lab}({seen[lab]})")
        else:
            out.append(lab)
    return out


def mulliken_labels(rotations, real_characters) -> list[str]:
    """Mulliken labels of the real (physically irreducible) irreps.

    Parameters
    ----------
    rotations : (G, 3, 3) float
        The group's operations.
    real_characters : (n_real, G) float
        Character of each real irrep on each operation (complex-conjugate pairs summed,
        so e.g. the two 1-d complex irreps of C3 form one real ``E``).

    Returns
    -------
    list of str, length n_real
        Labels such as ``"A1g"``, ``"E'"``, ``"A2''"``, ``"T2u"``, ``"B3g"``, ``"E2u"``
        (letter, number, then ``g``/``u`` or ``'``/``''``; primes are plain ASCII).
        ``"Γ1", "Γ2", ...`` if the group is not recognised.

    Rules
    -----
    * Letter from the dimension: 1 → A/B, 2 → E, 3 → T, 4 → G, 5 → H.
    * A/B: A if symmetric (χ = +1) under the principal operation.  That is the highest-
      order proper rotation ``Cn``, except for the groups whose main axis is an
      ``S2n`` axis without inversion (S4, S8, S12, ..., D2d, D4d, ...), where ``S2n`` is
      used.  For S6, S10, D3d, ... (with inversion) ``Cn`` is used.
    * g/u from the character of the inversion, when present; otherwise ``'``/``''`` from
      σh (the mirror perpendicular to the principal axis: C3h, D3h, D5h, Cs, ...).
    * Subscripts 1/2 on A and B from a ``C2'`` perpendicular to the principal axis (Dn,
      Dnh, Dnd), or, when there is none, from a ``σv`` containing it (Cnv): 1 if χ = +1.
      **Convention** where there are two classes (n even): the ``C2'`` whose axis is most
      nearly along Cartesian x (then y, then z) is used; the ``σv`` used is the mirror
      whose plane most nearly contains x (normal most nearly ⟂ x, then ⟂ y, then ⟂ z).
      In the standard orientation (main axis z, a C2' or mirror plane through x) this is
      the usual table: D4h B1g has χ(C2'(x)) = +1; C2v B1 has χ(σv(xz)) = +1, so x is B1.
    * E's are numbered ``E1, E2, ...`` by χ(principal) = 2cos(2πk/N) (N the order of
      the principal operation) when the group has 2-d irreps with more than one ``k``.
    * D2, D2h: B1, B2, B3 are symmetric under the C2 along z, y, x respectively.
      **Convention** in general orientation: the C2 axis most nearly along Cartesian z is
      "z", of the other two the one most nearly along y is "y", the last is "x".
    * Cubic / icosahedral: T: A, E, T; Th: + g/u; O, Oh: A1/A2 and T1/T2 from χ(C4)
      (T1: χ(C4) = +1, the vector is T1(u)); Td: A1/A2 and T1/T2 from χ(σd) (T2:
      χ(σd) = +1, the vector is T2); I, Ih: A, T1 (χ(C5) = (1+√5)/2 for the 72°
      rotation, the vector), T2, G, H (+ g/u).
    * If the rules ever gave two irreps the same label (only possible with inconsistent
      input), the duplicates get ``"(1)"``, ``"(2)"``, ... appended in input order.
    """
    chars = np.asarray(real_characters, dtype=float)
    rots = np.asarray(rotations, dtype=float)
    n_real = chars.shape[0] if chars.ndim == 2 else 0
    fallback = [f"Γ{i + 1}" for i in range(n_real)]
    info = _classify(rots) if chars.ndim == 2 and chars.shape[1] == len(rots) else None
    if info is None:
        return fallback
    els = info.elements
    ident = next(i for i, e in enumerate(els) if e.symbol == "E")
    dims = np.rint(chars[:, ident]).astype(int)
    if np.any(dims < 1) or np.any(dims > 5):
        return fallback
    fam = info.family
    inv = info.inversion

    def gu(r: int) -> str:
        return "" if inv is None else ("g" if chars[r, inv] > 0 else "u")

    def first(pred) -> Optional[int]:
        return next((i for i, e in enumerate(els) if pred(e)), None)

    labels: list[str] = []
    if fam in _CUBIC_HM:
        if fam in ("O", "Oh"):
            ref = first(lambda e: e.proper and e.n == 4)
            sign = 1.0
        elif fam == "Td":
            ref = first(lambda e: e.symbol == "σ")
            sign = -1.0  # T2 has χ(σd) = +1
        elif fam in ("I", "Ih"):
            ref = first(lambda e: e.proper and e.n == 5 and e.k == 1)
            sign = 1.0
        else:
            ref = None
        for r, d in enumerate(dims):
            lab = _LETTERS[d]
            if ref is not None and d == 1 and fam not in ("I", "Ih"):
                lab += "1" if chars[r, ref] > 0 else "2"
            elif ref is not None and d == 3:
                lab += "1" if sign * chars[r, ref] > 0 else "2"
            labels.append(lab + gu(r))
        return _dedupe(labels)

    if fam in ("Dn", "Dnh") and info.n == 2:
        c2 = [i for i, e in enumerate(els) if e.proper and e.n == 2]
        z = min(c2, key=lambda i: (-round(abs(els[i].axis[2]), 8), i))
        rest = [i for i in c2 if i != z]
        y = min(rest, key=lambda i: (-round(abs(els[i].axis[1]), 8), i))
        x = next(i for i in rest if i != y)
        for r, d in enumerate(dims):
            lab = _LETTERS[d]
            if d == 1:
                sym = [chars[r, i] > 0 for i in (z, y, x)]
                if not all(sym):
                    lab = "B" + ("1" if sym[0] else "2" if sym[1] else "3")
            labels.append(lab + gu(r))
        return _dedupe(labels)

    # axial groups
    p = _principal(info)
    if p is not None:
        axis = els[p].axis
        big_n = els[p].n
    elif fam == "Cs":
        axis = next(e.axis for e in els if e.symbol == "σ")
        big_n = 1
    else:  # C1, Ci
        axis, big_n = None, 1
    sigma_h = c2p = sigma_v = None
    if axis is not None:
        sigma_h = first(lambda e: e.symbol == "σ" and _parallel(e.axis, axis))
        cands = [
            i for i, e in enumerate(els) if e.proper and e.n == 2 and _perpendicular(e.axis, axis)
        ]
        if cands:
            c2p = min(cands, key=lambda i: (_cartesian_key(els[i].axis, False), i))
        cands = [
            i
            for i, e in enumerate(els)
            if e.symbol == "σ" and _perpendicular(e.axis, axis)
        ]
        if cands:
            sigma_v = min(cands, key=lambda i: (_cartesian_key(els[i].axis, True), i))
    sub_ref = c2p if c2p is not None else sigma_v

    def e_index(r: int) -> int:
        c = float(np.clip(chars[r, p] / 2.0, -1.0, 1.0))
        return int(round(np.arccos(c) * big_n / (2 * np.pi)))

    two_d = [r for r, d in enumerate(dims) if d == 2]
    number_e = p is not None and len({e_index(r) for r in two_d}) > 1
    for r, d in enumerate(dims):
        if d == 1:
            lab = "A" if p is None or chars[r, p] > 0 else "B"
            if sub_ref is not None:
                lab += "1" if chars[r, sub_ref] > 0 else "2"
        elif d == 2:
            lab = "E" + (str(e_index(r)) if number_e else "")
        else:  # pragma: no cover - axial groups have no real irrep above dimension 2
            lab = _LETTERS.get(d, "?")
        if inv is not None:
            lab += gu(r)
        elif sigma_h is not None:
            lab += "'" if chars[r, sigma_h] > 0 else "''"
        labels.append(lab)
    return _dedupe(labels)
