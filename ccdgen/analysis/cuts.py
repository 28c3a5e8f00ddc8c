"""Energy cuts of a cubic ABX3 perovskite (the paper's Fig. 9), for a model and a reference.

Four one-dimensional cuts through the 2×2×2 supercell of the reference crystal (atoms in
the order of ``reference.to_atoms().repeat((2, 2, 2))``), exactly as the bundled
``examples/cspbbr3/data/cuts.extxyz`` defines them (its README):

* ``R_antiphase`` / ``M_inphase`` — octahedral tilts about z at the R and M points;
  ``x`` = tilt angle θ (degrees).  Each X anion of a B–X–B bond perpendicular to z moves by
  ``(a/2)·tan|θ|`` perpendicular to its bond, in the sense of a rotation of the octahedron
  it belongs to; octahedron signs alternate in the xy plane (both points) and along z (R
  only); B and A stay fixed and the cell stays cubic.  The structures at −θ and +θ are the
  same (a tilt of −θ is the +θ tilt moved by one cubic cell, the same crystal), as in the
  bundled file.
* ``volumetric`` — the ideal cubic crystal with lattice constant ``a0·(1 + x)``.
* ``cubic-tetragonal-orthorhombic`` — ``x`` ∈ [0, 1]: cubic → P4/mbm, ``x`` ∈ [1, 2]:
  P4/mbm → Pnma, linear in the cell and in the fractional coordinates (each atom moves to
  the nearest image of its partner).  The two relaxed phases come from an endpoints file
  (``name=P4mbm``, ``name=Pnma``; 2×2×2 supercells in the same atom order).

The lattice constant ``a0`` of the cubic start is the relaxed cubic structure's
(``name=cubic`` of the endpoints file) when one is given — the spec may round it (the
CsPbBr3 spec has 5.9436 Å, the data 5.943615859 Å) — else the model's reference.

Energies are compared relative to each side's own energy of the ideal cubic supercell, per
formula unit (one reference cell): ``ΔE(x) = (E(x) − E(cubic)) / n_cells`` in meV/f.u.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import DataError, StructureError

TILT_CUTS = ("R_antiphase", "M_inphase")
INTERPOLATION = "cubic-tetragonal-orthorhombic"
CUTS = ("R_antiphase", "M_inphase", "volumetric", INTERPOLATION)
REPEAT = (2, 2, 2)
#: Default positions along each cut (those of the bundled cuts.extxyz).
DEFAULT_X = {
    "R_antiphase": np.arange(-16, 17, dtype=float),
    "M_inphase": np.arange(-16, 17, dtype=float),
    "volumetric": np.arange(-12, 13) * 0.005,
    INTERPOLATION: np.concatenate([np.arange(0, 21) * 0.05, 1.0 + np.arange(0, 21) * 0.05]),
}
#: Relaxed phases reported with the cuts (names in an endpoints file).
PHASES = ("P4mbm", "I4mcm", "Pnma")
#: How close (Å) a reference frame must be to the generated structure at its x.
MATCH_TOL = 1e-4


# ---------------------------------------------------------------------------- the perovskite
@dataclass(frozen=True)
class Perovskite:
    """A cubic ABX3 reference: lattice constant ``a`` (Å), the B site and the X site along
    each axis (basis indices), and the reference crystal."""

    crystal: object
    a: float
    b_site: int
    x_sites: tuple  # basis index of the X at B + (a/2) e_i, i = 0, 1, 2

    @classmethod
    def detect(cls, crystal) -> "Perovskite":
        """Find B (the site with an X at ``+a/2`` along each axis) in a cubic crystal; raises
        :class:`StructureError` for anything else."""
        cell = np.asarray(crystal.cell, float)
        a = float(cell[0, 0])
        if a <= 0 or np.abs(cell - a * np.eye(3)).max() > 1e-6 * a:
            raise StructureError("the cuts need a cubic reference cell a·I (lattice vectors along x, y, z)",
                                 why=f"the reference lattice is {cell.round(4).tolist()}",
                                 fix="use a spec whose [crystal] lattice is [[a,0,0],[0,a,0],[0,0,a]]")
        frac = np.asarray(crystal.frac, float) % 1.0
        found = []
        for b in range(len(frac)):
            xs = []
            for i in range(3):
                target = (frac[b] + 0.5 * np.eye(3)[i]) % 1.0
                d = frac - target
                d -= np.round(d)
                hit = np.flatnonzero(np.abs(d).max(axis=1) < 1e-6)
                xs.append(int(hit[0]) if len(hit) else None)
            if (None not in xs and len({crystal.species[x] for x in xs}) == 1
                    and crystal.species[xs[0]] != crystal.species[b]):
                found.append((b, tuple(xs)))
        if len(found) != 1:
            raise StructureError("the cuts need a cubic ABX3 perovskite reference (one B site with an X anion at "
                                 "a/2 along each axis)", why=f"found {len(found)} such sites in the reference",
                                 fix="use a perovskite spec such as examples/cspbbr3/ccdgen.toml")
        return cls(crystal, a, found[0][0], found[0][1])

    @property
    def n_basis(self) -> int:
        return len(self.crystal.species)

    def with_lattice_constant(self, a: float) -> "Perovskite":
        """The same perovskite with lattice constant ``a`` (Å), fractional coordinates kept."""
        from dataclasses import replace

        from ..geometry.structure import Crystal

        a = float(a)
        if not np.isfinite(a) or a <= 0:
            raise StructureError(f"the lattice constant must be a positive number of Å, got {a}")
        c = self.crystal
        return replace(self, crystal=Crystal(a * np.eye(3), tuple(c.species), np.array(c.frac, float)), a=a)

    def matched_to(self, cubic, repeat=REPEAT) -> "Perovskite":
        """This perovskite at the lattice constant of ``cubic`` (ase.Atoms: the relaxed ideal
        cubic supercell, e.g. ``name=cubic`` of an endpoints file), after checking that it is
        this crystal's supercell in the same atom order."""
        cell = np.asarray(cubic.cell.array, float)
        a = float(np.mean(np.diag(cell)) / repeat[0])
        q = self.with_lattice_constant(a)
        ideal = q.supercell(repeat)
        dev = float(np.abs(cell - ideal.cell.array).max()) if len(cubic) == len(ideal) else np.inf
        if np.isfinite(dev):
            d = cubic.get_scaled_positions(wrap=False) - ideal.get_scaled_positions(wrap=False)
            d -= np.round(d)
            dev = max(dev, float(np.abs(d @ cell).max()))
        if list(cubic.numbers) != list(ideal.numbers) or dev > 1e-4:
            raise StructureError("the endpoints' cubic structure is not the reference crystal's 2×2×2 supercell",
                                 why=f"it differs from the ideal supercell at a = {a:.6f} Å by {dev:.3g} Å "
                                     "(or its atoms are in another order)",
                                 fix="give the relaxed cubic 2×2×2 supercell in the reference's atom order, "
                                     "or leave it out of the endpoints file")
        return q

    def supercell(self, repeat=REPEAT):
        """The ideal supercell (ase.Atoms; ``reference.to_atoms().repeat(repeat)`` order)."""
        return self.crystal.to_atoms().repeat(tuple(repeat))

    def cell_index(self, repeat=REPEAT) -> np.ndarray:
        """(n_atoms, 3) int — the reference cell of each supercell atom (ase repeat order:
        the first axis slowest)."""
        blocks = np.arange(int(np.prod(repeat)) * self.n_basis) // self.n_basis
        return np.stack(np.unravel_index(blocks, tuple(repeat)), axis=1)


