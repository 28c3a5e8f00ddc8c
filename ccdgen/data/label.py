"""Label configurations with any ASE calculator: energy, forces, stress; resumable.

:func:`label_file` reads the input frames (any file :func:`~ccdgen.data.io.read_dataset`
reads) and appends each labelled frame to the output extxyz with
:func:`~ccdgen.data.io.append_frames` — one write and an fsync per frame, in input order.
A killed job therefore leaves complete frames plus at most one cut tail, and a rerun of
the same command resumes after the last frame it finished, so an interrupted run ends
with the same file as an uninterrupted one.  Each output frame keeps its input ``info``
plus ``label_index`` (its frame index in the input file) and ``calculator``; a rerun with
a larger ``index`` range continues with the new frames.

A frame whose calculation fails (the calculator raises, or returns non-finite numbers) is
skipped and recorded, with the reason, in ``OUT.failures.jsonl`` (one JSON line per frame,
written the same kill-safe way), and counted in the report — never lost silently; the
calculator is created afresh after a failure (some are left broken by one).  On resume
both files tell which input frames are done.  A run whose first
:data:`ALL_FAIL_STOP` frames all fail stops with a :class:`~ccdgen.errors.ModelError`.  A calculator that cannot give
forces (or stress, when asked for) stops the run with a :class:`~ccdgen.errors.ModelError`
before any frame is written.

Calculators (:func:`make_calculator`): ``emt`` (ASE's EMT), ``lj`` (ASE's Lennard-Jones, a
cheap stand-in for any elements), ``sevenn`` / ``7net-mf-0`` (SevenNet ``7net-mf-0``,
R2SCAN modal, CPU — the model of the bundled CsPbBr3 data; optional, ``pip install
sevenn==0.13.0``), or ``module:factory`` / ``path/to/file.py:factory`` (a callable
returning an ASE calculator), each with keyword arguments from ``--calc-kwargs`` JSON.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CCDGenError, DataError, ModelError, SpecError

__all__ = ["BUILTIN_CALCULATORS", "make_calculator", "check_calculator", "label_file",
           "LabelReport", "failure_log_path", "read_failures", "set_threads"]

PROPERTIES = ("energy", "forces", "stress")
#: Stop when this many frames in a row fail at the start of a run (the calculator cannot
#: do these frames at all, e.g. EMT on elements it has no parameters for).
ALL_FAIL_STOP = 20


# ----------------------------------------------------------------------------- calculators
def _emt(**kw):
    from ase.calculators.emt import EMT

    return EMT(**kw)


def _lj(**kw):
    from ase.calculators.lj import LennardJones

    return LennardJones(**kw)


def _sevenn(**kw):
    try:
        from sevenn.calculator import SevenNetCalculator
    except ImportError as exc:
        raise SpecError("the 'sevenn' calculator needs the optional package sevenn",
                        why=f"importing it failed: {exc}",
                        fix="pip install 'ccdgen[sevenn]' (or pip install sevenn==0.13.0)") from None
    args = {"model": "7net-mf-0", "modal": "R2SCAN", "device": "cpu"}
    args.update(kw)
    return SevenNetCalculator(**args)


#: Built-in names → (factory, description).
BUILTIN_CALCULATORS = {
    "emt": (_emt, "ASE EMT (Al, Cu, Ag, Au, Ni, Pd, Pt; H, C, N, O)"),
    "lj": (_lj, "ASE Lennard-Jones (any elements; a cheap stand-in, keywords sigma, epsilon, rc)"),
    "sevenn": (_sevenn, "SevenNet 7net-mf-0, R2SCAN modal, CPU (optional: pip install sevenn==0.13.0)"),
    "7net-mf-0": (_sevenn, "same as sevenn"),
}


def _load_factory(spec: str):
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        return None
    if target.endswith(".py") or os.sep in target:
        path = Path(target)
        if not path.is_file():
            raise SpecError(f"--calculator {spec!r}: no such file {target}",
                            fix="give path/to/file.py:factory with an existing file")
        mod_spec = importlib.util.spec_from_file_location(f"_ccdgen_calc_{path.stem}", path)
        module = importlib.util.module_from_spec(mod_spec)
        try:
            mod_spec.loader.exec_module(module)
        except Exception as exc:
            raise SpecError(f"--calculator {spec!r}: importing {target} failed: {type(exc).__name__}: {exc}") from None
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise SpecError(f"--calculator {spec!r}: cannot import module {target!r} ({exc})",
                            fix="check the module name and that it is installed (python -c 'import "
                                f"{target}')") from None
    fn = getattr(module, attr, None)
    if fn is None or not callable(fn):
        raise SpecError(f"--calculator {spec!r}: {target} has no callable {attr!r}",
                        fix="name a function or class that returns an ASE calculator")
    return fn


def make_calculator(spec, kwargs: dict | None = None):
    """``(calculator, name)`` from a built-in name, ``module:factory``,
    ``file.py:factory`` or an ASE calculator object / a zero-argument factory.
    Raises :class:`SpecError` for an unknown name (listing the built-ins)."""
    kwargs = dict(kwargs or {})
    if hasattr(spec, "get_potential_energy") or hasattr(spec, "calculate"):
        return spec, type(spec).__name__
    if callable(spec):
        return spec(**kwargs), getattr(spec, "__name__", "factory")
    text = str(spec).strip()
    key = text.lower()
    if key in BUILTIN_CALCULATORS:
        fn = BUILTIN_CALCULATORS[key][0]
    else:
        fn = _load_factory(text)
        if fn is None:
            import difflib

            close = difflib.get_close_matches(key, list(BUILTIN_CALCULATORS), n=1)
            raise SpecError(f"unknown calculator {text!r}",
                            why="a calculator is a built-in name or module:factory",
                            fix=(f"did you mean {close[0]!r}? " if close else "") + "built-ins: "
                                + ", ".join(BUILTIN_CALCULATORS) + "; or give my_module:make_calc / "
                                "path/to/file.py:make_calc returning an ASE calculator")
    try:
        calc = fn(**kwargs)
    except CCDGenError:
        raise
    except TypeError as exc:
        raise SpecError(f"calculator {text!r} does not take the keywords {sorted(kwargs)}: {exc}",
                        fix="check --calc-kwargs") from None
    except Exception as exc:
        raise ModelError(f"calculator {text!r} could not be created: {type(exc).__name__}: {exc}") from None
    if not (hasattr(calc, "get_potential_energy") or hasattr(calc, "calculate")):
        raise SpecError(f"calculator {text!r}: the factory returned {type(calc).__name__}, not an ASE calculator")
    return calc, text


def check_calculator(calc, name: str, properties=PROPERTIES) -> None:
    """Refuse a calculator whose ``implemented_properties`` lack forces (or stress when
    asked for) before any frame is labelled."""
    impl = getattr(calc, "implemented_properties", None)
    if impl is None:
        return
    for prop in ("energy", "forces", "stress"):
        if prop in properties and prop not in impl and not (prop == "energy" and "free_energy" in impl):
            raise ModelError(f"calculator {name!r} returns no {prop}",
                             why=f"its implemented_properties are {list(impl)}; a training frame needs "
                                 "energy and forces" + (" and stress" if prop == "stress" else ""),
                             fix="use a calculator that computes forces" if prop != "stress" else
                                 "use a calculator with stress, or pass --no-stress")


def set_threads(n: int) -> None:
    """Use ``n`` CPU threads in the libraries calculators run on: OpenMP/BLAS (through
    ``threadpoolctl`` when installed) and torch (when imported by the calculator).  On a
    shared machine multithreaded torch can run many times slower than one thread."""
    n = int(n)
    if n < 1:
        raise SpecError(f"threads must be ≥ 1, got {n}")
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:
        pass
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


# ----------------------------------------------------------------------------- failure log
def failure_log_path(out) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".failures.jsonl")


def read_failures(out) -> list[dict]:
    """Failure records of a labelling output (an incomplete last line, left by a kill, is
    ignored)."""
    path = failure_log_path(out)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    out_recs = []
    for k, line in enumerate(lines[:-1]):  # the last piece has no newline: incomplete or empty
        if not line.strip():
            continue
        try:
            out_recs.append(json.loads(line))
        except json.JSONDecodeError:
            raise DataError(f"{path}: line {k + 1} is not a failure record", fix="delete the damaged line") from None
    return out_recs


def _append_failure(out, record: dict) -> None:
    from ..fileio import append_bytes

    path = failure_log_path(out)
    data = path.read_bytes() if path.exists() else b""
    if data and not data.endswith(b"\n"):  # a cut line from a kill: drop it first
        os.truncate(path, data.rfind(b"\n") + 1)
    append_bytes(path, (json.dumps(record, sort_keys=True) + "\n").encode())


# ----------------------------------------------------------------------------- labelling
@dataclass(frozen=True)
class LabelReport:
    """What a :func:`label_file` call did: frames in the input, already done before
    (labelled or failed), labelled now, failed now, seconds spent."""

    n_input: int
    n_resumed: int
    n_labelled: int
    n_failed: int
    seconds: float
    output: str
    failures: str


def _calc_one(atoms, calc, want_stress: bool):
    atoms.calc = calc
    e = atoms.get_potential_energy()
    f = atoms.get_forces()
    s = atoms.get_stress(voigt=False) if want_stress else None
    return e, f, s


def _done_indices(out: Path, source, n_input: int) -> tuple[int, int, int]:
    """``(next index, n labelled, n failed)`` of a previous run on ``out``; checks that its
    frames are the input's (same atoms, positions and cell)."""
    from .io import TruncatedFrameWarning, read_completed

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TruncatedFrameWarning)
        done = read_completed(out, check_composition=False)
    for w in caught:
        print(f"ccdgen label: {w.message}")
    fails = read_failures(out)
    pos_of = {int(source.frame(k).index): k for k in range(n_input)}  # file index → position
    file_idx = [int(done.info(i).get("label_index", -1)) for i in range(done.n_frames)]
    if any(i < 0 for i in file_idx):
        raise DataError(f"{out} exists and was not written by 'ccdgen label' (its frames have no label_index)",
                        fix="choose another -o, or pass --overwrite to start again")
    idx = []
    for k, fi in enumerate(file_idx):
        if fi not in pos_of:
            raise DataError(f"{out}: frame {k} is input frame {fi}, which is not among the frames to label",
                            fix="the output belongs to another input (or --index): use another -o, or --overwrite")
        i = pos_of[fi]
        idx.append(i)
        a, b = done[k], source[i]
        if (not np.array_equal(a.numbers, b.numbers) or not np.allclose(a.positions, b.positions, atol=1e-9)
                or not np.allclose(a.cell, b.cell, atol=1e-9)):
            raise DataError(f"{out}: frame {k} does not match input frame {i} (other atoms or positions)",
                            why="a resumed run appends to frames of the same input",
                            fix="the output belongs to another input: use another -o, or --overwrite")
    failed = []
    for r in fails:
        if int(r["index"]) not in pos_of:
            raise DataError(f"{failure_log_path(out)} lists input frame {r['index']}, which is not among the "
                            "frames to label", fix="use the same input and --index, or --overwrite")
        failed.append(pos_of[int(r["index"])])
    seen = sorted(idx + failed)
    if seen != list(range(len(seen))):
        raise DataError(f"{out} and {failure_log_path(out).name} do not cover input frames 0..{len(seen) - 1} "
                        "exactly once",
                        fix="the files were edited or mixed from several runs: use --overwrite")
    return len(seen), len(idx), len(failed)


