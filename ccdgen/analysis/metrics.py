"""Error statistics of predictions against labels (numpy only): energies per atom in meV,
forces in meV/Å, stress in meV/Å³; overall and per frame family."""

from __future__ import annotations

import numpy as np


def errors(pred: dict, ref_energy, n_atoms, ref_forces=None, ref_stress=None, families=None) -> dict:
    """Metrics of ``pred`` ({"energy" (n,), "forces" (n, N, 3) or list, "stress" (n, 3, 3)}).

    Returns ``{"n_frames", "energy_rmse_meV_atom", "energy_mae_meV_atom", "energy_max_meV_atom",
    "force_rmse_meV_A", "force_mae_meV_A", "stress_rmse_meV_A3", "by_family": {family: {...}}}``
    (force/stress keys only where both sides exist).
    """
    n_atoms = np.asarray(n_atoms, dtype=float)
    de = (np.asarray(pred["energy"]) - np.asarray(ref_energy)) / n_atoms * 1e3
    ok = np.isfinite(de)

    def block(mask) -> dict:
        out = {"n_frames": int(mask.sum())}
        if mask.any():
            d = de[mask]
            out.update(energy_rmse_meV_atom=float(np.sqrt(np.mean(d**2))), energy_mae_meV_atom=float(np.mean(np.abs(d))),
                       energy_max_meV_atom=float(np.max(np.abs(d))))
        if ref_forces is not None and pred.get("forces") is not None:
            sq, ab, cnt = 0.0, 0.0, 0
            for i in np.flatnonzero(mask):
                rf = ref_forces[i]
                if rf is None or not np.all(np.isfinite(rf)):
                    continue
                d = (np.asarray(pred["forces"][i]) - np.asarray(rf)) * 1e3
                sq += float((d**2).sum())
                ab += float(np.abs(d).sum())
                cnt += d.size
            if cnt:
                out.update(force_rmse_meV_A=float(np.sqrt(sq / cnt)), force_mae_meV_A=float(ab / cnt))
        if ref_stress is not None and pred.get("stress") is not None:
            rs = np.asarray(ref_stress)[mask]
            ps = np.asarray(pred["stress"])[mask]
            good = np.all(np.isfinite(rs), axis=(1, 2))
            if good.any():
                out["stress_rmse_meV_A3"] = float(np.sqrt(np.mean(((ps[good] - rs[good]) * 1e3) ** 2)))
        return out

    result = block(ok)
    if families is not None:
        fam = np.asarray([str(f) if f is not None else "-" for f in families])
        result["by_family"] = {f: block(ok & (fam == f)) for f in sorted(set(fam.tolist()))}
    return result