def _check_repeat(repeat) -> tuple:
    r = tuple(int(v) for v in repeat)
    if len(r) != 3 or any(v < 2 or v % 2 for v in r):
        raise StructureError(f"tilt cuts need an even supercell (≥ 2 along each axis), got {r}",
                             fix="use repeat=(2, 2, 2)")
    return r


# ---------------------------------------------------------------------------- generators
def tilt_cut(perovskite: Perovskite, point: str, angles_deg, axis: int = 2, repeat=REPEAT) -> list:
    """Octahedral tilts about ``axis`` at the R (anti-phase along the axis) or M (in-phase)
    point, one ase.Atoms per angle (degrees; see the module doc for the definition)."""
    if point not in ("R", "M"):
        raise StructureError(f"tilt point must be 'R' or 'M', got {point!r}")
    repeat = _check_repeat(repeat)
    p = perovskite
    base = p.supercell(repeat)
    n = p.cell_index(repeat)
    basis = np.arange(len(base)) % p.n_basis
    i, j = (axis + 1) % 3, (axis + 2) % 3
    frac_b = np.asarray(p.crystal.frac, float)[p.b_site]
    frac_all = np.asarray(p.crystal.frac, float)[basis] + n  # in units of the reference cell
    disp_dir = np.zeros((len(base), 3))
    for along, moves, sense in ((i, j, 1.0), (j, i, -1.0)):
        rows = np.flatnonzero(basis == p.x_sites[along])
        owner = np.round(frac_all[rows] - 0.5 * np.eye(3)[along] - frac_b).astype(int) % np.array(repeat)
        phase = owner[:, i] + owner[:, j] + (owner[:, axis] if point == "R" else 0)
        sign = np.where(phase % 2 == 0, 1.0, -1.0)
        disp_dir[rows, moves] = sense * sign
    out = []
    pos0 = base.get_positions()
    for th in np.asarray(angles_deg, float):
        at = base.copy()
        at.set_positions(pos0 + disp_dir * (p.a / 2) * np.tan(np.radians(abs(th))))
        at.info.update(cut="R_antiphase" if point == "R" else "M_inphase", x=float(th))
        out.append(at)
    return out


