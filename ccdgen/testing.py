"""Test helpers for CCD features: call them on your own clusters and feature functions.

Every helper works on batches of cluster geometries ``coords`` of shape
``(n_clusters, n_sites, 3)`` (Cartesian, Å) and raises :class:`AssertionError` with a
readable message when a property does not hold, so they can be used directly inside
pytest tests::

    import numpy as np
    from ccdgen.ccd.evaluate import ccds, ccd_jacobian
    from ccdgen.testing import (assert_rigid_invariant, assert_point_group_equivariant,
                                assert_numeric_gradient)

    rng = np.random.default_rng(0)
    x = t.cluster.positions + 0.1 * rng.standard_normal((8, t.cluster.n_sites, 3))
    assert_rigid_invariant(lambda c: ccds(t, c), x, rng)
    assert_point_group_equivariant(t, x)
    assert_numeric_gradient(lambda c: ccds(t, c), lambda c: ccd_jacobian(t, c), x)
"""

from __future__ import annotations

from typing import Callable

import numpy as np

__all__ = [
    "random_rotation",
    "random_rigid_motion",
    "assert_rigid_invariant",
    "assert_point_group_equivariant",
    "assert_numeric_gradient",
]


def _as_coords(coords) -> np.ndarray:
    x = np.asarray(coords, dtype=float)
    if x.ndim == 2:
        x = x[None]
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"coords must have shape (n_clusters, n_sites, 3), got {np.shape(coords)}")
    return x


def random_rotation(rng: np.random.Generator, reflect: bool = False) -> np.ndarray:
    """A random orthogonal 3x3 matrix, uniformly (Haar) distributed.

    Parameters
    ----------
    rng : numpy Generator
    reflect : if True the matrix has determinant -1 (a rotation times a reflection),
        otherwise +1 (a proper rotation).

    Returns
    -------
    (3, 3) float64, dimensionless; acts on column vectors (``x' = R @ x``).
    """
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))  # Haar measure on O(3)
    if (np.linalg.det(q) < 0) != bool(reflect):
        q[:, 0] = -q[:, 0]
    return q


def random_rigid_motion(coords, rng: np.random.Generator, reflect: bool = False,
                        max_translation: float = 5.0) -> np.ndarray:
    """Apply one random rigid motion (a rotation, or an improper rotation if ``reflect``,
    about the origin, then a translation) to every cluster of a batch.

    Parameters
    ----------
    coords : (n_clusters, n_sites, 3) float, Å (a single (n_sites, 3) is promoted)
    rng : numpy Generator
    reflect : include a reflection (determinant -1)
    max_translation : float, Å — each translation component is uniform in
        ``[-max_translation, max_translation]``

    Returns
    -------
    (n_clusters, n_sites, 3) float64, Å — ``R x_i + t`` for every site; each cluster gets
    its own random ``R`` and ``t``.
    """
    x = _as_coords(coords)
    out = np.empty_like(x)
    for k in range(len(x)):
        r = random_rotation(rng, reflect)
        t = rng.uniform(-max_translation, max_translation, 3)
        out[k] = x[k] @ r.T + t
    return out


def assert_rigid_invariant(fn: Callable[[np.ndarray], np.ndarray], coords, rng: np.random.Generator,
                           atol: float = 1e-12, n_trials: int = 5) -> None:
    """Check that ``fn`` is invariant under rotations, reflections and translations.

    Parameters
    ----------
    fn : callable, (n_clusters, n_sites, 3) Å → (n_clusters, n_features)
    coords : (n_clusters, n_sites, 3) float, Å
    rng : numpy Generator
    atol : largest allowed absolute change of any feature (feature units)
    n_trials : number of random rigid motions; odd-numbered trials include a reflection

    Raises
    ------
    AssertionError naming the trial, the cluster and feature with the largest change.
    """
    x = _as_coords(coords)
    ref = np.asarray(fn(x), dtype=float)
    for trial in range(n_trials):
        reflect = trial % 2 == 1
        moved = random_rigid_motion(x, rng, reflect=reflect)
        got = np.asarray(fn(moved), dtype=float)
        if got.shape != ref.shape:
            raise AssertionError(f"fn output changed shape under a rigid motion: {ref.shape} -> {got.shape}")
        err = np.abs(got - ref)
        if not np.all(err <= atol):
            k = np.unravel_index(np.argmax(err), err.shape)
            raise AssertionError(
                f"not invariant under a random {'improper ' if reflect else ''}rigid motion "
                f"(trial {trial}): feature {k[1:]} of cluster {k[0]} changed by {err[k]:.3g} > atol={atol:g}"
            )


