"""Stage 5: features of whole configurations (Eqs. 13 and 15), forces and stress.

    spec ──compile──► kernels (one per cluster prototype)
    configuration ──map──► site-ordered positions + supercell ──layout──► every cluster
                    ──crystal kernels──► φ per cluster  (n_frames, n_clusters, F)   Eq. (13)
                    ──scatter to sites──► Ψ per site     (n_frames, n_sites, F_site)  Eq. (15)

Given ``dE/dφ`` per cluster (or ``dE/dΨ`` per site), the crystal kernels' reverse sweep gives
``dE/dx`` scattered to the atoms and the strain derivative ``W`` (virial): forces are
``−dE/dx`` (eV/Å) and the stress (ASE convention) is ``W / V`` (eV/Å³).  Their forward
mode (:meth:`CrystalFeaturizer.jvp`) gives ``J·v`` for force and stress training.

Orbits that share one generated module and one monomial trie (e.g. all pair orbits) are
evaluated in *one* kernel call with their per-orbit tables (``r0``, projector) stacked, so a
configuration costs one call per cluster shape.  Work is split across threads over frames
(or, for one large frame, over clusters with private force buffers); the kernels release
the GIL.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
from scipy.sparse import csr_matrix

from ..codegen.compiled import _THREADS, MIN_BATCH_PER_THREAD, CodeOptions, CompiledCluster, compile_transform
from ..errors import InputArrayError, SpecError
from .supercell import Supercell

FEATURIZER_VERSION = "crystal-featurizer/1"


def _finite(a: np.ndarray) -> bool:
    """All entries finite, in one reduction (a NaN or inf anywhere makes the sum non-finite)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.isfinite(a.sum()))


@dataclass(frozen=True, eq=False)
class _Group:
    """Cluster orbits evaluated by one kernel call: one module, one trie, stacked tables."""

    module: object
    names: tuple  # orbit names, in call order
    n_sites: int
    n_features: int
    pairs: np.ndarray
    r0s: np.ndarray  # (n_orb, M)
    projs: np.ndarray  # (n_orb, M, M), or (n_orb, 1, 1) zeros without projection
    trie: tuple  # (pid, sid, var, feature, scale)

    def tables(self) -> tuple:
        return (self.pairs, self.r0s, self.projs, *self.trie)


def _same_trie(a: CompiledCluster, b: CompiledCluster) -> bool:
    ia, ib = a.ir, b.ir
    return (a.module is b.module and ia.n_features == ib.n_features and np.array_equal(ia.pairs, ib.pairs)
            and all(np.array_equal(x, y) for x, y in zip((ia.pid, ia.sid, ia.var, ia.feature, ia.scale),
                                                          (ib.pid, ib.sid, ib.var, ib.feature, ib.scale))))


@dataclass(frozen=True, eq=False)
class Layout:
    """Every cluster of every orbit in one supercell, arranged for the crystal kernels.

    Attributes
    ----------
    supercell : Supercell
    atoms : tuple per group of (n_clusters, n_sites) int64 — supercell sites
    images : tuple per group of (n_clusters, n_sites, 3) int64 — supercell-lattice images
    bounds : tuple per group of (n_orbits_in_group + 1,) int64 — orbit o owns clusters
        ``bounds[o]:bounds[o+1]``
    slices : dict orbit name -> (group index, slice of that group's clusters)
    """

    supercell: Supercell
    atoms: tuple
    images: tuple
    bounds: tuple
    slices: dict

    @property
    def n_atoms(self) -> int:
        return self.supercell.n_atoms

    def n_clusters(self, name: str) -> int:
        g, sl = self.slices[name]
        return sl.stop - sl.start

    @cached_property
    def incidence(self) -> dict:
        """orbit name -> (n_atoms, n_clusters) CSR matrix, 1 where a site belongs to a cluster."""
        out = {}
        for name, (g, sl) in self.slices.items():
            at = self.atoms[g][sl]
            n_cl, n_s = at.shape
            rows = at.ravel()
            cols = np.repeat(np.arange(n_cl), n_s)
            out[name] = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(self.n_atoms, n_cl))
        return out


