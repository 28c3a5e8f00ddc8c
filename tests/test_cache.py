"""The generic content-addressed disk cache (ccdgen/cache.py): keys, verification,
rebuilds of incomplete or corrupt entries, concurrency, listing and clearing."""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdgen import cache
from ccdgen.cache import cache_root, clear, get_or_build, list_entries, make_key


@pytest.fixture
def root(tmp_path, monkeypatch) -> Path:
    """A private, empty cache folder for one test (CCDGEN_CACHE_DIR)."""
    path = tmp_path / "cache"
    monkeypatch.setenv(cache.ENV_VAR, str(path))
    return path


class Builder:
    """A build callback that writes two files and counts its calls."""

    def __init__(self, payload: bytes = b"payload", delay: float = 0.0):
        self.payload, self.delay, self.calls = payload, delay, 0
        self._lock = threading.Lock()

    def __call__(self, tmp: Path) -> dict:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        (tmp / "a.bin").write_bytes(self.payload)
        (tmp / "b.txt").write_text("second file\n")
        return {"note": "built"}


PARTS = {"stage": "test/1", "n": 3, "nested": {"x": [1, 2, 3], "y": "z"}}


# ------------------------------------------------------------------ keys
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=10,
)


def _shuffled(d, rng):
    """The same mapping with its keys inserted in another order, recursively."""
    if isinstance(d, dict):
        items = list(d.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(d, list):
        return [_shuffled(v, rng) for v in d]
    return d


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.text(max_size=6), json_values, min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_make_key_is_stable_under_dict_order(parts, seed):
    key = make_key(parts)
    assert key == make_key(_shuffled(parts, random.Random(seed)))
    assert len(key) == 64 and int(key, 16) >= 0


def test_make_key_depends_on_values_and_names():
    base = make_key(PARTS)
    assert make_key({**PARTS, "n": 4}) != base
    assert make_key({**PARTS, "nested": {"x": [1, 2, 3], "y": "w"}}) != base
    assert make_key({**PARTS, "extra": None}) != base
    assert make_key({**PARTS, "nested": {"x": [3, 2, 1], "y": "z"}}) != base  # list order matters


def test_make_key_does_not_depend_on_the_cache_location(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "one"))
    a = get_or_build("things", PARTS, Builder())
    monkeypatch.setenv(cache.ENV_VAR, str(tmp_path / "two"))
    b = get_or_build("things", PARTS, Builder())
    assert a.meta["key"] == b.meta["key"] == make_key(PARTS)
    assert a.path != b.path


# ------------------------------------------------------------------ build, hit, meta.json
def test_get_or_build_writes_meta_with_file_hashes(root):
    build = Builder(b"\x00\x01hello")
    entry = get_or_build("things", PARTS, build, describe="a test entry")
    assert not entry.hit and build.calls == 1
    assert entry.path == root / "things" / make_key(PARTS)
    meta = json.loads((entry.path / "meta.json").read_text())
    assert meta == entry.meta
    assert meta["key"] == make_key(PARTS) and meta["kind"] == "things"
    assert meta["describe"] == "a test entry" and meta["note"] == "built"
    assert meta["key_parts"] == PARTS
    assert set(meta["files"]) == {"a.bin", "b.txt"}
    for name, digest in meta["files"].items():
        assert digest == hashlib.sha256((entry.path / name).read_bytes()).hexdigest()
    assert entry.file("a.bin").read_bytes() == b"\x00\x01hello"


def test_second_call_is_a_hit_without_building(root):
    build = Builder()
    first = get_or_build("things", PARTS, build)
    second = get_or_build("things", PARTS, build)
    assert (first.hit, second.hit) == (False, True)
    assert build.calls == 1
    assert second.path == first.path and second.meta == first.meta


def test_different_parts_are_different_entries(root):
    a = get_or_build("things", PARTS, Builder())
    b = get_or_build("things", {**PARTS, "n": 4}, Builder())
    c = get_or_build("other", PARTS, Builder())
    assert len({a.path, b.path, c.path}) == 3
    assert not (a.hit or b.hit or c.hit)


def test_missing_meta_is_rebuilt(root):
    build = Builder()
    entry = get_or_build("things", PARTS, build)
    (entry.path / "meta.json").unlink()
    again = get_or_build("things", PARTS, build)
    assert not again.hit and build.calls == 2
    assert (again.path / "meta.json").exists()
    assert get_or_build("things", PARTS, build).hit


