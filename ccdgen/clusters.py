"""Stage 1 output: clusters with their point groups (free or crystal-embedded).

A :class:`Cluster` is an immutable value: reference positions, species, the cluster point
group (Eqs. 7-8) and, for an embedded cluster, its integer sites ``(b, n1, n2, n3)`` and
its orbit in the crystal (Eq. 12).  Selection helpers build clusters from a spec:
explicit sites, pair / triplet length cutoffs, and named polyhedra.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import ClusterError
from .geometry.structure import Crystal, validate_cluster_positions
from .symmetry.free import dimensionality, find_point_group
from .symmetry.group import PointGroup
from .symmetry.spacegroup import SpaceGroup, canonical, embedded_point_group, orbit

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


def check_name(name: str) -> str:
    """Cluster names become identifiers in generated code: letters, digits, '_' only."""
    if not isinstance(name, str) or not _IDENT.match(name):
        raise ClusterError(
            f"cluster name {name!r} is not a safe identifier",
            why="names are used as Python identifiers and file names in generated code",
            fix="use a letter followed by letters, digits or '_' (at most 64 characters), "
            "e.g. 'PbBr6'",
        )
    return name


@dataclass(frozen=True, eq=False)
class Cluster:
    """A cluster of sites and its point group.

    Attributes
    ----------
    name : str — a safe identifier
    species : tuple of str, length n_sites
    positions : (n_sites, 3) float64, Å — reference geometry
    group : PointGroup — maps of the cluster onto itself (crystal symmetries if embedded)
    sites : (n_sites, 4) int64 or None — (basis index, n1, n2, n3) for embedded clusters
    orbit : tuple of (n_sites, 4) int64 arrays or None — equivalent clusters per cell
    kind : str — "free", "pair", "triplet", "polyhedron" or "sites"
    nn_distance : float or None, Å — the crystal's nearest-neighbour distance for an embedded
        cluster (None for a free cluster); see :attr:`length_scale`
    """

    name: str
    species: tuple
    positions: np.ndarray
    group: PointGroup
    sites: Optional[np.ndarray] = None
    orbit: Optional[tuple] = None
    kind: str = "free"
    nn_distance: Optional[float] = None

    @property
    def n_sites(self) -> int:
        return len(self.species)

    @property
    def n_pairs(self) -> int:
        return self.n_sites * (self.n_sites - 1) // 2

    @property
    def length_scale(self) -> float:
        """The nearest-neighbour distance (Å) that ``sigma`` is a fraction of: the crystal's
        for an embedded cluster, the cluster's shortest pair for a free one."""
        if self.nn_distance is not None:
            return float(self.nn_distance)
        i, j = np.triu_indices(self.n_sites, 1)
        return float(np.linalg.norm(self.positions[i] - self.positions[j], axis=1).min())

    @property
    def dimension(self) -> int:
        """Dimension of the sites' affine span: 1 collinear, 2 planar, 3 solid."""
        return dimensionality(self.positions)

    @property
    def site_labels(self) -> tuple:
        """Readable site names: species + index, with the cell offset if embedded."""
        if self.sites is None:
            return tuple(f"{s}{i}" for i, s in enumerate(self.species))
        return tuple(
            f"{s}{i}" + ("" if not any(r[1:]) else f"[{r[1]},{r[2]},{r[3]}]")
            for i, (s, r) in enumerate(zip(self.species, self.sites.tolist()))
        )

    def signature(self) -> str:
        """SHA-256 of what determines everything derived from the cluster."""
        h = hashlib.sha256()
        h.update(np.round(self.positions, 8).tobytes())
        h.update("|".join(self.species).encode())
        h.update(self.group.signature().encode())
        h.update(f"{self.length_scale:.12g}".encode())
        return h.hexdigest()

    def in_supercell(self, n_basis: int, repeat) -> tuple[np.ndarray, np.ndarray]:
        """All clusters of this orbit in a supercell ``crystal.to_atoms().repeat(repeat)``.

        Returns
        -------
        atoms : (n_clusters, n_sites) int — atom indices in ASE's ``repeat`` order
        images : (n_clusters, n_sites, 3) int — supercell lattice offset of each site,
            so that the unwrapped position is ``positions[atoms] + images @ supercell``
        """
        if self.orbit is None:
            raise ClusterError(f"cluster {self.name!r} is free, it has no crystal orbit")
        m = np.array(repeat, dtype=np.int64).reshape(3)
        atoms, images = [], []
        for member in self.orbit:
            for t in itertools.product(*(range(k) for k in m)):
                n = member[:, 1:] + np.array(t)
                cell = np.mod(n, m)
                img = (n - cell) // m
                idx = ((cell[:, 0] * m[1] + cell[:, 1]) * m[2] + cell[:, 2]) * n_basis + member[:, 0]
                atoms.append(idx)
                images.append(img)
        atoms = np.array(atoms)
        if any(len(set(a.tolist())) < len(a) for a in atoms):
            raise ClusterError(
                f"cluster {self.name!r} wraps onto itself in a {tuple(m.tolist())} supercell",
                why="two of its sites are periodic images of the same atom",
                fix="use a larger supercell",
            )
        return atoms, np.array(images)


