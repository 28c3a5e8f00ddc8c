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