@dataclass(frozen=True, eq=False)
class SiteOrbit:
    """Symmetry-distinct reference sites (Eq. 16): one net per site orbit.

    name : str ("Pb", "Br", ...; species + number when a species has several orbits)
    basis : tuple of int — reference basis sites in the orbit
    clusters : tuple of str — cluster orbits with at least one site in this orbit (the
        prototypes whose site-centric sums Ψ make up this orbit's features)
    """

    name: str
    basis: tuple
    clusters: tuple


class CrystalFeaturizer:
    """The compiled kernels of a spec and everything to featurize configurations with them.

    Parameters
    ----------
    source : spec file (.toml/.yaml) or a loaded :class:`~ccdgen.pipeline.Problem`
    order : highest invariant degree (default: the spec's ``max_order``)
    clusters : names of the cluster orbits to use (default: all of the spec)
    truncated : use truncated CCD sets (default: as the spec's ``truncate`` option)
    options : code options of the generated kernels
    **overrides : spec options (metric, sigma, truncate, symprec), validated

    Attributes
    ----------
    orbits : tuple of str — cluster orbit names (the spec's clusters after expansion)
    kernels : dict name -> CompiledCluster
    feature_names : dict name -> tuple of str
    site_orbits : tuple of SiteOrbit
    """

    def __init__(self, source, order: int | None = None, *, clusters=None, truncated=None,
                 options: CodeOptions = CodeOptions(), **overrides):
        from ..pipeline import Problem, load, transforms

        problem = source if isinstance(source, Problem) else load(source, **overrides)
        if problem.spec is None:
            raise SpecError(f"{problem.source} is a free cluster: a crystal featurizer needs a spec with a "
                            "[crystal]", fix="use a spec file (.toml/.yaml) with [crystal] and [[clusters]]")
        self.problem = problem
        self.truncated = truncated
        self.order = problem.options.max_order if order is None else int(order)
        names = [c.name for c in problem.clusters]
        if clusters is not None:
            clusters = list(clusters)
            missing = [n for n in clusters if n not in names]
            if missing:
                raise SpecError(f"no cluster orbit named {missing}", fix=f"orbits are: {', '.join(names)}")
            if len(set(clusters)) != len(clusters):
                raise SpecError(f"cluster orbits listed twice: {clusters}")
        keep = set(names if clusters is None else clusters)
        ts = [t for t in transforms(problem) if t.cluster.name in keep]
        self.kernels = {t.cluster.name: compile_transform(t, self.order, truncated, options) for t in ts}
        self.orbits = tuple(self.kernels)
        self.clusters = {t.cluster.name: t.cluster for t in ts}
        self.feature_names = {n: tuple(k.feature_names) for n, k in self.kernels.items()}
        self._groups = self._make_groups()
        self._layouts: dict = {}
        self.site_orbits = self._site_orbits()

    # ------------------------------------------------------------------ structure
    @property
    def reference(self):
        """The reference crystal (exactly symmetrized)."""
        return self.problem.crystal

    @property
    def spacegroup(self):
        return self.problem.spacegroup

    @property
    def n_features(self) -> dict:
        return {n: len(f) for n, f in self.feature_names.items()}

    def _make_groups(self) -> list:
        groups: list[list[str]] = []
        for name in self.orbits:
            k = self.kernels[name]
            for g in groups:
                if _same_trie(self.kernels[g[0]], k):
                    g.append(name)
                    break
            else:
                groups.append([name])
        out = []
        for g in groups:
            ks = [self.kernels[n] for n in g]
            ir0 = ks[0].ir
            r0s = np.ascontiguousarray(np.stack([k.ir.r0 for k in ks]))
            if ir0.projection is None:
                projs = np.zeros((len(ks), 1, 1))
            else:
                projs = np.ascontiguousarray(np.stack([k.ir.projection for k in ks]))
            out.append(_Group(ks[0].module, tuple(g), ir0.n_sites, ir0.n_features, ir0.pairs, r0s, projs,
                              (ir0.pid, ir0.sid, ir0.var, ir0.feature, ir0.scale)))
        return out

    def _site_orbits(self) -> tuple:
        sg = self.spacegroup
        nb = self.reference.n_basis
        seen, orbits = set(), []
        for b in range(nb):
            if b in seen:
                continue
            members = tuple(sorted({int(v) for v in sg.site_map[:, b]}))
            seen.update(members)
            orbits.append(members)
        species = [self.reference.species[o[0]] for o in orbits]
        out = []
        for o, s in zip(orbits, species):
            name = s if species.count(s) == 1 else f"{s}{sum(1 for t in out if t.name.startswith(s)) + 1}"
            touching = tuple(n for n in self.orbits if any(b in o for b in self.clusters[n].sites[:, 0].tolist()))
            out.append(SiteOrbit(name, o, touching))
        return tuple(out)

    @cached_property
    def site_feature_names(self) -> dict:
        """site orbit name -> names ``<cluster feature>`` of the concatenated Ψ blocks."""
        return {o.name: tuple(f for n in o.clusters for f in self.feature_names[n]) for o in self.site_orbits}

    def signature(self) -> str:
        """SHA-256 of what determines the features: the reference crystal, every cluster's CCD
        transform and invariant basis, the kernels' cache keys, the order and the names."""
        h = hashlib.sha256(FEATURIZER_VERSION.encode())
        h.update(self.reference.signature().encode())
        h.update(json.dumps({"order": self.order, "options": self.problem.options.__dict__,
                             "orbits": list(self.orbits),
                             "features": {n: list(f) for n, f in self.feature_names.items()}},
                            sort_keys=True, default=str).encode())
        for n in self.orbits:
            k = self.kernels[n]
            h.update(k.key.encode())
            h.update(k.ir.signature().encode())
            h.update(k.transform.signature().encode())
            h.update(np.ascontiguousarray(self.clusters[n].sites).tobytes())
        return h.hexdigest()

    def describe(self) -> dict:
        """JSON-ready summary (what a checkpoint stores to rebuild this featurizer)."""
        return {"source": self.problem.source, "order": self.order, "orbits": list(self.orbits),
                "n_features": self.n_features, "kernel_keys": {n: k.key for n, k in self.kernels.items()},
                "site_orbits": {o.name: list(o.clusters) for o in self.site_orbits},
                "signature": self.signature()}

    # ------------------------------------------------------------------ layouts
    def layout(self, supercell: Supercell) -> Layout:
        """Every cluster of every orbit in ``supercell`` (cached per supercell matrix)."""
        key = np.asarray(supercell.matrix, dtype=np.int64).tobytes()
        lay = self._layouts.get(key)
        if lay is not None:
            return lay
        atoms, images, bounds, slices = [], [], [], {}
        for gi, g in enumerate(self._groups):
            a, im, b = [], [], [0]
            for name in g.names:
                sc = supercell.clusters(self.clusters[name])
                slices[name] = (gi, slice(b[-1], b[-1] + sc.n_clusters))
                a.append(sc.atoms)
                im.append(sc.images)
                b.append(b[-1] + sc.n_clusters)
            atoms.append(np.ascontiguousarray(np.concatenate(a), dtype=np.int64))
            images.append(np.ascontiguousarray(np.concatenate(im), dtype=np.float64))
            bounds.append(np.array(b, dtype=np.int64))
        lay = Layout(supercell, tuple(atoms), tuple(images), tuple(bounds), slices)
        self._layouts[key] = lay
        return lay

    def diagonal_layout(self, repeat) -> Layout:
        return self.layout(Supercell.diagonal(self.reference, repeat))

    # ------------------------------------------------------------------ evaluation
    def _check(self, pos, cells, layout: Layout):
        x = np.ascontiguousarray(pos, dtype=np.float64)
        c = np.ascontiguousarray(cells, dtype=np.float64)
        if x.ndim == 2:
            x = x[None]
        if c.ndim == 2:
            c = np.broadcast_to(c, (len(x), 3, 3)).copy()
        if x.shape[1:] != (layout.n_atoms, 3) or c.shape != (len(x), 3, 3):
            raise InputArrayError(f"site positions must be (n_frames, {layout.n_atoms}, 3) with cells "
                                  f"(n_frames, 3, 3); got {np.shape(pos)} and {np.shape(cells)}",
                                  fix="map configurations first (CrystalFeaturizer.map) and pass site-ordered "
                                  "positions")
        if not (_finite(x) and _finite(c)):
            bad = np.flatnonzero(~np.all(np.isfinite(x), axis=(1, 2)) | ~np.all(np.isfinite(c), axis=(1, 2)))
            raise InputArrayError(f"frame(s) {bad[:10].tolist()} contain NaN or inf positions or cells")
        return x, c

    def _split(self, n_frames: int, n_clusters: int) -> list:
        """[(f0, f1, k0, k1)] work items: frames across threads, or clusters of one frame."""
        n = _THREADS.n
        if n <= 1:
            return [(0, n_frames, 0, n_clusters)]
        if n_frames >= 2 * n:
            bounds = np.linspace(0, n_frames, n + 1).astype(int)
            return [(int(a), int(b), 0, n_clusters) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        if n_frames * n_clusters < 2 * MIN_BATCH_PER_THREAD:
            return [(0, n_frames, 0, n_clusters)]
        bounds = np.linspace(0, n_clusters, n + 1).astype(int)
        return [(0, n_frames, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def _run(self, fn, items):
        if len(items) == 1:
            return [fn(*items[0])]
        pool = _THREADS.executor()
        return [f.result() for f in [pool.submit(fn, *it) for it in items]]

    def compute(self, positions, cells, layout: Layout) -> dict:
        """Cluster features (Eq. 13 inputs).

        Parameters
        ----------
        positions : (n_frames, n_atoms, 3) float64, Å — site order, unwrapped
            (:meth:`ccdgen.crystal.mapping.FrameMappings.site_positions`)
        cells : (n_frames, 3, 3) float64, Å (rows)
        layout : Layout of their supercell

        Returns
        -------
        dict orbit name -> (n_frames, n_clusters, F) float64
        """
        x, c = self._check(positions, cells, layout)
        out = {}
        for gi, g in enumerate(self._groups):
            buf = np.empty((len(x), len(layout.atoms[gi]), g.n_features))
            args = (x, c, layout.atoms[gi], layout.images[gi], layout.bounds[gi], buf, *g.tables())
            self._run(lambda f0, f1, k0, k1: g.module.crystal_features_kernel(f0, f1, k0, k1, *args),
                      self._split(len(x), len(layout.atoms[gi])))
            for name in g.names:
                out[name] = buf[:, layout.slices[name][1]]
        self._check_finite(out)
        return out

    def vjp(self, positions, cells, layout: Layout, weights: dict, with_features: bool = False):
        """Reverse sweep: given ``weights[name] = dE/dφ`` (n_frames, n_clusters, F) for every
        orbit, ``dE/dx`` (n_frames, n_atoms, 3) in site order (eV/Å; forces are its negative),
        the strain derivative ``W`` (n_frames, 3, 3) (eV; stress = W / V) and, if
        ``with_features``, the features (dict as :meth:`compute`) from the same pass."""
        x, c = self._check(positions, cells, layout)
        n_f = len(x)
        grad = np.zeros((n_f, layout.n_atoms, 3))
        vir = np.zeros((n_f, 3, 3))
        feats = {}
        for gi, g in enumerate(self._groups):
            n_cl = len(layout.atoms[gi])
            parts = []
            for name in g.names:
                sl = layout.slices[name][1]
                wn = np.asarray(weights[name], dtype=np.float64)
                if wn.shape != (n_f, sl.stop - sl.start, g.n_features):
                    raise InputArrayError(f"weights[{name!r}] must have shape {(n_f, sl.stop - sl.start, g.n_features)}"
                                          f", got {wn.shape}")
                parts.append(wn)
            w = np.ascontiguousarray(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
            if not _finite(w):
                raise InputArrayError(f"weights (dE/dφ) of {g.names} contain NaN or inf")
            buf = np.empty((n_f, n_cl, g.n_features)) if with_features else np.empty((0, 0, 0))
            items = self._split(n_f, n_cl)
            args = (x, c, layout.atoms[gi], layout.images[gi], layout.bounds[gi], w, with_features, buf)
            if len(items) == 1:  # the common small case: no pool, no closures
                g.module.crystal_vjp_kernel(*items[0], *args, grad, vir, *g.tables())
            else:
                split_clusters = items[0][1] - items[0][0] == n_f

                def work(f0, f1, k0, k1, private=split_clusters):
                    gr = np.zeros_like(grad) if private else grad
                    vr = np.zeros_like(vir) if private else vir
                    g.module.crystal_vjp_kernel(f0, f1, k0, k1, *args, gr, vr, *g.tables())
                    return (gr, vr) if private else None

                res = self._run(work, items)
                if split_clusters:
                    for gr, vr in res:
                        grad += gr
                        vir += vr
            if with_features:
                for name in g.names:
                    feats[name] = buf[:, layout.slices[name][1]]
        if not (_finite(grad) and _finite(vir)):
            self._raise_collapsed()
        return grad, vir, (feats if with_features else None)

    def jvp(self, positions, cells, layout: Layout, tangent=None, strain=None) -> dict:
        """Forward mode: the change of every feature for site tangents ``tangent``
        (n_frames, n_atoms, 3) Å (site order) and a homogeneous strain tangent ``strain``
        (n_frames, 3, 3) (``x → x + strain @ x``) → dict orbit -> (n_frames, n_clusters, F)."""
        x, c = self._check(positions, cells, layout)
        n_f = len(x)
        t = np.zeros((n_f, layout.n_atoms, 3)) if tangent is None else np.ascontiguousarray(tangent, dtype=np.float64)
        e = np.zeros((n_f, 3, 3)) if strain is None else np.ascontiguousarray(strain, dtype=np.float64)
        if t.shape != (n_f, layout.n_atoms, 3) or e.shape != (n_f, 3, 3):
            raise InputArrayError(f"tangent must be {(n_f, layout.n_atoms, 3)} and strain {(n_f, 3, 3)}, "
                                  f"got {t.shape}, {e.shape}")
        out = {}
        for gi, g in enumerate(self._groups):
            buf = np.empty((n_f, len(layout.atoms[gi]), g.n_features))
            args = (x, c, layout.atoms[gi], layout.images[gi], layout.bounds[gi], t, e, buf, *g.tables())
            self._run(lambda f0, f1, k0, k1: g.module.crystal_jvp_kernel(f0, f1, k0, k1, *args),
                      self._split(n_f, len(layout.atoms[gi])))
            for name in g.names:
                out[name] = buf[:, layout.slices[name][1]]
        return out

    def _check_finite(self, feats: dict) -> None:
        if all(_finite(v) for v in feats.values()):
            return
        self._raise_collapsed()

    def _raise_collapsed(self):
        raise InputArrayError(
            "features or their gradients are not finite: two sites of a cluster coincide",
            why=f"the {self.problem.options.metric!r} pair metric or the pair direction is undefined at r = 0",
            fix="check the configuration (collapsed atoms, wrong units, a mapping onto the wrong supercell)")

    # ------------------------------------------------------------------ site features
    def site_features(self, features: dict, layout: Layout) -> dict:
        """Site-centric sums Ψ (Eq. 15): site orbit name -> (n_frames, n_sites_in_orbit, F_site),
        the concatenation over the orbit's cluster prototypes of Σ_{clusters ∋ site} φ."""
        n_f = len(next(iter(features.values())))
        per_cluster = {}
        for name in self.orbits:
            f = features[name]
            a = layout.incidence[name]
            flat = np.moveaxis(f, 1, 0).reshape(f.shape[1], -1)  # (n_cl, n_frames * F)
            per_cluster[name] = np.moveaxis((a @ flat).reshape(layout.n_atoms, n_f, f.shape[2]), 0, 1)
        out = {}
        for o in self.site_orbits:
            rows = self.site_indices(layout, o)
            out[o.name] = np.concatenate([per_cluster[n][:, rows] for n in o.clusters], axis=2)
        return out

    def site_indices(self, layout: Layout, orbit: SiteOrbit) -> np.ndarray:
        """Supercell sites (site order) of a site orbit."""
        basis = layout.supercell.site_basis
        return np.flatnonzero(np.isin(basis, orbit.basis))

    def site_weights_to_clusters(self, site_weights: dict, layout: Layout) -> dict:
        """Chain rule of Eq. (15): ``dE/dΨ`` per site orbit (n_frames, n_sites_o, F_site) →
        ``dE/dφ`` per cluster orbit (n_frames, n_clusters, F): each cluster collects the
        weights of its sites."""
        n_f = len(next(iter(site_weights.values())))
        full = {n: np.zeros((n_f, layout.n_atoms, len(self.feature_names[n]))) for n in self.orbits}
        for o in self.site_orbits:
            rows = self.site_indices(layout, o)
            w = np.asarray(site_weights[o.name], dtype=np.float64)
            start = 0
            for n in o.clusters:
                k = len(self.feature_names[n])
                full[n][:, rows] += w[:, :, start:start + k]
                start += k
        out = {}
        for n in self.orbits:
            a = layout.incidence[n].T.tocsr()  # (n_cl, n_atoms)
            f = full[n]
            flat = np.moveaxis(f, 1, 0).reshape(layout.n_atoms, -1)
            out[n] = np.moveaxis((a @ flat).reshape(a.shape[0], n_f, f.shape[2]), 0, 1)
        return out

    # ------------------------------------------------------------------ configurations
    def map(self, positions, cells, numbers, **kwargs):
        """Map frames onto the reference (:func:`ccdgen.crystal.mapping.map_frames`)."""
        from .mapping import map_frames

        return map_frames(positions, cells, numbers, self.reference, **kwargs)

    def featurize_atoms(self, atoms, site: bool = False) -> "ConfigurationFeatures":
        """Features of one ASE configuration or a list of them with the same supercell and
        atom count (any atom order, rotation, translation)."""
        frames = [atoms] if not isinstance(atoms, (list, tuple)) else list(atoms)
        pos = np.array([a.get_positions() for a in frames])
        cells = np.array([a.cell.array for a in frames])
        nums = np.array([a.numbers for a in frames])
        maps = self.map(pos, cells, nums)
        if len(maps.supercells) != 1:
            raise InputArrayError("featurize_atoms needs frames of one supercell; got "
                                  f"{len(maps.supercells)} different ones", fix="featurize them separately")
        layout = self.layout(maps.supercells[0])
        xs = maps.site_positions(pos, cells)
        feats = self.compute(xs, cells, layout)
        return ConfigurationFeatures(layout, maps, xs, cells, feats,
                                     self.site_features(feats, layout) if site else None)


@dataclass(frozen=True, eq=False)
class ConfigurationFeatures:
    """Features of frames of one supercell: cluster features per orbit (n_frames, n_clusters,
    F), site features per site orbit (or None), and what is needed to go back to atoms."""

    layout: Layout
    mappings: object
    site_positions: np.ndarray  # (n_frames, n_atoms, 3) Å, site order
    cells: np.ndarray  # (n_frames, 3, 3)
    clusters: dict
    sites: dict | None


def write_npz(path, features: dict, site_features: dict | None, names: dict, site_names: dict | None,
              extra: dict | None = None) -> Path:
    """Write one array per cluster orbit ``<name>`` (n_frames, n_clusters, F) and per site orbit
    ``site/<name>`` (n_frames, n_sites, F_site), with ``feature_names/<name>``; atomically."""
    path = Path(path)
    arrays = {n: v for n, v in features.items()}
    for n, v in names.items():
        arrays[f"feature_names/{n}"] = np.array(v)
    for n, v in (site_features or {}).items():
        arrays[f"site/{n}"] = v
    for n, v in (site_names or {}).items():
        arrays[f"feature_names/site/{n}"] = np.array(v)
    for n, v in (extra or {}).items():
        arrays[n] = v
    from ..fileio import atomic_path

    with atomic_path(path, suffix=".npz") as tmp:
        np.savez_compressed(tmp, **arrays)
    return path
