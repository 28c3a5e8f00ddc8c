"""Typed irrep tables: CDML labels of Pm-3m (No. 221) at Γ, X, M, R.

Labels follow Cracknell, Davies, Miller & Love, *Kronecker Product Tables* (1979) — the
"Miller–Love" labels used by ISOTROPY / ISODISTORT (Stokes & Hatch) and the Bilbao
Crystallographic Server.  Pm-3m is symmorphic; with the origin at a site of full ``m-3m``
symmetry every operation is ``{R|0}`` plus a lattice translation, and the small irreps at
these four k-points are the irreps of their little co-groups (``Oh`` at Γ and R, ``D4h`` at
X and M) times the Bloch phase.  What this table adds to the textbook character tables is
the *numbering* CDML gives them, read from the Bilbao server's REPRES characters of space
group 221 as distributed in the ``irreptables`` data of the ``irrep`` package
(``irreptables/irreps-SG=221-scal.dat``: per-operation characters for GM, X, M, R).  It
reads (``+``/``-``: ``g``/``u``, even/odd under inversion):

==========  =========  ======================================================
k-point     co-group   CDML number → Mulliken
==========  =========  ======================================================
Γ (0,0,0)   Oh         1 A1, 2 A2, 3 E, 4 T1, 5 T2
R (½,½,½)   Oh         1 A1, 2 A2, 3 E, 4 T1, 5 T2
M (½,½,0)   D4h (4∥z)  1 A1, 2 B1, 3 A2, 4 B2, 5 E
X (0,½,0)   D4h (4∥y)  1 A1, 2 B1, 3 A2, 4 B2, 5 E
==========  =========  ======================================================

with ``B1`` even and ``B2`` odd under the two-fold axes along the cubic axes
perpendicular to the four-fold axis (``B2`` even under the face-diagonal ones).
Consequences used as checks: the polar (acoustic) vector is Γ4− (T1u); an axial vector
at R is R4+ (the anti-phase tilt a0a0c−) and the rotation about z at M is M3+ (A2g, the
in-phase tilt a0a0c+).

The labels depend on the origin: they are those of the spec's own origin, which must be
a site of full ``m-3m`` symmetry (1a or 1b).  With the B cation of a perovskite at the
origin (as in ``examples/cspbbr3``) the tilts are R4+ and M3+ (ISOTROPY's usual setting);
with the A cation there, the same distortions carry other labels.

Characters are given per conjugacy class of the proper part (``E, C2 (along the
four-fold axis or a cube axis), C2' / C2'' (cube axes ⊥ / face diagonals), C3, C4``) and
the inversion parity, computed from the matrix by :func:`class_key` — so the table is
matched against operations in any order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PM3M_KPOINTS", "class_key", "oh_characters", "d4h_characters", "cdml_characters",
           "CDML_SOURCE"]

CDML_SOURCE = ("CDML labels (Cracknell, Davies, Miller & Love 1979; ISOTROPY/ISODISTORT), "
               "numbering read from the Bilbao Crystallographic Server REPRES characters of "
               "space group 221 (irrep package, irreptables/irreps-SG=221-scal.dat)")

#: CDML k-point letter → (k in reciprocal-lattice fractional coordinates, little co-group,
#: four-fold axis of D4h or None).
PM3M_KPOINTS = {
    "GM": ((0.0, 0.0, 0.0), "Oh", None),
    "X": ((0.0, 0.5, 0.0), "D4h", 1),
    "M": ((0.5, 0.5, 0.0), "D4h", 2),
    "R": ((0.5, 0.5, 0.5), "Oh", None),
}
#: Display names (ISOTROPY writes GM for Γ).
KPOINT_SYMBOL = {"GM": "Γ", "X": "X", "M": "M", "R": "R"}

# textbook characters of the proper rotation classes (O and D4), CDML numbering
_O = {  # classes: E, C3, C2' (face diagonal), C4, C2 (cube axis)
    1: {"E": 1, "C3": 1, "C2'": 1, "C4": 1, "C2": 1},  # A1
    2: {"E": 1, "C3": 1, "C2'": -1, "C4": -1, "C2": 1},  # A2
    3: {"E": 2, "C3": -1, "C2'": 0, "C4": 0, "C2": 2},  # E
    4: {"E": 3, "C3": 0, "C2'": -1, "C4": 1, "C2": -1},  # T1
    5: {"E": 3, "C3": 0, "C2'": 1, "C4": -1, "C2": -1},  # T2
}
_D4 = {  # classes: E, C4 (main), C2 (main), C2' (cube axes ⊥ main), C2'' (face diagonals ⊥ main)
    1: {"E": 1, "C4": 1, "C2": 1, "C2'": 1, "C2''": 1},  # A1
    2: {"E": 1, "C4": -1, "C2": 1, "C2'": 1, "C2''": -1},  # B1
    3: {"E": 1, "C4": 1, "C2": 1, "C2'": -1, "C2''": -1},  # A2
    4: {"E": 1, "C4": -1, "C2": 1, "C2'": -1, "C2''": 1},  # B2
    5: {"E": 2, "C4": 0, "C2": -2, "C2'": 0, "C2''": 0},  # E
}
MULLIKEN = {"Oh": {1: "A1", 2: "A2", 3: "E", 4: "T1", 5: "T2"},
            "D4h": {1: "A1", 2: "B1", 3: "A2", 4: "B2", 5: "E"}}


def class_key(w, main_axis: int | None = None) -> tuple[int, str]:
    """``(parity, class)`` of an integer signed-permutation matrix (cubic axes).

    ``parity`` is ``det w``; the class is that of the proper part ``p = det(w) w``:
    ``E``, ``C3``, ``C4``, ``C2`` (about a cube axis; for D4h only the main axis),
    ``C2'`` (Oh: a face diagonal; D4h: a cube axis ⊥ main) or ``C2''`` (D4h: a face
    diagonal ⊥ main).  Raises ValueError for a matrix that is not in the group.
    """
    w = np.rint(np.asarray(w, dtype=float)).astype(int)
    det = int(round(np.linalg.det(w)))
    p = det * w
    tr = int(np.trace(p))
    if tr == 3:
        return det, "E"
    if tr == 0:
        return det, "C3"
    if tr == 1:
        if main_axis is not None and p[main_axis, main_axis] != 1:
            raise ValueError("a four-fold rotation about another axis than the main one")
        return det, "C4"
    if tr != -1:
        raise ValueError(f"not a point operation of m-3m: {w.tolist()}")
    axis = np.flatnonzero(np.diag(p) == 1)
    if len(axis) == 1:  # two-fold about a cube axis
        if main_axis is None:
            return det, "C2"
        return det, "C2" if axis[0] == main_axis else "C2'"
    if main_axis is not None and p[main_axis, main_axis] != -1:
        raise ValueError("a face-diagonal two-fold axis not perpendicular to the main axis")
    return det, ("C2'" if main_axis is None else "C2''")


def oh_characters(number: int, parity: int, w) -> float:
    det, cls = class_key(w)
    return _O[number][cls] * (1 if det > 0 else parity)


def d4h_characters(number: int, parity: int, w, main_axis: int) -> float:
    det, cls = class_key(w, main_axis)
    return _D4[number][cls] * (1 if det > 0 else parity)


def cdml_characters(kpoint: str, rotations, main_axis: int | None = None) -> dict:
    """CDML label → characters ``(n_ops,) float64`` on the little co-group ``rotations``
    (integer fractional matrices of the standard cubic setting, ``{R|0}`` operations).

    ``kpoint`` is a key of :data:`PM3M_KPOINTS`; for another arm of the X or M star give
    its four-fold axis ``main_axis`` (0, 1, 2: the non-zero component of an X arm, the
    zero component of an M arm) — the characters of an arm are those of the standard arm
    carried by the cubic operation between them, which :func:`class_key` sees as the same
    geometric class."""
    _, group, main = PM3M_KPOINTS[kpoint]
    main = main if main_axis is None else main_axis
    sym = KPOINT_SYMBOL[kpoint]
    out = {}
    for number in range(1, 6):
        for parity, tag in ((1, "+"), (-1, "-")):
            if group == "Oh":
                chi = [oh_characters(number, parity, w) for w in rotations]
            else:
                chi = [d4h_characters(number, parity, w, main) for w in rotations]
            out[f"{sym}{number}{tag}"] = np.array(chi, dtype=float)
    return out


def mulliken_of(label: str) -> str:
    """``"M3+"`` → ``"A2g"`` (the little co-group irrep of a CDML label of this table)."""
    for key, sym in KPOINT_SYMBOL.items():
        if label.startswith(sym):
            number, tag = int(label[len(sym)]), label[len(sym) + 1]
            return MULLIKEN[PM3M_KPOINTS[key][1]][number] + ("g" if tag == "+" else "u")
    raise KeyError(label)
