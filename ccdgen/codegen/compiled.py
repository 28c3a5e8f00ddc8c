"""Stage 4: compile clusters into Numba kernels, cached in ``generated/``.

    CCDTransform + InvariantBasis --lower--> KernelIR --render--> kernel.py (cache entry)
                                                        --import + JIT--> CompiledCluster

The cache key is, as in pystencils, the SHA-256 of the rendered source plus the
environment that compiles it (Numba, llvmlite, NumPy, Python ABI, CPU architecture): any
change to the template, the printed metric code, the code shape or the ``tile`` option
changes the source and so the key; a cluster's tables are kernel arguments, not code, so
clusters of equal shape share one module.  Numba's own on-disk cache (``cache=True``) sits
next to ``kernel.py``, so a second process pays neither code generation nor JIT compilation;
a corrupt Numba cache file is detected when the module loads, deleted and rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..cache import environment_fingerprint, get_or_build
from ..ccd.evaluate import check_coordinates
from ..errors import InputArrayError
from .ir import KernelIR, lower
from .render import render_kernel

CACHE_KIND = "kernels"
DEFAULT_TILE = 64


@dataclass(frozen=True)
class CodeOptions:
    """Options that change the generated code (and hence the cache key)."""

    tile: int = DEFAULT_TILE  #: clusters per tile (the inner SIMD loop length)

    def __post_init__(self):
        if not isinstance(self.tile, int) or not 1 <= self.tile <= 4096:
            from ..errors import SpecError

            raise SpecError(f"tile must be an integer in 1..4096, got {self.tile!r}")


#: Batches smaller than this run on the calling thread.
MIN_BATCH_PER_THREAD = 256


class _Threads:
    """The worker pool for large batches (the kernels release the GIL)."""

    def __init__(self):
        import threading

        from ..system import cpu_count

        self.n = cpu_count()
        self.pool = None
        self.lock = threading.Lock()

    def set(self, n: int) -> None:
        with self.lock:
            self.n = max(1, int(n))
            if self.pool is not None:
                self.pool.shutdown(wait=True)
            self.pool = None

    def executor(self):
        with self.lock:
            if self.pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self.pool = ThreadPoolExecutor(self.n, thread_name_prefix="ccdgen")
            return self.pool


_THREADS = _Threads()


def set_num_threads(n: int) -> None:
    """Threads used by the kernels for batches of ≥ 2 × MIN_BATCH_PER_THREAD clusters
    (default: the CPUs this process may use)."""
    _THREADS.set(n)


def get_num_threads() -> int:
    return _THREADS.n


def _run(kernel, n: int, *args) -> None:
    """Call ``kernel(start, stop, *args)`` over [0, n), split across threads if large."""
    parts = min(_THREADS.n, n // MIN_BATCH_PER_THREAD)
    if parts <= 1:
        kernel(0, n, *args)
        return
    bounds = np.linspace(0, n, parts + 1).astype(int)
    pool = _THREADS.executor()
    futures = [pool.submit(kernel, int(a), int(b), *args) for a, b in zip(bounds[:-1], bounds[1:])]
    for f in futures:
        f.result()


@dataclass(eq=False)
class CompiledCluster:
    """Fast, exactly symmetric feature kernels for one cluster.

    Every method takes Cartesian coordinates ``coords`` of shape ``(n, n_sites, 3)``
    (float64, Å; a single ``(n_sites, 3)`` is accepted), site order as in the cluster.
    """

    ir: KernelIR
    module: object
    path: Path
    key: str
    cache_hit: bool
    timings: dict = field(default_factory=dict)  #: seconds per stage (derive, generate, jit)
    basis: object = None  #: the InvariantBasis it evaluates (set by compile_transform)
    transform: object = None  #: the CCDTransform of the cluster (set by compile_transform)

    @property
    def name(self) -> str:
        return self.ir.name

    @property
    def feature_names(self) -> tuple:
        return self.ir.feature_names

    @property
    def n_features(self) -> int:
        return self.ir.n_features

    @property
    def n_sites(self) -> int:
        return self.ir.n_sites

    @property
    def source(self) -> str:
        return self.path.read_text()

    @property
    def reference(self) -> np.ndarray:
        """(n_sites, 3) reference positions, Å: pass ``k.reference + u`` for displacements u."""
        if self.transform is None:
            raise AttributeError("this kernel was compiled from a bare KernelIR; it has no reference geometry")
        return self.transform.cluster.positions

    def _tables(self):
        return self.ir.kernel_arguments

    def _check_output(self, x, *arrays):
        if all(np.all(np.isfinite(a)) for a in arrays):
            return
        i, j = self.ir.pairs[:, 0], self.ir.pairs[:, 1]
        r = np.linalg.norm(x[:, j] - x[:, i], axis=-1)
        n, p = np.unravel_index(np.argmin(r), r.shape)
        raise InputArrayError(
            f"cluster {self.name!r}, input {n}: sites {i[p]} and {j[p]} are {r[n, p]:.3g} Å apart; "
            f"the {self.ir.metric!r} metric or its gradient is not finite there",
            why="collapsed sites have no pair direction (and log/inverse metrics diverge at r = 0)",
            fix="check the coordinates (site order, units in Å, periodic images)",
        )

    def features(self, coords) -> np.ndarray:
        """Invariant features → (n, n_features) float64."""
        x = check_coordinates(coords, self.n_sites)
        out = np.empty((len(x), self.n_features))
        _run(self.module.features_kernel, len(x), x, out, *self._tables())
        self._check_output(x, out)
        return out

    def features_and_gradient(self, coords) -> tuple[np.ndarray, np.ndarray]:
        """Features (n, F) and their gradient dF/dx (n, F, n_sites, 3) in 1/Å."""
        x = check_coordinates(coords, self.n_sites)
        out = np.empty((len(x), self.n_features))
        jac = np.empty((len(x), self.n_features, self.n_sites, 3))
        _run(self.module.jacobian_kernel, len(x), x, out, jac, *self._tables(), self.ir.mon_vars)
        self._check_output(x, out, jac)
        return out, jac

    def vjp(self, coords, weights) -> np.ndarray:
        """Vector–Jacobian product: ``weights`` = dE/dF (n, F) → dE/dx (n, n_sites, 3).

        Forces on the sites are ``-vjp(...)`` (eV/Å when E is in eV).
        """
        return self._vjp(coords, weights, False)[1]

    def vjp_and_virial(self, coords, weights) -> tuple[np.ndarray, np.ndarray]:
        """dE/dx (n, n_sites, 3) and the strain derivative dE/dε (n, 3, 3), eV.

        Under a homogeneous strain ``x -> (1 + ε) x`` the energy changes by
        ``Σ_ab W_ab ε_ab`` with ``W = Σ_p (dE/dr_p) r_p u_p u_pᵀ``; the stress contribution
        (ASE convention) is ``W / V`` for a cell of volume ``V``.
        """
        return self._vjp(coords, weights, False)[1:]

    def features_and_vjp(self, coords, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features (n, F), dE/dx (n, n_sites, 3) and dE/dε (n, 3, 3) in one pass, for
        weights dE/dF that do not depend on the features (e.g. a linear cluster expansion)."""
        return self._vjp(coords, weights, True)

    def _vjp(self, coords, weights, with_features: bool):
        x = check_coordinates(coords, self.n_sites)
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim == 1:
            w = w[None]
        if w.shape != (len(x), self.n_features):
            raise InputArrayError(f"weights must have shape ({len(x)}, {self.n_features}), got {np.shape(weights)}")
        if not np.all(np.isfinite(w)):
            raise InputArrayError("weights (dE/dF) contain NaN or inf")
        w = np.ascontiguousarray(w)
        out = np.empty((len(x) if with_features else 0, self.n_features))
        grad = np.empty((len(x), self.n_sites, 3))
        vir = np.empty((len(x), 3, 3))
        _run(self.module.vjp_kernel, len(x), x, w, with_features, out, grad, vir, *self._tables())
        self._check_output(x, out, grad, vir)
        return (out if with_features else None), grad, vir


