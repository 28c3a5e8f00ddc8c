"""The uniqueness filter: keep a candidate only if no kept frame is within a threshold.

Candidates are taken in order; candidate ``i`` is kept when its Euclidean distance in
feature space to every frame kept before it (and to every ``prior`` frame) is at least
``threshold`` — the greedy rule, whose result keeps no pair closer than the threshold.

Cost O(n log n)-like instead of the O(n²) of comparing each candidate with all kept ones:

* the kept set lives in a small forest of :class:`scipy.spatial.cKDTree` s whose sizes at
  least double from one to the next (the logarithmic method: a new batch's tree is merged
  with the newest trees while they are not larger than it), so there are O(log n) trees
  and each kept point is rebuilt into a tree O(log n) times;
* candidates come in batches: one ``query(k=1, distance_upper_bound=threshold)`` per
  tree rejects those near a kept frame, then a tree of the batch's survivors and its
  ``query_pairs(threshold)`` resolve conflicts within the batch in candidate order.

The result equals the sequential greedy rule exactly (tested against a brute-force loop).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ...errors import InputArrayError, SpecError

__all__ = ["UniqueFilter", "unique_subset", "frame_features"]


class UniqueFilter:
    """Incremental uniqueness filter (module docstring).

    Parameters
    ----------
    threshold : float > 0 — minimum distance between kept points (feature units)
    dim : feature dimension
    prior : (m, dim) float — points kept beforehand (e.g. an existing pool)
    batch : candidates resolved together (memory and speed trade-off; any value gives the
        same result)
    """

    def __init__(self, threshold: float, dim: int, prior=None, batch: int = 4096):
        if not (isinstance(threshold, (int, float, np.floating)) and np.isfinite(threshold) and threshold > 0):
            raise SpecError(f"the uniqueness threshold must be a finite number > 0, got {threshold!r}",
                            fix="give e.g. --min-distance 0.05")
        self.threshold = float(threshold)
        self.dim = int(dim)
        self.batch = max(1, int(batch))
        self._trees: list = []  # [(tree, points)]
        self.n_kept = 0
        if prior is not None:
            p = self._check(prior, "prior points")
            if len(p):
                self._add(p)

    def _check(self, x, what) -> np.ndarray:
        a = np.asarray(x, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != self.dim:
            raise InputArrayError(f"{what} must have shape (n, {self.dim}), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise InputArrayError(f"{what} contain NaN or inf")
        return a

    def _add(self, points: np.ndarray) -> None:
        pts = points
        while self._trees and len(self._trees[-1][1]) <= len(pts):
            pts = np.concatenate([self._trees.pop()[1], pts])
        self._trees.append((cKDTree(pts), pts))
        self.n_kept += len(points)

    def _near_kept(self, x: np.ndarray) -> np.ndarray:
        """(n,) bool: a kept point lies closer than the threshold."""
        near = np.zeros(len(x), dtype=bool)
        for tree, _ in self._trees:
            todo = np.flatnonzero(~near)
            if not len(todo):
                break
            d, _ = tree.query(x[todo], k=1, distance_upper_bound=self.threshold)
            near[todo[d < self.threshold]] = True
        return near

    def add(self, candidates) -> np.ndarray:
        """Filter ``candidates (n, dim)`` in order; returns the (n,) bool mask of the kept
        ones (which join the kept set)."""
        x = self._check(candidates, "candidates")
        keep = np.zeros(len(x), dtype=bool)
        for s in range(0, len(x), self.batch):
            xb = x[s:s + self.batch]
            alive = np.flatnonzero(~self._near_kept(xb))
            if not len(alive):
                continue
            pairs = cKDTree(xb[alive]).query_pairs(self.threshold, output_type="ndarray")
            ok = np.ones(len(alive), dtype=bool)
            if len(pairs):
                pairs = np.sort(pairs, axis=1)
                earlier: dict = {}
                for i, j in pairs.tolist():  # j conflicts with the earlier i
                    earlier.setdefault(j, []).append(i)
                for j in sorted(earlier):
                    if any(ok[i] for i in earlier[j]):
                        ok[j] = False
            kept = alive[ok]
            keep[s + kept] = True
            self._add(xb[kept])
        return keep


def unique_subset(features, threshold: float, prior=None, batch: int = 4096) -> np.ndarray:
    """Indices of the candidates kept by the greedy uniqueness rule (module docstring).

    ``features (n, dim)``; ``prior (m, dim)`` points already kept.  Returns sorted int64
    indices.
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise InputArrayError(f"features must have shape (n, dim), got {f.shape}")
    filt = UniqueFilter(threshold, f.shape[1], prior=prior, batch=batch)
    return np.flatnonzero(filt.add(f))


def frame_features(batch, featurizer=None, supercell=None, kind: str = "ccd") -> np.ndarray:
    """Feature vectors ``(n_frames, F)`` of a FrameBatch for the uniqueness filter.

    ``kind="ccd"``: the per-orbit means of the cluster features of a
    :class:`~ccdgen.crystal.featurizer.CrystalFeaturizer` (invariant under the space group,
    rigid motions and atom order: symmetry-equivalent frames coincide), concatenated over
    orbits.  The frames must be in ``supercell``'s site order (as generators make them).
    ``kind="displacement"``: the displacements from the ideal supercell and the cell
    deformation, flattened (fast, but not symmetry-invariant).
    """
    if kind == "displacement":
        d = batch.positions - np.asarray(supercell.positions)[None]
        d = d - d.mean(axis=1, keepdims=True)
        f = np.einsum("ij,fjk->fik", np.linalg.inv(supercell.cell), batch.cells) - np.eye(3)
        return np.concatenate([d.reshape(len(batch), -1), f.reshape(len(batch), -1)], axis=1)
    if kind != "ccd":
        raise SpecError(f"feature kind {kind!r} is not one of ccd, displacement")
    lay = featurizer.layout(supercell)
    feats = featurizer.compute(batch.positions, batch.cells, lay)
    return np.concatenate([feats[n].mean(axis=1) for n in featurizer.orbits], axis=1)
