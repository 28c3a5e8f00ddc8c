"""Forces and stress through the generated kernels, as a differentiable torch operation.

For a model ``E = Σ_c NN(φ_c)`` the weights ``g_c = ∂E/∂φ_c`` come from torch autograd; the
crystal kernels then give ``dE/dx = Σ_c J_cᵀ g_c`` (scattered to the atoms) and the strain
derivative ``W = Σ_c S_c g_c`` (:meth:`CrystalFeaturizer.vjp`).  Training on forces needs the
derivative of a loss of ``dE/dx`` and ``W`` with respect to ``g``: that is ``J_c v`` for the
loss gradient ``v`` at the cluster's atoms, plus the strain part — a Jacobian–vector product
(:meth:`CrystalFeaturizer.jvp`).  :class:`KernelForces` wraps both, so that
``torch.autograd`` differentiates force and stress losses exactly (checked against finite
differences on the weights in the tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(eq=False)
class FrameGeometry:
    """What the kernels need for a batch of frames of one supercell."""

    featurizer: object
    layout: object
    positions: np.ndarray  # (B, N, 3) site order, Å
    cells: np.ndarray  # (B, 3, 3)
    names: tuple  # cluster orbits in the order of the weights


class KernelForces(torch.autograd.Function):
    """``(g_1, …, g_k) → (dE/dx (B, N, 3), W (B, 3, 3))``, differentiable once."""

    @staticmethod
    def forward(ctx, geom: FrameGeometry, *weights):
        ctx.geom = geom
        w = {n: t.detach().cpu().numpy() for n, t in zip(geom.names, weights)}
        grad, vir, _ = geom.featurizer.vjp(geom.positions, geom.cells, geom.layout, w)
        return torch.from_numpy(grad), torch.from_numpy(vir)

    @staticmethod
    def backward(ctx, d_grad, d_vir):
        g = ctx.geom
        b, n = g.positions.shape[:2]
        t = np.zeros((b, n, 3)) if d_grad is None else np.ascontiguousarray(d_grad.detach().cpu().numpy())
        e = np.zeros((b, 3, 3)) if d_vir is None else np.ascontiguousarray(d_vir.detach().cpu().numpy())
        out = g.featurizer.jvp(g.positions, g.cells, g.layout, t, e)
        return (None, *[torch.from_numpy(out[name]) for name in g.names])


def forces_and_stress(geom: FrameGeometry, weights: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Forces (B, N, 3) eV/Å in site order and stress (B, 3, 3) eV/Å³ (ASE convention:
    ``σ = (1/V) ∂E/∂ε``) from cluster weights ``dE/dφ``."""
    grad, vir = KernelForces.apply(geom, *[weights[n] for n in geom.names])
    vol = torch.from_numpy(np.abs(np.linalg.det(geom.cells)))
    return -grad, vir / vol[:, None, None]


class SiteToClusters:
    """The chain rule of Eq. (15) in torch: ``dE/dΨ`` per site orbit → ``dE/dφ`` per cluster
    orbit (each cluster collects the weights of its sites), for one layout."""

    def __init__(self, featurizer, layout):
        self.orbits = featurizer.orbits
        self.n_atoms = layout.n_atoms
        self.atoms = {}
        self.parts = {n: [] for n in self.orbits}  # (site orbit, rows, feature slice)
        for n in self.orbits:
            g, sl = layout.slices[n]
            self.atoms[n] = torch.from_numpy(np.ascontiguousarray(layout.atoms[g][sl]))
        for o in featurizer.site_orbits:
            rows = torch.from_numpy(featurizer.site_indices(layout, o))
            start = 0
            for n in o.clusters:
                k = len(featurizer.feature_names[n])
                self.parts[n].append((o.name, rows, slice(start, start + k)))
                start += k
        self.n_features = featurizer.n_features

    def __call__(self, site_weights: dict) -> dict:
        b = next(iter(site_weights.values())).shape[0]
        out = {}
        for n in self.orbits:
            full = site_weights[next(iter(site_weights))].new_zeros((b, self.n_atoms, self.n_features[n]))
            for o, rows, sl in self.parts[n]:
                full = full.index_add(1, rows, site_weights[o][:, :, sl])
            out[n] = full[:, self.atoms[n]].sum(dim=2)
        return out
