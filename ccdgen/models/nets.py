"""Neural cluster expansions (Eqs. 13, 16, 17) and the linear one (Eq. 2), as torch modules.

* :class:`ClusterNet` (Eq. 13): one MLP per cluster orbit, applied to every cluster of the
  orbit and summed: ``E = n_cells·e0 + Σ_orbits Σ_clusters [NN_o(z(φ)) − NN_o(z(0))]``.
* :class:`SiteNet` (Eq. 16): one MLP per site orbit on the site-centric sums Ψ (Eq. 15):
  ``E = n_cells·e0 + Σ_sites [NN_o(z(Ψ)) − NN_o(z(0))]``.
* A linear cluster expansion (Eq. 2) is a :class:`ClusterNet` with no hidden layer: its
  energy is linear in the orbit sums ``Σ_c φ_c`` (weights from closed-form ridge,
  :mod:`ccdgen.models.linear`).

Subtracting the net's value at the reference makes every cluster (site) term vanish in the
undeformed crystal, as Φ does in Eq. (1): the reference energy is exactly ``n_cells·e0``.
Inputs are standardized (``z = (x − μ) T``, μ and T learned from the training split only,
:mod:`ccdgen.models.standardize`) and kept as buffers, so a checkpoint carries them.
Everything is float64.
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid, "silu": nn.SiLU, "softplus": nn.Softplus,
               "gelu": nn.GELU}
DTYPE = torch.float64


def mlp(n_in: int, hidden, activation: str = "tanh") -> nn.Sequential:
    """Fully connected net ``n_in → hidden[0] → ... → 1`` (Eq. 17 for one hidden layer)."""
    if activation not in ACTIVATIONS:
        from ..errors import ModelError

        raise ModelError(f"unknown activation {activation!r}", fix=f"use one of {', '.join(ACTIVATIONS)}")
    layers, width = [], n_in
    for h in hidden:
        layers += [nn.Linear(width, int(h), dtype=DTYPE), ACTIVATIONS[activation]()]
        width = int(h)
    layers.append(nn.Linear(width, 1, dtype=DTYPE))
    return nn.Sequential(*layers)


class _OrbitNets(nn.Module):
    """One standardized MLP per input group (cluster orbit or site orbit)."""

    def __init__(self, inputs: dict, hidden, activation: str, standardization: dict | None):
        super().__init__()
        self.names = list(inputs)
        nets = {}
        for n, f in inputs.items():
            st = (standardization or {}).get(n)
            mean = torch.zeros(int(f), dtype=DTYPE) if st is None else torch.as_tensor(st["mean"], dtype=DTYPE)
            trans = torch.eye(int(f), dtype=DTYPE) if st is None else torch.as_tensor(st["transform"], dtype=DTYPE)
            self.register_buffer(f"mean_{_key(n)}", mean.clone())
            self.register_buffer(f"transform_{_key(n)}", trans.clone())  # (F, K): K ≤ F net inputs
            nets[_key(n)] = mlp(int(trans.shape[1]), hidden, activation)
        self.nets = nn.ModuleDict(nets)
        self.e0 = nn.Parameter(torch.zeros((), dtype=DTYPE))

    def standardize(self, name: str, x: torch.Tensor) -> torch.Tensor:
        k = _key(name)
        return (x - getattr(self, f"mean_{k}")) @ getattr(self, f"transform_{k}")

    def terms(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``NN(z(x)) − NN(z(0))`` for (..., F) inputs → (...)."""
        net = self.nets[_key(name)]
        z = self.standardize(name, x)
        return net(z).squeeze(-1) - self._reference_value(name, net, x)

    def _reference_value(self, name: str, net, x: torch.Tensor) -> torch.Tensor:
        """``NN(z(0))``; cached while the weights are frozen (inference), recomputed (and
        differentiated) while they train."""
        params = list(net.parameters())
        frozen = not any(p.requires_grad for p in params)
        if frozen:
            key = (name, tuple(p._version for p in params), tuple(b._version for b in self.buffers()))
            cache = self.__dict__.setdefault("_z0_cache", {})
            hit = cache.get(name)
            if hit is not None and hit[0] == key:
                return hit[1]
        z0 = self.standardize(name, x.new_zeros(x.shape[-1]))
        val = net(z0).squeeze(-1)
        if frozen:
            cache[name] = (key, val.detach())
        return val

    def energy(self, inputs: dict, n_cells: torch.Tensor) -> torch.Tensor:
        """``inputs[name]`` (B, n_items, F) → energies (B,) eV."""
        e = self.e0 * n_cells.to(DTYPE)
        for n in self.names:
            e = e + self.terms(n, inputs[n]).sum(dim=-1)
        return e


def _key(name: str) -> str:
    return name.replace("/", "__").replace(".", "_")


class ClusterNet(_OrbitNets):
    """Eq. (13): ``inputs`` are cluster features per orbit (B, n_clusters, F)."""

    kind = "cluster"


class SiteNet(_OrbitNets):
    """Eq. (16): ``inputs`` are site-centric sums per site orbit (B, n_sites, F_site)."""

    kind = "site"


def build_net(kind: str, inputs: dict, hidden=(8,), activation: str = "tanh", standardization=None) -> _OrbitNets:
    """A :class:`ClusterNet` (``kind`` "cluster" or "linear": no hidden layer) or
    :class:`SiteNet` ("site")."""
    from ..errors import ModelError

    if kind == "linear":
        return ClusterNet(inputs, (), "tanh", standardization)
    if kind == "cluster":
        return ClusterNet(inputs, tuple(hidden), activation, standardization)
    if kind == "site":
        return SiteNet(inputs, tuple(hidden), activation, standardization)
    raise ModelError(f"unknown model kind {kind!r}", fix="use cluster, site or linear")
