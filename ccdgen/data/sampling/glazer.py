"""Octahedral tilt systems of corner-sharing octahedral perovskites (Glazer notation).

A tilt system is written in Glazer's notation (Glazer, Acta Cryst. B28, 3384, 1972):
three letters for the tilt magnitudes about the pseudocubic axes x, y, z (equal letters,
equal magnitudes) with a superscript each, ``+`` (in-phase: successive octahedra along the
axis tilt the same way), ``-`` (anti-phase: they alternate) or ``0`` (no tilt), e.g.
``a-a-c+``.  Howard & Stokes (Acta Cryst. B54, 782, 1998) showed that the 23 Glazer
systems give 15 distinct space groups: :data:`HOWARD_STOKES`.

The octahedra are found in the reference crystal (:func:`find_octahedra`): sites whose six
nearest neighbours form an octahedron, every vertex shared by exactly two octahedra with
the centre–vertex–centre line straight, all octahedra with parallel axes, and the centres
on a simple (pseudo)cubic lattice.  The tilt about axis ``j`` of the octahedron at
pseudocubic lattice point ``n`` has the sign ``s_j(n) = (-1)^(n_k + n_l)`` (``k, l ≠ j``;
the alternation within a layer that corner sharing forces) times ``(-1)^(n_j)`` for an
anti-phase tilt; the octahedron at ``n = 0`` rotates positively (right-handed) about each
axis.  Two constructions (``model=``):

``"rigid"`` (default)
    Each octahedron is rotated rigidly about its centre by the rotation vector
    ``ω(n) = Σ_j s_j(n) θ_j e_j``.  The pseudocubic cell shrinks along each axis ``i`` by
    ``c_i = (R e_i)·e_i`` (the same for every octahedron), centres and the other sites keep
    their fractional coordinates, and a shared vertex sits at the mean of its images from
    its two octahedra (they coincide for one-axis tilts and in-phase combinations; for
    anti-phase tilts combined with others they differ at second order in the angles).
``"displacive"``
    The cut definition of the bundled data: the cell and every non-vertex site stay fixed,
    and the vertex at ``B + d_i e_i`` moves by ``d_i Σ_j s_j(n) tan θ_j (e_j × e_i)``
    perpendicular to its centre–vertex–centre line (``d_i`` the centre–vertex distance).
    For a one-axis tilt this is "Br moved by (a/2)·tan θ perpendicular to Pb–Br–Pb, Pb and
    Cs fixed, cubic cell"; the centre–vertex–centre angle is then ``180° − 2θ`` exactly and
    the octahedra stretch by ``1/cos θ``.

Both constructions are equivariant (the structure has exactly the space group of its tilt
system, checked against Howard & Stokes in the tests) and agree to first order in θ.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ...errors import SpecError, StructureError
from . import FrameBatch

__all__ = ["HOWARD_STOKES", "ALL_SYSTEMS", "TiltPattern", "OctahedralNetwork", "find_octahedra",
           "tilt_structure", "glazer_frames", "relax_frames", "MAX_TILT_DEG", "DEFAULT_RATIOS"]

#: The 15 tilt systems and their space groups (symbol, number): Howard & Stokes, Acta Cryst.
#: B54, 782 (1998), Table 1 / Fig. 1 (the 23 systems of Glazer 1972 reduce to these).
HOWARD_STOKES = {
    "a0a0a0": ("Pm-3m", 221),
    "a0a0c+": ("P4/mbm", 127),
    "a0a0c-": ("I4/mcm", 140),
    "a0b+b+": ("I4/mmm", 139),
    "a0b-b-": ("Imma", 74),
    "a0b+c-": ("Cmcm", 63),
    "a0b-c-": ("C2/m", 12),
    "a+a+a+": ("Im-3", 204),
    "a+b+c+": ("Immm", 71),
    "a+a+c-": ("P42/nmc", 137),
    "a+b-b-": ("Pnma", 62),
    "a+b-c-": ("P21/m", 11),
    "a-a-a-": ("R-3c", 167),
    "a-b-b-": ("C2/c", 15),
    "a-b-c-": ("P-1", 2),
}
#: ``--glazer all``: the 15 systems in the order of :data:`HOWARD_STOKES`.
ALL_SYSTEMS = tuple(HOWARD_STOKES)

#: Largest tilt angle accepted (degrees): beyond ~30° rigid octahedra collide with the
#: A-site cations (real perovskites tilt by at most ~20°).
MAX_TILT_DEG = 30.0
#: Amplitude ratios of the first, second and third distinct tilted letter.
DEFAULT_RATIOS = (1.0, 0.75, 0.5)
MODELS = ("rigid", "displacive")

_SUPERSCRIPTS = str.maketrans({"⁺": "+", "⁻": "-", "−": "-", "–": "-", "⁰": "0", "°": "0"})
_PATTERN = re.compile(r"^([abc])([+\-0])([abc])([+\-0])([abc])([+\-0])$")


# ----------------------------------------------------------------------------- notation
@dataclass(frozen=True)
class TiltPattern:
    """A parsed tilt system: ``letters`` and ``signs`` ('+', '-', '0') about x, y, z."""

    notation: str
    letters: tuple
    signs: tuple

    @classmethod
    def parse(cls, text) -> "TiltPattern":
        """Parse Glazer notation (``a-a-c+``, ``a0a0c-``; Unicode superscripts and minus
        signs accepted).  Raises :class:`SpecError` for anything else."""
        raw = str(text)
        t = raw.strip().translate(_SUPERSCRIPTS).replace(" ", "").lower()
        m = _PATTERN.match(t)
        if not m:
            raise SpecError(
                f"tilt pattern {raw!r} is not Glazer notation",
                why="a tilt system is three letters a/b/c (equal letters: equal tilt magnitudes), "
                    "each followed by + (in-phase), - (anti-phase) or 0 (no tilt) for the x, y, z axes",
                fix="write e.g. a-a-c+ (Pnma-type), a0a0c- or a0a0c+, or 'all' for the 15 systems "
                    f"({', '.join(ALL_SYSTEMS)})")
        letters, signs = tuple(m.group(1, 3, 5)), tuple(m.group(2, 4, 6))
        for letter in set(letters):
            s = {signs[i] for i in range(3) if letters[i] == letter}
            if "0" in s and len(s) > 1:
                raise SpecError(f"tilt pattern {raw!r} gives the letter {letter!r} both a zero and a "
                                "non-zero tilt",
                                why="equal letters mean equal tilt magnitudes",
                                fix="use another letter for the tilted axis (e.g. a0a0c+)")
        return cls(t, letters, signs)

    @property
    def tilted_letters(self) -> tuple:
        """Distinct letters with a non-zero tilt, sorted (a, b, c)."""
        return tuple(sorted({l for l, s in zip(self.letters, self.signs) if s != "0"}))

    def angles(self, amplitude: float, ratios=DEFAULT_RATIOS) -> np.ndarray:
        """Tilt angles about x, y, z (degrees, ``(3,)`` float64): the k-th distinct tilted
        letter (in the order a, b, c) gets ``amplitude * ratios[k]``; untilted axes 0."""
        amp = {l: amplitude * ratios[k] for k, l in enumerate(self.tilted_letters)}
        return np.array([0.0 if s == "0" else amp[l] for l, s in zip(self.letters, self.signs)])

    @property
    def space_group(self):
        """(symbol, number) from Howard & Stokes for the 15 standard systems, else None."""
        return HOWARD_STOKES.get(self.notation)


def parse_patterns(items) -> list:
    """``'all'``, one pattern or a comma-separated list (or a list of those) → TiltPatterns."""
    if isinstance(items, str):
        items = [items]
    out = []
    for item in items:
        for part in str(item).split(","):
            part = part.strip()
            if not part:
                continue
            if part.lower() == "all":
                out.extend(TiltPattern.parse(p) for p in ALL_SYSTEMS)
            else:
                out.append(TiltPattern.parse(part))
    if not out:
        raise SpecError("no tilt pattern given", fix="give e.g. --glazer all or --glazer a-a-c+")
    seen, unique = set(), []
    for p in out:
        if p.notation not in seen:
            seen.add(p.notation)
            unique.append(p)
    return unique


def check_amplitude(value, what: str = "tilt amplitude") -> float:
    """A tilt angle in degrees with ``0 < |θ| ≤ MAX_TILT_DEG``; raises SpecError otherwise."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{what} {value!r} is not a number (degrees)") from None
    if not np.isfinite(v) or v == 0 or abs(v) > MAX_TILT_DEG:
        raise SpecError(f"{what} {v:g}° is out of range",
                        why=f"a tilt angle must be non-zero and at most {MAX_TILT_DEG:g}° in size "
                            "(larger tilts make the octahedra collide with the A-site cations)",
                        fix="give e.g. --amplitude 8 (degrees); a0a0a0 is the untilted structure")
    return v