def _load_module(path: Path, key: str, fresh: bool = False):
    name = f"ccdgen_generated_{key[:20]}"
    if fresh:
        sys.modules.pop(name, None)
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules[name] = mod
    return mod


def kernel_source_and_key(ir: KernelIR, options: CodeOptions = CodeOptions()) -> tuple[str, dict]:
    """The rendered kernel module and its cache-key parts: the SHA-256 of the source plus
    the environment that compiles it (see the module docstring)."""
    source = render_kernel(ir, options.tile)
    return source, {"stage": "kernel/3", "source": hashlib.sha256(source.encode()).hexdigest(),
                    "env": environment_fingerprint()}


def compile_ir(ir: KernelIR, options: CodeOptions = CodeOptions(), warm: bool = True) -> CompiledCluster:
    """Render (or fetch from the cache), import and JIT-compile the kernels for ``ir``."""
    t0 = time.perf_counter()
    source, parts = kernel_source_and_key(ir, options)

    def build(tmp: Path) -> dict:
        (tmp / "kernel.py").write_text(source)
        return {"first_cluster": ir.name, "shape": ir.code_shape()}

    shape = ir.code_shape()
    describe = (f"{shape['n_sites']} sites, {shape['n_features']} features, {shape['metric']}"
                f"{', projected' if shape['has_projection'] else ''} (first built for {ir.name})")
    entry = get_or_build(CACHE_KIND, parts, build, describe=describe)
    t1 = time.perf_counter()
    try:
        cc = _load(ir, entry, warm)
    except Exception as exc:  # a corrupt Numba cache file (e.g. UnpicklingError, EOFError)
        if not _purge_numba_cache(entry.path):
            raise
        warnings.warn(f"the Numba cache of {entry.path} could not be loaded "
                      f"({type(exc).__name__}: {exc}); it was deleted and the kernels recompiled",
                      stacklevel=2)
        cc = _load(ir, entry, warm, fresh=True)
    cc.timings = {"generate": t1 - t0, "jit": time.perf_counter() - t1}
    return cc