# --------------------------------------------------------------------- builders
def free_cluster(positions, species, name: str = "cluster", symprec: float = 1e-3) -> Cluster:
    """A cluster given only by coordinates: its full point group from the geometry."""
    x, sp = validate_cluster_positions(positions, species, name)
    group, exact = find_point_group(x, sp, symprec, return_positions=True)
    return Cluster(check_name(name), sp, exact, group, kind="free")


def embedded_cluster(crystal: Crystal, sg: SpaceGroup, sites, name: str, kind: str = "sites") -> Cluster:
    """A cluster of crystal sites ``(b, n1, n2, n3)``, with its site-symmetry group."""
    sites = np.asarray(sites, dtype=np.int64).reshape(-1, 4)
    if len(sites) < 2:
        raise ClusterError(
            f"cluster {name!r} has {len(sites)} site(s); a cluster needs at least 2",
            fix="add sites; a pair is the smallest cluster",
        )
    if len({tuple(r) for r in sites.tolist()}) != len(sites):
        raise ClusterError(f"cluster {name!r} lists the same site twice", fix="remove the duplicate")
    if np.any(sites[:, 0] < 0) or np.any(sites[:, 0] >= crystal.n_basis):
        raise ClusterError(
            f"cluster {name!r}: basis index out of range 0..{crystal.n_basis - 1}",
            fix="sites are [basis_index, n1, n2, n3] with basis_index into the crystal's sites",
        )
    sites = canonical(sites)
    pos = crystal.cartesian(crystal.frac[sites[:, 0]] + sites[:, 1:])
    species = tuple(crystal.species[b] for b in sites[:, 0])
    group = embedded_point_group(crystal, sg, sites)
    return Cluster(check_name(name), species, pos, group, sites, tuple(orbit(sg, sites)), kind,
                   crystal.nearest_neighbour_distance())


def _neighbours(crystal: Crystal, b: int, rmax: float) -> list[tuple[float, np.ndarray]]:
    """All sites within ``rmax`` Å of basis site ``b`` (excluding itself), sorted."""
    inv_lengths = np.linalg.norm(np.linalg.inv(crystal.cell), axis=0)
    nmax = np.ceil(rmax * inv_lengths).astype(int) + 1
    rng = [range(-k, k + 1) for k in nmax]
    out = []
    origin = crystal.positions[b]
    for n in itertools.product(*rng):
        pos = crystal.cartesian(crystal.frac + np.array(n)) - origin
        d = np.linalg.norm(pos, axis=1)
        for bp in np.flatnonzero(d <= rmax + 1e-8):
            if d[bp] > 1e-8:
                out.append((float(d[bp]), np.array([bp, *n], dtype=np.int64)))
    out.sort(key=lambda t: (round(t[0], 6), t[1].tolist()))
    return out


def _unique_orbits(sg: SpaceGroup, candidates: list[np.ndarray]) -> list[np.ndarray]:
    """One prototype (canonical) per space-group orbit, in the order first seen."""
    seen, protos = set(), []
    for c in candidates:
        key = canonical(c).tobytes()
        if key in seen:
            continue
        members = orbit(sg, c)
        seen.update(canonical(m).tobytes() for m in members)
        protos.append(canonical(c))
    return protos


def _pair_lengths(crystal: Crystal, sites: np.ndarray) -> np.ndarray:
    pos = crystal.cartesian(crystal.frac[sites[:, 0]] + sites[:, 1:])
    i, j = np.triu_indices(len(sites), 1)
    return np.linalg.norm(pos[i] - pos[j], axis=1)


