"""Train / validation / test splits and k folds: deterministic from a seed, disjoint.

The permutation comes from ``numpy.random.default_rng(seed)`` (randomness is the point here;
the seed is recorded with every model), and is taken over frame indices, so the same data
and seed give the same split on every machine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError


@dataclass(frozen=True)
class Split:
    """Frame indices (into a dataset) of the three parts; disjoint, sorted."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    seed: int

    def describe(self) -> dict:
        return {"train": int(len(self.train)), "val": int(len(self.val)), "test": int(len(self.test)),
                "seed": int(self.seed)}


def _fraction(x, name: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not (0 <= x < 1):
        raise DataError(f"{name} must be a fraction in [0, 1), got {x!r}")
    return float(x)


def split_frames(n_frames: int, test_fraction: float = 0.2, val_fraction: float = 0.1, seed: int = 0,
                 frames=None) -> Split:
    """Hold out ``test_fraction`` of the frames for testing, then ``val_fraction`` of the rest
    for validation (early stopping); the remainder trains.  ``frames`` restricts the split to
    these dataset indices (default: all)."""
    test_fraction = _fraction(test_fraction, "test_fraction")
    val_fraction = _fraction(val_fraction, "val_fraction")
    idx = np.arange(n_frames) if frames is None else np.asarray(frames, dtype=np.int64)
    if len(idx) < 3:
        raise DataError(f"{len(idx)} frame(s) cannot be split into train, validation and test",
                        fix="use more frames")
    perm = idx[np.random.default_rng(seed).permutation(len(idx))]
    n_test = int(round(test_fraction * len(idx)))
    rest = perm[n_test:]
    n_val = int(round(val_fraction * len(rest))) if val_fraction > 0 else 0
    if len(rest) - n_val < 1:
        raise DataError("no frame left for training after the test and validation splits",
                        fix="lower test_fraction / val_fraction or use more frames")
    return Split(np.sort(rest[n_val:]), np.sort(rest[:n_val]), np.sort(perm[:n_test]), int(seed))


def kfold(frames, k: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``k`` (train, validation) folds of ``frames``: every frame is validated exactly once."""
    frames = np.asarray(frames, dtype=np.int64)
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise DataError(f"the number of folds must be an integer ≥ 2, got {k!r}")
    if k > len(frames):
        raise DataError(f"{k} folds need at least {k} frames, got {len(frames)}")
    perm = frames[np.random.default_rng(seed).permutation(len(frames))]
    parts = np.array_split(perm, k)
    return [(np.sort(np.concatenate(parts[:i] + parts[i + 1:])), np.sort(parts[i])) for i in range(k)]