def volumetric_cut(perovskite: Perovskite, strains, repeat=REPEAT) -> list:
    """The ideal supercell scaled by ``1 + x`` for each linear strain ``x``."""
    base = perovskite.supercell(repeat)
    out = []
    for x in np.asarray(strains, float):
        at = base.copy()
        at.set_cell(base.cell.array * (1 + x), scale_atoms=True)
        at.info.update(cut="volumetric", x=float(x))
        out.append(at)
    return out


def _aligned_frac(base, other, name: str) -> np.ndarray:
    """Fractional coordinates of ``other`` (its own cell), each atom moved to the image
    nearest its partner (same index) in ``base``; checks the correspondence."""
    if len(other) != len(base) or list(other.get_chemical_symbols()) != list(base.get_chemical_symbols()):
        raise StructureError(f"endpoint {name!r} does not have the atoms of the 2×2×2 reference supercell in order",
                             why=f"it has {len(other)} atoms ({other.get_chemical_formula()}); the supercell "
                                 f"{len(base)} ({base.get_chemical_formula()})",
                             fix="give the relaxed phase as a 2×2×2 supercell in the reference's atom order "
                                 "(as examples/cspbbr3/data/endpoints.extxyz)")
    fb = base.get_scaled_positions(wrap=False)
    fo = other.get_scaled_positions(wrap=False)
    d = fo - fb
    d -= np.round(d)
    dist = np.linalg.norm(d @ other.cell.array, axis=1)
    if dist.max() > 1.5:
        k = int(np.argmax(dist))
        raise StructureError(f"endpoint {name!r}: atom {k} ({other.get_chemical_symbols()[k]}) is {dist[k]:.2f} Å "
                             "from its site in the reference supercell",
                             why="the interpolation pairs atoms by index; this pairing is not the structure's",
                             fix="write the endpoint in the reference supercell's atom order")
    return fb + d


def interpolation_cut(perovskite: Perovskite, tetragonal, orthorhombic, x, repeat=REPEAT) -> list:
    """Cubic → ``tetragonal`` (x ∈ [0, 1]) → ``orthorhombic`` (x ∈ [1, 2]), linear in the
    cell and the fractional coordinates; the phases are ase.Atoms (2×2×2 supercells)."""
    base = perovskite.supercell(repeat)
    f0 = base.get_scaled_positions(wrap=False)
    c0 = base.cell.array
    f1 = _aligned_frac(base, tetragonal, "P4mbm")
    c1 = np.asarray(tetragonal.cell.array)
    f2 = f1 + _wrapped(_aligned_frac(base, orthorhombic, "Pnma") - f1)
    c2 = np.asarray(orthorhombic.cell.array)
    out = []
    for xv in np.asarray(x, float):
        if not (-1e-12 <= xv <= 2 + 1e-12):
            raise StructureError(f"the interpolation cut runs over 0 ≤ x ≤ 2, got x = {xv}")
        if xv <= 1:
            t, fa, fb, ca, cb = xv, f0, f1, c0, c1
        else:
            t, fa, fb, ca, cb = xv - 1, f1, f2, c1, c2
        cell = (1 - t) * ca + t * cb
        frac = fa + t * (fb - fa)
        at = base.copy()
        at.set_cell(cell, scale_atoms=False)
        at.set_positions(frac @ cell)
        at.info.update(cut=INTERPOLATION, x=float(xv))
        out.append(at)
    return out