def label_file(input_path, output_path, calculator="emt", *, calc_kwargs: dict | None = None,
               properties=PROPERTIES, progress: bool | None = None, max_failures: int | None = None,
               overwrite: bool = False, index=":", threads: int | None = None) -> LabelReport:
    """Label the frames of ``input_path`` into ``output_path`` (module docstring).

    Parameters
    ----------
    calculator : built-in name, ``module:factory``, ``file.py:factory``, or a calculator
    calc_kwargs : keyword arguments of the factory
    properties : labels to compute; energy and forces always, ``stress`` optional
    progress : a tqdm bar with a time estimate (None: on a terminal)
    max_failures : stop (ModelError) after this many failed frames in this call
    overwrite : delete an existing output and failure log first
    index : input frames to label (``read_dataset``'s ``index``)
    threads : CPU threads for the calculator (:func:`set_threads`); None leaves them
    """
    from .dataset import Dataset
    from .io import append_frames, read_dataset

    inp, out = Path(input_path), Path(output_path)
    if inp.resolve() == out.resolve():
        raise SpecError("the output file is the input file", fix="give another -o")
    if out.suffix.lower() in (".gz", ".bz2", ".xz"):
        raise SpecError(f"-o {out}: labelling writes plain extxyz (frames are appended as they finish)",
                        fix="write OUT.extxyz and compress it when the job is done")
    want_stress = "stress" in properties
    source = read_dataset(inp, index=index, require=(), duplicates="keep", check_composition=False)
    n = source.n_frames
    if overwrite:
        for p in (out, failure_log_path(out)):
            if p.exists():
                p.unlink()
    if threads is not None:
        set_threads(threads)
    calc, name = make_calculator(calculator, calc_kwargs)
    check_calculator(calc, name, properties)
    start, n_done, n_fail_before = _done_indices(out, source, n) if (out.exists() or failure_log_path(out).exists()) \
        else (0, 0, 0)
    from ase.calculators.calculator import PropertyNotImplementedError
    from ase.calculators.singlepoint import SinglePointCalculator
    from tqdm import tqdm

    t0 = time.perf_counter()
    labelled = failed = 0
    bar = tqdm(total=n, initial=start, unit="frame", desc=f"label ({name})", dynamic_ncols=True,
               disable=(not progress) if progress is not None else None, smoothing=0.1)
    try:
        for i in range(start, n):
            file_index = int(source.frame(i).index)
            atoms = source.to_atoms(i)
            atoms.calc = None
            info = dict(atoms.info)
            try:
                e, f, s = _calc_one(atoms, calc, want_stress and all(atoms.pbc))
            except PropertyNotImplementedError as exc:
                raise ModelError(f"calculator {name!r} returns no forces or stress for {source.source_of(i)}: {exc}",
                                 fix="use a calculator that computes forces (and stress, or pass --no-stress)") from None
            except (KeyboardInterrupt, MemoryError):
                raise
            except Exception as exc:  # a frame the calculator cannot do: log it, go on
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:500]
                _append_failure(out, {"index": file_index, "frame": source.source_of(i), "reason": reason})
                failed += 1
                bar.write(f"ccdgen label: {source.source_of(i)} failed and is skipped ({reason})")
                bar.update(1)
                if max_failures is not None and failed >= max_failures:
                    raise ModelError(f"{failed} frames failed in this run (--max-failures {max_failures})",
                                     why=f"the last one: {reason}",
                                     fix=f"see {failure_log_path(out)}; fix the calculator or the frames, then "
                                         "rerun the same command to continue") from None
                if labelled == 0 and failed >= ALL_FAIL_STOP:
                    raise ModelError(f"calculator {name!r} failed on each of the first {failed} frames of this run",
                                     why=f"the last one: {reason}",
                                     fix=f"check that the calculator handles these elements and cells; the "
                                         f"failures are listed in {failure_log_path(out)} (delete it and OUT, or "
                                         "use --overwrite, to start again)") from None
                calc, _ = make_calculator(calculator, calc_kwargs)  # a calculator may be left broken
                continue
            if f is None or np.shape(f) != (len(atoms), 3):
                raise ModelError(f"calculator {name!r} returns no forces for {source.source_of(i)} "
                                 f"(got {None if f is None else np.shape(f)})",
                                 fix="use a calculator that computes forces")
            bad = [k for k, v in (("energy", e), ("forces", f), ("stress", s))
                   if v is not None and not np.all(np.isfinite(v))]
            if bad:
                reason = f"non-finite {', '.join(bad)}"
                _append_failure(out, {"index": file_index, "frame": source.source_of(i), "reason": reason})
                failed += 1
                bar.write(f"ccdgen label: {source.source_of(i)} failed and is skipped ({reason})")
                bar.update(1)
                continue
            info.update(label_index=file_index, calculator=name)
            atoms.info = info
            res = {"energy": float(e), "forces": np.asarray(f, dtype=float)}
            if s is not None:
                res["stress"] = np.asarray(s, dtype=float)
            atoms.calc = SinglePointCalculator(atoms, **res)
            append_frames(out, Dataset.from_atoms([atoms]))
            labelled += 1
            bar.update(1)
    finally:
        bar.close()
    if labelled + n_done == 0 and not out.exists():
        out.touch()
    return LabelReport(n, start, labelled, failed, time.perf_counter() - t0, str(out), str(failure_log_path(out)))
