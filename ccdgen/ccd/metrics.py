"""Pair metrics ``eps = f(x)``, ``x = r / r0`` (Eqs. 3-5), with ``f(1) = 0``, ``f'(1) = 1``.

=========  ==================  =================  ===========================
name       f(x)                f'(x)              behaviour
=========  ==================  =================  ===========================
linear     x - 1               1                  unbounded both ways
log        ln x                1/x                -inf as r -> 0
exp        1 - exp(-(x - 1))   exp(-(x - 1))      bounded as r -> inf (Morse-like)
inverse    1 - 1/x             1/x**2             -inf as r -> 0, bounded as r -> inf
=========  ==================  =================  ===========================

Each metric also gives its SymPy form (for display and code generation).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import SpecError


@dataclass(frozen=True)
class PairMetric:
    """A pair metric: ``value(x)`` and ``derivative(x)`` act elementwise on arrays."""

    name: str
    value: Callable[[np.ndarray], np.ndarray]
    derivative: Callable[[np.ndarray], np.ndarray]
    symbolic_name: str  # f(x) as a SymPy expression in x, see :meth:`symbolic`
    singular_at_zero: bool

    def symbolic(self, x):
        """``f(x)`` as a SymPy expression (SymPy is imported only when asked for)."""
        import sympy as sp

        return sp.sympify(self.symbolic_name, locals={"x": x, "log": sp.log, "exp": sp.exp})

    def __repr__(self) -> str:
        return f"PairMetric({self.name!r})"


METRICS = {
    "linear": PairMetric("linear", lambda x: x - 1.0, lambda x: np.ones_like(x), "x - 1", False),
    "log": PairMetric("log", np.log, lambda x: 1.0 / x, "log(x)", True),
    "exp": PairMetric("exp", lambda x: -np.expm1(-(x - 1.0)), lambda x: np.exp(-(x - 1.0)),
                      "1 - exp(-(x - 1))", False),
    "inverse": PairMetric("inverse", lambda x: 1.0 - 1.0 / x, lambda x: 1.0 / x**2, "1 - 1/x", True),
}


def get_metric(name: str) -> PairMetric:
    """Look a metric up by name; unknown names raise :class:`SpecError`."""
    try:
        return METRICS[name]
    except (KeyError, TypeError):
        raise SpecError(
            f"unknown pair metric {name!r}",
            why="the pair metric defines eps = f(r / r0) (METHOD.md, Eqs. 3-5)",
            fix=f"use one of {', '.join(METRICS)}",
        ) from None
