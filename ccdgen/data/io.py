"""Reading, validating and writing labelled configurations.

- :func:`read_dataset` reads one or more files (extxyz first, any format ASE reads;
  ``.gz``/``.bz2``/``.xz`` transparently) into a validated :class:`~ccdgen.data.dataset.Dataset`.
- :func:`write_dataset` writes extxyz (energy, forces, stress in ASE's conventions,
  readable by ``ase.io.read``) atomically: a temporary file, fsync, ``os.replace``.
- :func:`append_frames` / :func:`read_completed` make labelling jobs resumable.

**Fast path.**  extxyz files whose frames use the layouts ``species:S:1:pos:R:3`` or
``species:S:1:pos:R:3:forces:R:3`` (the common ones, and what ccdgen writes) are parsed in
bulk: the comment lines with a parser equal to ASE's ``key_val_str_to_dict`` on simple
lines (ASE's own parser otherwise), the atom lines all at once with ``numpy.loadtxt``.
The result equals ``ase.io.read`` frame by frame (tests check numbers, positions, cell,
pbc, info, energy, forces and stress exactly).  Anything else — other columns, ``VEC``
lines, other formats — goes through ``ase.io.iread``.  A Dataset keeps numbers,
positions, cell, pbc, energy, forces, stress and ``info``; other per-atom columns are not
kept, and per-frame results ASE files under the calculator (``free_energy``, ``dipole``,
...) stay in ``info``.

**Cache.**  A whole-file parse of a file of at least :data:`CACHE_MIN_BYTES` is stored in
the ccdgen cache (kind ``datasets``) keyed by the file's SHA-256, the reader version and
the ASE version — never by its name — so a second read, or a renamed copy, loads arrays
instead of parsing.  Validation always runs on the loaded arrays.

**Resumable appends.**  :func:`append_frames` writes each frame with one ``write`` of its
whole text, then ``fsync``.  A kill can therefore only leave the *last* frame incomplete
(missing lines or a last line without its newline).  :func:`read_completed` returns the
complete frames and drops such a tail with a :class:`TruncatedFrameWarning`; the next
:func:`append_frames` cuts the tail off before it writes, so the file is a valid extxyz
again.  Damage anywhere but the tail is an error, never silently dropped.  One writer per
file at a time.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import json
import lzma
import os
import re
import sys
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from ase.io.extxyz import SPECIAL_3_3_KEYS, UNPROCESSED_KEYS

from ..errors import CCDGenError, DataError
from .dataset import (
    DUPLICATE_TOL,
    Dataset,
    Frame,
    atoms_record,
    canonical_stress,
    validate_dataset,
)

#: Bumped whenever the parsed arrays of a file could change (part of the cache key).
READER_VERSION = 1

#: Files at least this large (bytes on disk) are cached after a whole-file parse.
CACHE_MIN_BYTES = 1 << 20

#: Show a progress bar (when ``progress=None``) for decompressed text at least this large.
PROGRESS_MIN_BYTES = 20 << 20

#: Per-atom layouts of the fast path → number of columns.
FAST_LAYOUTS = {"species:S:1:pos:R:3": 4, "species:S:1:pos:R:3:forces:R:3": 7}

_XYZ_SUFFIXES = (".xyz", ".extxyz")
_COMPRESSED = {".gz": gzip.decompress, ".bz2": bz2.decompress, ".xz": lzma.decompress}
_MAGIC = ((b"\x1f\x8b", gzip.decompress), (b"BZh", bz2.decompress),
          (b"\xfd7zXZ\x00", lzma.decompress))


class TruncatedFrameWarning(UserWarning):
    """The last frame of a file is incomplete (a job was killed while writing it)."""


class _NotFast(Exception):
    """The file needs ASE's reader (a layout the fast path does not handle)."""


class _Unstorable(Exception):
    """Info values the cache cannot store exactly (the parse is used uncached)."""


# ============================================================================ file access
def _read_bytes(path: Path, name: str) -> bytes:
    """The file's bytes, decompressed if gzip/bz2/xz (by magic number)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"cannot read {name}: no such file",
                        fix="check the path (relative paths start at the current folder)") from None
    except IsADirectoryError:
        raise DataError(f"cannot read {name}: it is a folder, not a file") from None
    except OSError as exc:
        raise DataError(f"cannot read {name}: {exc.strerror or exc}") from None
    for magic, decompress in _MAGIC:
        if raw.startswith(magic):
            try:
                return decompress(raw)
            except (OSError, EOFError, ValueError, lzma.LZMAError) as exc:
                raise DataError(f"cannot read {name}: the compressed data is corrupt or "
                                f"truncated ({exc})",
                                fix="copy the file again, or decompress it to see how far it goes") from None
    return raw


def file_sha256(path) -> str:
    """SHA-256 (hex) of a file's bytes as stored (compressed or not)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _strip_compression(path: Path) -> Path:
    return path.with_suffix("") if path.suffix.lower() in _COMPRESSED else path


def _guess_format(path: Path, name: str) -> str:
    if _strip_compression(path).suffix.lower() in _XYZ_SUFFIXES:
        return "extxyz"
    from ase.io.formats import filetype

    try:
        fmt = filetype(str(path))
    except Exception as exc:  # ASE raises several types for unknown files
        raise DataError(f"cannot tell the format of {name}: {exc}",
                        fix="pass format='extxyz' (or another ASE format name)") from None
    return "extxyz" if fmt in ("xyz", "extxyz") else fmt