def select_pairs(crystal, sg, max_length: float, count: Optional[int], name: str) -> list[Cluster]:
    """The ``count`` shortest pair orbits (all orbits up to ``max_length`` Å if count is None)."""
    cands = [np.array([[b, 0, 0, 0], s]) for b in range(crystal.n_basis)
             for _, s in _neighbours(crystal, b, max_length)]
    protos = _unique_orbits(sg, cands)
    protos.sort(key=lambda c: (round(float(_pair_lengths(crystal, c)[0]), 6),
                               tuple(crystal.species[b] for b in c[:, 0]), c.tobytes()))
    return _take(crystal, sg, protos, count, name, "pair", max_length)


def select_triplets(crystal, sg, max_length: float, count: Optional[int], name: str) -> list[Cluster]:
    """Triplet orbits whose three pair lengths are all ≤ ``max_length`` Å, sorted by
    (longest pair, perimeter); the first ``count`` of them."""
    cands = []
    for b in range(crystal.n_basis):
        nb = [s for _, s in _neighbours(crystal, b, max_length)]
        for s1, s2 in itertools.combinations(nb, 2):
            c = np.array([[b, 0, 0, 0], s1, s2])
            if np.all(_pair_lengths(crystal, c) <= max_length + 1e-8):
                cands.append(c)
    protos = _unique_orbits(sg, cands)

    def key(c):
        d = _pair_lengths(crystal, c)
        return (round(float(d.max()), 6), round(float(d.sum()), 6),
                tuple(sorted(crystal.species[b] for b in c[:, 0])), c.tobytes())

    protos.sort(key=key)
    return _take(crystal, sg, protos, count, name, "triplet", max_length)


def _take(crystal, sg, protos, count, name, kind, max_length) -> list[Cluster]:
    if not protos:
        raise ClusterError(f"no {kind} cluster has all pair lengths ≤ {max_length} Å",
                           fix="increase 'max_length'")
    if count is not None:
        if count > len(protos):
            raise ClusterError(
                f"asked for {count} {kind} orbits but only {len(protos)} have all pair lengths "
                f"≤ {max_length} Å",
                fix="increase 'max_length' or lower 'count'",
            )
        protos = protos[:count]
    single = len(protos) == 1
    return [embedded_cluster(crystal, sg, p, name if single else f"{name}{k + 1}", kind)
            for k, p in enumerate(protos)]


def select_polyhedron(crystal, sg, center: str, neighbors: str, count: int,
                      include_center: bool, name: str) -> list[Cluster]:
    """The ``count`` nearest ``neighbors`` (species) around each ``center`` site (species),
    e.g. the Br6 octahedron around Pb: one cluster per symmetry-distinct centre."""
    centres = [b for b, s in enumerate(crystal.species) if s == center]
    if not centres:
        raise ClusterError(f"polyhedron {name!r}: no site of species {center!r}",
                           fix=f"use one of {sorted(set(crystal.species))}")
    if neighbors not in crystal.species:
        raise ClusterError(f"polyhedron {name!r}: no site of species {neighbors!r}",
                           fix=f"use one of {sorted(set(crystal.species))}")
    if count < 1:
        raise ClusterError(f"polyhedron {name!r}: count must be ≥ 1, got {count}")
    cands = []
    for b in centres:
        rmax = float(np.max(np.linalg.norm(crystal.cell, axis=1)))
        while True:
            shell = [(d, s) for d, s in _neighbours(crystal, b, rmax) if crystal.species[s[0]] == neighbors]
            if len(shell) > count:
                break
            rmax *= 1.5
        d = np.array([t[0] for t in shell])
        if abs(d[count] - d[count - 1]) < 1e-4:
            n_same = int(np.sum(np.abs(d - d[count - 1]) < 1e-4))
            raise ClusterError(
                f"polyhedron {name!r}: the {count} nearest {neighbors} around {center} do not "
                f"close a shell ({n_same} sites share the distance {d[count - 1]:.4f} Å)",
                why="the choice of sites would break the centre's symmetry",
                fix="choose 'count' so that it ends a coordination shell",
            )
        sites = [np.array([b, 0, 0, 0])] if include_center else []
        sites += [s for _, s in shell[:count]]
        cands.append(np.array(sites))
    protos = _unique_orbits(sg, cands)
    single = len(protos) == 1
    return [embedded_cluster(crystal, sg, p, name if single else f"{name}{k + 1}", "polyhedron")
            for k, p in enumerate(protos)]