def check_ratios(ratios) -> tuple:
    r = tuple(float(x) for x in ratios)
    if len(r) != 3 or not all(np.isfinite(r)) or min(r) <= 0 or len(set(r)) != 3:
        raise SpecError(f"amplitude ratios {list(ratios)} must be three distinct positive numbers",
                        why="distinct letters of a tilt system need distinct tilt magnitudes, or the "
                            "structure has more symmetry than its system",
                        fix="use e.g. --ratios 1 0.75 0.5")
    return r


# ----------------------------------------------------------------------------- octahedra
@dataclass(frozen=True, eq=False)
class OctahedralNetwork:
    """Corner-sharing octahedra of a reference crystal.

    Attributes
    ----------
    crystal : Crystal
    centres : tuple of int — basis sites at the octahedron centres
    vertices : tuple of int — basis sites at the shared vertices
    axes : (3, 3) float64 — rows: unit pseudocubic axes e_x, e_y, e_z (Glazer's x, y, z),
        ordered and signed to be closest to the Cartesian axes
    half_lengths : (3,) float64, Å — centre–vertex distance ``d_i`` along each axis
    vertex_centre : dict basis vertex → (basis centre, lattice translation T (3,) int, axis i):
        the vertex in cell ``t`` is at ``d_i e_i`` from that centre in cell ``t + T``
    """

    crystal: object
    centres: tuple
    vertices: tuple
    axes: np.ndarray
    half_lengths: np.ndarray
    vertex_centre: dict

    def describe(self) -> str:
        sp = self.crystal.species
        c = "/".join(dict.fromkeys(sp[b] for b in self.centres))
        v = "/".join(dict.fromkeys(sp[b] for b in self.vertices))
        return f"{c}{v}6 octahedra (corner-sharing, centre–vertex {', '.join(f'{x:.4g}' for x in self.half_lengths)} Å)"