# ============================================================================ comment lines
_KEY = r"[^\s=\"'\\{}\[\]]+"
_PAIR = rf"({_KEY})(?:=(\"[^\"\\]*\"|{_KEY}))?"
#: One pass over a line: pairs of the simple grammar, or a lone non-blank character in
#: group 3 wherever the grammar does not hold (then the line goes to ASE's parser).
_TOKEN_RE = re.compile(rf"{_PAIR}(?=\s|$)|(\S)")
_SPLIT_RE = re.compile(r"[^\s,]+")
_STR_TO_BOOL = {"T": True, "F": False, "true": True, "false": False,
                "True": True, "False": False, "TRUE": True, "FALSE": False}


_INT = r"[+-]?[0-9]{1,18}"
_FLOAT = r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?"
_INTS_RE = re.compile(rf"\s*{_INT}(?:\s+{_INT})*\s*")
_FLOATS_RE = re.compile(rf"\s*{_FLOAT}(?:\s+{_FLOAT})*\s*")
_MAYBE_NUMBER = re.compile(r"[0-9]|[nN][aA][nN]|[iI][nN][fF]")


def _numeric(value: str):
    """ASE's "int array, else float array, else unchanged" step; None when not numeric.

    Plain decimal values are converted directly; anything else goes through the same
    ``np.array(..., dtype=int/float)`` calls as ASE.
    """
    if "," not in value:
        if _INTS_RE.fullmatch(value):
            return np.array([int(t) for t in value.split()], dtype=int)
        if _FLOATS_RE.fullmatch(value):
            return np.array([float(t) for t in value.split()], dtype=float)
    split_value = _SPLIT_RE.findall(value)
    if split_value and not any(_MAYBE_NUMBER.search(t) for t in split_value):
        return None  # no digit, nan or inf anywhere: neither int() nor float() parses it
    try:
        try:
            return np.array(split_value, dtype=int)
        except (ValueError, OverflowError):
            return np.array(split_value, dtype=float)
    except (ValueError, OverflowError):
        return None


def _convert_value(key: str, value: str):
    """One value as ASE 3.29's ``key_val_str_to_dict`` converts it (numbers, arrays,
    3x3 special keys in Fortran order, booleans, ``_JSON``)."""
    if key.lower() not in UNPROCESSED_KEYS:
        numvalue = _numeric(value)
        if numvalue is not None:
            value = numvalue[0] if len(numvalue) == 1 else numvalue
        if key in SPECIAL_3_3_KEYS:
            if not isinstance(value, np.ndarray) or value.shape != (9,):
                raise ValueError(f"Got info item {key}, expecting special 3x3 matrix, but "
                                 "value is not in the form of a 9-long numerical vector")
            value = np.array(value).reshape((3, 3), order="F")
        if isinstance(value, str):
            try:
                boolvalue = [_STR_TO_BOOL[v] for v in _SPLIT_RE.findall(value)]
                value = boolvalue[0] if len(boolvalue) == 1 else boolvalue
            except KeyError:
                if value.startswith("_JSON "):
                    d = json.loads(value.replace("_JSON ", "", 1))
                    value = np.array(d)
                    if value.dtype.kind not in ["i", "f", "b"]:
                        value = d
    return value


def parse_comment(line: str, memo: dict | None = None) -> dict:
    """An extxyz comment line → dict, equal to ``ase.io.extxyz.key_val_str_to_dict``.

    Simple lines (ASCII; ``key=value``, ``key="quoted value"`` or bare ``key`` separated by
    spaces; no single quotes, braces, brackets or backslashes) are tokenized by one regular
    expression; any other line goes to ASE's character-by-character parser.  ``memo`` (a
    dict the caller keeps across lines) remembers conversions of short repeated values
    that give immutable results (strings, numbers, booleans).
    Raises ``ValueError`` where ASE does (e.g. a ``Lattice`` that is not 9 numbers).
    """
    line = line.strip()
    if not line:
        return {}
    tokens = _TOKEN_RE.findall(line) if line.isascii() else None
    if tokens is None or any(t[2] for t in tokens):
        from ase.io.extxyz import key_val_str_to_dict

        return key_val_str_to_dict(line)
    out = {}
    for key, value, _ in tokens:
        if not value:
            value = "T"
        elif value[0] == '"':
            value = value[1:-1]
        if memo is not None and len(value) <= 40:
            mk = (key, value)
            got = memo.get(mk, memo)
            if got is memo:
                got = _convert_value(key, value)
                if not isinstance(got, (np.ndarray, list, dict)):
                    memo[mk] = got
            out[key] = got
        else:
            out[key] = _convert_value(key, value)
    return out