def _wrapped(d):
    return d - np.round(d)


def read_endpoints(path) -> dict:
    """Relaxed phases from an extxyz file, by ``info["name"]`` → ase.Atoms (with energies
    where the file has them)."""
    from ..data.io import read_dataset

    path = Path(path)
    ds = read_dataset(path, require=(), duplicates="keep", check_composition=False)
    out = {}
    for i in range(len(ds)):
        name = ds.info(i).get("name")
        if name:
            out[str(name)] = ds.to_atoms(i)
    return out


def cut_structures(perovskite: Perovskite, endpoints: dict | None = None, x: dict | None = None,
                   repeat=REPEAT) -> dict:
    """cut name → (x (n,) float64, list of ase.Atoms): the four cuts at ``x[cut]`` (default
    :data:`DEFAULT_X`); without ``endpoints`` (name → Atoms) the interpolation cut is left out."""
    x = {**DEFAULT_X, **(x or {})}
    out = {}
    for name in CUTS:
        if name not in x:
            continue
        xs = np.asarray(x[name], float)
        if name == "R_antiphase":
            out[name] = (xs, tilt_cut(perovskite, "R", xs, repeat=repeat))
        elif name == "M_inphase":
            out[name] = (xs, tilt_cut(perovskite, "M", xs, repeat=repeat))
        elif name == "volumetric":
            out[name] = (xs, volumetric_cut(perovskite, xs, repeat))
        elif endpoints is not None:
            missing = [k for k in ("P4mbm", "Pnma") if k not in endpoints]
            if missing:
                raise DataError(f"the endpoints have no structure named {missing}",
                                fix="give an endpoints file with name=P4mbm and name=Pnma frames")
            out[name] = (xs, interpolation_cut(perovskite, endpoints["P4mbm"], endpoints["Pnma"], xs, repeat))
    return out


# ---------------------------------------------------------------------------- reference data
def read_reference(path) -> dict:
    """A reference cuts file → cut name → list of (x, ase.Atoms with energy), in file order.

    Frames need ``info["cut"]``, ``info["x"]`` and an energy; other frames are ignored."""
    from ..data.io import read_dataset

    ds = read_dataset(path, require=("energy",), duplicates="keep", check_composition=False)
    out = {}
    for i in range(len(ds)):
        info = ds.info(i)
        if "cut" not in info or "x" not in info:
            continue
        try:
            xv = float(info["x"])
        except (TypeError, ValueError):
            raise DataError(f"frame {i} of {path}: x = {info['x']!r} is not a number") from None
        out.setdefault(str(info["cut"]), []).append((xv, ds.to_atoms(i), float(ds.energies[i])))
    if not out:
        raise DataError(f"{path} has no frame with info keys 'cut' and 'x'",
                        fix="write the reference with cut=<name> and x=<position> in each comment line "
                            "(as examples/cspbbr3/data/cuts.extxyz)")
    return out


def structure_deviation(a, b) -> float:
    """Largest difference (Å) between two structures' cells and positions (same atom order)."""
    if len(a) != len(b) or list(a.numbers) != list(b.numbers):
        return np.inf
    return float(max(np.abs(a.cell.array - b.cell.array).max(), np.abs(a.positions - b.positions).max()))


