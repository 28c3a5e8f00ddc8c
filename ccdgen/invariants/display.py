"""Readable forms of invariant basis functions (SymPy for display only).

* in CCDs: ``phi(eta)`` with symbols labelled by irrep (``η[Eg,1]`` / ``\\eta_{Eg,1}``),
  obtained by substituting ``eps = Q⁻¹ eta`` (dense expansion, up to degree
  :data:`MAX_CCD_DEGREE`; coefficients are numeric because ``Q`` carries ``λ^-1/2``);
* in pair metrics: the Reynolds average ``R[eps_a eps_b ...]`` of the orbit
  representative with site labels, or the whole orbit sum on request (exact rationals).
"""

from __future__ import annotations

import itertools

import numpy as np
import sympy as sp

from ..ccd.transform import CCDTransform
from .basis import InvariantBasis, feature_names  # noqa: F401  (re-exported)

#: Expansion in CCD symbols is dense (n_ccd^degree); above this degree it is skipped.
MAX_CCD_DEGREE = 4


def _pair_symbol(t: CCDTransform, p: int, style: str) -> str:
    i, j = t.rep.pairs[p]
    a, b = t.cluster.site_labels[i], t.cluster.site_labels[j]
    return f"\\varepsilon_{{{a},{b}}}" if style == "latex" else f"ε({a},{b})"


def _monomial_text(t: CCDTransform, mon, style: str) -> str:
    parts = []
    for p, n in sorted({p: mon.count(p) for p in mon}.items()):
        s = _pair_symbol(t, p, style)
        parts.append(s if n == 1 else (f"{s}^{{{n}}}" if style == "latex" else f"{s}^{n}"))
    return (" " if style == "latex" else "·").join(parts)


def pair_form(basis: InvariantBasis, t: CCDTransform, f: int, style: str = "pretty", expand: bool = False) -> str:
    """Feature ``f`` in pair metrics: ``R[rep]`` (orbit of n) or the full orbit average."""
    size = int(basis.orbit_sizes[f])
    if not expand:
        rep = _monomial_text(t, list(basis.representative(f)), style)
        tail = "" if basis.projection is None else (" at projected ε~" if style != "latex" else r"\ (\tilde\varepsilon)")
        if style == "latex":
            return f"\\mathcal{{R}}[{rep}]{tail}"
        return f"R[{rep}]  (orbit of {size}){tail}"
    rows = basis.monomials[basis.offsets[f]:basis.offsets[f + 1]]
    terms = [_monomial_text(t, [int(v) for v in r if v >= 0], style) for r in rows]
    if style == "latex":
        return f"\\frac{{1}}{{{size}}}\\left({' + '.join(terms)}\\right)"
    return f"(1/{size})·(" + " + ".join(terms) + ")"


def ccd_symbols(t: CCDTransform, n: int, style: str = "pretty") -> list[sp.Symbol]:
    names = t.ccd_names("latex" if style == "latex" else "plain")[:n]
    if style != "latex":
        names = [s.replace("eta", "η") for s in names]
    return [sp.Symbol(s) for s in names]


def ccd_coefficients(basis: InvariantBasis, t: CCDTransform, f: int) -> dict:
    """Feature ``f`` as ``{eta index tuple: coefficient}`` in the CCDs it uses."""
    d = int(basis.degrees[f])
    k = basis.truncated or t.n_ccd
    if d > MAX_CCD_DEGREE:
        raise ValueError(f"expansion in CCDs is limited to degree {MAX_CCD_DEGREE}")
    a = t.Q_inv[:, :k]  # eps (or eps~) = a @ eta
    rows = basis.monomials[basis.offsets[f]:basis.offsets[f + 1], :d]
    tensor = np.zeros((k,) * d)
    for r in rows:
        term = a[r[0]]
        for p in r[1:]:
            term = np.multiply.outer(term, a[p])
        tensor += term
    tensor /= len(rows)
    out = {}
    for idx in itertools.combinations_with_replacement(range(k), d):
        coef = sum(tensor[p] for p in set(itertools.permutations(idx)))
        if abs(coef) > 1e-10 * max(1.0, np.abs(tensor).max()):
            out[idx] = float(coef)
    return out


def ccd_form(basis: InvariantBasis, t: CCDTransform, f: int, style: str = "pretty", digits: int = 4):
    """Feature ``f`` as a SymPy expression in irrep-labelled CCD symbols (or None if the
    degree is above :data:`MAX_CCD_DEGREE`)."""
    if basis.degrees[f] > MAX_CCD_DEGREE:
        return None
    syms = ccd_symbols(t, basis.truncated or t.n_ccd, style)
    expr = sp.Integer(0)
    for idx, c in ccd_coefficients(basis, t, f).items():
        expr += sp.Float(c, digits) * sp.Mul(*[syms[i] for i in idx])
    return expr


def irrep_content(t: CCDTransform, idx) -> str:
    """The irreps of an eta monomial, e.g. ``T1u²·A1g`` (blocks in eigenvalue order)."""
    names = []
    for i in idx:
        label, copy, _ = t.ccd_labels[i]
        names.append(label + (f"({copy})" if copy else ""))
    counts = {}
    for n in names:
        counts[n] = counts.get(n, 0) + 1
    sup = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")
    return "·".join(n + (str(c).translate(sup) if c > 1 else "") for n, c in counts.items())