def _frame_header(info: dict, where: str):
    """ASE's per-frame post-processing of the comment dict: pops ``pbc``, ``Lattice``,
    ``Properties``, ``energy``, ``stress``; returns (cell, pbc, properties, energy, stress)."""
    if "pbc" in info:
        pbc = info.pop("pbc")
    elif "Lattice" in info:
        pbc = True
    else:
        pbc = False
    try:
        pbc = np.broadcast_to(np.asarray(pbc, dtype=bool), (3,))
    except (ValueError, TypeError):
        raise DataError(f"{where}: pbc={pbc!r} is not 1 or 3 booleans",
                        fix='write pbc="T T T" (or T/F per axis)') from None
    cell = info.pop("Lattice").T.astype(float) if "Lattice" in info else np.zeros((3, 3))
    props = info.pop("Properties", "species:S:1:pos:R:3")
    energy = info.pop("energy", None)
    stress = info.pop("stress", None)
    if energy is not None:
        try:
            energy = float(np.asarray(energy, dtype=float).reshape(()))
        except (TypeError, ValueError):
            raise DataError(f"{where}: energy={energy!r} is not a number",
                            fix="write one energy per frame in eV, e.g. energy=-1028.0") from None
    if stress is not None:
        stress = canonical_stress(stress, where)
    return cell, pbc, props, energy, stress


# ============================================================================ batched headers
def _floats_batch(values: list, width: int):
    """``(len(values), width)`` float64 from strings of ``width`` plain numbers each, or
    None when any value is not exactly that (those frames take the per-frame route)."""
    if any(len(v.split()) != width for v in values):
        return None
    try:
        flat = [float(t) for t in " ".join(values).split()]
    except ValueError:
        return None
    return np.array(flat, dtype=float).reshape(len(values), width)


def _parse_headers(comments: list, name: str, bar=None):
    """Comment lines (bytes) of every frame → stacked header arrays and info dicts.

    Simple lines are tokenized first; ``Lattice``, ``stress`` and ``energy`` of all frames
    are then converted in one batch each (they go to arrays, so ASE's int/float typing of
    them does not matter), ``pbc``/``Properties`` once per distinct text, other values per
    frame through :func:`_convert_value` with a memo.  Lines that are not simple, repeat a
    key, or hold a value the batch cannot take go through :func:`parse_comment` and
    :func:`_frame_header` — exactly ASE's route.
    Returns ``(cells, pbc, layout, energies, has_energy, stresses, has_stress, infos)``.
    """
    n = len(comments)
    cells = np.zeros((n, 3, 3))
    pbc = np.zeros((n, 3), bool)
    energies = np.full(n, np.nan)
    has_e = np.zeros(n, bool)
    stresses = np.full((n, 3, 3), np.nan)
    has_s = np.zeros(n, bool)
    layout = np.zeros(n, np.int64)
    infos: list = [None] * n
    raw: list = [None] * n
    for k, b in enumerate(comments):
        try:
            line = b.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise DataError(f"{name}, frame {k}: the comment line is not UTF-8 text") from None
        if not line:
            raw[k] = {}
        elif line.isascii():
            pairs = _TOKEN_RE.findall(line)
            d = {key: ("T" if not v else v[1:-1] if v[0] == '"' else v) for key, v, junk in pairs}
            if len(d) == len(pairs) and not any(t[2] for t in pairs):
                raw[k] = d
        if bar is not None and k % 4000 == 3999:
            bar.update(k + 1 - bar.n)
    for key, width in (("Lattice", 9), ("stress", 9), ("energy", 1)):
        ks = [k for k in range(n) if raw[k] is not None and key in raw[k]]
        if not ks:
            continue
        vals = _floats_batch([raw[k][key] for k in ks], width)
        if vals is None:
            for k in ks:
                raw[k] = None  # per-frame route, which raises ASE's error if there is one
            continue
        if key == "Lattice":
            cells[ks] = vals.reshape(-1, 3, 3)
        elif key == "stress":  # 9 values in Fortran order → ASE's Voigt → symmetric 3x3
            v = vals[:, [0, 4, 8, 7, 6, 3]]
            stresses[ks] = np.stack([v[:, [0, 5, 4]], v[:, [5, 1, 3]], v[:, [4, 3, 2]]], axis=1)
            has_s[ks] = True
        else:
            energies[ks] = vals[:, 0]
            has_e[ks] = True
    memo: dict = {}
    for k in range(n):
        where = f"{name}, frame {k}"
        d = raw[k]
        if d is None:
            try:
                info = parse_comment(comments[k].decode("utf-8"), memo)
            except (ValueError, json.JSONDecodeError) as exc:
                raise DataError(f"{where}: cannot parse the comment line: {exc}",
                                fix="write key=value pairs; Lattice and stress need 9 numbers "
                                    "in quotes") from None
            cell, p, props, e, s = _frame_header(info, where)
            cells[k], pbc[k] = cell, p
            if e is not None:
                energies[k], has_e[k] = e, True
            if s is not None:
                stresses[k], has_s[k] = s, True
        else:
            info = {}
            props = "species:S:1:pos:R:3"
            p = "Lattice" in d
            for key, value in d.items():
                if key in ("Lattice", "stress", "energy"):
                    continue
                mk = (key, value)
                got = memo.get(mk, memo)
                if got is memo:
                    got = _convert_value(key, value)
                    if key in ("pbc", "Properties") or (
                            len(value) <= 40 and not isinstance(got, (np.ndarray, list, dict))):
                        memo[mk] = got  # pbc/Properties are read, never stored
                if key == "pbc":
                    p = got
                elif key == "Properties":
                    props = got
                else:
                    info[key] = got
            try:
                pbc[k] = np.broadcast_to(np.asarray(p, dtype=bool), (3,))
            except (ValueError, TypeError):
                raise DataError(f"{where}: pbc={p!r} is not 1 or 3 booleans",
                                fix='write pbc="T T T" (or T/F per axis)') from None
        if not isinstance(props, str) or props not in FAST_LAYOUTS:
            raise _NotFast(f"Properties={props}")
        layout[k] = FAST_LAYOUTS[props]
        infos[k] = info
    if bar is not None:
        bar.update(n - bar.n)
    return cells, pbc, layout, energies, has_e, stresses, has_s, infos