def _no_network(crystal, why: str):
    from collections import Counter

    species = "".join(f"{s}{n if n > 1 else ''}" for s, n in Counter(crystal.species).items())
    return StructureError(
        f"the crystal ({species}, {crystal.n_basis} sites) has no network of corner-sharing octahedra",
        why=why,
        fix="Glazer tilts need a perovskite-like reference: BX6 octahedra sharing every vertex "
            "with one neighbour along straight B–X–B lines (e.g. cubic ABX3 with B at the "
            "octahedron centres); use the mode, strain or n-sphere generators for other crystals")


def find_octahedra(crystal, tol: float = 1e-3) -> OctahedralNetwork:
    """The corner-sharing octahedral network of ``crystal`` (see the module docstring).

    ``tol`` is the relative tolerance on bond lengths, on opposite and perpendicular bond
    vectors and on straight centre–vertex–centre lines.  Raises :class:`StructureError`
    when the crystal has none (naming what is missing).
    """
    from ase.neighborlist import neighbor_list

    atoms = crystal.to_atoms()
    nn = crystal.nearest_neighbour_distance()
    cutoff = 2.5 * nn
    i_idx, j_idx, d_vec, shifts = neighbor_list("ijDS", atoms, cutoff)
    species = crystal.species
    cand = {}
    for b in range(crystal.n_basis):
        sel = np.flatnonzero(i_idx == b)
        dist = np.linalg.norm(d_vec[sel], axis=1)
        order = np.argsort(dist, kind="stable")
        sel, dist = sel[order], dist[order]
        if len(sel) < 6 or (len(sel) > 6 and dist[6] < dist[5] * 1.05):
            continue  # no clear first shell of six
        six = sel[:6]
        if len({species[j] for j in j_idx[six]}) != 1 or species[j_idx[six[0]]] == species[b]:
            continue
        v = d_vec[six]
        partner = [np.flatnonzero(np.linalg.norm(v + v[p], axis=1) < 10 * tol * dist[5]) for p in range(6)]
        if any(len(q) != 1 for q in partner):
            continue  # not three opposite pairs
        firsts = [p for p in range(6) if p < partner[p][0]]
        if len(firsts) != 3:
            continue
        u = v[firsts] / np.linalg.norm(v[firsts], axis=1)[:, None]
        if np.max(np.abs(u @ u.T - np.eye(3))) > 10 * tol:
            continue  # the three axes are not perpendicular
        cand[b] = (six, v, u)
    if not cand:
        raise _no_network(crystal, "no site has six nearest neighbours of one other species at the "
                                   "corners of an octahedron (three straight, perpendicular pairs)")
    # every vertex must be shared by exactly two octahedra, on opposite sides
    members: dict = {}
    for b, (six, v, _) in cand.items():
        for j, vec in zip(j_idx[six], v):
            members.setdefault(int(j), []).append((b, vec))  # vec: from centre b to vertex j
    for j, mem in members.items():
        if len(mem) != 2:
            raise _no_network(crystal, f"the vertex {species[j]} (basis site {j}) belongs to {len(mem)} "
                                       "octahedron(s), not exactly two (no corner sharing)")
        if np.linalg.norm(mem[0][1] + mem[1][1]) > 10 * tol * np.linalg.norm(mem[0][1]):
            raise _no_network(crystal, f"the vertex {species[j]} (basis site {j}) is not on a straight line "
                                       "between its two octahedron centres (the reference is already tilted)")
    centres = tuple(sorted(cand))
    # pseudocubic axes from the first octahedron, ordered and signed closest to x, y, z
    u = cand[centres[0]][2]
    order = []
    for i in range(3):
        free = [k for k in range(3) if k not in order]
        order.append(max(free, key=lambda k: (abs(u[k, i]), -k)))
    axes = u[order] * np.sign(u[order][np.arange(3), np.arange(3)])[:, None]
    axes[np.abs(axes) < 1e-12] = 0.0
    for b in centres:
        if np.max(np.min(np.abs(np.abs(cand[b][2] @ axes.T) - 1.0), axis=1)) > 10 * tol:
            raise _no_network(crystal, "the octahedra do not all have parallel axes (already tilted)")
    # centre–vertex distance per axis; vertex → (centre on its − side, lattice shift, axis)
    half = np.zeros(3)
    vertex_centre = {}
    for j, mem in members.items():
        for b, vec in mem:
            proj = vec @ axes.T
            i = int(np.argmax(np.abs(proj)))
            if proj[i] > 0:
                vertex_centre[j] = (int(b), _centre_shift(crystal, b, j, vec), i)
                half[i] = max(half[i], float(proj[i]))
    if np.any(half == 0):
        raise _no_network(crystal, "the octahedra do not connect along all three axes")
    return OctahedralNetwork(crystal, centres, tuple(sorted(members)), axes, half, vertex_centre)