# ---------------------------------------------------------------------------- evaluation
@dataclass
class CutResult:
    """One cut: positions ``x`` (n,), model and reference ΔE (n,) meV/f.u. relative to the
    ideal cubic crystal (reference: NaN where absent), deviations and their maximum."""

    name: str
    x: np.ndarray
    model: np.ndarray
    reference: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    @property
    def deviation(self) -> np.ndarray | None:
        return None if self.reference is None else self.model - self.reference

    def max_deviation(self) -> tuple[float, float] | None:
        """(max |ΔE_model − ΔE_ref| meV/f.u., x where it is)."""
        d = self.deviation
        if d is None or not np.any(np.isfinite(d)):
            return None
        k = int(np.nanargmax(np.abs(d)))
        return float(abs(d[k])), float(self.x[k])

    def as_dict(self) -> dict:
        out = {"x": self.x.tolist(), "model_meV_fu": self.model.tolist()}
        if self.reference is not None:
            md = self.max_deviation()
            out.update(reference_meV_fu=self.reference.tolist(), deviation_meV_fu=self.deviation.tolist(),
                       max_abs_deviation_meV_fu=md[0] if md else None, x_at_max=md[1] if md else None)
        out.update(self.extra)
        return out


def _predict(predictor, atoms_list) -> np.ndarray:
    from ..data.dataset import Dataset

    ds = Dataset.from_atoms([a.copy() for a in atoms_list], source="cuts")
    return np.asarray(predictor.predict(ds, forces=False)["energy"], float)


def evaluate_cuts(predictor, reference: dict | None = None, endpoints: dict | None = None,
                  tol: float = MATCH_TOL, a0: float | None = None) -> dict:
    """Model (and reference) energies along the cuts.

    Parameters
    ----------
    predictor : :class:`ccdgen.models.checkpoint.Predictor` (its featurizer's reference is
        the cubic crystal the cuts are built from)
    reference : :func:`read_reference` output, or None (model only, at :data:`DEFAULT_X`)
    endpoints : :func:`read_endpoints` output (needed for the interpolation cut and the
        phase energies), or None
    tol : a reference frame must equal the generated structure at its x within ``tol`` Å
    a0 : lattice constant (Å) of the cuts; default: the endpoints' relaxed ``cubic``
        structure if given (the bundled data's a0 = 5.943615859 Å), else the model's reference

    Returns ``{"cuts": {name: CutResult}, "phases": {...}, "n_fu": int}``; energies in meV
    per formula unit (per reference cell), relative to the ideal cubic supercell.
    """
    p = Perovskite.detect(predictor.featurizer.reference)
    if a0 is not None:
        p = p.with_lattice_constant(a0)
    elif endpoints and "cubic" in endpoints:
        p = p.matched_to(endpoints["cubic"])
    cubic = p.supercell()
    n_fu = len(cubic) // p.n_basis
    e_cubic_model = float(_predict(predictor, [cubic])[0])
    xs = None
    if reference is not None:
        xs = {name: np.array([v[0] for v in rows]) for name, rows in reference.items() if name in CUTS}
        unknown = sorted(set(reference) - set(CUTS))
        if unknown:
            raise DataError(f"the reference has cuts {unknown} that ccdgen does not generate",
                            fix=f"name them one of {', '.join(CUTS)}")
    gen = cut_structures(p, endpoints, xs)
    e_cubic_ref = None
    if reference is not None:
        e_cubic_ref = _reference_cubic(reference, cubic, endpoints, tol)
    cuts = {}
    for name, (x, structs) in gen.items():
        model = (_predict(predictor, structs) - e_cubic_model) / n_fu * 1e3
        ref = None
        if reference is not None and name in reference:
            ref = np.empty(len(x))
            for k, ((xv, at, e), s) in enumerate(zip(reference[name], structs)):
                dev = structure_deviation(at, s)
                if dev > tol:
                    raise DataError(f"reference frame {k} of cut {name!r} (x = {xv:g}) is not the structure ccdgen "
                                    f"generates there (largest difference {dev:.3g} Å)",
                                    why="the model and the reference would be compared at different structures",
                                    fix="compute the reference on the structures `ccdgen cuts MODEL --write-structures "
                                        "FILE` writes (same atom order)")
                ref[k] = (e - e_cubic_ref) / n_fu * 1e3
        cuts[name] = CutResult(name, x, model, ref)
    phases = {}
    if endpoints:
        names = [k for k in PHASES if k in endpoints]
        if names:
            base = _reference_energy(endpoints.get("cubic"))
            pred = _predict(predictor, [endpoints[k] for k in names])
            for k, e in zip(names, pred):
                row = {"model_meV_fu": float((e - e_cubic_model) / n_fu * 1e3)}
                er = _reference_energy(endpoints[k])
                if er is not None and base is not None:
                    row["reference_meV_fu"] = float((er - base) / n_fu * 1e3)
                    row["deviation_meV_fu"] = row["model_meV_fu"] - row["reference_meV_fu"]
                phases[k] = row
    return {"cuts": cuts, "phases": phases, "n_fu": n_fu}


