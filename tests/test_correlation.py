"""The correlation matrix C (Eq. 19) against routes that share no code with ccdgen's.

ccdgen conditions a shared-site entry on the shared site's displacement and uses tanh-sinh,
Chebyshev (DCT) and 3-D Gauss–Hermite rules.  The reference here conditions on the other pair
vector instead (``d_q | d_p`` is Gaussian with mean ``v_q + (d_p − v_p)/2`` and variance
``1.5 σ²``), integrates in spherical coordinates (Gauss–Legendre in r and in the polar
variable, trapezoid in φ), gets its 1-D means from ``scipy.integrate.quad`` and interpolates
them barycentrically; pair orbits are found by brute force.  A 10⁶-sample Monte Carlo checks
both at its error bar.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from scipy.integrate import quad
from scipy.interpolate import BarycentricInterpolator

from ccdgen.ccd.metrics import METRICS
from ccdgen.ccd.transform import build_transform
from ccdgen.clusters import free_cluster
from ccdgen.symmetry.free import polyhedron

pytestmark = pytest.mark.filterwarnings("ignore::scipy.integrate.IntegrationWarning")

REPO = Path(__file__).resolve().parents[1]
SIGMA = 0.15
CELL = "lattice = [[5.9436, 0, 0], [0, 5.9436, 0], [0, 0, 5.9436]]\n" \
       'species = ["Pb", "Br", "Br", "Br", "Cs"]\n' \
       "positions = [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]\n"


@lru_cache(maxsize=None)
def cluster(name: str):
    if name == "PbBr6c":
        import tempfile

        from ccdgen.pipeline import load

        d = Path(tempfile.mkdtemp())
        (d / "s.toml").write_text("[crystal]\n" + CELL + '[[clusters]]\nname = "PbBr6c"\nkind = "polyhedron"\n'
                                  'center = "Pb"\nneighbors = "Br"\ncount = 6\ninclude_center = true\n')
        return load(d / "s.toml").clusters[0]
    species, x = polyhedron(name, radius=2.97)
    return free_cluster(x, species, name)


# ----------------------------------------------------------------- reference route
def rice_mean(h, a: float, s: float) -> float:
    """E[h(|a e + w|)], w ~ N(0, s² I₃), by adaptive quadrature of the 3-D Rice density."""
    def dens(r):
        if a == 0.0:
            return np.sqrt(2 / np.pi) * r**2 / s**3 * np.exp(-r**2 / (2 * s**2))
        return r / (a * s * np.sqrt(2 * np.pi)) * (np.exp(-(r - a) ** 2 / (2 * s**2)) - np.exp(-(r + a) ** 2 / (2 * s**2)))

    lo, hi = max(0.0, a - 14 * s), a + 14 * s
    pts = [p for p in (a - s, a, a + s) if lo < p < hi]
    val, _ = quad(lambda r: h(r) * dens(r), lo, hi, points=pts, epsabs=1e-15, epsrel=1e-14, limit=400)
    return val


def shared_entry(f, vp, vq, sigma) -> float:
    """<f(|d_p|/|vp|) f(|d_q|/|vq|)> for two pair vectors from a shared site, conditioning on
    d_p: d_q | d_p ~ N(vq + (d_p − vp)/2, 1.5 σ² I)."""
    rp, rq = np.linalg.norm(vp), np.linalg.norm(vq)
    sq = np.sqrt(1.5) * sigma
    sp_ = np.sqrt(2.0) * sigma
    # G(b) = E f(|b + z| / rq), z ~ N(0, sq²), barycentric interpolation in b
    bmax = rq + 0.5 * (14 * sp_ + 2 * rp) + 1.0
    nodes = 0.5 * bmax * (1 - np.cos(np.pi * np.arange(161) / 160))
    g = BarycentricInterpolator(nodes, [rice_mean(lambda r: f(r / rq), b, sq) for b in nodes])
    e3 = vp / rp
    e1 = np.cross(e3, [1.0, 0.3, 0.1])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(e3, e1)
    lo, hi = max(0.0, rp - 13 * sp_), rp + 13 * sp_
    xr, wr = np.polynomial.legendre.leggauss(90)
    rho = lo + (hi - lo) * (xr + 1) / 2
    wr = wr * (hi - lo) / 2
    xt, wt = np.polynomial.legendre.leggauss(110)
    phi = 2 * np.pi * np.arange(48) / 48
    total = 0.0
    for r, w in zip(rho, wr):
        tmax = min(2 * r * rp / sp_**2, 60.0)
        t = tmax * (xt + 1) / 2
        wtt = wt * tmax / 2
        c = 1 - t * sp_**2 / (r * rp)
        snt = np.sqrt(np.clip(1 - c**2, 0, None))
        y = r * (snt[:, None, None] * (np.cos(phi)[None, :, None] * e1 + np.sin(phi)[None, :, None] * e2)
                 + c[:, None, None] * e3)
        b = np.linalg.norm(vq + 0.5 * (y - vp), axis=-1)
        inner = (wtt[:, None] * np.exp(-t)[:, None] * g(b.ravel()).reshape(b.shape)).sum() * (2 * np.pi / 48)
        radial = r**2 * (2 * np.pi * sp_**2) ** -1.5 * np.exp(-((r - rp) ** 2) / (2 * sp_**2)) * sp_**2 / (r * rp)
        total += w * radial * f(r / rp) * inner
    return total


def reference_correlation(c, metric: str) -> np.ndarray:
    """C by the reference route, one evaluation per brute-force orbit of (p, q)."""
    f = METRICS[metric].value
    x = c.positions
    pairs = list(itertools.combinations(range(c.n_sites), 2))
    index = {p: k for k, p in enumerate(pairs)}
    perms = c.group.permutations
    sigma = SIGMA * c.length_scale
    sp_ = np.sqrt(2.0) * sigma
    m = len(pairs)
    out = np.full((m, m), np.nan)
    for p, q in itertools.product(range(m), repeat=2):
        if not np.isnan(out[p, q]):
            continue
        (i, j), (k, l) = pairs[p], pairs[q]
        if p == q:
            r0 = np.linalg.norm(x[j] - x[i])
            val = rice_mean(lambda r: f(r / r0) ** 2, r0, sp_)
        elif not {i, j} & {k, l}:
            ri, rk = np.linalg.norm(x[j] - x[i]), np.linalg.norm(x[l] - x[k])
            val = rice_mean(lambda r: f(r / ri), ri, sp_) * rice_mean(lambda r: f(r / rk), rk, sp_)
        else:
            s = ({i, j} & {k, l}).pop()
            a, b = ({i, j} - {s}).pop(), ({k, l} - {s}).pop()
            val = shared_entry(f, x[a] - x[s], x[b] - x[s], sigma)
        for perm in perms:  # the whole orbit gets the same value
            gp = index[tuple(sorted((perm[i], perm[j])))]
            gq = index[tuple(sorted((perm[k], perm[l])))]
            out[gp, gq] = out[gq, gp] = val
    return out


def monte_carlo(c, metric: str, n: int = 1_000_000, seed: int = 12345):
    """C and its standard error from n samples (fixed seed: randomness is the point here)."""
    f = METRICS[metric].value
    rng = np.random.default_rng(seed)
    i, j = np.triu_indices(c.n_sites, 1)
    r0 = np.linalg.norm(c.positions[j] - c.positions[i], axis=1)
    sigma = SIGMA * c.length_scale
    s1 = np.zeros((len(r0), len(r0)))
    s2 = np.zeros_like(s1)
    for _ in range(n // 100_000):
        xs = c.positions + sigma * rng.standard_normal((100_000, c.n_sites, 3))
        eps = f(np.linalg.norm(xs[:, j] - xs[:, i], axis=-1) / r0)
        prod = eps[:, :, None] * eps[:, None, :]
        s1 += prod.sum(axis=0)
        s2 += (prod**2).sum(axis=0)
    mean = s1 / n
    return mean, np.sqrt((s2 / n - mean**2) / n)


# ----------------------------------------------------------------------- tests
FAST = [("octahedron", "exp"), ("tetrahedron", "log"), ("PbBr6c", "inverse")]
ALL = [(c, m) for c in ("octahedron", "tetrahedron", "PbBr6c") for m in sorted(METRICS)]


def _check_against_reference(name, metric):
    c = cluster(name)
    got = build_transform(c, metric, SIGMA).correlation
    want = reference_correlation(c, metric)
    assert np.max(np.abs(got - want)) <= 1e-10 * max(1.0, np.abs(want).max()), np.max(np.abs(got - want))


@pytest.mark.parametrize("name,metric", FAST)
def test_correlation_matches_an_independent_quadrature(name, metric):
    _check_against_reference(name, metric)


@pytest.mark.slow
@pytest.mark.parametrize("name,metric", [cm for cm in ALL if cm not in FAST])
def test_correlation_matches_an_independent_quadrature_every_metric(name, metric):
    _check_against_reference(name, metric)


@pytest.mark.parametrize("name,metric", [("octahedron", "exp"), ("octahedron", "log"), ("PbBr6c", "linear")])
def test_correlation_agrees_with_a_million_sample_monte_carlo(name, metric):
    c = cluster(name)
    got = build_transform(c, metric, SIGMA).correlation
    mc, err = monte_carlo(c, metric)
    z = np.abs(got - mc) / err
    assert z.max() < 5.5, z.max()  # 5.5 standard errors over ≤ 441 entries
    assert np.median(z) < 1.5  # the bulk sits within its error bar


def test_octahedron_eigenvalues_match_the_exact_integrals():
    """Exact values of the free octahedron (exp metric, sigma = 0.15 of the shortest pair),
    computed independently by a user: A1g(1) 0.108013, T1u 0.061243, Eg(1) 0.042229, T2g
    0.042003 — so Eg(1) comes before T2g (the Monte Carlo C put them the other way round)."""
    t = build_transform(cluster("octahedron"), "exp", SIGMA)
    lam = {b.name: b.eigenvalue for b in t.blocks}
    for name, want in {"A1g^(1)": 0.108013, "T1u": 0.061243, "Eg^(1)": 0.042229, "T2g": 0.042003}.items():
        assert abs(lam[name] - want) < 1e-6, (name, lam[name])
    names = [b.name for b in t.blocks]
    assert names.index("Eg^(1)") < names.index("T2g")
    assert names[:3] == ["A1g^(1)", "T1u", "Eg^(1)"]


def test_singular_metrics_have_a_finite_correlation():
    """ln and 1 − 1/x diverge at r = 0, but the r² of the 3-D density keeps C finite: a wide
    Gaussian (sigma = 0.6 of the pair length) still gives finite, positive-definite C."""
    c = cluster("tetrahedron")
    for metric in ("log", "inverse"):
        t = build_transform(c, metric, 0.6)
        assert np.all(np.isfinite(t.correlation)) and t.eigenvalues.min() > 0


def test_correlation_and_features_are_bit_identical_in_another_process(tmp_path):
    """No random numbers: a fresh process with another hash seed and a perturbed NumPy global
    RNG state gives the same bits for C, Q and the compiled features."""
    code = (
        "import numpy as np, sys; np.random.seed(int(sys.argv[1])); np.random.standard_normal(7)\n"
        "import ccdgen\n"
        "from ccdgen.pipeline import load, transforms\n"
        "t = {t.cluster.name: t for t in transforms(load(sys.argv[2]))}['PbBr6']\n"
        "k = ccdgen.compile_cluster(sys.argv[2], order=2, cluster='PbBr6')\n"
        "x = k.reference + 0.07 * np.sin(np.arange(18.0) * 1.7).reshape(6, 3)\n"
        "sys.stdout.write(t.correlation.tobytes().hex() + ' ' + t.Q.tobytes().hex() + ' ' + k.features(x).tobytes().hex())\n"
    )
    spec = str(REPO / "examples" / "cspbbr3" / "ccdgen.toml")
    outs = []
    for seed, hashseed in ((1, "0"), (2, "12345")):
        env = {"PYTHONHASHSEED": hashseed, "CCDGEN_CACHE_DIR": str(tmp_path / f"cache{seed}"),
               "PATH": "/usr/bin:/bin"}
        r = subprocess.run([sys.executable, "-c", code, str(seed), spec], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout)
    assert outs[0] == outs[1]