def _centre_shift(crystal, b: int, j: int, vec) -> np.ndarray:
    """Integer lattice translation ``T`` of the centre ``b`` on the − side of vertex ``j``
    (home cell): ``frac[j] - vec_frac = frac[b] + T``; a vertex in cell ``t`` has that
    centre in cell ``t + T``."""
    fvec = np.linalg.solve(crystal.cell.T, vec)
    t = crystal.frac[j] - crystal.frac[b] - fvec
    return np.rint(t).astype(np.int64)


# ----------------------------------------------------------------------------- supercell layout
@dataclass(frozen=True, eq=False)
class _Layout:
    centre_sites: np.ndarray  # (n_c,) supercell sites of centres
    centre_n: np.ndarray  # (n_c, 3) int pseudocubic coordinates
    vertex_sites: np.ndarray  # (n_v,)
    vertex_centre: np.ndarray  # (n_v,) index into centre_sites (− side)
    vertex_image: np.ndarray  # (n_v, 3) int supercell image of that centre
    vertex_axis: np.ndarray  # (n_v,)
    lattice_n: np.ndarray  # (3, 3) int: supercell lattice vectors in pseudocubic units


def _layout(net: OctahedralNetwork, supercell) -> _Layout:
    ref = net.crystal
    if supercell.reference is not ref and supercell.reference.signature() != ref.signature():
        raise StructureError("the supercell belongs to another reference crystal")
    basis = supercell.site_basis
    pos = supercell.positions
    csites = np.flatnonzero(np.isin(basis, net.centres))
    step = 2.0 * net.half_lengths
    origin = ref.positions[net.centres[0]]
    ncoord = (pos[csites] - origin) @ net.axes.T / step
    n_int = np.rint(ncoord).astype(np.int64)
    lat = supercell.cell @ net.axes.T / step
    lat_int = np.rint(lat).astype(np.int64)
    if np.max(np.abs(ncoord - n_int), initial=0) > 1e-6 or np.max(np.abs(lat - lat_int)) > 1e-6:
        raise StructureError("the octahedron centres do not form a simple (pseudo)cubic lattice along "
                             "the octahedron axes",
                             why="Glazer tilt signs alternate from one octahedron to the next along x, y, z",
                             fix="use a perovskite reference whose octahedra sit on a simple cubic lattice")
    site_of = {int(s): k for k, s in enumerate(csites)}
    vsites = np.flatnonzero(np.isin(basis, net.vertices))
    rows, axis = [], []
    for s in vsites:
        cb, sh, i = net.vertex_centre[int(basis[s])]
        rows.append([cb, *(supercell.site_translation[s] + sh)])
        axis.append(i)
    idx, img = supercell.locate(np.array(rows, dtype=np.int64))
    vc = np.array([site_of[int(i)] for i in idx], dtype=np.int64)
    return _Layout(csites, n_int, vsites, vc, img, np.array(axis, dtype=np.int64), lat_int)


