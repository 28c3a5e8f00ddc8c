"""ccdgen: a compiler from crystals and clusters to symmetry-exact CCD features and
energy models (collective cluster deformations, neural cluster expansions)."""

__version__ = "0.1.0"

from .errors import CCDGenError  # noqa: E402,F401
