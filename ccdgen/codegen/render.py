"""Jinja rendering with a checked contract: a template's keys must match the context.

Templates live in ``templates/`` (shipped as ``ccdgen.templates``), rendered with
``StrictUndefined``.  :func:`template_keys` lists the variables a template needs (from
``jinja2.meta``); :func:`render` refuses a context with missing *or* extra keys, so a
template and its renderer cannot drift apart silently.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import jinja2
from jinja2 import meta

from .. import __version__
from ..errors import InternalError
from .ir import KernelIR

KERNEL_TEMPLATE = "kernel.py.j2"


@lru_cache(maxsize=None)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: template_source(name)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def template_source(name: str) -> str:
    """A template's text: from the installed ``ccdgen.templates`` package, or from the
    source checkout's ``templates/`` folder when ccdgen runs uninstalled."""
    try:
        root = resources.files("ccdgen.templates")
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2] / "templates"
    return root.joinpath(name).read_text()


def template_hash(name: str) -> str:
    return hashlib.sha256(template_source(name).encode()).hexdigest()


def template_keys(name: str) -> set[str]:
    """The undeclared variables (the contract) of a template."""
    env = _env()
    return set(meta.find_undeclared_variables(env.parse(template_source(name))))


def render(name: str, context: dict) -> str:
    needed = template_keys(name)
    missing, extra = needed - set(context), set(context) - needed
    if missing or extra:
        raise InternalError(f"template {name}: missing keys {sorted(missing)}, unexpected keys {sorted(extra)}")
    return _env().get_template(name).render(**context)


PRINTED_KIND = "printed"


def printed_metric(name: str) -> tuple[str, str]:
    """Python source of a pair metric ``f(s)`` and ``f'(s)`` from the strict printer, cached
    (key: the metric's SymPy expression, the SymPy version and the printer's source), so that
    kernels found in the cache need no SymPy import."""
    import json
    from importlib.metadata import version

    from ..cache import get_or_build
    from ..ccd.metrics import get_metric

    metric = get_metric(name)
    printer_src = (Path(__file__).parent / "printer.py").read_bytes()
    parts = {"stage": "metric-code/1", "metric": name, "expression": metric.symbolic_name,
             "sympy": version("sympy"), "printer": hashlib.sha256(printer_src).hexdigest()}

    def build(tmp):
        from .printer import metric_code  # SymPy: only when the code is printed

        value, deriv = metric_code(name)
        (tmp / "metric.json").write_text(json.dumps({"value": value, "derivative": deriv}))
        return {}

    entry = get_or_build(PRINTED_KIND, parts, build, describe=f"printed {name} metric")
    code = json.loads(entry.file("metric.json").read_text())
    return code["value"], code["derivative"]


def kernel_context(ir: KernelIR, tile: int) -> dict:
    """Everything :data:`KERNEL_TEMPLATE` needs: the code shape and the metric, printed by
    the strict printer.  The cluster's tables are kernel arguments, not part of the code."""
    value, deriv = printed_metric(ir.metric)
    shape = ir.code_shape()
    return {
        "ccdgen_version": __version__,
        "template_name": KERNEL_TEMPLATE,
        **{k: shape[k] for k in ("n_sites", "n_pairs", "n_features", "n_monomials", "n_internal", "n_inner",
                                 "max_degree", "metric", "has_projection")},
        "code_signature": ir.code_signature(),
        "tile": int(tile),
        "metric_value": value,
        "metric_derivative": deriv,
    }


def render_kernel(ir: KernelIR, tile: int) -> str:
    return render(KERNEL_TEMPLATE, kernel_context(ir, tile))
