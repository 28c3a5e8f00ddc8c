"""One error hierarchy for ccdgen.

Every error a user can trigger derives from :class:`CCDGenError` and says *what* went
wrong, *why* it matters and *how to fix it*.  The CLI prints these without a traceback
(``--traceback`` shows it).  :class:`InternalError` marks a bug in ccdgen itself.
"""

from __future__ import annotations


class CCDGenError(Exception):
    """Base class of all errors raised on purpose by ccdgen."""

    def __init__(self, what: str, why: str = "", fix: str = ""):
        self.what, self.why, self.fix = what, why, fix
        parts = [what]
        if why:
            parts.append(f"Why: {why}")
        if fix:
            parts.append(f"Fix: {fix}")
        super().__init__("\n  ".join(parts))


class SpecError(CCDGenError):
    """The spec file is unreadable, has an unknown or missing key, or a bad value.

    Raised for: TOML/YAML syntax errors, unknown keys (typos), wrong types, values out of
    range (sigma <= 0, negative order), unknown pair metric names.
    """


class StructureError(CCDGenError):
    """A structure (crystal or free cluster) is unusable.

    Raised for: unreadable or unsupported files, NaN/inf coordinates, duplicate sites,
    singular lattices, atoms collapsed onto each other.
    """


class ClusterError(CCDGenError):
    """A cluster cannot be built or is degenerate for the requested use.

    Raised for: fewer than two sites, sites that are not crystal sites, selections that
    match nothing, planar/collinear clusters where a count assumes 3-D.
    """


class SymmetryError(CCDGenError):
    """A symmetry search failed (tolerance too tight/loose, not a group)."""


class InputArrayError(CCDGenError):
    """Arrays passed to an evaluator have the wrong shape, dtype or non-finite values."""


class InternalError(CCDGenError):
    """A check that can only fail because of a bug in ccdgen.  Please report it."""

    def __init__(self, what: str, signature: str = ""):
        super().__init__(
            f"{what} (this is a bug in ccdgen)",
            why=f"context signature: {signature}" if signature else "",
            fix="please report it with the input that triggered it",
        )