# ============================================================================ frame scan
def _scan(lines: list, name: str, tolerant: bool):
    """Frame boundaries of an xyz text split into ``lines`` (on ``b"\\n"``).

    Returns ``(starts, natoms, end_line, tail)``: the header line index and atom count of
    each frame, the line where scanning stopped, and ``tail`` = None, or a description of
    the incomplete last frame (``tolerant`` only; otherwise that is an error).  Like ASE,
    scanning stops at the first blank header line.
    """
    starts, counts = [], []
    n_lines = len(lines)
    last = n_lines - 1  # lines[last] is the text after the final newline
    i = 0
    tail = None
    while i < n_lines:
        head = lines[i]
        if not head.strip():
            if i < last and any(ln.strip() for ln in lines[i + 1:]):
                if tolerant:
                    raise DataError(f"{name}: a blank line after frame {len(starts) - 1} is "
                                    "followed by more text",
                                    why="ASE stops reading at a blank line, so those frames "
                                        "would be lost",
                                    fix="remove the blank line")
                warnings.warn(f"{name}: text after the blank line that ends frame "
                              f"{len(starts) - 1} is ignored (as ase.io.read does)", stacklevel=3)
            break
        k = len(starts)
        try:
            natoms = int(head)
        except ValueError:
            if tolerant and i == last:
                tail = "a partly written atom-count line"
                break
            raise DataError(f"{name}, frame {k}: expected the atom-count line, got "
                            f"{head[:60].decode(errors='replace')!r} (line {i + 1})",
                            why="an xyz frame starts with its number of atoms",
                            fix="check that the previous frame has as many atom lines as its "
                                "count says") from None
        if natoms < 0:
            raise DataError(f"{name}, frame {k}: negative atom count {natoms} (line {i + 1})")
        end = i + 2 + natoms  # first line after the frame
        if tolerant and end > last:
            have = max(0, min(last, end) - i - 2)
            tail = f"frame {k}: {have} of {natoms} atom lines complete"
            break
        # lines[last] is a real line only when the file does not end with a newline
        n_real = n_lines if lines[-1].strip() else last
        if end > n_real and not (natoms == 0 and end == n_lines):
            have = max(0, n_real - i - 2)
            raise DataError(f"{name}, frame {k}: the file ends after {have} of {natoms} atom lines",
                            why="the file is truncated (a copy or a job stopped part-way)",
                            fix="read it with read_completed() to keep the complete frames, or "
                                "write it again")
        starts.append(i)
        counts.append(natoms)
        i = end
        if i < n_lines and lines[i].lstrip().startswith(b"VEC"):
            raise _NotFast("VEC lines")
    return starts, counts, i, tail


# ============================================================================ fast parser
def _bad_atom_line(lines, starts, counts, sel, ncols, name):
    """Locate the first malformed atom line among frames ``sel``; DataError, or _NotFast
    when every line has at least ``ncols`` numeric-looking columns (ASE ignores extras)."""
    for k in sel:
        i, n = starts[k], counts[k]
        for j in range(n):
            toks = lines[i + 2 + j].split()
            bad = len(toks) < ncols
            if not bad:
                try:
                    [float(t) for t in toks[1:ncols]]
                except ValueError:
                    bad = True
            if bad:
                text = lines[i + 2 + j][:80].decode(errors="replace")
                raise DataError(f"{name}, frame {k}: atom line {j} ({text!r}) does not have the "
                                f"{ncols} columns (species and {ncols - 1} numbers) its "
                                "Properties declare",
                                fix="check that frame; a line may be cut or a value missing")
    raise _NotFast("atom lines that numpy cannot parse")


