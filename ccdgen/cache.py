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

import errno
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
    """What, besides its source, changes the machine code compiled from a generated kernel:
    the JIT (Numba, llvmlite), NumPy's ABI, the Python ABI and the CPU architecture.
    (The ccdgen version is written into every generated source, so it is covered there.)"""
    from importlib.metadata import version

    return {
        "numpy": version("numpy"),
        "numba": version("numba"),
        "llvmlite": version("llvmlite"),
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
    path = root / key
    meta = _verify(path)
    if meta is not None:
        return Entry(path, meta, True)
    try:
        root.mkdir(parents=True, exist_ok=True)
        return _build_locked(root, path, key, kind, key_parts, build, describe)
    except PermissionError as exc:
        raise _unwritable(root, exc) from None
    except OSError as exc:
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            raise _unwritable(root, exc) from None
        raise


def _unwritable(root: Path, exc: OSError) -> CCDGenError:
    return CCDGenError(
        f"cannot write to the cache folder {root}: {exc.strerror or exc}",
        why="ccdgen stores derived invariant bases and generated kernels there (they are "
        "rebuilt when missing, so nothing is lost)",
        fix=f"make the folder writable, or set {ENV_VAR} to a writable folder "
        f"(e.g. export {ENV_VAR}=$HOME/.cache/ccdgen)")


def _build_locked(root: Path, path: Path, key: str, kind: str, key_parts: dict, build, describe: str) -> Entry:
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


def jit_cache_ok(entry: Path) -> bool:
    """True unless one of Numba's cache files next to a generated kernel (``__pycache__/
    *.nbi|*.nbc``) cannot be read back.  A corrupt one is deleted and rebuilt when the
    kernel is next loaded."""
    import io
    import pickletools

    pyc = Path(entry) / "__pycache__"
    if not pyc.is_dir():
        return True
    for p in sorted(pyc.iterdir()):
        if p.suffix not in (".nbi", ".nbc"):
            continue
        try:  # parse the pickles' opcodes (without importing what they refer to)
            stream = io.BytesIO(p.read_bytes())
            for _ in range(2 if p.suffix == ".nbi" else 1):  # .nbi: version header + index
                *_, (op, _, _) = pickletools.genops(stream)
                if op.name != "STOP":
                    return False
            if stream.read():
                return False
        except Exception:
            return False
    return True


def list_entries(kind: str | None = None) -> list[dict]:
    """Every entry (verified or not) with its kind, key, size and description."""
    root = cache_root()
    out = []
    for kdir in sorted(p for p in root.iterdir() if p.is_dir()):
        if kind and kdir.name != kind:
            continue
        for e in sorted(p for p in kdir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            meta = _verify(e)
            jit_ok = jit_cache_ok(e)
            size = sum(f.stat().st_size for f in e.rglob("*") if f.is_file())
            describe = (meta or {}).get("describe", "(corrupt or incomplete)")
            if not jit_ok:
                describe += " [Numba cache corrupt: rebuilt on next use]"
            out.append({"kind": kdir.name, "key": e.name, "ok": meta is not None and jit_ok, "bytes": size,
                        "describe": describe, "path": str(e)})
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
