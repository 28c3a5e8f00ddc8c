"""A safe content-addressed disk cache (``generated/`` by default).

Layout: ``<root>/<kind>/<key>/`` holding the artefact files and ``meta.json``, which
records what produced the entry and the SHA-256 of every file.  ``meta.json`` is written
last, so an entry without a valid ``meta.json`` — or whose files' hashes do not match —
is incomplete or corrupt and is rebuilt.  Writers build into a temporary folder and
``os.replace`` it into place under an inter-process :class:`filelock.FileLock`, so
concurrent processes building the same entry both succeed and see the same result.

The root is ``$CCDGEN_CACHE_DIR`` if set, else the repository's ``generated/`` when
running from a source checkout, else ``~/.cache/ccdgen``.  The location never changes a key.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

from filelock import FileLock

from . import __version__
from .errors import CCDGenError

ENV_VAR = "CCDGEN_CACHE_DIR"


def cache_root() -> Path:
    """The cache folder (created if needed)."""
    env = os.environ.get(ENV_VAR)
    if env:
        root = Path(env)
    else:
        repo = Path(__file__).resolve().parent.parent
        root = repo / "generated" if (repo / "pyproject.toml").exists() else Path.home() / ".cache" / "ccdgen"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CCDGenError(f"cannot create the cache folder {root}: {exc}",
                          fix=f"set {ENV_VAR} to a writable folder") from None
    return root


def environment_fingerprint() -> dict:
    """Versions that change derived artefacts or generated code."""
    import numba
    import numpy

    return {
        "ccdgen": __version__,
        "numpy": numpy.__version__,
        "numba": numba.__version__,
        "python": f"{sys.implementation.cache_tag}-{platform.machine()}",
    }


def make_key(parts: dict) -> str:
    """SHA-256 of a canonical JSON rendering of ``parts`` (sorted keys)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Entry:
    """A complete, verified cache entry."""

    def __init__(self, path: Path, meta: dict, hit: bool):
        self.path, self.meta, self.hit = path, meta, hit

    def file(self, name: str) -> Path:
        return self.path / name


def _verify(path: Path) -> dict | None:
    meta_path = path / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
        for name, digest in meta["files"].items():
            if _file_hash(path / name) != digest:
                return None
        return meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def get_or_build(kind: str, key_parts: dict, build: Callable[[Path], dict], describe: str = "") -> Entry:
    """Return the entry for ``key_parts``, building it with ``build(tmpdir)`` if absent or corrupt.

    ``build`` writes its files into ``tmpdir`` and returns extra metadata (JSON-able).
    """
    key = make_key(key_parts)
    root = cache_root() / kind
    root.mkdir(parents=True, exist_ok=True)
    path = root / key
    meta = _verify(path)
    if meta is not None:
        return Entry(path, meta, True)
    with FileLock(str(root / f"{key}.lock")):
        meta = _verify(path)  # someone else may have built it meanwhile
        if meta is not None:
            return Entry(path, meta, True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}-", dir=root))
        try:
            extra = build(tmp) or {}
            files = {p.name: _file_hash(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            meta = {"key": key, "kind": kind, "describe": describe, "key_parts": key_parts,
                    "files": files, **extra}
            (tmp / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
            if path.exists():  # corrupt or half-written entry: replace it
                shutil.rmtree(path, ignore_errors=True)
            os.replace(tmp, path)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return Entry(path, meta, False)


def list_entries(kind: str | None = None) -> list[dict]:
    """Every entry (verified or not) with its kind, key, size and description."""
    root = cache_root()
    out = []
    for kdir in sorted(p for p in root.iterdir() if p.is_dir()):
        if kind and kdir.name != kind:
            continue
        for e in sorted(p for p in kdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            meta = _verify(e)
            size = sum(f.stat().st_size for f in e.iterdir() if f.is_file())
            out.append({"kind": kdir.name, "key": e.name, "ok": meta is not None, "bytes": size,
                        "describe": (meta or {}).get("describe", "(corrupt or incomplete)"), "path": str(e)})
    return out


def clear(kind: str | None = None) -> int:
    """Delete entries (of one kind, or all); keeps ``README.md``.  Returns the count."""
    root = cache_root()
    n = 0
    for kdir in [p for p in root.iterdir() if p.is_dir()]:
        if kind and kdir.name != kind:
            continue
        with FileLock(str(root / f".{kdir.name}.clear.lock")):
            n += sum(1 for p in kdir.iterdir() if p.is_dir() and not p.name.startswith("."))
            shutil.rmtree(kdir, ignore_errors=True)
    return n