def _signs(pattern: TiltPattern, n: np.ndarray) -> np.ndarray:
    """(n_c, 3) float: tilt sign of each octahedron about x, y, z (0 for untilted axes)."""
    out = np.zeros((len(n), 3))
    for j in range(3):
        if pattern.signs[j] == "0":
            continue
        k, l = [a for a in range(3) if a != j]
        e = n[:, k] + n[:, l] + (n[:, j] if pattern.signs[j] == "-" else 0)
        out[:, j] = 1.0 - 2.0 * (e % 2)
    return out


def _check_periodic(pattern: TiltPattern, lay: _Layout, supercell) -> None:
    m = lay.lattice_n
    for j in range(3):
        if pattern.signs[j] == "0":
            continue
        k, l = [a for a in range(3) if a != j]
        par = m[:, k] + m[:, l] + (m[:, j] if pattern.signs[j] == "-" else 0)
        if np.any(par % 2):
            raise StructureError(
                f"the tilt system {pattern.notation} does not fit the supercell H = "
                f"{supercell.matrix.tolist()}",
                why=f"its {'anti-phase' if pattern.signs[j] == '-' else 'in-phase'} tilt about "
                    f"{'xyz'[j]} alternates between neighbouring octahedra, which needs an even number "
                    "of them along every supercell vector it alternates along",
                fix="use an even supercell, e.g. --supercell 2 2 2")


