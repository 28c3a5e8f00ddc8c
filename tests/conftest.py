"""Test-wide fixtures: a private cache folder per test session (never the repo's generated/)."""

import os

import pytest


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
