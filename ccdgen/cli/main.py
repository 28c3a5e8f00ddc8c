"""``ccdgen`` command line: one module per subcommand, short errors by default.

Each subcommand module defines ``add_arguments(parser)`` and ``run(args) -> int``.
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
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ccdgen", description="Compile crystals and clusters into "
                                "symmetry-exact CCD features and energy models.")
    p.add_argument("--version", action="version", version=f"ccdgen {__version__}")
    p.add_argument("--traceback", action="store_true", help="show full tracebacks on errors")
    sub = p.add_subparsers(dest="command", required=True)
    for name, help_ in SUBCOMMANDS.items():
        mod = importlib.import_module(f"ccdgen.cli.{name}_cmd")
        sp = sub.add_parser(name, help=help_, description=help_)
        sp.add_argument("--traceback", action="store_true", default=argparse.SUPPRESS,
                        help="show full tracebacks on errors")
        mod.add_arguments(sp)
        sp.set_defaults(_module=mod)
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
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
    if getattr(args, "timings", False):
        print(f"[{args.command}] {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    return rc


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
