"""Generated Numba kernels (ccdgen.codegen): agreement with the NumPy reference,
gradients, forces and the strain derivative, invariance, batching and threads, the
template contract, the strict printer, the IR signature, the kernel cache, bad input,
and the `compile` / `cache` commands.

JIT compilation costs a few seconds per kernel module, so the kernels are compiled once
per module (``lru_cache``) and shared by the tests.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli
import sympy as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ccdgen
from ccdgen.cache import list_entries
from ccdgen.ccd.evaluate import pair_metrics
from ccdgen.ccd.metrics import METRICS, get_metric
from ccdgen.ccd.transform import build_transform
from ccdgen.clusters import free_cluster
from ccdgen.codegen import compiled as compiled_mod
from ccdgen.codegen.compiled import CodeOptions, compile_transform, set_num_threads
from ccdgen.codegen.ir import lower
from ccdgen.codegen.printer import StrictPrinter, metric_code, print_expr
from ccdgen.codegen.render import KERNEL_TEMPLATE, kernel_context, render, render_kernel, template_keys
from ccdgen.errors import ClusterError, InputArrayError, InternalError, SpecError
from ccdgen.invariants.cached import invariant_basis
from ccdgen.invariants.display import feature_names
from ccdgen.pipeline import load
from ccdgen.symmetry.free import polyhedron
from ccdgen.testing import assert_numeric_gradient, assert_rigid_invariant

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
METRIC_NAMES = sorted(METRICS)
TILE = compiled_mod.DEFAULT_TILE


# ------------------------------------------------------------------ shared kernels
@lru_cache(maxsize=None)
def free_transform(name: str, metric: str = "exp"):
    species, x = polyhedron(name, radius=2.0)
    c = free_cluster(x + np.array([0.3, -0.7, 1.1]), species, name)
    return build_transform(c, metric, 0.15)


@lru_cache(maxsize=None)
def kernel(case: str, order: int, truncated=None, metric: str = "exp", tile: int = TILE):
    """Compiled kernels of a free polyhedron (``free:NAME``) or an example cluster."""
    src, name = case.split(":")
    if src == "free":
        return compile_transform(free_transform(name, metric), order, truncated, CodeOptions(tile=tile))
    assert metric == "exp" and tile == TILE
    return ccdgen.compile_cluster(EXAMPLE, order=order, cluster=name, truncated=truncated)


def deformed(cc, n: int = 5, seed: int = 0, amplitude: float = 0.1) -> np.ndarray:
    t = cc.transform
    rng = np.random.default_rng(seed)
    return t.cluster.positions + amplitude * t.r0.min() * rng.standard_normal((n, t.cluster.n_sites, 3))


def reference(cc, x) -> np.ndarray:
    """The plain NumPy evaluation of the same invariant basis."""
    return cc.basis.evaluate(pair_metrics(cc.transform, x)[0])


#: Pair metrics below this size are not resolved relatively: the generated code computes
#: eps to a few ulps of 1 (e.g. ``1 - exp(1 - s)``), NumPy's reference to a few ulps of
#: eps (``-expm1(1 - s)``).
EPS_FLOOR = 1e-2


def term_scale(cc, x) -> np.ndarray:
    """The natural size of each feature (n, F): ``max(max_p |eps~_p|, EPS_FLOOR) ** degree``,
    its value at ``eps~ = (m, ..., m)`` (every feature is 1 at eps = 1).  Rounding errors of
    the pair metrics (and of the projection ``eps~ = P eps`` of a truncated set) are
    relative to this, not to the feature's own, possibly cancelling, value."""
    b = cc.basis
    eps = pair_metrics(cc.transform, x)[0]
    if b.projection is not None:
        eps = eps @ b.projection.T
    m = np.maximum(np.abs(eps).max(axis=1, keepdims=True), EPS_FLOOR)
    return m ** b.degrees[None, :]


