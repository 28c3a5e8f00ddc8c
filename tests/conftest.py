"""Test-wide fixtures and helpers.

* every test session gets a private cache folder (never the repository's generated/);
* helpers shared by several test files: the repository paths, the example problem, and
  :func:`run_cli` (the command line in a subprocess, as a user runs it).
"""

import os
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "cspbbr3" / "ccdgen.toml"
DATA = REPO / "examples" / "cspbbr3" / "data"


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    old = os.environ.get("CCDGEN_CACHE_DIR")
    path = tmp_path_factory.mktemp("ccdgen-cache")
    os.environ["CCDGEN_CACHE_DIR"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CCDGEN_CACHE_DIR", None)
    else:
        os.environ["CCDGEN_CACHE_DIR"] = old


def run_cli(*args, cwd=REPO, env=None, check=True, timeout=300) -> subprocess.CompletedProcess:
    """``python -m ccdgen.cli.main ARGS`` in a subprocess (the current environment plus
    ``env``); with ``check`` the exit code must be 0."""
    r = subprocess.run([sys.executable, "-m", "ccdgen.cli.main", *map(str, args)], cwd=cwd,
                       capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check:
        assert r.returncode == 0, r.stderr
    return r


@lru_cache(maxsize=None)
def example():
    """The example CsPbBr3 problem (stage 1), loaded once per session."""
    from ccdgen.pipeline import load

    return load(EXAMPLE)


@lru_cache(maxsize=None)
def transform(case: str, metric: str = "exp"):
    """The CCD transform of a test case: ``"free:<polyhedron>"`` (radius 2 Å, shifted off the
    origin) or ``"crystal:<orbit>"`` of the example spec; sigma 0.15."""
    import numpy as np

    from ccdgen.ccd.transform import build_transform
    from ccdgen.clusters import free_cluster
    from ccdgen.pipeline import transforms
    from ccdgen.symmetry.free import polyhedron

    src, name = case.split(":")
    if src == "free":
        species, x = polyhedron(name, radius=2.0)
        c = free_cluster(x + np.array([0.4, -1.1, 2.3]), species, name)
        return build_transform(c, metric, 0.15)
    if metric == "exp":
        return {t.cluster.name: t for t in transforms(example())}[name]
    c = {c.name: c for c in example().clusters}[name]
    return build_transform(c, metric, 0.15)


@lru_cache(maxsize=None)
def basis(case: str, degree: int, truncated: bool, metric: str = "exp"):
    """The invariant basis of :func:`transform` ``(case, metric)`` at ``degree``."""
    from ccdgen.invariants.basis import derive_basis

    t = transform(case, metric)
    return derive_basis(t.rep.pair_perm, degree, t, truncated=truncated)
