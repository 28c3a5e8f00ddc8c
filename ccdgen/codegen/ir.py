"""Kernel IR: what a generated kernel computes, in which order, with which tables.

A thin immutable layer between the invariant basis and the printer.  For one cluster:

1. pair vectors ``d_p = x[j_p] - x[i_p]``, lengths ``r_p`` (``pairs`` (M, 2), ``r0`` (M,) Å);
2. pair metrics ``eps_p = f(r_p / r0_p)`` (``metric``);
3. optionally projected metrics ``eps~ = P eps`` (``projection`` (M, M)), truncated CCDs;
4. monomials as a trie: node ``k`` has value ``val[pid[k]] * eps~[var[k]]``.  ``val`` holds
   only the root (``val[0] = 1``) and the *internal* nodes (``val[sid[k]]``): for degree 4
   in 15 variables 816 rows instead of 3,875.  The first ``n_inner`` nodes are the internal
   ones in depth-first (lexicographic) order, so parents precede children; the leaves
   follow, grouped by parent, and only accumulate (one fused multiply-add each);
5. features ``F[feature[k]] += value_k`` (``feature = n_features``: a helper prefix that
   adds to a dummy row), and finally ``F[f] *= scale[f]`` (the Reynolds weight
   ``1/|orbit|``).  Gradients sweep the same table backwards with one adjoint per internal
   node.

Also ``mon_vars`` (K, D) — every monomial's sorted variables, -1 padded — for the
Jacobian (product of the other factors).  :meth:`KernelIR.signature` is canonical: a
SHA-256 of the arrays and options, never of object identities.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..ccd.transform import CCDTransform
from ..invariants.basis import InvariantBasis

IR_VERSION = "kernel-ir/1"


@dataclass(frozen=True, eq=False)
class KernelIR:
    """Everything the code generator needs for one cluster (arrays are read-only)."""

    name: str
    n_sites: int
    pairs: np.ndarray  # (M, 2) int64
    r0: np.ndarray  # (M,) float64, Å
    metric: str
    projection: np.ndarray | None  # (M, M) float64
    n_inner: int  # internal (non-root) nodes: rows 0..n_inner-1 of the node tables
    depth: np.ndarray  # (K,) int64, 1..max_degree
    pid: np.ndarray  # (K,) int64, row of the parent's value in val (0: the root, 1.0)
    sid: np.ndarray  # (K,) int64, row where this node's value is stored; n_internal: leaf
    var: np.ndarray  # (K,) int64
    feature: np.ndarray  # (K,) int64; n_features: a helper prefix, not a feature term
    scale: np.ndarray  # (F,) float64
    mon_vars: np.ndarray  # (K, D) int64
    degrees: np.ndarray  # (F,) int64
    feature_names: tuple

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    @property
    def n_features(self) -> int:
        return len(self.degrees)

    @property
    def n_monomials(self) -> int:
        return len(self.depth)

    @property
    def n_internal(self) -> int:
        """Rows of the value table (root + internal nodes)."""
        return int(self.pid.max(initial=0)) + 1

    def signature(self) -> str:
        h = hashlib.sha256(IR_VERSION.encode())
        h.update(f"{self.name}|{self.n_sites}|{self.metric}|{self.n_inner}|{','.join(self.feature_names)}".encode())
        for a in (self.pairs, self.depth, self.pid, self.sid, self.var, self.feature, self.mon_vars, self.degrees):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        h.update(np.ascontiguousarray(self.r0).tobytes())
        h.update(np.ascontiguousarray(self.scale).tobytes())
        h.update(b"none" if self.projection is None else np.ascontiguousarray(self.projection).tobytes())
        return h.hexdigest()

    def code_shape(self) -> dict:
        """What the generated code depends on: sizes, metric, projection (not the tables)."""
        return {"n_sites": self.n_sites, "n_pairs": self.n_pairs, "n_features": self.n_features,
                "n_monomials": self.n_monomials, "n_inner": self.n_inner, "n_internal": self.n_internal,
                "max_degree": int(self.mon_vars.shape[1]), "metric": self.metric,
                "has_projection": self.projection is not None}

    def code_signature(self) -> str:
        """SHA-256 of :meth:`code_shape`: clusters with equal shapes share kernel code."""
        text = IR_VERSION + "|" + "|".join(f"{k}={v}" for k, v in sorted(self.code_shape().items()))
        return hashlib.sha256(text.encode()).hexdigest()

    @cached_property
    def kernel_arguments(self) -> tuple:
        """The tables passed to the kernels, in their argument order (read-only arrays)."""
        proj = self.projection if self.projection is not None else np.zeros((1, 1))
        return (self.pairs, self.r0, proj, self.pid, self.sid, self.var, self.feature, self.scale)

    def flops(self) -> dict:
        """Rough floating-point operation counts per cluster (for the benchmark's bound)."""
        m, k = self.n_pairs, self.n_monomials
        pair = 3 * 3 + 6  # difference, norm, metric (approx.)
        proj = 2 * m * m if self.projection is not None else 0
        used = int(np.sum(self.feature < self.n_features))
        feats = m * pair + proj + k + used
        vjp = feats + 4 * k + proj + m * 12
        return {"features": feats, "features+vjp": vjp}


def lower(t: CCDTransform, basis: InvariantBasis, names) -> KernelIR:
    """Lower an invariant basis into the table form (the monomial tree)."""
    d_max = max(basis.max_degree, 1)
    feat_of: dict[tuple, int] = {}
    prefixes: set[tuple] = set()
    for f in range(basis.n_features):
        for r in basis.monomials[basis.offsets[f]:basis.offsets[f + 1]]:
            mon = tuple(int(v) for v in r if v >= 0)
            feat_of[mon] = f
            prefixes.update(mon[:k] for k in range(1, len(mon) + 1))
    internal = {m[:-1] for m in prefixes if len(m) > 1}
    # internal nodes first (lexicographic = depth-first preorder: parents first), then leaves
    rows = sorted(internal) + sorted(prefixes - internal)
    k = len(rows)
    depth = np.array([len(m) for m in rows], dtype=np.int64)
    row_of = {(): 0}
    for m in rows[:len(internal)]:
        row_of[m] = len(row_of)
    pid = np.array([row_of[m[:-1]] for m in rows], dtype=np.int64)
    sid = np.array([row_of.get(m, len(row_of)) for m in rows], dtype=np.int64)
    var = np.array([m[-1] for m in rows], dtype=np.int64)
    feature = np.array([feat_of.get(m, basis.n_features) for m in rows], dtype=np.int64)
    scale = (1.0 / basis.orbit_sizes).astype(np.float64)
    mon_vars = np.full((k, d_max), -1, dtype=np.int64)
    for i, m in enumerate(rows):
        mon_vars[i, :len(m)] = m
    proj = None if basis.projection is None else np.array(basis.projection, dtype=np.float64)
    pairs = t.rep.pairs.astype(np.int64)
    r0 = t.r0.astype(np.float64)
    degrees = basis.degrees.astype(np.int64)
    for a in (pairs, r0, depth, pid, sid, var, feature, scale, mon_vars, degrees, proj):
        if a is not None:
            a.setflags(write=False)
    return KernelIR(t.cluster.name, t.cluster.n_sites, pairs, r0, t.metric.name, proj, len(internal),
                    depth, pid, sid, var, feature, scale, mon_vars, degrees, tuple(names))
