"""The correlation matrix ``C`` of Eq. (19) by deterministic quadrature (Appendix A).

``C_pq = <eps_p eps_q>`` with ``eps_p = f(r_p / r0_p)``, averaged over an isotropic Gaussian of
site displacements: every site moves by ``u_i ~ N(0, sigma² I₃)``, independently.  A pair
vector is ``d_p = d0_p + u_j − u_i``.  Appendix A notes that a Gaussian density allows
analytic forms; here every entry is a low-dimensional integral evaluated by quadrature with
an error check, so ``C`` is exact to ~1e-13 relative and identical on every machine (no
random numbers anywhere):

* ``p = q``: ``d_p ~ N(d0_p, 2σ² I₃)``, so ``r_p`` follows the 3-D Rice (noncentral χ₃)
  law and ``<eps_p²>`` is a 1-D integral over ``r`` (:func:`rice_moments`).
* ``p``, ``q`` disjoint: ``d_p`` and ``d_q`` are independent: ``<eps_p><eps_q>``.
* ``p = (s, j)``, ``q = (s, k)`` share site ``s``: given ``u_s``, ``d_p`` and ``d_q`` are
  independent with means ``v_p − u_s`` (``v_p`` the reference vector from ``s`` to ``j``) and
  covariance ``σ² I₃``, so ``<eps_p eps_q> = E_u[g_p(|v_p − u|) g_q(|v_q − u|)]`` with the
  conditional mean ``g(a) = <f(|a e + w| / r0)>``, ``w ~ N(0, σ² I₃)``: a 3-D Gauss–Hermite
  integral over ``u`` of 1-D integrals.  ``g`` is an even entire function of ``a`` (a
  Gaussian convolution), interpolated by a Chebyshev series.

Error control (each step checked at run time; a failed check is an :class:`InternalError`):
the 1-D integrals use double-exponential (tanh-sinh) quadrature on ``r ∈ [max(0, a − 13s),
a + 13s]`` (the Gaussian tail beyond 13 s is < 1e-36) and are repeated with half the step;
the Chebyshev series grows until its tail is below 1e-15 of its largest coefficient; the
Gauss–Hermite rule is repeated with more nodes until two rules agree to 1e-13 of the
largest entry.  ``tests/test_correlation.py`` checks every kind of entry against an
independent quadrature (another conditioning, coordinates and 1-D method) to ≤ 1e-10 and
against a 10⁶-sample Monte Carlo at its error bar.

Singular metrics at ``r → 0``: ``ln x`` and ``1 − 1/x`` diverge at ``r = 0``, but the density
of a 3-D pair vector vanishes like ``r²`` there, so ``<eps_p eps_q>`` is finite for all four
metrics: ``C`` is the exact integral, with no sample dropped or clipped.

Finally ``C`` is averaged over each orbit of pairs of pairs under the point group (Eq. 22), so
that ``Γ(g) C Γ(g)ᵀ = C`` holds bit for bit.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ..errors import InternalError
from .metrics import PairMetric

#: Half-width of the integration window of a Rice density, in standard deviations.
WINDOW = 13.0
#: tanh-sinh step (and its check at half the step) and range of the t variable.
_TS_STEP = 1.0 / 32.0
_TS_TMAX = 3.3
#: Relative tolerance of the convergence checks.
TOL_1D = 1e-13
TOL_CHEB = 1e-13
TOL_GH = 1e-13
#: Gauss–Hermite rules tried in turn (nodes per dimension).
_GH_ORDERS = (24, 32, 40, 48, 64)


def _tanh_sinh(step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit-interval tanh-sinh rule: left gaps ``x`` (distance from 0), right gaps and weights.

    For ``∫_0^1 h(x) dx ≈ Σ w_k h(x_k)``; both gaps are returned so that points near
    either end keep full relative precision.
    """
    t = np.arange(-_TS_TMAX, _TS_TMAX + step / 2, step)
    y = 0.5 * np.pi * np.sinh(t)
    left = expit(2.0 * y)  # (1 + tanh y) / 2
    right = expit(-2.0 * y)  # (1 - tanh y) / 2
    w = step * 0.5 * np.pi * np.cosh(t) * left * right * 2.0  # d/dt of (1 + tanh y)/2
    return left, right, w


_RULES = {s: _tanh_sinh(s) for s in (_TS_STEP, _TS_STEP / 2)}