def _parse_xyz(data: bytes, name: str, progress=None, tolerant: bool = False):
    """Parse extxyz text into a Dataset (sources: ``name``).  Raises :class:`_NotFast` for
    layouts the fast path does not handle.  Returns ``(dataset, tail, n_complete_bytes)``."""
    from ase.data import atomic_numbers

    if b"\r\n" in data:
        if tolerant:
            raise _NotFast("CRLF line ends")
        data = data.replace(b"\r\n", b"\n")
    lines = data.split(b"\n")
    starts, counts, end_line, tail = _scan(lines, name, tolerant)
    n_bytes = min(sum(map(len, lines[:end_line])) + end_line, len(data)) if tolerant else len(data)
    n = len(starts)
    if n == 0:
        return Dataset.empty(), tail, n_bytes
    bar = _progress_bar(progress, len(data), n, f"reading {Path(name).name}")
    try:
        h = _parse_headers([lines[i + 1] for i in starts], name, bar)
    finally:
        if bar is not None:
            bar.close()
    cells, pbc, layout, energies, has_e, stresses, has_s, infos = h
    counts_a = np.asarray(counts, np.int64)
    offsets = np.concatenate([[0], np.cumsum(counts_a)])
    total = int(offsets[-1])
    species = np.empty(total, dtype="S8")
    positions = np.empty((total, 3))
    forces = np.full((total, 3), np.nan)
    has_f = layout == 7
    for ncols in np.unique(layout):
        sel = np.flatnonzero(layout == ncols)
        rows = []
        for k in sel:
            i = starts[k]
            rows.extend(lines[i + 2:i + 2 + counts[k]])
        dtype = [("s", "S8"), ("v", "f8", (int(ncols) - 1,))]
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                table = np.loadtxt(rows, dtype=dtype, comments=None, ndmin=1)
        except ValueError:
            _bad_atom_line(lines, starts, counts, sel, int(ncols), name)
        if len(table) != len(rows):  # loadtxt skips blank lines
            _bad_atom_line(lines, starts, counts, sel, int(ncols), name)
        if len(sel) == n:
            dest = slice(None)
        else:
            dest = np.concatenate([np.arange(offsets[k], offsets[k + 1]) for k in sel])
        species[dest] = table["s"]
        positions[dest] = table["v"][:, :3]
        if ncols == 7:
            forces[dest] = table["v"][:, 3:6]
    uniq, inverse = np.unique(species, return_inverse=True)
    znum = np.zeros(len(uniq), np.int64)
    for u, sym in enumerate(uniq):
        s = sym.decode(errors="replace").capitalize()
        if s not in atomic_numbers:
            atom = int(np.flatnonzero(inverse == u)[0])
            k = int(np.searchsorted(offsets, atom, side="right") - 1)
            raise DataError(f"{name}, frame {k}: unknown chemical symbol {s!r} "
                            f"(atom {atom - offsets[k]})",
                            fix="the first column of each atom line must be an element symbol")
        znum[u] = atomic_numbers[s]
    ds = Dataset(numbers_flat=znum[inverse.reshape(-1)], positions_flat=positions,
                 atom_offsets=offsets, cells=cells, pbc=pbc, energies=energies,
                 has_energy=has_e, forces_flat=forces, has_forces=has_f, stresses=stresses,
                 has_stress=has_s, infos=infos, source_names=[name],
                 source_ids=np.zeros(n, np.int64), source_index=np.arange(n))
    return ds, tail, n_bytes


def _progress_bar(progress, n_bytes, total, desc):
    if progress is False or (progress is None and n_bytes < PROGRESS_MIN_BYTES):
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="frame", disable=None if progress is None else False,
                file=sys.stderr, leave=False)


# ============================================================================ ASE route
def _read_ase(source, name: str, fmt: str | None, index, progress) -> Dataset:
    """Frames ``index`` of ``source`` (a path or a text stream) through ``ase.io.iread``."""
    import ase.io

    records = []
    try:
        it = ase.io.iread(source, index=index, format=fmt)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(it, desc=f"reading {Path(name).name} (ASE)", unit="frame", leave=False,
                       file=sys.stderr)
            it = bar
        try:
            for k, atoms in enumerate(it):
                records.append(atoms_record(atoms, 0, k))
        finally:
            if bar is not None:
                bar.close()
    except DataError:
        raise
    except Exception as exc:  # ASE raises many types on bad input; report them all alike
        raise DataError(f"cannot read {name} with ASE (format {fmt or 'auto'}), frame "
                        f"{len(records)}: {type(exc).__name__}: {exc}",
                        fix="check that frame; extxyz frames need an atom count, a comment "
                            "line and one line per atom") from None
    return Dataset.from_records(records, [name])


