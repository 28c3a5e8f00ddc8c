"""Readable forms of the invariants (strings; SymPy only on request, never per term).

Two views of the same invariant ring:

* **Irrep-product form** (the default of ``ccdgen inspect --order N``): the sector basis of
  :mod:`ccdgen.invariants.sectors` — one group of invariants per block multidegree,
  labelled by irrep content (``T1u²``, ``Eg(1)·Eg(2)``, ``A1g(1)·T2g²``), each in reduced
  row echelon form in the CCDs with small exact coefficients shown exactly (``√3/2``).
  It is built from the block structure of ``D(g)``, not from the compiled functions;
  per degree its size equals the Molien series (checked here against
  :func:`~ccdgen.invariants.molien.molien_permutation` for the full CCD set and
  :func:`~ccdgen.invariants.molien.molien_matrices` of ``D_T`` for a truncated one).
* **Compiled basis** (``--basis orbits``): the orbit averages ``<cluster>_d<degree>_<k>``
  that the kernels evaluate, in pair metrics (``R[ε(Br0,Br1)²]  (orbit of 12)``) or
  expanded in the CCDs (:func:`orbit_ccd_coefficients`, long: dense in every sector).

Symbols: ``η[T1u,1]`` (pretty), ``\\eta_{T_{1u},1}`` (LaTeX), ``eta[T1u,1]`` (JSON keys);
repeated irreps carry their copy, ``η[Eg(2),1]`` / ``\\eta^{(2)}_{E_{g},1}``.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from ..ccd.names import block_tag, ccd_names, latex_irrep  # noqa: F401  (re-exported)
from ..ccd.transform import CCDTransform
from ..errors import InternalError
from .basis import InvariantBasis, feature_names  # noqa: F401  (re-exported)
from .molien import molien_matrices, molien_permutation
from .sectors import SNAP_TOL, SectorBasis, sector_basis, snap_array  # noqa: F401  (SNAP_TOL re-exported)

#: Significant digits of coefficients that are not small exact numbers (pretty/LaTeX).
DIGITS = 6

_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


# ------------------------------------------------------------------ names and labels
def ccd_symbol_names(t: CCDTransform, n: int, style: str = "pretty") -> list[str]:
    """Names of the first ``n`` CCDs (see :func:`ccdgen.ccd.names.ccd_names`)."""
    return ccd_names(t.ccd_labels[:n], style)


def used_blocks(t: CCDTransform, truncated: bool) -> tuple:
    """The CCD blocks of the full set, or of the truncated set."""
    return t.truncated_blocks if truncated else t.blocks


def content_label(blocks, multidegree, style: str = "pretty") -> str:
    """Irrep content of a sector: ``T1u²·Eg(1)`` (pretty), ``T_{1u}^{2} E_{g}^{(1)}`` (latex)."""
    parts = []
    for b, e in zip(blocks, multidegree):
        if e == 0:
            continue
        if style == "latex":
            base = latex_irrep(b.label) + (f"^{{({b.copy})}}" if b.copy else "")
            if e > 1:
                base = f"({base})^{{{e}}}" if b.copy else f"{base}^{{{e}}}"
            parts.append(base)
        else:
            parts.append(block_tag(b.label, b.copy) + (str(e).translate(_SUP) if e > 1 else ""))
    return (" " if style == "latex" else "·").join(parts)


# ------------------------------------------------------------------ numbers
def snap(x: float):
    """``(value, pretty, latex)`` of the small exact number equal to ``x`` (see
    :func:`snap_array`), or None."""
    s = snap_array(np.array([float(x)]))
    kind = int(s["kind"][0])
    if kind == 0:
        return None
    p, q, k = int(s["p"][0]), int(s["q"][0]), int(s["k"][0])
    return (float(s["value"][0]),) + _code_text(kind, p, q, k)


@lru_cache(maxsize=65536)
def _code_text(kind: int, p: int, q: int, k: int) -> tuple[str, str]:
    """(pretty, latex) of a number coded as in :func:`snap_array`."""
    if kind == 3:
        return ("0", "0")
    if kind == 2:  # (p + k√5)/q
        rad = ("" if abs(k) == 1 else str(abs(k))) + "√5"
        lrad = ("" if abs(k) == 1 else str(abs(k))) + "\\sqrt{5}"
        sign = "+" if k > 0 else "-"
        pretty = f"({p}{sign}{rad})" + (f"/{q}" if q > 1 else "")
        latex = f"\\frac{{{p}{sign}{lrad}}}{{{q}}}" if q > 1 else f"({p}{sign}{lrad})"
        return pretty, latex
    sign = "-" if p < 0 else ""
    p = abs(p)
    if k == 1:
        return (f"{sign}{p}" + (f"/{q}" if q > 1 else ""),
                f"{sign}\\frac{{{p}}}{{{q}}}" if q > 1 else f"{sign}{p}")
    num = ("" if p == 1 else str(p)) + f"√{k}"
    lnum = ("" if p == 1 else str(p)) + f"\\sqrt{{{k}}}"
    return (f"{sign}{num}" + (f"/{q}" if q > 1 else ""),
            f"{sign}\\frac{{{lnum}}}{{{q}}}" if q > 1 else f"{sign}{lnum}")


def _float_text(x: float, style: str, digits: int) -> str:
    text = f"{x:.{digits}g}"
    if style == "latex" and "e" in text:
        mant, ex = text.split("e")
        text = f"{mant} \\cdot 10^{{{int(ex)}}}"
    return text


def number_texts(x, style: str = "pretty", digits: int = DIGITS) -> list[str]:
    """Each value of ``x`` (1-d) as text: exact where :func:`snap_array` recognises it, else
    ``digits`` significant digits."""
    x = np.asarray(x, dtype=float)
    s = snap_array(x)
    col = 1 if style == "latex" else 0
    kinds, ps, qs, ks = (s[key].tolist() for key in ("kind", "p", "q", "k"))
    return [_code_text(kd, p, q, k)[col] if kd else _float_text(v, style, digits)
            for v, kd, p, q, k in zip(x.tolist(), kinds, ps, qs, ks)]


def number_text(x: float, style: str = "pretty", digits: int = DIGITS) -> str:
    """``x`` as text: exact if :func:`snap` recognises it, else ``digits`` significant digits."""
    return number_texts([x], style, digits)[0]


def snapped(x) -> np.ndarray:
    """``x`` with every recognised exact number replaced by its exact value (for JSON)."""
    return snap_array(x)["value"]


# ------------------------------------------------------------------ polynomials as text
def monomial_text(idx, names: list[str], style: str = "pretty") -> str:
    """A monomial given as sorted CCD indices, e.g. ``η[T1u,1]²·η[Eg(1),2]``."""
    parts = []
    idx = list(idx)
    for i in dict.fromkeys(idx):
        n = idx.count(i)
        s = names[i]
        if n > 1:
            if style == "latex":  # braces: the symbol may carry a superscript already
                s = f"{{{s}}}^{{{n}}}" if "^" in s else f"{s}^{{{n}}}"
            else:
                s = f"{s}^{n}" if style == "plain" else s + str(n).translate(_SUP)
        parts.append(s)
    return {"latex": " ", "plain": "*"}.get(style, "·").join(parts)


def monomial_texts(monomials: np.ndarray, names: list[str], style: str = "pretty") -> list[str]:
    """:func:`monomial_text` of each row of ``monomials`` (N, degree) int."""
    return [monomial_text(m, names, style) for m in np.asarray(monomials).tolist()]


def terms_text(mons: list[str], coeffs, style: str = "pretty", digits: int = DIGITS) -> str:
    """``Σ coeffs[i]·mons[i]`` as ``c1·m1 + c2·m2 - ...`` (coefficient 1 omitted)."""
    coeffs = np.asarray(coeffs, dtype=float)
    if not len(coeffs):
        return "0"
    texts = number_texts(np.abs(coeffs), style, digits)
    times = " " if style == "latex" else "·"
    out = []
    for j, (m, c, neg) in enumerate(zip(mons, texts, (coeffs < 0).tolist())):
        body = m if c == "1" else f"{c}{times}{m}"
        out.append((("-" if neg else "") if j == 0 else (" - " if neg else " + ")) + body)
    return "".join(out)


def poly_text(terms, names: list[str], style: str = "pretty", digits: int = DIGITS) -> str:
    """``[(idx tuple, coefficient), ...]`` as ``c1·m1 + c2·m2 - ...`` (pretty or latex)."""
    terms = list(terms)
    return terms_text([monomial_text(i, names, style) for i, _ in terms], [c for _, c in terms], style, digits)


def poly_expr(coeffs: dict, t: CCDTransform, n_ccd: int, style: str = "pretty"):
    """``{eta index tuple: coefficient}`` as one SymPy expression (built with a single
    ``sp.Add``; exact numbers where :func:`snap` finds them)."""
    import sympy as sp

    syms = [sp.Symbol(s) for s in ccd_symbol_names(t, n_ccd, "latex" if style == "latex" else "pretty")]

    def num(c):
        s = snap(c)
        if s is None:
            return sp.Float(c, 15)
        text = re.sub(r"(\d)√", r"\1*√", s[1])
        return sp.sympify(re.sub(r"√(\d+)", r"sqrt(\1)", text))

    return sp.Add(*[num(c) * sp.Mul(*[syms[i] for i in idx]) for idx, c in coeffs.items()])


# ------------------------------------------------------------------ sector invariants
def expected_counts(t: CCDTransform, max_degree: int, truncated: bool) -> dict:
    """The Molien series {degree: count}: of Γ (exact, cycle types) for the full set, of
    ``D_T`` (eigenvalues) for the truncated one."""
    if truncated:
        k = t.n_truncated
        m = molien_matrices(t.block_matrices(k), max_degree)
    else:
        m = molien_permutation(t.rep.pair_perm, max_degree)
    return {d: m[d] for d in range(1, max_degree + 1)}


def sector_invariants(t: CCDTransform, max_degree: int, truncated: bool | None = None,
                      expected: dict | None = None) -> SectorBasis:
    """The sector basis of the CCDs of ``t`` (full or truncated set) up to ``max_degree``.

    ``truncated=None`` uses the truncated set when ``t`` truncates.  ``expected``
    (default: :func:`expected_counts`) is checked degree by degree.
    """
    if truncated is None:
        truncated = t.n_truncated < t.n_ccd
    truncated = bool(truncated) and t.n_truncated < t.n_ccd
    blocks = used_blocks(t, truncated)
    k = blocks[-1].stop
    if expected is None:
        expected = expected_counts(t, max_degree, truncated)
    return sector_basis(t.D_from_blocks(k), [(b.start, b.stop) for b in blocks], max_degree, expected)


def _blocks_of(t: CCDTransform, sb: SectorBasis) -> tuple:
    return tuple(b for b in t.blocks if b.stop <= sb.n_vars)


def sector_rows(t: CCDTransform, sb: SectorBasis, style: str = "pretty", digits: int = DIGITS) -> list[dict]:
    """One JSON-ready dict per sector invariant, in basis order.

    Keys: ``degree``, ``content`` (pretty irrep content), ``multidegree`` ({block: d_b}),
    ``index`` / ``of`` (position within its sector), ``coefficients`` ({plain monomial
    name: value}, full precision, exact numbers snapped), ``monomials`` (CCD index lists,
    same order), ``ccd`` (display string in ``style``), and ``content_latex`` for LaTeX.
    """
    blocks = _blocks_of(t, sb)
    shown = ccd_symbol_names(t, sb.n_vars, "latex" if style == "latex" else "pretty")
    plain = ccd_symbol_names(t, sb.n_vars, "plain")
    out = []
    for s in sb.sectors:
        content = content_label(blocks, s.multidegree)
        latex = content_label(blocks, s.multidegree, "latex") if style == "latex" else None
        md = {block_tag(b.label, b.copy): e for b, e in zip(blocks, s.multidegree) if e}
        mon_shown = monomial_texts(s.monomials, shown, "latex" if style == "latex" else "pretty")
        mon_plain = monomial_texts(s.monomials, plain, "plain")
        values = snapped(s.coefficients)
        for r, row in enumerate(values):
            nz = np.flatnonzero(row).tolist()
            vals = row[nz]
            d = {"degree": s.degree, "content": content, "multidegree": md, "index": r + 1,
                 "of": s.n_invariants,
                 "coefficients": dict(zip([mon_plain[j] for j in nz], vals.tolist())),
                 "monomials": s.monomials[nz].tolist(),
                 "ccd": terms_text([mon_shown[j] for j in nz], vals, style, digits)}
            if latex is not None:
                d["content_latex"] = latex
            out.append(d)
    return out


# ------------------------------------------------------------------ compiled basis
def pair_form(basis: InvariantBasis, t: CCDTransform, f: int, style: str = "pretty", expand: bool = False) -> str:
    """Feature ``f`` in pair metrics: ``R[rep]`` (orbit of n) or the full orbit average."""
    size = int(basis.orbit_sizes[f])
    if not expand:
        rep = _pair_monomial(t, list(basis.representative(f)), style)
        tail = "" if basis.projection is None else (" at projected ε~" if style != "latex" else r"\ (\tilde\varepsilon)")
        if style == "latex":
            return f"\\mathcal{{R}}[{rep}]{tail}"
        return f"R[{rep}]  (orbit of {size}){tail}"
    rows = basis.monomials[basis.offsets[f]:basis.offsets[f + 1]]
    terms = [_pair_monomial(t, [int(v) for v in r if v >= 0], style) for r in rows]
    if style == "latex":
        return f"\\frac{{1}}{{{size}}}\\left({' + '.join(terms)}\\right)"
    return f"(1/{size})·(" + " + ".join(terms) + ")"


def _pair_symbol(t: CCDTransform, p: int, style: str) -> str:
    i, j = t.rep.pairs[p]
    a, b = t.cluster.site_labels[i], t.cluster.site_labels[j]
    return f"\\varepsilon_{{{a},{b}}}" if style == "latex" else f"ε({a},{b})"


def _pair_monomial(t: CCDTransform, mon, style: str) -> str:
    parts = []
    for p, n in sorted({p: mon.count(p) for p in mon}.items()):
        s = _pair_symbol(t, p, style)
        parts.append(s if n == 1 else (f"{s}^{{{n}}}" if style == "latex" else f"{s}^{n}"))
    return (" " if style == "latex" else "·").join(parts)


def _evaluate_functions(basis: InvariantBasis, fs: np.ndarray, eps: np.ndarray) -> np.ndarray:
    """Values of the compiled functions ``fs`` (contiguous, one degree) at ``eps`` (n, M)."""
    if basis.projection is not None:
        eps = eps @ basis.projection.T
    ext = np.concatenate([eps, np.ones((len(eps), 1))], axis=1)
    lo, hi = int(basis.offsets[fs[0]]), int(basis.offsets[fs[-1] + 1])
    owner = np.repeat(np.arange(len(fs)), basis.orbit_sizes[fs])
    out = np.zeros((len(eps), len(fs)))
    step = max(256, 2**22 // max(1, len(eps) * basis.max_degree))
    for s in range(lo, hi, step):
        mons = basis.monomials[s:min(hi, s + step)]
        prods = np.prod(ext[:, mons], axis=2)
        own = owner[s - lo:s - lo + len(mons)]
        first = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
        out[:, own[first]] += np.add.reduceat(prods, first, axis=1)
    return out / basis.orbit_sizes[fs]


def orbit_ccd_expansion(basis: InvariantBasis, t: CCDTransform, sb: SectorBasis, degree: int) -> list:
    """The compiled functions of one degree expanded in the CCDs they use, sector by sector.

    Numeric, no symbolic expansion: in ``ξ = Λ^1/2 η`` (so ``ε = V ξ`` with orthonormal
    ``V``, well scaled) each function is a combination of the sector invariants of its
    degree; the combination is fitted to the values at fixed generic points
    (:func:`~ccdgen.quasirandom.quasi_random_normal`; the result does not depend on them,
    the residual is checked) and mapped back to ``η`` (a sector of multidegree ``d_b``
    scales by ``Π_b λ_b^(d_b/2)``).

    Returns ``[(sector, coefficients)]`` over the sectors of that degree, ``coefficients``
    (n_f, N_s) float64 on the sector's monomials, one row per compiled function of that
    degree (basis order); entries below 1e-12 of the largest of their row and sector are 0.
    """
    from ..quasirandom import quasi_random_normal

    fs = np.flatnonzero(basis.degrees == degree)
    k = basis.truncated or t.n_ccd
    if k != sb.n_vars:
        raise InternalError(f"sector basis on {sb.n_vars} CCDs, compiled basis on {k}")
    sectors = sb.of_degree(degree)
    m = sum(s.n_invariants for s in sectors)
    if len(fs) == 0:
        return []
    if m != len(fs):
        raise InternalError(f"degree {degree}: {len(fs)} compiled functions, {m} sector invariants")
    xi = quasi_random_normal(m + 48, k)
    xi /= np.linalg.norm(xi, axis=1, keepdims=True)
    phi = _evaluate_functions(basis, fs, xi @ t.basis[:, :k].T)
    psi = np.concatenate([s.evaluate(xi) for s in sectors], axis=1)
    norms = np.linalg.norm(psi, axis=0)
    tmat, *_ = np.linalg.lstsq(psi / norms, phi, rcond=None)
    resid = np.linalg.norm(psi / norms @ tmat - phi) / max(np.linalg.norm(phi), 1e-300)
    if resid > 1e-9:
        raise InternalError(f"degree {degree}: compiled functions are not in the span of the sector invariants "
                            f"(residual {resid:.2g})")
    tmat = tmat / norms[:, None]  # (m, n_f): phi_f = Σ_j T[j, f] ψ_j(ξ)
    tmat[np.abs(tmat) < 1e-12 * np.abs(tmat).max(axis=0, keepdims=True)] = 0.0
    lam = np.sqrt(t.eigenvalues[:k])
    out, j = [], 0
    for s in sectors:
        scale = float(np.prod(lam[s.monomials[0]]))  # Π_b λ_b^(d_b/2), the same for every monomial
        block = (tmat[j:j + s.n_invariants].T * scale) @ s.coefficients  # (n_f, N_s)
        j += s.n_invariants
        block[np.abs(block) <= 1e-12 * np.abs(block).max(axis=1, keepdims=True)] = 0.0
        out.append((s, block))
    return out


def orbit_ccd_coefficients(basis: InvariantBasis, t: CCDTransform, sb: SectorBasis, degree: int) -> list[dict]:
    """:func:`orbit_ccd_expansion` as one ``{eta index tuple: coefficient}`` per function."""
    parts = orbit_ccd_expansion(basis, t, sb, degree)
    out = [dict() for _ in range(len(parts[0][1]) if parts else 0)]
    for s, block in parts:
        mons = [tuple(m) for m in s.monomials.tolist()]
        for r, c in zip(*np.nonzero(block)):
            out[r][mons[c]] = float(block[r, c])
    return out


def molien_table(basis: InvariantBasis) -> list[tuple[int, int, int]]:
    """[(degree, count, Molien)] for degrees 1..max."""
    return [(d, basis.per_degree[d], basis.molien[d]) for d in range(1, basis.max_degree + 1)]


def basis_report(basis: InvariantBasis, t: CCDTransform, style: str = "pretty", functions: bool = True,
                 expand_pairs: bool = False, in_ccd: bool = False, sectors: SectorBasis | None = None) -> dict:
    """JSON-ready description of the compiled basis: counts side by side with the Molien
    series and, with ``functions``, every function (name, degree, orbit, pair form; with
    ``in_ccd`` also its expansion in the CCDs, ``ccd`` / ``ccd_coefficients``)."""
    out = {
        "ccd_set": "truncated" if basis.truncated else "full",
        "n_ccd_used": basis.truncated or t.n_ccd,
        "max_degree": basis.max_degree,
        "per_degree": {str(d): basis.per_degree[d] for d in range(1, basis.max_degree + 1)},
        "molien": {str(d): basis.molien[d] for d in range(1, basis.max_degree + 1)},
        "count": basis.n_features,
    }
    if not functions:
        return out
    shown = "latex" if style == "latex" else "pretty"
    names = feature_names(basis, t.cluster.name)
    rows = [{"name": names[f], "degree": int(basis.degrees[f]), "orbit_size": int(basis.orbit_sizes[f]),
             "representative": [t.rep.pairs[p].tolist() for p in basis.representative(f)],
             "pairs": pair_form(basis, t, f, shown, expand_pairs)}
            for f in range(basis.n_features)]
    if in_ccd:
        if sectors is None:
            sectors = sector_invariants(t, basis.max_degree, basis.truncated is not None, basis.molien)
        k = sectors.n_vars
        sym, plain = ccd_symbol_names(t, k, shown), ccd_symbol_names(t, k, "plain")
        for d in range(1, basis.max_degree + 1):
            fs = np.flatnonzero(basis.degrees == d)
            parts = orbit_ccd_expansion(basis, t, sectors, d)
            texts = [(monomial_texts(s.monomials, sym, shown), monomial_texts(s.monomials, plain, "plain"))
                     for s, _ in parts]
            for r, f in enumerate(fs):
                mon_s, mon_p, vals = [], [], []
                for (s, block), (ms, mp) in zip(parts, texts):
                    nz = np.flatnonzero(block[r]).tolist()
                    mon_s += [ms[j] for j in nz]
                    mon_p += [mp[j] for j in nz]
                    vals.append(block[r, nz])
                vals = np.concatenate(vals) if vals else np.zeros(0)
                rows[f]["ccd"] = terms_text(mon_s, vals, shown)
                rows[f]["ccd_coefficients"] = dict(zip(mon_p, vals.tolist()))
    out["functions"] = rows
    return out
