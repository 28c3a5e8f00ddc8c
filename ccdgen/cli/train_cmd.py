"""``ccdgen train SPEC DATA... [--model cluster|site|linear] [--order N] [--hidden 8] [--forces W] [-o MODEL]``.

Featurizes the data (cached), holds out a test split (20 %, fixed seed), trains with
Lightning (or solves the linear model in closed form), prints train/validation/test errors,
writes the model file and, with ``--plots DIR``, parity, error-by-energy and learning-curve
plots.  Running the same command again resumes an interrupted run from its last checkpoint.
"""

from __future__ import annotations

import json


def add_arguments(p) -> None:
    from .common import int_list, number, order_type, positive_int

    p.add_argument("spec", help="spec file (.toml/.yaml)")
    p.add_argument("data", nargs="+", help="labelled configurations (extxyz or anything ASE reads)")
    p.add_argument("--model", choices=("cluster", "site", "linear"), default="cluster",
                   help="cluster-based net (Eq. 13), site-based net (Eq. 16) or linear expansion (Eq. 2)")
    p.add_argument("--order", type=order_type, default=None, help="invariant degree (default: spec max_order)")
    p.add_argument("--cluster", action="append", default=None, help="only these cluster orbits (repeatable)")
    p.add_argument("--hidden", type=int_list, default=(8,),
                   help="hidden layer widths, e.g. 8 or 16,16 (default 8: the paper's best)")
    p.add_argument("--activation", default="tanh", choices=("tanh", "relu", "sigmoid", "silu", "softplus", "gelu"))
    p.add_argument("--forces", type=number("a weight or rate", 0.0), default=0.0, help="force weight w_F in the loss (default 0)")
    p.add_argument("--stress", type=number("a weight or rate", 0.0), default=0.0, help="stress weight w_S in the loss (default 0)")
    p.add_argument("--epochs", type=positive_int, default=400, help="maximum epochs (default 400)")
    p.add_argument("--batch-size", type=positive_int, default=32)
    p.add_argument("--batch-schedule", type=int_list, default=None,
                   help="growing batch sizes, e.g. 2,10,100,1000 (the paper's), --epochs-per-stage each")
    p.add_argument("--epochs-per-stage", type=positive_int, default=1000)
    p.add_argument("--lr", type=number("a weight or rate", 0.0), default=1e-2, help="Adam learning rate")
    p.add_argument("--patience", type=positive_int, default=60, help="early-stopping patience (epochs)")
    p.add_argument("--test-fraction", type=number("a weight or rate", 0.0), default=0.2)
    p.add_argument("--val-fraction", type=number("a weight or rate", 0.0), default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--index", default=":", help="frames to read from each file (ASE slice)")
    p.add_argument("-o", "--output", default="models/model.ckpt", help="model file (default: %(default)s)")
    p.add_argument("--plots", default=None, help="write parity / error / learning-curve PNGs to this folder")
    p.add_argument("--fresh", action="store_true", help="discard an earlier interrupted run instead of resuming")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from ..data.io import read_dataset
    from ..models.train import TrainConfig, train_model
    from .report import print_metrics

    cfg = TrainConfig(kind=args.model, order=args.order, clusters=tuple(args.cluster) if args.cluster else None,
                      hidden=tuple(args.hidden), activation=args.activation, lr=args.lr, epochs=args.epochs,
                      batch_size=args.batch_size, batch_schedule=args.batch_schedule,
                      epochs_per_stage=args.epochs_per_stage, patience=args.patience, force_weight=args.forces,
                      stress_weight=args.stress, test_fraction=args.test_fraction, val_fraction=args.val_fraction,
                      seed=args.seed)
    need = ("energy",) + (("forces",) if args.forces else ()) + (("stress",) if args.stress else ())
    ds = read_dataset(args.data, index=args.index, require=need)
    res = train_model(args.spec, None, cfg, args.output, dataset=ds, resume=not args.fresh,
                      progress=False if args.quiet else None)
    if args.plots:
        from ..analysis.plots import training_plots

        res.extra["plots"] = [str(p) for p in training_plots(res, args.plots, ds)]
    if args.json:
        print(json.dumps({"model": str(res.model_path), "metrics": res.metrics, "split": res.split,
                          "standardization": res.standardization, "seconds": res.seconds,
                          **{k: v for k, v in res.extra.items() if k != "ridge_cv"}}, indent=1, default=str))
        return 0
    print_metrics(f"{args.model} model, order {res.extra.get('order', cfg.order or 'spec')}", res.metrics)
    for s in res.standardization:
        if s["whitened"]:
            print(f"  whitened {s['input']}: condition number {s['condition']:.3g} -> {s['condition_after']:.3g}")
    print(f"model: {res.model_path}  ({res.seconds:.0f} s)")
    for p in res.extra.get("plots", []):
        print(f"plot: {p}")
    return 0
