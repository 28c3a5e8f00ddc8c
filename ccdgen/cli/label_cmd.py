"""``ccdgen label IN.extxyz -o OUT.extxyz --calculator NAME|module:factory``

Labels every frame with energy, forces and stress from an ASE calculator and appends it
to OUT as soon as it is done (one write and fsync per frame, in input order).  Rerunning
the same command after a kill resumes where it stopped; frames whose calculation fails
are skipped and listed with the reason in ``OUT.failures.jsonl``.  Built-in calculators:
``emt``, ``lj``, ``sevenn`` (= ``7net-mf-0``, R2SCAN modal, CPU; optional package).
"""

from __future__ import annotations



def add_arguments(p) -> None:
    from .common import json_object, positive_int
    from ..data.label import BUILTIN_CALCULATORS

    p.add_argument("input", help="frames to label (extxyz or any format ASE reads)")
    p.add_argument("-o", "--output", required=True, help="labelled extxyz (appended frame by frame; plain text)")
    p.add_argument("--calculator", required=True, metavar="NAME|module:factory",
                   help="built-in: " + ", ".join(BUILTIN_CALCULATORS) + "; or module:factory / file.py:factory")
    p.add_argument("--calc-kwargs", type=json_object, default=None, metavar="JSON",
                   help="keyword arguments of the calculator factory, e.g. '{\"rc\": 6.0}'")
    p.add_argument("--no-stress", action="store_true", help="label energy and forces only")
    p.add_argument("--max-failures", type=positive_int, default=None, metavar="N",
                   help="stop after N failed frames in this run (default: never)")
    p.add_argument("--overwrite", action="store_true", help="start again (delete OUT and its failure log)")
    p.add_argument("--index", default=":", help="input frames to label (ASE index, e.g. ':100'; default all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=positive_int, default=None, metavar="N",
                   help="CPU threads of the calculator (torch and OpenMP); 1 is fastest on a busy "
                        "machine (default: the libraries' own choice)")


def run(args) -> int:
    from ..data.label import label_file

    props = ("energy", "forces") if args.no_stress else ("energy", "forces", "stress")
    rep = label_file(args.input, args.output, args.calculator, calc_kwargs=args.calc_kwargs, properties=props,
                     progress=False if args.no_progress else None, max_failures=args.max_failures,
                     overwrite=args.overwrite, index=args.index, threads=args.threads)
    per = rep.seconds / rep.n_labelled if rep.n_labelled else float("nan")
    msg = (f"{rep.output}: {rep.n_resumed + rep.n_labelled + rep.n_failed} of {rep.n_input} input frames done"
           f" ({rep.n_labelled} labelled now in {rep.seconds:.1f} s, {per:.3g} s/frame")
    if rep.n_resumed:
        msg += f"; {rep.n_resumed} done before"
    msg += ")"
    if rep.n_failed:
        msg += f"; {rep.n_failed} failed, listed in {rep.failures}"
    print(msg)
    return 0