# ============================================================================ cache
def _encode_info(value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"array of dtype {value.dtype}")
        return {"__nd__": value.dtype.str, "shape": list(value.shape), "data": value.ravel().tolist()}
    if isinstance(value, np.generic):
        if value.dtype.kind not in "biuf":
            raise TypeError(f"scalar of dtype {value.dtype}")
        return {"__np__": value.dtype.str, "v": value.item()}
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TypeError("non-string dict keys")
        return {"__dict__": {k: _encode_info(v) for k, v in value.items()}}
    if isinstance(value, list):
        return [_encode_info(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"{type(value).__name__}")


def _decode_info(value):
    if isinstance(value, dict):
        if "__nd__" in value:
            return np.array(value["data"], dtype=np.dtype(value["__nd__"])).reshape(value["shape"])
        if "__np__" in value:
            return np.dtype(value["__np__"]).type(value["v"])
        return {k: _decode_info(v) for k, v in value["__dict__"].items()}
    if isinstance(value, list):
        return [_decode_info(v) for v in value]
    return value


_ARRAYS = ("numbers_flat", "positions_flat", "atom_offsets", "cells", "pbc", "energies",
           "has_energy", "has_forces", "has_stress")


def _save_entry(ds: Dataset, folder: Path) -> dict:
    arrays = {k: getattr(ds, k) for k in _ARRAYS}
    arrays["numbers_flat"] = arrays["numbers_flat"].astype(np.int16)
    if ds.forces_flat is not None:
        arrays["forces_flat"] = ds.forces_flat
    if ds.stresses is not None:
        arrays["stresses"] = ds.stresses
    with open(folder / "arrays.npz", "wb") as fh:
        np.savez(fh, **arrays)
    try:
        text = json.dumps([{k: _encode_info(v) for k, v in inf.items()} for inf in ds._infos],
                          separators=(",", ":"))
    except TypeError as exc:
        raise _Unstorable(str(exc)) from None
    (folder / "info.json").write_text(text)
    return {"n_frames": ds.n_frames, "n_atoms_total": int(ds.atom_offsets[-1])}


def _load_entry(folder: Path, name: str) -> Dataset:
    with np.load(folder / "arrays.npz") as z:
        a = {k: z[k] for k in z.files}
    infos = [{k: _decode_info(v) for k, v in inf.items()}
             for inf in json.loads((folder / "info.json").read_text())]
    n = len(a["cells"])
    return Dataset(numbers_flat=a["numbers_flat"].astype(np.int64), positions_flat=a["positions_flat"],
                   atom_offsets=a["atom_offsets"], cells=a["cells"], pbc=a["pbc"],
                   energies=a["energies"], has_energy=a["has_energy"],
                   forces_flat=a.get("forces_flat"), has_forces=a["has_forces"],
                   stresses=a.get("stresses"), has_stress=a["has_stress"], infos=infos,
                   source_names=[name], source_ids=np.zeros(n, np.int64), source_index=np.arange(n))


def _parse_whole(path: Path, name: str, fmt: str, progress) -> Dataset:
    if fmt == "extxyz":
        data = _read_bytes(path, name)
        try:
            ds, _, _ = _parse_xyz(data, name, progress)
            return ds
        except _NotFast:
            pass
    if progress is None:
        progress = path.stat().st_size >= CACHE_MIN_BYTES and sys.stderr.isatty()
    return _read_ase(str(path), name, fmt, slice(None), progress)


def _read_whole(path: Path, name: str, fmt: str, cache, progress) -> Dataset:
    """Every frame of one file (unvalidated), through the cache when it pays."""
    size = path.stat().st_size
    if cache is False or (cache is None and size < CACHE_MIN_BYTES):
        return _parse_whole(path, name, fmt, progress)
    import ase

    from ..cache import get_or_build

    parts = {"what": "parsed dataset file", "sha256": file_sha256(path), "format": fmt,
             "reader": READER_VERSION, "ase": ase.__version__}
    built: list[Dataset] = []

    def build(folder: Path) -> dict:
        ds = _parse_whole(path, name, fmt, progress)
        built.append(ds)
        return _save_entry(ds, folder)

    try:
        entry = get_or_build("datasets", parts, build, describe=f"{path.name} (parsed frames)")
    except _Unstorable:  # info values the cache cannot store exactly: use them uncached
        return built[0] if built else _parse_whole(path, name, fmt, progress)
    except DataError:
        raise
    except (CCDGenError, OSError) as exc:  # the cache cannot be written: read without it
        warnings.warn(f"reading {name} without the cache: {str(exc).splitlines()[0]}", stacklevel=3)
        return built[0] if built else _parse_whole(path, name, fmt, progress)
    if built:
        return built[0]
    try:
        return _load_entry(entry.path, name)
    except (OSError, ValueError, KeyError):
        return _parse_whole(path, name, fmt, progress)


# ============================================================================ reading
def _select(index, n: int, name: str) -> np.ndarray:
    """Frame numbers picked by an ASE index (``":"``, ``"-1"``, ``"10:20:2"``, an int or a
    slice) out of ``n``."""
    from ase.io.formats import string2index

    idx = index
    if isinstance(idx, str):
        try:
            idx = string2index(idx)
        except ValueError:
            raise DataError(f"index {index!r} is not an ASE index",
                            fix="use ':' (all), '-1', '5', '100:200' or '::10'") from None
    if isinstance(idx, (int, np.integer)):
        if not -n <= idx < n:
            raise DataError(f"{name}: frame {int(idx)} does not exist (the file has {n} frames)",
                            fix=f"pick an index from 0 to {n - 1} (or -1 for the last)")
        return np.array([int(idx) % n])
    if isinstance(idx, slice):
        return np.arange(n)[idx]
    try:
        return np.arange(n)[np.asarray(idx, dtype=np.int64)]
    except (IndexError, ValueError, TypeError):
        raise DataError(f"{name}: index {index!r} picks frames that do not exist (the file has "
                        f"{n} frames)") from None


def _read_one(path, index, fmt, cache, progress) -> Dataset:
    name = str(path)
    path = Path(path)
    if not path.exists():
        raise DataError(f"cannot read {name}: no such file",
                        fix="check the path (relative paths start at the current folder)")
    if path.is_dir():
        raise DataError(f"cannot read {name}: it is a folder, not a file")
    fmt = fmt or _guess_format(path, name)
    whole = _read_whole(path, name, fmt, cache, progress)
    if whole.n_frames == 0:
        raise DataError(f"{name} has no frames",
                        why="the file is empty (or starts with a blank line)",
                        fix="check that the file was written completely")
    sel = _select(index, whole.n_frames, name)
    if len(sel) == 0:
        raise DataError(f"{name}: index {index!r} selects none of its {whole.n_frames} frames",
                        fix="check the index; ':' reads every frame")
    if len(sel) == whole.n_frames and np.array_equal(sel, np.arange(len(sel))):
        return whole
    return whole.subset(sel)


def read_dataset(paths, index=":", require=("energy",), *, composition=None,
                 check_composition: bool = True, duplicates: str = "error",
                 duplicate_tol: float = DUPLICATE_TOL, format: str | None = None,
                 cache: bool | None = None, progress: bool | None = None) -> Dataset:
    """Read and validate labelled configurations.

    Parameters
    ----------
    paths : path or list of paths — extxyz (fast), or any format ASE reads; ``.gz``,
        ``.bz2``, ``.xz`` are decompressed transparently.  Frames are concatenated in order.
    index : ASE index applied to *each* file: ``":"`` (all), ``":200"``, ``"::10"``,
        ``"-1"``, an int, a slice, or a list of frame numbers.
    require : labels every frame must carry, from ``"energy"``, ``"forces"``, ``"stress"``.
    composition : reference composition (``"CsPbBr3"`` or ``{"Cs": 1, ...}``); by default
        the first frame's.  Frames may hold any whole number of formula units.
    check_composition : False skips the composition check.
    duplicates : ``"error"`` (default), ``"drop"`` (keep the first of each, with a warning)
        or ``"keep"``; duplicates share numbers, and cell and positions to ``duplicate_tol`` Å.
    format : ASE format name to force (default: from the name, extxyz for .xyz/.extxyz).
    cache : None (default) caches whole-file parses of files ≥ 1 MiB, True always, False never.
    progress : show a tqdm bar; None shows one for large files on a terminal.

    Returns a validated :class:`~ccdgen.data.dataset.Dataset`; frames remember their file
    and frame index for messages.  Raises :class:`~ccdgen.errors.DataError` for missing,
    unreadable, empty or malformed files and for every failed check of
    :func:`~ccdgen.data.dataset.validate_dataset`.
    """
    if duplicates not in ("error", "drop", "keep"):
        raise DataError(f"duplicates={duplicates!r} is not an option",
                        fix="choose one of error, drop, keep")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    if not paths:
        raise DataError("no files to read", fix="pass one path or a list of paths")
    parts = [_read_one(p, index, format, cache, progress) for p in paths]
    ds = Dataset.concatenate(parts)
    return validate_dataset(ds, require, composition=composition,
                            check_composition=check_composition, duplicates=duplicates,
                            duplicate_tol=duplicate_tol)


# ============================================================================ writing
_RESERVED = {"Lattice", "Properties", "pbc", "energy", "stress", "forces"}


def _r(x: float) -> str:
    return repr(float(x))


def format_frame(frame: Frame) -> str:
    """One frame as extxyz text (ends with a newline).

    Layout ``species:S:1:pos:R:3[:forces:R:3]``; ``Lattice`` (if the cell is non-zero),
    ``energy`` (eV), ``stress`` (9 numbers, eV/Å³, ASE convention) and ``pbc`` on the comment
    line with the ``info`` pairs; every float as Python's shortest round-trip repr, so
    reading the text back gives the same float64 values.
    """
    from ase.data import chemical_symbols
    from ase.io.extxyz import key_val_dict_to_str

    where = frame.describe()
    info = {}
    for k, v in frame.info.items():
        if k in _RESERVED:
            warnings.warn(f"{where}: info key {k!r} is reserved in extxyz and not written",
                          stacklevel=3)
            continue
        info[k] = np.array(v) if isinstance(v, np.ndarray) else v
    parts = []
    cell = np.asarray(frame.cell, dtype=float)
    if cell.any():
        parts.append('Lattice="' + " ".join(_r(x) for x in cell.reshape(9)) + '"')
    has_f = frame.forces is not None
    parts.append("Properties=species:S:1:pos:R:3" + (":forces:R:3" if has_f else ""))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = key_val_dict_to_str(info)
    if caught:
        raise DataError(f"{where}: an info value cannot be written to extxyz: {caught[0].message}",
                        fix="keep info values to numbers, strings, booleans, arrays and lists")
    if text:
        parts.append(text)
    if not np.isnan(frame.energy):
        parts.append(f"energy={_r(frame.energy)}")
    if frame.stress is not None:
        parts.append('stress="' + " ".join(_r(x) for x in np.asarray(frame.stress).reshape(9)) + '"')
    parts.append('pbc="' + " ".join("T" if p else "F" for p in frame.pbc) + '"')
    comment = " ".join(parts)
    if "\n" in comment or "\r" in comment:
        raise DataError(f"{where}: an info value contains a line break",
                        why="extxyz keeps each frame's key=value pairs on one line",
                        fix="replace line breaks in info strings")
    cols = [np.asarray(frame.positions, dtype=float)]
    if has_f:
        cols.append(np.asarray(frame.forces, dtype=float))
    rows = np.hstack(cols).tolist()
    fmt = "%-2s" + " %16r" * len(rows[0]) + "\n" if rows else ""
    body = "".join(fmt % (chemical_symbols[z], *row) for z, row in zip(frame.numbers.tolist(), rows))
    return f"{len(frame.numbers)}\n{comment}\n{body}"


def _as_frames(data) -> Iterable[Frame]:
    if isinstance(data, Dataset):
        return iter(data)
    if isinstance(data, Frame):
        return [data]
    if hasattr(data, "get_positions"):
        return iter(Dataset.from_atoms([data]))
    items = list(data)
    if items and all(isinstance(x, Frame) for x in items):
        return items
    if all(hasattr(x, "get_positions") for x in items):
        return iter(Dataset.from_atoms(items))
    raise DataError("write_dataset/append_frames take a Dataset, Frames or ase.Atoms",
                    why=f"got {type(items[0]).__name__ if items else 'nothing'}")


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_dataset(path, data, *, compresslevel: int = 6) -> Path:
    """Write ``data`` (Dataset, Frames or ase.Atoms) to ``path`` as extxyz, atomically.

    ``.gz`` names are gzip-compressed at ``compresslevel`` (1-9; 9 is ~3x slower for a few
    % less) and deterministically (no timestamp).  The text goes to
    a temporary file beside ``path``, is fsynced and moved over ``path`` with
    ``os.replace``, so readers see the old file or the new one, never half of one.
    Returns ``path`` as a Path.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    frames = _as_frames(data)
    from ..fileio import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        if path.suffix.lower() == ".gz":
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=compresslevel) as gz:
                for fr in frames:
                    gz.write(format_frame(fr).encode())
        else:
            for fr in frames:
                raw.write(format_frame(fr).encode())
    _fsync_dir(folder)
    return path


# ============================================================================ resumable jobs
#: (device, inode) → (size, mtime_ns) of files this process appended to and left complete;
#: lets repeated appends skip re-scanning a file nobody else has touched.
_KNOWN_COMPLETE: dict[tuple[int, int], tuple[int, int]] = {}


def _complete_length(data: bytes, name: str) -> tuple[int, str | None]:
    """Bytes of ``data`` holding complete frames, and a description of any cut tail."""
    lines = data.split(b"\n")
    _, _, end_line, tail = _scan(lines, name, tolerant=True)
    n_bytes = sum(len(ln) for ln in lines[:end_line]) + end_line
    return min(n_bytes, len(data)), tail


def append_frames(path, frames) -> int:
    """Append ``frames`` (Dataset, Frames or ase.Atoms) to the extxyz file ``path``.

    Each frame is written with one ``os.write`` of its whole text and then fsynced, so a
    kill leaves at most a partly written last frame.  Before writing, an incomplete tail
    left by an earlier kill is cut off (with a :class:`TruncatedFrameWarning`).  The file
    is created if missing.  Plain text only (no ``.gz``).  Returns the number of frames
    appended.
    """
    path = Path(path)
    name = str(path)
    if path.suffix.lower() in _COMPRESSED:
        raise DataError(f"cannot append to the compressed file {name}",
                        fix="append to a plain .extxyz file and compress it when the job is done")
    texts = [format_frame(fr).encode() for fr in _as_frames(frames)]
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise DataError(f"cannot open {name} for appending: {exc.strerror or exc}") from None
    created = False
    try:
        st = os.fstat(fd)
        key = (st.st_dev, st.st_ino)
        created = st.st_size == 0
        if st.st_size and _KNOWN_COMPLETE.get(key) != (st.st_size, st.st_mtime_ns):
            data = path.read_bytes()
            good, tail = _complete_length(data, name)
            if good < len(data):
                warnings.warn(f"{name}: dropping an incomplete last frame ({tail or 'cut line'}; "
                              f"{len(data) - good} bytes) before appending", TruncatedFrameWarning,
                              stacklevel=2)
                os.ftruncate(fd, good)
                os.fsync(fd)
        for text in texts:
            view = memoryview(text)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        st = os.fstat(fd)
        _KNOWN_COMPLETE[key] = (st.st_size, st.st_mtime_ns)
    finally:
        os.close(fd)
    if created:
        _fsync_dir(path.parent if str(path.parent) else Path("."))
    return len(texts)


def read_completed(path, require=(), *, duplicates: str = "keep", check_composition: bool = True,
                   composition=None) -> Dataset:
    """The complete frames of a file written by :func:`append_frames` (a resumable job).

    A missing or empty file gives an empty Dataset.  An incomplete last frame (missing atom
    lines, or a last line without its newline) is left out with a
    :class:`TruncatedFrameWarning`; damage elsewhere raises :class:`DataError`.  The frames
    are validated as in :func:`read_dataset` (by default requiring no label and allowing
    duplicates).  Never cached (the file grows).
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        return Dataset.empty()
    data = _read_bytes(path, name)
    try:
        ds, tail, n_bytes = _parse_xyz(data, name, progress=False, tolerant=True)
    except _NotFast:
        n_bytes, tail = _complete_length(data, name)
        text = data[:n_bytes].decode("utf-8", errors="replace")
        ds = (_read_ase(io.StringIO(text), name, "extxyz", slice(None), False) if text.strip()
              else Dataset.empty())
    if tail is not None:
        warnings.warn(f"{name}: ignoring an incomplete last frame ({tail}); the next "
                      "append_frames() removes it", TruncatedFrameWarning, stacklevel=2)
    if ds.n_frames == 0:
        return ds
    return validate_dataset(ds, require, composition=composition,
                            check_composition=check_composition, duplicates=duplicates)


__all__ = ["read_dataset", "write_dataset", "append_frames", "read_completed", "parse_comment",
           "format_frame", "file_sha256", "TruncatedFrameWarning", "Dataset", "Frame",
           "READER_VERSION"]
