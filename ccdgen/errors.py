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


class MappingError(CCDGenError):
    """A configuration does not map onto the reference crystal.

    Raised for: wrong atom counts or species, an atom too far from every reference site,
    a cell that is no integer supercell of the reference, two atoms claiming one site,
    a strain too large to tell the supercell.  Messages name the frame and the atom.
    """


class DataError(CCDGenError):
    """A dataset is unusable: unreadable file, NaN or missing energies, forces or stress
    of the wrong shape, mixed species, duplicate frames.  Messages name the frame index."""


class ModelError(CCDGenError):
    """A model cannot be built, trained, saved or loaded as asked: a checkpoint that does
    not match its spec, features of another featurizer, an interrupted run that cannot
    resume."""


class InternalError(CCDGenError):
    """A check that can only fail because of a bug in ccdgen.  Please report it."""

    def __init__(self, what: str, signature: str = ""):
        super().__init__(
            f"{what} (this is a bug in ccdgen)",
            why=f"context signature: {signature}" if signature else "",
            fix="please report it with the input that triggered it",
        )
