"""Printing error tables (shared by train, evaluate and cv)."""

from __future__ import annotations


def print_metrics(title: str, metrics: dict) -> None:
    """A table: part (train/val/test or a file) × energy RMSE/MAE (meV/atom), force RMSE (meV/Å)."""
    print(title)
    width = max([22] + [len(_short(p)) + 2 for p in metrics])
    print(f"  {'set':<{width}} {'frames':>7} {'E RMSE':>9} {'E MAE':>9} {'F RMSE':>9}   (meV/atom, meV/Å)")
    for part, m in metrics.items():
        _row(_short(part), m, width)
        for fam, fm in (m.get("by_family") or {}).items() if part in ("test",) or len(metrics) == 1 else ():
            _row(f"  {fam}", fm, width)


def _short(name: str) -> str:
    from pathlib import Path

    return Path(name).name if "/" in name else name


def _row(name: str, m: dict, width: int = 22) -> None:
    def f(k):
        v = m.get(k)
        return f"{v:9.3f}" if isinstance(v, float) else f"{'-':>9}"

    print(f"  {name:<{width}} {m.get('n_frames', 0):>7} {f('energy_rmse_meV_atom')} {f('energy_mae_meV_atom')} "
          f"{f('force_rmse_meV_A')}")