def assert_close(got, want, rel=1e-12, scale=None):
    """|got - want| <= rel * scale; the scale defaults to the largest |want| of each
    feature over the batch."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape
    if scale is None:
        axes = (0,) if want.ndim == 2 else tuple(range(want.ndim))
        scale = np.abs(want).max(axis=axes, keepdims=True)
    err = np.abs(got - want) / np.maximum(scale, 1e-300)
    assert np.all(err <= rel), f"largest relative error {err.max():.3g} > {rel:g}"


def assert_matches_reference(cc, x, got=None):
    got = cc.features(x) if got is None else got
    assert_close(got, reference(cc, x), scale=term_scale(cc, x))


AGREEMENT_CASES = [
    ("free:octahedron", 4, False),
    ("free:octahedron", 4, True),
    ("free:tetrahedron", 3, None),
    ("CsPbBr3:triplet", 4, None),
    ("CsPbBr3:pair1", 4, None),
    ("CsPbBr3:PbBr6", 2, None),
]
GRADIENT_CASES = AGREEMENT_CASES + [("free:triangle", 2, None)]


# ------------------------------------------------------------------ agreement with NumPy
@pytest.mark.parametrize("case,order,truncated", AGREEMENT_CASES)
def test_kernel_matches_reference(case, order, truncated):
    cc = kernel(case, order, truncated)
    assert cc.n_features == cc.basis.n_features == len(cc.feature_names)
    if truncated is not None:
        assert (cc.basis.truncated is not None) == truncated
    for seed, amp in [(0, 0.02), (1, 0.1), (2, 0.25)]:
        x = deformed(cc, 9, seed, amp)
        assert_matches_reference(cc, x)


def test_octahedron_counts():
    assert kernel("free:octahedron", 4, False).n_features == 153
    assert kernel("free:octahedron", 4, True).n_features == 65
    assert kernel("CsPbBr3:pair1", 4).n_features == 4


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_every_metric(metric):
    cc = kernel("free:triangle", 2, metric=metric)
    assert cc.ir.metric == metric and f"{metric} metric" in cc.source
    x = deformed(cc, 7, 3, 0.15)
    assert_matches_reference(cc, x)
    assert_numeric_gradient(cc.features, lambda c: cc.features_and_gradient(c)[1], x, h=1e-6, rtol=1e-6)


def test_pair_metric_near_the_reference():
    """Tiny strains: eps ≈ s - 1, to an absolute accuracy of a few ulps of 1."""
    cc = kernel("CsPbBr3:pair1", 4)
    t = cc.transform
    i, j = t.rep.pairs[0]
    d = t.cluster.positions[j] - t.cluster.positions[i]
    for stretch in (1e-3, 1e-6, 1e-9, -1e-7, 0.0):
        x = t.cluster.positions.copy()
        x[j] = x[i] + (1 + stretch) * d
        got, want = cc.features(x)[0], reference(cc, x[None])[0]
        assert np.abs(got - want).max() <= 1e-15
        assert got[0] == pytest.approx(stretch, rel=1e-3, abs=1e-15)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(AGREEMENT_CASES), seed=st.integers(0, 2**32 - 1), amplitude=st.floats(0.0, 0.3),
       n=st.integers(1, 5))
def test_kernel_matches_reference_random(case, seed, amplitude, n):
    cc = kernel(*case)
    x = deformed(cc, n, seed, amplitude)
    assert_matches_reference(cc, x)


def test_single_cluster_input_is_promoted():
    cc = kernel("free:tetrahedron", 3)
    x = deformed(cc, 1)
    np.testing.assert_array_equal(cc.features(x[0]), cc.features(x))
    assert cc.features(x[0]).shape == (1, cc.n_features)


# ------------------------------------------------------------------ gradients, forces, virial
@pytest.mark.parametrize("case,order,truncated", GRADIENT_CASES)
def test_gradient_matches_finite_differences(case, order, truncated):
    cc = kernel(case, order, truncated)
    x = deformed(cc, 3, 4)
    f, jac = cc.features_and_gradient(x)
    assert jac.shape == (3, cc.n_features, cc.n_sites, 3)
    assert_matches_reference(cc, x, f)
    assert_numeric_gradient(cc.features, lambda c: cc.features_and_gradient(c)[1], x, h=1e-6, rtol=1e-6)


@pytest.mark.parametrize("case,order,truncated", GRADIENT_CASES)
def test_vjp_is_weights_times_jacobian(case, order, truncated):
    cc = kernel(case, order, truncated)
    x = deformed(cc, 4, 5)
    w = np.random.default_rng(6).standard_normal((4, cc.n_features))
    _, jac = cc.features_and_gradient(x)
    assert_close(cc.vjp(x, w), np.einsum("nf,nfsa->nsa", w, jac))


def _energy(cc, w):
    return lambda x: np.einsum("nf,nf->n", w, cc.features(x))


@pytest.mark.parametrize("case,order,truncated", GRADIENT_CASES)
def test_forces_match_finite_differences(case, order, truncated):
    cc = kernel(case, order, truncated)
    x = deformed(cc, 3, 7)
    w = np.random.default_rng(8).standard_normal((3, cc.n_features))
    energy = _energy(cc, w)
    forces = -cc.vjp(x, w)
    h = 1e-6
    num = np.empty_like(x)
    for s in range(cc.n_sites):
        for a in range(3):
            xp, xm = x.copy(), x.copy()
            xp[:, s, a] += h
            xm[:, s, a] -= h
            num[:, s, a] = -(energy(xp) - energy(xm)) / (2 * h)
    scale = max(np.abs(forces).max(), 1.0)
    assert np.abs(num - forces).max() <= 1e-6 * scale
    # a cluster energy exerts no net force and no net torque
    assert np.abs(forces.sum(axis=1)).max() <= 1e-10 * scale
    torque = np.cross(x, forces).sum(axis=1)
    assert np.abs(torque).max() <= 1e-9 * scale * np.abs(x).max()


SYMMETRIC = [np.outer(np.eye(3)[a], np.eye(3)[b]) + np.outer(np.eye(3)[b], np.eye(3)[a])
             for a in range(3) for b in range(a, 3)]


@pytest.mark.parametrize("case,order,truncated", GRADIENT_CASES)
def test_strain_derivative(case, order, truncated):
    """dE/dε for x -> (I + ε) x with symmetric ε, by finite differences, and the identity
    W = Σ_i x_i ⊗ dE/dx_i (either order: rotational invariance makes it symmetric)."""
    cc = kernel(case, order, truncated)
    x = deformed(cc, 3, 9) + np.array([1.5, -2.0, 0.7])  # away from the origin on purpose
    w = np.random.default_rng(10).standard_normal((3, cc.n_features))
    energy = _energy(cc, w)
    grad, vir = cc.vjp_and_virial(x, w)
    assert vir.shape == (3, 3, 3)
    scale = max(np.abs(vir).max(), 1.0)
    np.testing.assert_allclose(vir, np.swapaxes(vir, 1, 2), atol=1e-10 * scale)
    np.testing.assert_allclose(vir, np.einsum("nsa,nsb->nab", x, grad), atol=1e-10 * scale)
    np.testing.assert_allclose(vir, np.einsum("nsa,nsb->nab", grad, x), atol=1e-10 * scale)
    np.testing.assert_array_equal(grad, cc.vjp(x, w))
    h = 1e-6
    for s in SYMMETRIC:
        plus = x @ (np.eye(3) + h * s).T
        minus = x @ (np.eye(3) - h * s).T
        num = (energy(plus) - energy(minus)) / (2 * h)
        assert np.abs(num - np.einsum("nab,ab->n", vir, s)).max() <= 1e-6 * scale


# ------------------------------------------------------------------ invariance
@pytest.mark.parametrize("case,order,truncated", AGREEMENT_CASES)
def test_rigid_motion_invariance(case, order, truncated):
    cc = kernel(case, order, truncated)
    x = deformed(cc, 6, 11)
    scale = max(np.abs(cc.features(x)).max(), 1.0)
    assert_rigid_invariant(cc.features, x, np.random.default_rng(12), atol=1e-12 * scale, n_trials=6)


@pytest.mark.parametrize("case,order,truncated", AGREEMENT_CASES)
def test_point_group_relabelling_invariance(case, order, truncated):
    cc = kernel(case, order, truncated)
    group = cc.transform.cluster.group
    c = cc.transform.cluster.positions.mean(axis=0)
    x = deformed(cc, 4, 13)
    f0 = cc.features(x)
    for g in range(group.order):
        moved = np.empty_like(x)
        moved[:, group.permutations[g]] = (x - c) @ group.rotations[g].T + c
        assert_close(cc.features(moved), f0, scale=term_scale(cc, x))


def test_gradient_is_equivariant():
    """dF/dx transforms like the coordinates: J(g·x)[perm] = J(x) R_gᵀ."""
    cc = kernel("free:octahedron", 4, True)
    group = cc.transform.cluster.group
    c = cc.transform.cluster.positions.mean(axis=0)
    x = deformed(cc, 2, 14)
    _, j0 = cc.features_and_gradient(x)
    for g in range(0, group.order, 7):
        moved = np.empty_like(x)
        moved[:, group.permutations[g]] = (x - c) @ group.rotations[g].T + c
        _, j1 = cc.features_and_gradient(moved)
        assert_close(j1[:, :, group.permutations[g]], j0 @ group.rotations[g].T, rel=1e-10)


# ------------------------------------------------------------------ batches and threads
@pytest.fixture
def restore_threads():
    saved = compiled_mod.get_num_threads()
    yield
    set_num_threads(saved)


@pytest.mark.parametrize("n", [1, TILE - 1, TILE, TILE + 1, 2 * TILE + 3])
def test_batch_sizes_around_the_tile(n):
    cc = kernel("free:octahedron", 4, True)
    x = deformed(cc, n, 15)
    f = cc.features(x)
    assert f.shape == (n, cc.n_features)
    assert_matches_reference(cc, x, f)
    w = np.random.default_rng(n).standard_normal((n, cc.n_features))
    g, vir = cc.vjp_and_virial(x, w)
    assert g.shape == (n, cc.n_sites, 3) and vir.shape == (n, 3, 3)
    # each cluster is independent of its neighbours in the tile
    for k in {0, n // 2, n - 1}:
        np.testing.assert_array_equal(cc.features(x[k:k + 1])[0], f[k])
        np.testing.assert_array_equal(cc.vjp(x[k:k + 1], w[k:k + 1])[0], g[k])


def test_empty_batch():
    cc = kernel("free:octahedron", 4, True)
    x = np.zeros((0, cc.n_sites, 3))
    assert cc.features(x).shape == (0, cc.n_features)
    assert cc.vjp(x, np.zeros((0, cc.n_features))).shape == (0, cc.n_sites, 3)


def test_threaded_batches_are_identical(restore_threads):
    n = 2 * compiled_mod.MIN_BATCH_PER_THREAD + 89  # > 2 x 256: split across 2 threads
    cc = kernel("free:octahedron", 4, True)
    x = deformed(cc, n, 16)
    w = np.random.default_rng(17).standard_normal((n, cc.n_features))
    results = {}
    for threads in (2, 1):
        set_num_threads(threads)
        f, jac = cc.features_and_gradient(x)
        results[threads] = (cc.features(x), *cc.vjp_and_virial(x, w), f, jac)
    for a, b in zip(results[2], results[1]):
        np.testing.assert_array_equal(a, b)
    assert_matches_reference(cc, x, results[2][0])


def test_threads_actually_split_the_work(restore_threads, monkeypatch):
    calls = []
    original = compiled_mod._run

    def spy(kernel_fn, n, *args):
        calls.append(min(compiled_mod.get_num_threads(), n // compiled_mod.MIN_BATCH_PER_THREAD))
        return original(kernel_fn, n, *args)

    monkeypatch.setattr(compiled_mod, "_run", spy)
    cc = kernel("free:tetrahedron", 3)
    set_num_threads(2)
    cc.features(deformed(cc, 600))
    cc.features(deformed(cc, 300))
    assert calls == [2, 1]


# ------------------------------------------------------------------ template and source
def test_template_contract():
    cc = kernel("free:octahedron", 4, True)
    ctx = kernel_context(cc.ir, TILE)
    assert template_keys(KERNEL_TEMPLATE) == set(ctx)
    assert render(KERNEL_TEMPLATE, ctx) == cc.source == render_kernel(cc.ir, TILE)
    missing = dict(ctx)
    missing.pop("metric_value")
    with pytest.raises(InternalError, match="missing keys \\['metric_value'\\]"):
        render(KERNEL_TEMPLATE, missing)
    with pytest.raises(InternalError, match="unexpected keys \\['surprise'\\]"):
        render(KERNEL_TEMPLATE, {**ctx, "surprise": 1})


@pytest.mark.parametrize("case,order,truncated", [("free:octahedron", 4, True), ("CsPbBr3:pair1", 4, None)])
def test_generated_source(case, order, truncated):
    cc = kernel(case, order, truncated)
    src = cc.source
    first = src.splitlines()[0]
    assert first.startswith("# Generated by ccdgen") and "do not edit" in first
    assert cc.ir.code_signature() in src
    assert "@njit(cache=True" in src
    assert not re.search(r"^\s*(import|from)\s+sympy", src, re.M) and "sympy" not in src
    assert not re.search(r"\d{4}-\d{2}-\d{2}|\d{1,2}:\d{2}:\d{2}", src), "timestamp-like text"
    assert str(Path.home()) not in src and os.environ["CCDGEN_CACHE_DIR"] not in src
    compile(src, str(cc.path), "exec")
    assert cc.path.name == "kernel.py" and cc.path.is_file()
    # the cluster's tables are arguments: no literals, so equal shapes share one module
    assert "np.array(" not in src and "FEATURE_NAMES" not in src


def test_strict_printer_raises_on_unsupported():
    x = sp.Symbol("x")
    for expr in (sp.Function("foo")(x), sp.Integral(x, x), sp.Integral(sp.exp(-x**2), (x, 0, 1))):
        with pytest.raises(InternalError, match="cannot print"):
            StrictPrinter().doprint(expr)
        with pytest.raises(InternalError):
            print_expr(expr)
    assert print_expr(sp.exp(x) + sp.log(x)) == "math.exp(x) + math.log(x)"
    assert print_expr(sp.Float(0.1) * x) == "0.1*x"


def test_negative_powers_are_printed_as_divisions():
    """Numba raises ZeroDivisionError on ``0.0**-2`` even with error_model='numpy'."""
    s = sp.Symbol("s", positive=True)
    assert print_expr(s**-2) == "1/(s**2)"
    assert print_expr((s + 1)**-3) == "1/((s + 1)**3)"
    assert "**(-" not in metric_code("inverse")[1]


@pytest.mark.parametrize("metric", METRIC_NAMES)
def test_printed_metric_code(metric):
    import math

    value, deriv = metric_code(metric)
    m = get_metric(metric)
    for s in (0.5, 0.9, 1.0, 1.3, 2.5):
        assert eval(value, {"math": math, "s": s}) == pytest.approx(float(m.value(np.array(s))), rel=1e-15)
        assert eval(deriv, {"math": math, "s": s}) == pytest.approx(float(m.derivative(np.array(s))), rel=1e-15)


# ------------------------------------------------------------------ the IR signature
def _ir(t, order, truncated=None):
    b = invariant_basis(t, order, truncated)
    return lower(t, b, feature_names(b, t.cluster.name))


def test_signature_is_deterministic():
    t = free_transform("triangle")
    assert _ir(t, 2).signature() == _ir(t, 2).signature()
    # a new transform object from the same input
    species, x = polyhedron("triangle", radius=2.0)
    t2 = build_transform(free_cluster(x + np.array([0.3, -0.7, 1.1]), species, "triangle"), "exp", 0.15)
    assert _ir(t2, 2).signature() == _ir(t, 2).signature()


def test_signature_is_the_same_in_another_process():
    code = textwrap.dedent("""
        import numpy as np
        from ccdgen.ccd.transform import build_transform
        from ccdgen.clusters import free_cluster
        from ccdgen.codegen.ir import lower
        from ccdgen.invariants.cached import invariant_basis
        from ccdgen.invariants.display import feature_names
        from ccdgen.symmetry.free import polyhedron
        species, x = polyhedron("triangle", radius=2.0)
        t = build_transform(free_cluster(x + np.array([0.3, -0.7, 1.1]), species, "triangle"), "exp", 0.15)
        b = invariant_basis(t, 2, use_cache=False)
        print(lower(t, b, feature_names(b, "triangle")).signature())
    """)
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == _ir(free_transform("triangle"), 2).signature()


def test_signature_depends_on_the_metric():
    assert _ir(free_transform("triangle", "exp"), 2).signature() != _ir(free_transform("triangle", "log"), 2).signature()


def test_signature_depends_on_the_order():
    t = free_transform("triangle")
    assert _ir(t, 2).signature() != _ir(t, 3).signature()


def test_signature_depends_on_the_truncation():
    t = free_transform("octahedron")
    assert _ir(t, 2, False).signature() != _ir(t, 2, True).signature()


def test_signature_does_not_depend_on_the_cache_location(tmp_path, monkeypatch):
    t = free_transform("triangle")
    here = _ir(t, 2).signature()
    key = kernel("free:triangle", 2).key
    monkeypatch.setenv("CCDGEN_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert list_entries() == []
    assert _ir(t, 2).signature() == here  # basis derived again in the new folder
    cc = compile_transform(t, 2)
    assert not cc.cache_hit and cc.key == key
    assert cc.path.is_relative_to(tmp_path / "elsewhere")


def test_signature_does_not_depend_on_the_tile():
    a, b = kernel("free:triangle", 2), kernel("free:triangle", 2, tile=16)
    assert a.ir.signature() == b.ir.signature()
    assert a.key != b.key  # ... but the tile is part of the code, hence of the cache key


# ------------------------------------------------------------------ kernel cache
def test_second_compile_is_a_hit():
    first = kernel("free:triangle", 2)
    again = compile_transform(free_transform("triangle"), 2)
    assert again.cache_hit and again.key == first.key and again.path == first.path
    assert again.source == first.source


@pytest.mark.parametrize("change", ["tile", "order", "metric"])
def test_options_that_matter_are_misses(change):
    base = kernel("free:triangle", 2)
    other = {"tile": lambda: kernel("free:triangle", 2, tile=16),
             "order": lambda: kernel("free:triangle", 3),
             "metric": lambda: kernel("free:triangle", 2, metric="log")}[change]()
    assert other.key != base.key and other.path != base.path
    x = deformed(base, 70, 18)
    assert_matches_reference(other, x)
    if change == "tile":
        assert "TILE = 16" in other.source
        np.testing.assert_allclose(other.features(x), base.features(x), rtol=1e-14, atol=1e-15)


def test_concurrent_processes_compile_the_same_cluster(tmp_path, monkeypatch):
    import ase.io
    from ase import Atoms

    species, x = polyhedron("triangle", radius=2.0)
    xyz = tmp_path / "tri.xyz"
    ase.io.write(xyz, Atoms(["C"] * len(x), positions=x + [1.0, 2.0, 3.0]), format="xyz")
    cache_dir = tmp_path / "fresh-cache"
    code = textwrap.dedent(f"""
        import json, sys
        import numpy as np
        import ccdgen
        cc = ccdgen.compile_cluster({str(xyz)!r}, order=2)
        x = cc.transform.cluster.positions + 0.05 * np.arange(9.0).reshape(1, 3, 3) ** 0.5
        print(json.dumps({{"key": cc.key, "path": str(cc.path), "f": cc.features(x).tolist()}}))
    """)
    env = {**os.environ, "CCDGEN_CACHE_DIR": str(cache_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    a, b = (json.loads(out.strip().splitlines()[-1]) for out, _ in outs)
    assert a["key"] == b["key"] and a["path"] == b["path"]
    assert a["f"] == b["f"]
    monkeypatch.setenv("CCDGEN_CACHE_DIR", str(cache_dir))
    entries = list_entries("kernels")
    assert len(entries) == 1 and entries[0]["ok"] and entries[0]["key"] == a["key"]


def test_truncated_kernel_file_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("CCDGEN_CACHE_DIR", str(tmp_path / "cache"))
    t = free_transform("triangle")
    cc = compile_transform(t, 2)
    text = cc.path.read_text()
    cc.path.write_text(text[: len(text) // 2])
    assert not [e for e in list_entries("kernels") if e["ok"]]
    again = compile_transform(t, 2)
    assert not again.cache_hit and again.key == cc.key
    assert again.path.read_text() == text
    x = deformed(again, 5, 19)
    assert_matches_reference(again, x)
    assert compile_transform(t, 2).cache_hit


# ------------------------------------------------------------------ bad input
def test_wrong_shapes():
    cc = kernel("free:tetrahedron", 3)
    n = cc.n_sites
    for shape in [(2, n + 1, 3), (2, n, 2), (n * 3,), (2, 3, n, 3), (n - 1, 3)]:
        with pytest.raises(InputArrayError, match="shape"):
            cc.features(np.zeros(shape))
        with pytest.raises(InputArrayError, match="shape"):
            cc.vjp(np.zeros(shape), np.zeros((2, cc.n_features)))


def test_dtypes():
    cc = kernel("free:triangle", 2)
    xi = np.array([[[2, 0, 0], [-1, 2, 0], [-1, -2, 1]]], dtype=np.int32)
    np.testing.assert_array_equal(cc.features(xi), cc.features(xi.astype(float)))
    np.testing.assert_array_equal(cc.features(xi.tolist()), cc.features(xi.astype(float)))
    np.testing.assert_array_equal(cc.features(xi.astype(np.float32)), cc.features(xi.astype(float)))
    for bad in (xi.astype(str), xi.astype(object).astype(str), np.array([[["a", "b", "c"]] * 3])):
        with pytest.raises(InputArrayError, match="real numbers"):
            cc.features(bad)
    with pytest.raises(InputArrayError):
        cc.features(xi.astype(complex))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_coordinates(bad):
    cc = kernel("free:triangle", 2)
    x = deformed(cc, 4)
    x[2, 1, 0] = bad
    for call in (cc.features, cc.features_and_gradient, lambda c: cc.vjp(c, np.ones((4, cc.n_features)))):
        with pytest.raises(InputArrayError, match="NaN or inf") as err:
            call(x)
        assert "[2]" in str(err.value)


@pytest.mark.parametrize("metric", ["log", "inverse"])
@pytest.mark.parametrize("i,j", [(0, 1), (1, 2)])
def test_collapsed_sites_singular_metrics(metric, i, j):
    cc = kernel("free:triangle", 2, metric=metric)
    x = deformed(cc, 3)
    x[1, j] = x[1, i]
    w = np.ones((3, cc.n_features))
    for call in (cc.features, cc.features_and_gradient, lambda c: cc.vjp(c, w),
                 lambda c: cc.vjp_and_virial(c, w)):
        with pytest.raises(InputArrayError, match=f"sites {i} and {j}") as err:
            call(x)
        assert f"'{metric}'" in str(err.value) and "input 1" in str(err.value)


def test_collapsed_sites_bounded_metric():
    """exp: features stay finite at r = 0, the gradient (no pair direction) does not."""
    cc = kernel("free:triangle", 2, metric="exp")
    x = deformed(cc, 2)
    x[0, 2] = x[0, 0]
    assert np.all(np.isfinite(cc.features(x)))
    with pytest.raises(InputArrayError, match="sites 0 and 2"):
        cc.features_and_gradient(x)
    with pytest.raises(InputArrayError, match="sites 0 and 2"):
        cc.vjp(x, np.ones((2, cc.n_features)))


def test_bad_weights():
    cc = kernel("free:tetrahedron", 3)
    x = deformed(cc, 3)
    f = cc.n_features
    for shape in [(3, f + 1), (2, f), (f,), (3, f, 1)]:
        with pytest.raises(InputArrayError, match="weights must have shape"):
            cc.vjp(x, np.ones(shape))
    w = np.ones((3, f))
    w[1, 0] = np.nan
    with pytest.raises(InputArrayError, match="NaN or inf"):
        cc.vjp(x, w)
    # one cluster and 1-D weights are fine
    np.testing.assert_array_equal(cc.vjp(x[0], np.ones(f)), cc.vjp(x[:1], np.ones((1, f))))


def test_unsafe_cluster_name_is_rejected_before_codegen(tmp_path, monkeypatch):
    monkeypatch.setenv("CCDGEN_CACHE_DIR", str(tmp_path / "cache"))
    spec = tmp_path / "bad.toml"
    spec.write_text(EXAMPLE.read_text().replace('name = "PbBr6"', 'name = "bad-name;import os"'))
    with pytest.raises(ClusterError, match="not a safe identifier"):
        ccdgen.compile_cluster(spec, order=2)
    with pytest.raises(ClusterError, match="not a safe identifier"):
        ccdgen.compile_cluster(spec, order=2, cluster="pair1")
    species, x = polyhedron("triangle", radius=2.0)
    for name in ("bad-name;import os", "x\nimport os", "1abc", "", "a" * 65):
        with pytest.raises(ClusterError):
            free_cluster(x, species, name)
    assert list_entries("kernels") == []
    # XYZ file names are turned into safe identifiers
    import ase.io
    from ase import Atoms

    xyz = tmp_path / "bad-name;import os.xyz"
    ase.io.write(xyz, Atoms(["C"] * 3, positions=x), format="xyz")
    name = load(xyz).clusters[0].name
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", name)


def test_unknown_cluster_and_bad_tile():
    with pytest.raises(SpecError, match="no cluster named"):
        ccdgen.compile_cluster(EXAMPLE, order=2, cluster="nope")
    for tile in (0, 5000, 2.5, "64"):
        with pytest.raises(SpecError, match="tile"):
            CodeOptions(tile=tile)


# ------------------------------------------------------------------ show_code, CLI
def test_show_code(capsys):
    cc = kernel("free:tetrahedron", 3)
    text = ccdgen.show_code(cc)
    out = capsys.readouterr().out
    assert text == cc.source and out.rstrip("\n") == text.rstrip("\n")
    assert "def features_kernel" in out and "def vjp_kernel" in out


def cli_stdout(*args, cache_dir):
    return run_cli(*args, env={"CCDGEN_CACHE_DIR": str(cache_dir)}).stdout


def test_cli_compile(tmp_path):
    cc = kernel("CsPbBr3:PbBr6", 2)
    session_cache = os.environ["CCDGEN_CACHE_DIR"]
    doc = json.loads(cli_stdout("compile", EXAMPLE, "--order", "2", "--json", "--cluster", "PbBr6",
                             cache_dir=session_cache))
    assert doc["order"] == 2
    (row,) = doc["clusters"]
    assert row["cluster"] == "PbBr6" and row["n_features"] == 6 == cc.n_features
    assert row["ccd_set"] == "truncated"
    assert re.fullmatch(r"[0-9a-f]{64}", row["cache_key"])
    # compiled in this process already: same key, same module, a cache hit
    assert row["cache_key"] == cc.key and row["cache_hit"] is True
    module = Path(row["module"])
    assert module == cc.path and module.name == "kernel.py" and module.parent.name == cc.key
    assert module.is_file()


def test_cli_cache_ls_and_clear(tmp_path):
    import shutil

    cc = kernel("CsPbBr3:PbBr6", 2)
    cache_dir = tmp_path / "cli-cache"
    # the cache is content addressed: an entry copied to another folder is still valid
    shutil.copytree(cc.path.parent, cache_dir / "kernels" / cc.key, ignore=shutil.ignore_patterns("__pycache__"))
    inv = next(e for e in list_entries("invariants") if e["ok"])
    shutil.copytree(inv["path"], cache_dir / "invariants" / inv["key"])

    listing = cli_stdout("cache", "ls", cache_dir=cache_dir)
    assert str(cache_dir) in listing and "(2 entries)" in listing
    assert re.search(rf"kernels\s+{cc.key[:16]}.*ok.*PbBr6", listing)
    assert re.search(rf"invariants\s+{inv['key'][:16]}.*ok", listing)
    assert "CORRUPT" not in listing
    assert cli_stdout("cache", "path", cache_dir=cache_dir).strip() == str(cache_dir)

    out = cli_stdout("cache", "clear", "--kind", "kernels", cache_dir=cache_dir)
    assert "removed 1 cache entry" in out
    assert not (cache_dir / "kernels" / cc.key).exists()
    listing = cli_stdout("cache", "ls", cache_dir=cache_dir)
    assert "(1 entries)" in listing and "kernels" not in listing.split("entries)", 1)[1]
    assert inv["key"][:16] in listing
    assert cc.path.is_file()  # the session cache is untouched


def test_fused_features_and_vjp_matches_separate_calls():
    cc = kernel("free:octahedron", 4, True)
    x = deformed(cc, 77, 21)
    w = np.random.default_rng(22).standard_normal((77, cc.n_features))
    f, g, vir = cc.features_and_vjp(x, w)
    np.testing.assert_array_equal(f, cc.features(x))
    g2, vir2 = cc.vjp_and_virial(x, w)
    np.testing.assert_array_equal(g, g2)
    np.testing.assert_array_equal(vir, vir2)


def test_reference_plus_displacements():
    cc = kernel("free:octahedron", 4, True)
    u = 0.05 * np.random.default_rng(5).standard_normal((4, cc.n_sites, 3))
    np.testing.assert_allclose(cc.features(cc.reference), 0.0, atol=1e-14)  # phi vanishes in the reference
    assert_matches_reference(cc, cc.reference + u)


def test_clusters_of_equal_shape_share_kernel_code():
    a, b = kernel("CsPbBr3:pair1", 4), kernel("CsPbBr3:pair2", 4)  # Pb-Br and Br-Br pairs
    assert a.ir.signature() != b.ir.signature()  # different tables (r0) ...
    assert a.key == b.key and a.path == b.path and a.module is b.module  # ... same code
    x = deformed(b, 9, 31)
    assert_matches_reference(b, x)
    assert_matches_reference(a, deformed(a, 9, 32))