@pytest.mark.parametrize("damage", ["modify", "truncate", "delete", "garbage-meta"])
def test_corrupt_entry_is_rebuilt(root, damage):
    build = Builder(b"x" * 1000)
    entry = get_or_build("things", PARTS, build)
    target = entry.path / "a.bin"
    if damage == "modify":
        target.write_bytes(b"y" * 1000)
    elif damage == "truncate":
        target.write_bytes(target.read_bytes()[:10])
    elif damage == "delete":
        target.unlink()
    else:
        (entry.path / "meta.json").write_text("{not json")
    assert not [e for e in list_entries("things") if e["ok"]]
    again = get_or_build("things", PARTS, build)
    assert not again.hit and build.calls == 2
    assert (again.path / "a.bin").read_bytes() == b"x" * 1000
    assert [e["ok"] for e in list_entries("things")] == [True]


def test_failed_build_leaves_nothing_behind(root):
    def broken(tmp):
        (tmp / "half.bin").write_bytes(b"half")
        raise RuntimeError("build failed")

    with pytest.raises(RuntimeError, match="build failed"):
        get_or_build("things", PARTS, broken)
    kdir = root / "things"
    assert not [p for p in kdir.iterdir() if p.is_dir()]  # no entry, no temporary folder
    assert list_entries() == []
    assert not get_or_build("things", PARTS, Builder()).hit


# ------------------------------------------------------------------ concurrency
def test_concurrent_threads_build_once(root):
    build = Builder(b"shared", delay=0.2)
    results, errors = [], []
    barrier = threading.Barrier(6)

    def worker():
        try:
            barrier.wait()
            results.append(get_or_build("things", PARTS, build))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert len(results) == 6
    assert build.calls == 1
    assert sum(not r.hit for r in results) == 1
    assert {r.path for r in results} == {root / "things" / make_key(PARTS)}
    assert all(r.file("a.bin").read_bytes() == b"shared" for r in results)
    # no temporary folders are left over
    assert [p.name for p in (root / "things").iterdir() if p.is_dir()] == [make_key(PARTS)]


def test_concurrent_threads_different_keys(root):
    builders = [Builder(str(k).encode()) for k in range(4)]
    out = {}

    def worker(k):
        out[k] = get_or_build("things", {**PARTS, "n": k}, builders[k])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert all(out[k].file("a.bin").read_bytes() == str(k).encode() for k in range(4))
    assert len(list_entries("things")) == 4


# ------------------------------------------------------------------ list / clear
def test_list_entries_and_clear(root):
    get_or_build("alpha", {"k": 1}, Builder(), describe="alpha one")
    get_or_build("alpha", {"k": 2}, Builder(), describe="alpha two")
    beta = get_or_build("beta", {"k": 1}, Builder(b"12345"), describe="beta one")
    (root / "README.md").write_text("keep me\n")

    entries = list_entries()
    assert sorted((e["kind"], e["describe"]) for e in entries) == [
        ("alpha", "alpha one"), ("alpha", "alpha two"), ("beta", "beta one")]
    assert all(e["ok"] for e in entries)
    (b,) = list_entries("beta")
    assert b["key"] == beta.meta["key"] and Path(b["path"]) == beta.path
    assert b["bytes"] == sum(f.stat().st_size for f in beta.path.iterdir() if f.is_file())
    assert list_entries("gamma") == []

    (beta.path / "a.bin").write_bytes(b"tampered")
    (b,) = list_entries("beta")
    assert not b["ok"] and "corrupt" in b["describe"]

    assert clear("alpha") == 2
    assert [e["kind"] for e in list_entries()] == ["beta"]
    assert clear() == 1
    assert list_entries() == []
    assert (root / "README.md").read_text() == "keep me\n"
    assert clear() == 0
    # the cache still works after clearing
    assert not get_or_build("alpha", {"k": 1}, Builder()).hit


# ------------------------------------------------------------------ location
def test_env_var_overrides_the_location(tmp_path, monkeypatch):
    target = tmp_path / "some" / "nested" / "cache"
    monkeypatch.setenv(cache.ENV_VAR, str(target))
    assert cache_root() == target and target.is_dir()
    entry = get_or_build("things", PARTS, Builder())
    assert entry.path.parent.parent == target
    assert Path(list_entries()[0]["path"]).is_relative_to(target)


def test_session_cache_is_private():
    """conftest.py points every test session at a private cache, never the repository's."""
    root = cache_root()
    repo = Path(__file__).resolve().parents[1]
    assert os.environ.get(cache.ENV_VAR)
    assert not root.resolve().is_relative_to(repo / "generated")


def test_unwritable_location_is_a_clear_error(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv(cache.ENV_VAR, str(blocker / "cache"))
    with pytest.raises(cache.CCDGenError, match="cannot create the cache folder"):
        cache_root()