def _rotate(omega: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rodrigues: rotation vectors (m, 3) applied to vectors (m, 3)."""
    phi = np.linalg.norm(omega, axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        k = np.where(phi > 0, omega / np.where(phi > 0, phi, 1.0), 0.0)
    c, s = np.cos(phi), np.sin(phi)
    return v * c + np.cross(k, v) * s + k * np.sum(k * v, axis=1, keepdims=True) * (1 - c)


def tilt_structure(net: OctahedralNetwork, supercell, pattern: TiltPattern, angles_deg,
                   model: str = "rigid") -> tuple[np.ndarray, np.ndarray]:
    """Positions and cell of ``supercell`` with the tilt system ``pattern``.

    Parameters
    ----------
    net : OctahedralNetwork of ``supercell.reference``
    supercell : Supercell (the pattern must be periodic in it)
    pattern : TiltPattern
    angles_deg : (3,) float — tilt angles about x, y, z (degrees; untilted axes ignored)
    model : "rigid" or "displacive" (module docstring)

    Returns ``(positions (n_atoms, 3) float64 Å in site order, cell (3, 3) float64 Å)``.
    """
    if model not in MODELS:
        raise SpecError(f"tilt model {model!r} is not one of {', '.join(MODELS)}")
    lay = _layout(net, supercell)
    _check_periodic(pattern, lay, supercell)
    theta = np.radians(np.asarray(angles_deg, dtype=float)) * np.array([s != "0" for s in pattern.signs])
    sign = _signs(pattern, lay.centre_n)  # (n_c, 3)
    e = net.axes
    d = net.half_lengths[lay.vertex_axis][:, None]
    ei = e[lay.vertex_axis]  # (n_v, 3)
    pos = np.array(supercell.positions, dtype=float)
    cell = np.array(supercell.cell, dtype=float)
    if model == "displacive":
        t = (sign * np.tan(theta))[lay.vertex_centre]  # (n_v, 3)
        disp = np.zeros_like(ei)
        for j in range(3):
            disp += t[:, j, None] * np.cross(e[j], ei)
        pos[lay.vertex_sites] += d * disp
        return pos, cell
    omega = (sign * theta) @ e  # (n_c, 3)
    phi = np.linalg.norm(theta)
    comp = theta / phi if phi > 0 else np.zeros(3)
    c_axis = np.cos(phi) + (1 - np.cos(phi)) * comp ** 2  # (R e_i)·e_i, the same for every octahedron
    stretch = e.T @ np.diag(c_axis) @ e
    pos = pos @ stretch
    new_cell = cell @ stretch
    centre = pos[lay.centre_sites][lay.vertex_centre] + lay.vertex_image @ new_cell
    om = omega[lay.vertex_centre]
    x1 = centre + d * _rotate(om, ei)
    n_next = lay.centre_n[lay.vertex_centre] + np.eye(3, dtype=np.int64)[lay.vertex_axis]
    om2 = (_signs(pattern, n_next) * theta) @ e
    x2 = centre + 2 * d * c_axis[lay.vertex_axis][:, None] * ei - d * _rotate(om2, ei)
    pos[lay.vertex_sites] = 0.5 * (x1 + x2)
    return pos, new_cell


def glazer_frames(supercell, patterns, amplitudes, ratios=DEFAULT_RATIOS, model: str = "rigid",
                  network: OctahedralNetwork | None = None) -> FrameBatch:
    """One frame per tilt system and amplitude.

    ``patterns``: Glazer notations or TiltPatterns (``"all"`` for the 15); ``amplitudes``:
    degrees, the tilt of the first distinct tilted letter (the others scaled by
    ``ratios``).  Frames are tagged ``family="glazer"``, ``glazer`` (notation),
    ``tilt_deg`` ((3,) degrees about x, y, z), ``tilt_model`` and, for the 15 standard
    systems, ``spacegroup`` (Howard & Stokes).  ``a0a0a0`` gives the reference supercell
    once, whatever the amplitudes.
    """
    if isinstance(patterns, TiltPattern):
        pats = [patterns]
    elif not isinstance(patterns, str) and all(isinstance(p, TiltPattern) for p in patterns):
        pats = list(patterns)
    else:
        pats = parse_patterns(patterns)
    amps = [check_amplitude(a) for a in np.atleast_1d(amplitudes)]
    ratios = check_ratios(ratios)
    if model not in MODELS:
        raise SpecError(f"--tilt-model {model!r} is not one of {', '.join(MODELS)}")
    net = network or find_octahedra(supercell.reference)
    numbers = _numbers(supercell)
    pos, cells, infos = [], [], []
    for p in pats:
        for k, a in enumerate(amps):
            if not p.tilted_letters and k > 0:
                break
            ang = p.angles(a, ratios) if p.tilted_letters else np.zeros(3)
            x, c = tilt_structure(net, supercell, p, ang, model)
            info = {"family": "glazer", "glazer": p.notation, "tilt_deg": ang, "tilt_model": model}
            if p.space_group:
                info["spacegroup"] = p.space_group[0]
            pos.append(x)
            cells.append(c)
            infos.append(info)
    return FrameBatch(numbers, np.array(pos), np.array(cells), tuple(infos))


def _numbers(supercell) -> np.ndarray:
    from ase.data import atomic_numbers

    return np.array([atomic_numbers[s] for s in supercell.species], dtype=np.int64)


# ----------------------------------------------------------------------------- relaxation
def relax_frames(batch: FrameBatch, calculator, *, fmax: float = 0.01, steps: int = 200,
                 cell_filter: str = "frechet", optimizer: str = "BFGS", keep_symmetry: bool = True,
                 symprec: float = 1e-4, logfile=None) -> FrameBatch:
    """Relax every frame with an ASE calculator through ASE's optimizers and cell filters.

    Parameters
    ----------
    calculator : an ASE calculator, or a callable returning a fresh one per frame
    fmax : force criterion, eV/Å (and eV/Å³ × volume on the cell through the filter)
    steps : most optimizer steps per frame
    cell_filter : "frechet" (:class:`ase.filters.FrechetCellFilter`), "exp"
        (``ExpCellFilter``), "unit" (``UnitCellFilter``) or "none" (fixed cell)
    optimizer : "BFGS", "FIRE", "LBFGS" or "BFGSLineSearch" (``ase.optimize``)
    keep_symmetry : hold each frame's space group (``ase.constraints.FixSymmetry`` at
        ``symprec``), so a tilt system relaxes within its own space group

    Returns the relaxed frames (same atom order) with ``info`` extended by ``relaxed``
    (True), ``relax_steps``, ``relax_fmax`` (largest remaining force, eV/Å) and
    ``relax_converged``.
    """
    import ase.optimize as opt

    filters = {"frechet": "FrechetCellFilter", "exp": "ExpCellFilter", "unit": "UnitCellFilter", "none": None}
    if cell_filter not in filters:
        raise SpecError(f"cell filter {cell_filter!r} is not one of {', '.join(filters)}")
    if not hasattr(opt, optimizer) or optimizer not in ("BFGS", "FIRE", "LBFGS", "BFGSLineSearch"):
        raise SpecError(f"optimizer {optimizer!r} is not one of BFGS, FIRE, LBFGS, BFGSLineSearch")
    if not (np.isfinite(fmax) and fmax > 0) or int(steps) < 1:
        raise SpecError(f"relaxation needs fmax > 0 and steps ≥ 1, got fmax={fmax!r}, steps={steps!r}")
    pos, cells, infos = [], [], []
    for i in range(len(batch)):
        atoms = batch.to_atoms(i)
        atoms.calc = calculator() if callable(calculator) and not hasattr(calculator, "get_potential_energy") \
            else calculator
        if keep_symmetry:
            from ase.constraints import FixSymmetry

            atoms.set_constraint(FixSymmetry(atoms, symprec=symprec))
        target = atoms
        if filters[cell_filter]:
            import ase.filters

            target = getattr(ase.filters, filters[cell_filter])(atoms)
        dyn = getattr(opt, optimizer)(target, logfile=logfile)
        converged = bool(dyn.run(fmax=fmax, steps=int(steps)))
        f = atoms.get_forces()
        atoms.set_constraint()
        info = dict(batch.infos[i])
        info.update(relaxed=True, relax_steps=int(dyn.get_number_of_steps()),
                    relax_fmax=float(np.linalg.norm(f, axis=1).max()), relax_converged=converged)
        pos.append(atoms.positions.copy())
        cells.append(atoms.cell.array.copy())
        infos.append(info)
    return FrameBatch(batch.numbers, np.array(pos), np.array(cells), tuple(infos))