def _load(ir: KernelIR, entry, warm: bool, fresh: bool = False) -> "CompiledCluster":
    mod = _load_module(entry.file("kernel.py"), entry.meta["key"], fresh)
    cc = CompiledCluster(ir, mod, entry.file("kernel.py"), entry.meta["key"], entry.hit)
    if warm:  # trigger JIT compilation (or load from Numba's cache) now, not at first use
        x = np.zeros((1, ir.n_sites, 3))
        x[0] = np.arange(ir.n_sites * 3, dtype=float).reshape(ir.n_sites, 3) ** 1.5
        dummy = np.empty((1, ir.n_features))
        mod.features_kernel(0, 1, x, dummy, *cc._tables())
        mod.vjp_kernel(0, 1, x, np.zeros((1, ir.n_features)), True, dummy, np.empty((1, ir.n_sites, 3)),
                       np.empty((1, 3, 3)), *cc._tables())
        # jacobian_kernel compiles on first use (it is not on the MD/MC hot path)
    return cc


def numba_cache_files(entry_path: Path) -> list[Path]:
    """Numba's cache files (index ``.nbi`` and data ``.nbc``) of a kernel entry."""
    pyc = Path(entry_path) / "__pycache__"
    return sorted(p for p in pyc.glob("kernel.*") if p.suffix in (".nbi", ".nbc")) if pyc.is_dir() else []


def _purge_numba_cache(entry_path: Path) -> bool:
    """Delete the Numba cache of an entry; False if there was none (the error is not ours)."""
    files = numba_cache_files(entry_path)
    for p in files:
        p.unlink(missing_ok=True)
    return bool(files)


def compile_transform(t, order: int, truncated=None, options: CodeOptions = CodeOptions()) -> CompiledCluster:
    """Compile one cluster's CCD transform to kernels of invariants up to ``order``."""
    from ..invariants.basis import feature_names
    from ..invariants.cached import invariant_basis

    t0 = time.perf_counter()
    basis = invariant_basis(t, order, truncated)
    t1 = time.perf_counter()
    ir = lower(t, basis, feature_names(basis, t.cluster.name))
    cc = compile_ir(ir, options)
    cc.timings = {"derive": t1 - t0, **cc.timings}
    cc.basis = basis
    cc.transform = t
    return cc


def compile_cluster(source, order: int | None = None, cluster: str | None = None, truncated=None,
                    options: CodeOptions = CodeOptions(), **overrides):
    """Compile a spec file, an XYZ file or a :class:`~ccdgen.clusters.Cluster`.

    Returns one :class:`CompiledCluster` for a single cluster (an XYZ file, a Cluster, or
    ``cluster=NAME``), else a dict ``{name: CompiledCluster}`` for every cluster of a spec.
    """
    from ..ccd.transform import build_transform
    from ..clusters import Cluster
    from ..pipeline import load, transforms

    if isinstance(source, Cluster):
        from ..pipeline import _with_overrides
        from ..spec import Options

        o = _with_overrides(Options(), overrides)  # the spec defaults; unknown keys are errors
        t = build_transform(source, o.metric, o.sigma, truncate=o.truncate)
        return compile_transform(t, o.max_order if order is None else order, truncated, options)
    problem = load(source, **overrides)
    order = problem.options.max_order if order is None else order
    ts = transforms(problem)
    if cluster is not None:
        names = [t.cluster.name for t in ts]
        if cluster not in names:
            from ..errors import SpecError

            raise SpecError(f"no cluster named {cluster!r}", fix=f"clusters are: {', '.join(names)}")
        ts = [t for t in ts if t.cluster.name == cluster]
    compiled = {t.cluster.name: compile_transform(t, order, truncated, options) for t in ts}
    if len(compiled) == 1 and (cluster is not None or problem.spec is None):
        return next(iter(compiled.values()))
    return compiled


def show_code(kernel: CompiledCluster, file=None) -> str:
    """Print (and return) the generated source of a compiled cluster."""
    text = kernel.source
    print(text, file=file)
    return text