def assert_point_group_equivariant(transform, coords, atol: float = 1e-10) -> None:
    """Check ``eta(g·x) = D(g) eta(x)`` for every operation ``g`` of the cluster point
    group (Eq. 11).

    ``g·x`` moves the site at ``x_i`` to ``R_g (x_i - c) + c`` and gives it index
    ``perm[g, i]``: ``x'[perm[g, i]] = R_g (x_i - c) + c``, with ``c`` the centroid of the
    *reference* positions of the cluster.  ``D(g) = Q Γ(g) Q⁻¹`` comes from the transform.

    Parameters
    ----------
    transform : :class:`ccdgen.ccd.transform.CCDTransform`
    coords : (n_clusters, n_sites, 3) float, Å — deformed cluster geometries
    atol : largest allowed absolute difference (CCD units, dimensionless)

    Raises
    ------
    AssertionError naming the operation and the CCD with the largest error.
    """
    from .ccd.evaluate import ccds

    x = _as_coords(coords)
    group = transform.cluster.group
    c = transform.cluster.positions.mean(axis=0)
    eta = ccds(transform, x)  # (n, M)
    d = transform.D()  # (order, M, M)
    kinds = group.element_kinds()
    for g in range(group.order):
        moved = np.empty_like(x)
        moved[:, group.permutations[g]] = (x - c) @ group.rotations[g].T + c
        lhs = ccds(transform, moved)
        rhs = eta @ d[g].T
        err = np.abs(lhs - rhs)
        if not np.all(err <= atol):
            k = np.unravel_index(np.argmax(err), err.shape)
            raise AssertionError(
                f"eta(g·x) != D(g) eta(x) for operation {g} ({kinds[g]}) of "
                f"{group.schoenflies}: CCD {k[1]} of cluster {k[0]} differs by {err[k]:.3g} > atol={atol:g}"
            )


def assert_numeric_gradient(fn: Callable[[np.ndarray], np.ndarray],
                            jac_fn: Callable[[np.ndarray], np.ndarray], coords,
                            h: float = 1e-6, rtol: float = 1e-6) -> None:
    """Compare an analytic Jacobian with central finite differences.

    Parameters
    ----------
    fn : callable, (n_clusters, n_sites, 3) Å → (n_clusters, n_features)
    jac_fn : callable, (n_clusters, n_sites, 3) Å → (n_clusters, n_features, n_sites, 3),
        ``d fn / d x`` in feature units per Å
    coords : (n_clusters, n_sites, 3) float, Å
    h : float, Å — finite-difference step
    rtol : allowed error relative to the largest Jacobian entry of each cluster (at
        least 1): ``|J_num - J| <= rtol * max(1, max|J|)``

    Raises
    ------
    AssertionError naming the cluster, feature, site and component with the largest error.
    """
    x = _as_coords(coords)
    ana = np.asarray(jac_fn(x), dtype=float)
    n, n_sites, _ = x.shape
    f0 = np.asarray(fn(x), dtype=float)
    expected = (n, f0.shape[1], n_sites, 3)
    if ana.shape != expected:
        raise AssertionError(f"jac_fn returned shape {ana.shape}, expected {expected}")
    num = np.empty_like(ana)
    for s in range(n_sites):
        for a in range(3):
            xp = x.copy()
            xm = x.copy()
            xp[:, s, a] += h
            xm[:, s, a] -= h
            num[:, :, s, a] = (np.asarray(fn(xp), float) - np.asarray(fn(xm), float)) / (2 * h)
    scale = np.maximum(np.abs(ana).reshape(n, -1).max(axis=1), 1.0)
    err = np.abs(num - ana) / scale[:, None, None, None]
    if not np.all(err <= rtol):
        k = np.unravel_index(np.argmax(err), err.shape)
        raise AssertionError(
            f"Jacobian differs from central finite differences (h={h:g}): cluster {k[0]}, "
            f"feature {k[1]}, site {k[2]}, component {'xyz'[k[3]]}: analytic {ana[k]:.10g}, "
            f"numeric {num[k]:.10g} (relative error {err[k]:.3g} > rtol={rtol:g})"
        )