def _reference_energy(atoms):
    if atoms is None or atoms.calc is None:
        return None
    try:
        return float(atoms.get_potential_energy())
    except Exception:  # no energy stored
        return None


def _reference_cubic(reference: dict, cubic, endpoints, tol: float) -> float:
    """The reference energy of the ideal cubic supercell: a reference frame that is that
    structure (e.g. x = 0 of a tilt or the volumetric cut), else the endpoints' ``cubic``."""
    for rows in reference.values():
        for _, at, e in rows:
            if structure_deviation(at, cubic) <= tol:
                return e
    if endpoints and "cubic" in endpoints and structure_deviation(endpoints["cubic"], cubic) <= tol:
        e = _reference_energy(endpoints["cubic"])
        if e is not None:
            return e
    raise DataError("the reference has no energy of the ideal cubic supercell",
                    why="cut energies are compared relative to the cubic crystal",
                    fix="include the undistorted cubic frame (x = 0 of a tilt cut or of the volumetric cut)")


# ---------------------------------------------------------------------------- output
PANELS = ((INTERPOLATION, "(a) cubic → P4/mbm → Pnma", "interpolation coordinate"),
          ("M_inphase", "(b) M-point in-phase tilt", "tilt angle (°)"),
          ("volumetric", "(c) volumetric strain", "linear strain"),
          ("R_antiphase", "(d) R-point anti-phase tilt", "tilt angle (°)"))


def cuts_figure(result: dict, path, title: str = "") -> Path:
    """The 4-panel figure of Fig. 9: model (line) and reference (markers), meV/f.u."""
    from .plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(8.2, 6.4), dpi=130)
    for ax, (name, label, xlabel) in zip(axes.ravel(), PANELS):
        c = result["cuts"].get(name)
        md = c.max_deviation() if c is not None else None
        ax.set_title(label + (f"; max |Δ| {md[0]:.2f} meV/f.u. at x = {md[1]:g}" if md else ""), fontsize=8)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ΔE (meV/f.u.)")
        ax.grid(alpha=0.3)
        if c is None:
            ax.text(0.5, 0.5, "not computed\n(needs --endpoints)", ha="center", va="center", transform=ax.transAxes)
            continue
        if c.reference is not None:
            ax.plot(c.x, c.reference, "o", ms=3.5, color="k", mfc="none", label="reference")
        ax.plot(c.x, c.model, "-", color="tab:blue", lw=1.5, label="model")
        if name == INTERPOLATION:
            for xv, lab, ha in ((0, "Pm-3m", "left"), (1, "P4/mbm", "center"), (2, "Pnma", "right")):
                ax.axvline(xv, color="0.7", lw=0.8, ls=":")
                ax.text(xv, 0.97, lab, transform=ax.get_xaxis_transform(), ha=ha, va="top", fontsize=7)
        ax.legend(fontsize=7, loc="upper right" if name != INTERPOLATION else "lower left")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return save_figure(plt, fig, path)


def cuts_json(result: dict) -> dict:
    """JSON-ready points, per-cut maximum deviations and phase energies."""
    return {"format": "ccdgen-cuts/1", "units": "meV per formula unit, relative to the ideal cubic crystal",
            "n_formula_units": result["n_fu"],
            "cuts": {k: c.as_dict() for k, c in result["cuts"].items()},
            "max_abs_deviation_meV_fu": {k: (c.max_deviation() or (None,))[0] for k, c in result["cuts"].items()},
            "phases": result["phases"]}


def write_structures(structures: dict, path) -> Path:
    """Write the generated cut structures as extxyz (``cut`` and ``x`` in each comment line)."""
    import ase.io

    frames = [at for _, (_, ats) in structures.items() for at in ats]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ase.io.write(path, frames, format="extxyz")
    return path


def dump_json(result: dict, path) -> Path:
    """Write :func:`cuts_json` of ``result`` to ``path`` (atomically); returns the path."""
    from ..fileio import write_text_atomic

    return write_text_atomic(path, json.dumps(cuts_json(result), indent=1))