def _rice_integral(h, a: np.ndarray, s: float, step: float) -> np.ndarray:
    """``∫_0^∞ h(r) p(r; a, s) dr`` for each ``a`` (the 3-D Rice density, vectorised)."""
    left, _, w = _RULES[step]
    a = np.asarray(a, dtype=float)[:, None]
    lo = np.maximum(0.0, a - WINDOW * s)
    hi = a + WINDOW * s
    r = lo + (hi - lo) * left[None, :]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        gauss = np.exp(-0.5 * ((r - a) / s) ** 2)
        # r (1 - exp(-2 r a / s²)) / a  → 2 r² / s² as a → 0
        lin = np.where(a > 0, r * -np.expm1(-2.0 * r * a / s**2) / np.where(a > 0, a, 1.0), 2.0 * r**2 / s**2)
        dens = gauss * lin / (s * np.sqrt(2.0 * np.pi))
        vals = np.where(dens > 0, h(r) * dens, 0.0)
    return (vals * w[None, :]).sum(axis=1) * (hi - lo)[:, 0]


def rice_moments(h, a, s: float) -> np.ndarray:
    """``E[h(|a e + w|)]`` for ``w ~ N(0, s² I₃)`` and every distance ``a`` (Å) in ``a``.

    ``h`` acts elementwise on an array of lengths.  Checked: the rule integrates the density
    to 1, and half the step changes the result by less than ``TOL_1D`` (relative to
    ``max(1, |result|)``).
    """
    a = np.atleast_1d(np.asarray(a, dtype=float))
    coarse = _rice_integral(h, a, s, _TS_STEP)
    fine = _rice_integral(h, a, s, _TS_STEP / 2)
    norm = _rice_integral(np.ones_like, a, s, _TS_STEP)
    scale = np.maximum(1.0, np.abs(fine))
    if np.max(np.abs(fine - coarse) / scale, initial=0.0) > TOL_1D or np.max(np.abs(norm - 1.0), initial=0.0) > TOL_1D:
        raise InternalError(f"1-D Rice quadrature did not converge (a = {a}, s = {s})")
    return fine


class _Cheb:
    """``g(a)`` on ``[lo, hi]`` as a Chebyshev series (values at Chebyshev points of the first
    kind, coefficients by a DCT-II, evaluation by Clenshaw), grown until its tail is below
    ``TOL_CHEB`` of its largest coefficient and it matches ``fn`` between its nodes (checked
    at 33 points)."""

    def __init__(self, fn, lo: float, hi: float):
        from scipy.fft import dct

        self.lo, self.hi = float(lo), float(hi)
        probe = self.lo + (self.hi - self.lo) * (0.5 + 0.5 * np.cos(np.pi * (np.arange(33) + 0.25) / 33.0))
        for n in (32, 64, 128, 256, 512, 1024):
            t = np.cos(np.pi * (np.arange(n) + 0.5) / n)
            c = dct(fn(self._x(t)), type=2) / n
            c[0] /= 2.0
            self.coef = c
            scale = max(np.abs(c).max(), 1e-300)
            if np.abs(c[-4:]).max() <= TOL_CHEB * scale and np.abs(self(probe) - fn(probe)).max() <= TOL_CHEB * scale:
                return
        raise InternalError(f"Chebyshev series of the conditional mean did not converge on [{lo}, {hi}]")

    def _x(self, t):
        return self.lo + (self.hi - self.lo) * (t + 1.0) / 2.0

    def __call__(self, a):
        t = (2.0 * np.asarray(a, dtype=float) - (self.lo + self.hi)) / (self.hi - self.lo)
        return np.polynomial.chebyshev.chebval(t, self.coef)


