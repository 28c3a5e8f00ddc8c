"""A strict printer for the expressions that go into generated code.

* :class:`StrictPrinter` — SymPy's Python code printer with ``math.`` functions that
  raises on anything it cannot print exactly (no silent "# Not supported" comments).
"""

from __future__ import annotations

import sympy as sp
from sympy.printing.codeprinter import PrintMethodNotImplementedError
from sympy.printing.pycode import PythonCodePrinter

from ..ccd.metrics import get_metric
from ..errors import InternalError


class StrictPrinter(PythonCodePrinter):
    """Print SymPy expressions as Numba-compatible Python; raise on unsupported nodes."""

    def __init__(self, settings=None):
        super().__init__({"strict": True, "fully_qualified_modules": True, **(settings or {})})

    def _print_not_supported(self, expr):  # pragma: no cover - depends on SymPy internals
        raise InternalError(f"the code printer cannot print {type(expr).__name__}: {expr}")

    def doprint(self, expr, *args, **kwargs):
        # SymPy's class-level aliases (``_print_Integral = _print_not_supported`` ...) bypass
        # the override above and raise its own error type: report those as ours too.
        try:
            return super().doprint(expr, *args, **kwargs)
        except PrintMethodNotImplementedError as exc:
            raise InternalError(f"the code printer cannot print {expr}: {exc}") from None

    def _print_Float(self, expr):
        return repr(float(expr))

    def _print_Pow(self, expr, rational=False):
        # Numba raises ZeroDivisionError for ``0.0**(-n)`` with an integer n, even with
        # error_model="numpy"; ``1/(s**n)`` gives inf instead, which the kernels report.
        base, exp = expr.as_base_exp()
        if exp.is_Integer and exp < -1:
            return f"1/({self._print(sp.Pow(base, -exp))})"
        return super()._print_Pow(expr, rational=rational)


def print_expr(expr: sp.Expr) -> str:
    return StrictPrinter().doprint(expr)


def metric_code(name: str) -> tuple[str, str]:
    """Python source of ``f(s)`` and ``f'(s)`` for a pair metric (argument named ``s``)."""
    s = sp.Symbol("s", positive=True)
    f = get_metric(name).symbolic(s)
    return print_expr(f), print_expr(sp.diff(f, s))
