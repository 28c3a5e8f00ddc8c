"""What ``ccdgen inspect`` shows: JSON-ready dicts and a human-readable table.

Numbers of the CCD transform (the correlation matrix ``C``, the eigenvalues ``λ``) are
written at full float64 precision (``float(x)``, so a JSON round trip gives the same bits).
"""

from __future__ import annotations

import numpy as np

from .ccd.names import block_tag
from .ccd.transform import CCDTransform, degrees_of_freedom, near_degeneracies


def cluster_report(t: CCDTransform) -> dict:
    """One cluster as a JSON-ready dict (see the README for the schema)."""
    c = t.cluster
    g = c.group
    pairs = [
        {"sites": [int(i), int(j)], "labels": [c.site_labels[i], c.site_labels[j]], "r0": round(float(r), 6)}
        for (i, j), r in zip(t.rep.pairs, t.r0)
    ]
    out = {
        "name": c.name,
        "kind": c.kind,
        "species": list(c.species),
        "sites": [
            {"label": lab, "position": np.round(p, 6).tolist(),
             **({"site": s} if c.sites is not None else {})}
            for lab, p, s in zip(c.site_labels, c.positions,
                                 c.sites.tolist() if c.sites is not None else [None] * c.n_sites)
        ],
        "dimension": c.dimension,
        "degrees_of_freedom": degrees_of_freedom(c),
        "point_group": {"order": g.order, "label": g.schoenflies, "hermann_mauguin": g.hermann_mauguin,
                        "embedded": c.sites is not None},
        "orbit_size_per_cell": len(c.orbit) if c.orbit is not None else None,
        "pairs": pairs,
        "irreps": [{"label": i.label, "dim": i.dim, "multiplicity": i.multiplicity} for i in t.rep.irreps],
        "ccd": {
            "count": t.n_ccd,
            "truncated": t.n_truncated,
            "metric": t.metric.name,
            "sigma_angstrom": float(t.sigma),
            "eigenvalues": [float(v) for v in t.eigenvalues],
            "blocks": [{"label": b.label, "copy": b.copy, "dim": b.dim, "eigenvalue": float(b.eigenvalue),
                        "ccds": list(range(b.start, b.stop)), "in_truncated_set": b.stop <= t.n_truncated}
                       for b in t.blocks],
            "names": t.ccd_names(),
            "correlation": np.asarray(t.correlation, dtype=float).tolist(),
            "near_degeneracies": near_degeneracy_notes(t),
        },
    }
    if (c.dimension == 2 and c.n_sites > 3) or (c.dimension == 1 and c.n_sites > 2):
        out["note"] = planar_note(t)
    return out


def _block_name(b) -> str:
    return block_tag(b.label, b.copy)


def near_degeneracy_notes(t) -> list[dict]:
    """Consecutive CCD blocks closer than
    :data:`~ccdgen.ccd.transform.NEAR_DEGENERATE_GAP` (relative), as JSON-ready dicts.

    ``t`` needs ``blocks`` (CCD order) and ``n_truncated``.  Each dict: ``blocks`` (their
    indices), ``labels``, ``eigenvalues``, ``relative_gap`` (= (λ_a − λ_b)/λ_a),
    ``truncation_between`` (the truncated set ends between them) and a ``note`` sentence.
    """
    index = {id(b): k for k, b in enumerate(t.blocks)}
    out = []
    for a, b, gap in near_degeneracies(t):
        la, lb = float(a.eigenvalue), float(b.eigenvalue)
        cut = a.stop == t.n_truncated and b.stop > t.n_truncated
        note = (f"{_block_name(a)} and {_block_name(b)} differ by {gap:.1e} relative "
                f"(λ = {la:.6g}, {lb:.6g}): the CCD order there is a convention and may swap "
                f"with sigma or the metric")
        if cut:
            note += "; the truncated set ends between them, so which one it keeps is fragile"
        out.append({"blocks": [index[id(a)], index[id(b)]], "labels": [_block_name(a), _block_name(b)],
                    "eigenvalues": [la, lb], "relative_gap": float(gap), "truncation_between": bool(cut),
                    "note": note})
    return out


def planar_note(t: CCDTransform) -> str:
    c = t.cluster
    n = c.n_sites
    if c.dimension == 2:
        return (f"planar cluster: of its {3 * n - 6} degrees of freedom only {2 * n - 3} are in-plane; "
                f"out-of-plane displacements change pair lengths only to second order, so the "
                f"correlation spectrum has no clean 3N-6 gap")
    return (f"collinear cluster: its point group is infinite (C∞v/D∞h); ccdgen uses its finite image "
            f"on the sites; only {n - 1} degrees of freedom change lengths to first order")


def text_table(problem, reports: list[dict]) -> str:
    """Human-readable summary of :func:`cluster_report` outputs."""
    lines = [f"source: {problem.source}"]
    if problem.spacegroup is not None:
        sg = problem.spacegroup
        lines.append(f"space group: {sg.international} (No. {sg.number}), {len(sg.rotations)} operations")
        if problem.symmetrize_shift > 1e-9:
            lines.append(f"reference crystal symmetrized exactly (largest change {problem.symmetrize_shift:.2g} Å)")
    o = problem.options
    lines.append(f"metric: {o.metric}   sigma: {o.sigma}   truncate: {o.truncate}")
    lines.append("")
    head = f"{'cluster':<12} {'species':<14} {'group':<6} {'|G|':>4} {'pairs':>5} {'CCDs':>5} {'trunc':>5}  irreps"
    lines += [head, "-" * len(head)]
    for r in reports:
        sp_ = "".join(f"{s}{r['species'].count(s) if r['species'].count(s) > 1 else ''}"
                      for s in dict.fromkeys(r["species"]))
        irr = " + ".join(f"{'' if i['multiplicity'] == 1 else i['multiplicity']}{i['label']}" for i in r["irreps"])
        pg = r["point_group"]
        lines.append(f"{r['name']:<12} {sp_:<14} {pg['label']:<6} {pg['order']:>4} {len(r['pairs']):>5} "
                     f"{r['ccd']['count']:>5} {r['ccd']['truncated']:>5}  {irr}")
    for r in reports:
        if len(r["ccd"]["blocks"]) > 1:
            lines.append("")
            lines.append(f"{r['name']}: CCD blocks by correlation eigenvalue (Appendix A)")
            for b in r["ccd"]["blocks"]:
                mark = "" if b["in_truncated_set"] else "   (dropped by truncation)"
                name = b["label"] + (f"({b['copy']})" if b.get("copy") else "")
                lines.append(f"  {name:<8} dim {b['dim']}  λ = {b['eigenvalue']:.6g}{mark}")
        for nd in r["ccd"].get("near_degeneracies", []):
            lines.append(f"  note: {nd['note']}")
        if "note" in r:
            lines.append(f"  note: {r['note']}")
    return "\n".join(lines)