def _gauss_hermite_3d(n: int, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes ``(K, 3)`` (Å) and weights ``(K,)`` for ``E[F(u)]``, ``u ~ N(0, sigma² I₃)``;
    nodes whose product weight is below 1e-20 of the largest are dropped."""
    x, w = np.polynomial.hermite.hermgauss(n)
    x = np.sqrt(2.0) * sigma * x
    w = w / np.sqrt(np.pi)
    wx, wy, wz = np.meshgrid(w, w, w, indexing="ij")
    ww = (wx * wy * wz).ravel()
    keep = ww > 1e-20 * ww.max()
    nodes = np.stack(np.meshgrid(x, x, x, indexing="ij"), axis=-1).reshape(-1, 3)
    return nodes[keep], ww[keep]


def correlation_matrix(positions: np.ndarray, pairs: np.ndarray, pair_perm: np.ndarray, site_perm: np.ndarray,
                       metric: PairMetric, sigma: float) -> np.ndarray:
    """``C`` (Eq. 19) of a cluster, G-symmetric bit for bit.

    Parameters
    ----------
    positions : (n_sites, 3) float64, Å — reference cluster
    pairs : (M, 2) int — pairs ``(i, j)``, ``i < j``
    pair_perm : (order, M) int — Γ as index arrays (``pair_perm[g, p]`` = image of pair p)
    site_perm : (order, n_sites) int — the group's site permutations
    metric : PairMetric
    sigma : float, Å — standard deviation of each site displacement component

    Returns
    -------
    (M, M) float64, dimensionless
    """
    x = np.asarray(positions, dtype=float)
    pairs = np.asarray(pairs, dtype=np.int64)
    m = len(pairs)
    r0 = np.linalg.norm(x[pairs[:, 1]] - x[pairs[:, 0]], axis=1)
    s_pair = np.sqrt(2.0) * sigma

    # moments of single pairs, once per distinct reference length
    keys = np.round(r0, 12)
    uniq, inv = np.unique(keys, return_inverse=True)
    m1 = np.empty(len(uniq))
    m2 = np.empty(len(uniq))
    for k, length in enumerate(uniq):
        f = metric.value
        m1[k] = rice_moments(lambda r, L=length: f(r / L), [length], s_pair)[0]
        m2[k] = rice_moments(lambda r, L=length: f(r / L) ** 2, [length], s_pair)[0]
    mean = m1[inv]
    c = np.outer(mean, mean)  # disjoint pairs; overwritten below where pairs meet
    c[np.arange(m), np.arange(m)] = m2[inv]

    shared = _shared_site_entries(x, pairs, r0, site_perm, metric, sigma)
    for (p, q), v in shared.items():
        c[p, q] = c[q, p] = v
    return _orbit_average(c, pair_perm)


def _shared_site_entries(x, pairs, r0, site_perm, metric, sigma) -> dict:
    """``<eps_p eps_q>`` for every two distinct pairs through one site, by a 3-D
    Gauss–Hermite rule over that site's displacement (one representative site per site
    orbit, the others by symmetry)."""
    n = len(x)
    if n < 3:
        return {}
    lookup = {(int(i), int(j)): k for k, (i, j) in enumerate(pairs)}

    def pair_of(a, b):
        return lookup[(min(a, b), max(a, b))]

    reps = {}
    for s in range(n):
        orbit = frozenset(int(v) for v in site_perm[:, s])
        reps.setdefault(orbit, s)
    # conditional means g(a) for each distinct r0, on the range the nodes need
    cheb = {}
    out = {}
    for s in sorted(reps.values()):
        others = [j for j in range(n) if j != s]
        vec = x[others] - x[s]  # (n-1, 3): reference vectors from the shared site
        plist = [pair_of(s, j) for j in others]
        prev = None
        for order in _GH_ORDERS:
            nodes, w = _gauss_hermite_3d(order, sigma)
            umax = float(np.linalg.norm(nodes, axis=1).max())
            g = np.empty((len(others), len(nodes)))
            for k, (v, p) in enumerate(zip(vec, plist)):
                length = float(np.round(r0[p], 12))
                key = (length, order)
                if key not in cheb:
                    f = metric.value
                    lo, hi = max(0.0, length - umax), length + umax
                    cheb[key] = _Cheb(lambda a, L=length: rice_moments(lambda r: f(r / L), a, sigma), lo, hi)
                g[k] = cheb[key](np.linalg.norm(v[None, :] - nodes, axis=1))
            block = (g * w[None, :]) @ g.T  # (n-1, n-1)
            if prev is not None and np.max(np.abs(block - prev)) <= TOL_GH * max(1e-300, np.abs(block).max()):
                break
            prev = block
        else:
            raise InternalError("Gauss–Hermite rule for C did not converge")
        for s2 in range(n):  # every site of this orbit: map through a group element
            hits = np.flatnonzero(site_perm[:, s] == s2)
            if not len(hits):
                continue
            perm = site_perm[hits[0]]
            for a in range(len(others)):
                for b in range(a + 1, len(others)):
                    p = pair_of(perm[s], perm[others[a]])
                    q = pair_of(perm[s], perm[others[b]])
                    out[(p, q)] = float(block[a, b])
    return out


def _orbit_average(c: np.ndarray, pair_perm: np.ndarray) -> np.ndarray:
    """Replace every entry by the mean over its orbit of (p, q) under the group, so the
    result commutes with every Γ(g) exactly."""
    from ..invariants.basis import monomial_orbits, permutation_generators

    m = c.shape[0]
    gens = permutation_generators(pair_perm)
    mons, labels, n_orb = monomial_orbits(gens, m, 2)
    vals = c[mons[:, 0], mons[:, 1]]
    sums = np.bincount(labels, weights=vals, minlength=n_orb)
    counts = np.bincount(labels, minlength=n_orb)
    avg = (sums / counts)[labels]
    out = np.empty_like(c)
    out[mons[:, 0], mons[:, 1]] = avg
    out[mons[:, 1], mons[:, 0]] = avg
    return out