def irrep_ordered_basis(basis: InvariantBasis, t: CCDTransform, degree: int, tol: float = 1e-9):
    """A basis of the same degree-``degree`` invariants, reduced and ordered by irrep content.

    Writes every basis function of that degree in the CCDs (:func:`ccd_coefficients`),
    orders the eta monomials by the blocks they involve (largest-variance blocks first) and
    brings the coefficient matrix to reduced row echelon form, so that each function starts
    with its own leading monomial with coefficient 1 and no other function contains it.
    Display only: row ``g`` equals ``Σ_f T[g, f] phi_f`` of the compiled basis.

    Returns ``(rows, T, names)``: rows as ``{eta index tuple: coefficient}``, T (n, n_d), and
    the irrep content of each leading monomial.
    """
    fs = [f for f in range(basis.n_features) if basis.degrees[f] == degree]
    coeffs = [ccd_coefficients(basis, t, f) for f in fs]
    block = {i: k for k, b in enumerate(t.blocks) for i in range(b.start, b.stop)}
    cols = sorted(set().union(*coeffs), key=lambda idx: (tuple(sorted(block[i] for i in idx)), idx))
    col_of = {c: j for j, c in enumerate(cols)}
    a = np.zeros((len(fs), len(cols)))
    for r, cf in enumerate(coeffs):
        for idx, v in cf.items():
            a[r, col_of[idx]] = v
    trans = np.eye(len(fs))
    scale = np.abs(a).max(initial=1.0)
    pivot_row = 0
    for j in range(len(cols)):
        if pivot_row == len(fs):
            break
        p = pivot_row + int(np.argmax(np.abs(a[pivot_row:, j])))
        if abs(a[p, j]) <= tol * scale:
            continue
        a[[pivot_row, p]], trans[[pivot_row, p]] = a[[p, pivot_row]], trans[[p, pivot_row]]
        piv = a[pivot_row, j]
        a[pivot_row] /= piv
        trans[pivot_row] /= piv
        for r in range(len(fs)):
            if r != pivot_row and a[r, j] != 0.0:
                f = a[r, j]
                a[r] -= f * a[pivot_row]
                trans[r] -= f * trans[pivot_row]
        pivot_row += 1
    rows, names = [], []
    for r in range(pivot_row):
        keep = np.abs(a[r]) > tol * max(1.0, np.abs(a[r]).max())
        rows.append({cols[j]: float(a[r, j]) for j in np.flatnonzero(keep)})
        names.append(irrep_content(t, cols[int(np.flatnonzero(keep)[0])]))
    return rows, trans[:pivot_row], names


def _nice_number(c: float, digits: int):
    """Small rationals and simple radicals exactly (1, -1/2, √2/2 ...), else a Float."""
    from ..ccd.exact import exact_number

    e = exact_number(c)
    if e is not None and ((e.is_Rational and e.q <= 12 and abs(e.p) <= 24) or
                          (not e.is_Rational and sp.count_ops(e) <= 4)):
        return e
    return sp.Float(c, digits)


def poly_expr(coeffs: dict, t: CCDTransform, n_ccd: int, style: str = "pretty", digits: int = 4):
    """``{eta index tuple: coefficient}`` as a SymPy polynomial in the CCD symbols."""
    syms = ccd_symbols(t, n_ccd, style)
    return sp.Add(*[_nice_number(c, digits) * sp.Mul(*[syms[i] for i in idx]) for idx, c in coeffs.items()])


def render(expr, style: str) -> str:
    if expr is None:
        return f"(degree > {MAX_CCD_DEGREE}: shown in pair metrics only)"
    return sp.latex(expr) if style == "latex" else sp.sstr(expr)


def molien_table(basis: InvariantBasis) -> list[tuple[int, int, int]]:
    """[(degree, count, Molien)] for degrees 1..max."""
    return [(d, basis.per_degree[d], basis.molien[d]) for d in range(1, basis.max_degree + 1)]


def basis_report(basis: InvariantBasis, t: CCDTransform, style: str = "pretty", functions: bool = True,
                 expand_pairs: bool = False) -> dict:
    """JSON-ready description of a basis (counts side by side with Molien, functions)."""
    out = {
        "ccd_set": "truncated" if basis.truncated else "full",
        "n_ccd_used": basis.truncated or t.n_ccd,
        "max_degree": basis.max_degree,
        "per_degree": {str(d): basis.per_degree[d] for d in range(1, basis.max_degree + 1)},
        "molien": {str(d): basis.molien[d] for d in range(1, basis.max_degree + 1)},
        "count": basis.n_features,
    }
    if functions:
        names = feature_names(basis, t.cluster.name)
        out["functions"] = [
            {"name": names[f], "degree": int(basis.degrees[f]), "orbit_size": int(basis.orbit_sizes[f]),
             "representative": [t.rep.pairs[p].tolist() for p in basis.representative(f)],
             "pairs": pair_form(basis, t, f, style if style != "json" else "pretty", expand_pairs),
             "ccd": render(ccd_form(basis, t, f, "latex" if style == "latex" else "pretty"), style)
             if basis.degrees[f] <= MAX_CCD_DEGREE else None}
            for f in range(basis.n_features)
        ]
    return out

