"""ccdgen: a compiler from crystals and clusters to symmetry-exact CCD features and
energy models (collective cluster deformations, neural cluster expansions)."""

__version__ = "0.1.0"

from .errors import CCDGenError  # noqa: E402,F401


def compile_cluster(*args, **kwargs):
    """See :func:`ccdgen.codegen.compiled.compile_cluster`."""
    from .codegen.compiled import compile_cluster as _compile

    return _compile(*args, **kwargs)


def show_code(kernel, file=None):
    """See :func:`ccdgen.codegen.compiled.show_code`."""
    from .codegen.compiled import show_code as _show

    return _show(kernel, file)


def __getattr__(name):
    if name == "Calculator":  # the ASE calculator imports torch: only when asked for
        from .calculator import Calculator

        return Calculator
    if name == "CrystalFeaturizer":
        from .crystal.featurizer import CrystalFeaturizer

        return CrystalFeaturizer
    raise AttributeError(f"module 'ccdgen' has no attribute {name!r}")
