"""``ccdgen`` command line: one module per subcommand, short errors by default.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``.

Every error a user can cause ends in one message on stderr and exit code 2, never a
traceback: ``ccdgen <command>: error: <what>`` (then ``Why:``/``Fix:`` lines) for a bad
option value (checked by the parser, :mod:`ccdgen.cli.common`), a
:class:`~ccdgen.errors.CCDGenError` or an operating-system error (a file that cannot be
written, ...).  Anything else is a bug in ccdgen: a one-line "internal error" and exit
code 1.  ``--traceback`` shows the full traceback in every case.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

from .. import __version__
from ..errors import CCDGenError

SUBCOMMANDS = {
    "inspect": "Show clusters, point groups, irreps and CCDs of a spec or an XYZ cluster.",
    "modes": "Write PNG pictures of the CCD displacement modes (paper Figs. 3-4).",
    "compile": "Generate and JIT-compile Numba feature kernels (features, gradients, stress).",
    "cache": "List or clear the content-addressed cache (generated/).",
    "featurize": "Map a dataset onto the reference and write its cluster and site features (.npz).",
    "train": "Train a cluster-based, site-based or linear energy model on labelled data.",
    "predict": "Energy, forces and stress of configurations from a trained model.",
    "evaluate": "Errors of a trained model against labelled data (by frame family).",
    "sample": "Generate training configurations: Glazer tilts, symmetry-adapted modes, strains, n-sphere samples, interpolations.",
    "label": "Label configurations (energy, forces, stress) with an ASE calculator; resumable.",
    "cv": "k-fold cross-validated model selection over a hyperparameter grid (local processes or Ray).",
    "cuts": "Energies along the R/M tilt, volumetric-strain and phase-interpolation cuts (paper Fig. 9).",
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one ``ccdgen <command>: error: ...`` message
    (with a pointer to ``--help``, not the whole usage) and exit code 2."""

    def error(self, message):
        if message.endswith("expected one argument"):
            opt = message.split(":")[0].removeprefix("argument ").split("/")[-1]
            message += f" (a value that starts with '-' is written {opt}=-VALUE)"
        self.exit(2, f"{self.prog}: error: {message}\n  (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="ccdgen", description="Compile crystals and clusters into "
                                "symmetry-exact CCD features and energy models.")
    p.add_argument("--version", action="version", version=f"ccdgen {__version__}")
    p.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)
    p.subcommands = {}
    for name, help_ in SUBCOMMANDS.items():
        mod = importlib.import_module(f"ccdgen.cli.{name}_cmd")
        sp = p.subcommands[name] = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
        mod.add_arguments(sp)
        sp.set_defaults(_module=mod)
    return p


def _unrecognized(sub: argparse.ArgumentParser, extra: list) -> None:
    import difflib

    options = [o for a in sub._actions for o in a.option_strings if o.startswith("--")]
    first = next((e.split("=")[0] for e in extra if e.startswith("-")), None)
    close = difflib.get_close_matches(first, options, n=1) if first else []
    hint = f" (did you mean {close[0]}?)" if close else ""
    sub.error(f"unrecognized arguments: {' '.join(extra)}{hint}")


def main(argv=None) -> int:
    """Run ``ccdgen`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code
    (0 ok, 2 bad input, 1 a bug in ccdgen, 130 interrupted)."""
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:  # reported by the subcommand's parser, with a close match
            _unrecognized(parser.subcommands[args.command], extra)
    except SystemExit as exc:  # --help, --version, or a refused argument (already printed)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    import warnings

    def show(message, category, filename, lineno, file=None, line=None):  # one line, no source
        print(f"ccdgen {args.command}: warning: {message}", file=sys.stderr)

    warnings.showwarning = show
    t0 = time.perf_counter()
    try:
        rc = args._module.run(args)
    except CCDGenError as exc:
        if args.traceback:
            raise
        print(f"ccdgen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `ccdgen cache ls | head`
        sys.stderr.close()
        return 0
    except OSError as exc:  # a file that cannot be read or written: the user's to fix
        if args.traceback:
            raise
        where = f": {exc.filename}" if exc.filename else ""
        print(f"ccdgen {args.command}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: say so in one line, the traceback is one flag away
        if args.traceback:
            raise
        print(f"ccdgen {args.command}: internal error (a bug in ccdgen): {type(exc).__name__}: {exc}\n"
              f"  Fix: rerun with --traceback and report it with the input", file=sys.stderr)
        return 1
    if getattr(args, "timings", False):
        print(f"[{args.command}] {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
