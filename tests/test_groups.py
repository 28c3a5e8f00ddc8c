"""Point groups of free clusters (ccdgen.symmetry.free), group structure and characters."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccdgen.ccd.representation import PairRepresentation
from ccdgen.clusters import free_cluster
from ccdgen.symmetry.free import find_point_group, polyhedron
from ccdgen.symmetry.group import PointGroup
from ccdgen.testing import random_rotation

# name -> (Schoenflies label, order, irreps of the pair representation Γ)
POLYHEDRA = {
    "tetrahedron": ("Td", 24, {"A1": 1, "E": 1, "T2": 1}),
    "octahedron": ("Oh", 48, {"A1g": 2, "Eg": 2, "T1u": 1, "T2g": 1, "T2u": 1}),
    "cube": ("Oh", 48, None),
    "square": ("D4h", 16, None),
    "triangle": ("D3h", 12, {"A1'": 1, "E'": 1}),
    "trigonal_bipyramid": ("D3h", 12, None),
    "icosahedron": ("Ih", 120, None),
}

STANDARD_LABELS = {
    "Td": {"A1", "A2", "E", "T1", "T2"},
    "Oh": {"A1g", "A2g", "Eg", "T1g", "T2g", "A1u", "A2u", "Eu", "T1u", "T2u"},
    "D4h": {"A1g", "A2g", "B1g", "B2g", "Eg", "A1u", "A2u", "B1u", "B2u", "Eu"},
    "D3h": {"A1'", "A2'", "E'", "A1''", "A2''", "E''"},
    "Ih": {"Ag", "T1g", "T2g", "Gg", "Hg", "Au", "T1u", "T2u", "Gu", "Hu"},
    "C3v": {"A1", "A2", "E"},
    "C4v": {"A1", "A2", "B1", "B2", "E"},
    "C2v": {"A1", "A2", "B1", "B2"},
}


@lru_cache(maxsize=None)
def poly_group(name: str) -> PointGroup:
    species, x = polyhedron(name, radius=2.5)
    return find_point_group(x, species)


def gamma_irreps(group: PointGroup) -> dict:
    rep = PairRepresentation.from_group(group)
    return {i.label: i.multiplicity for i in rep.irreps}


def mixed_tetrahedron():
    species, x = polyhedron("tetrahedron", radius=2.0)
    species = list(species)
    species[2] = "Y"
    return x, species


def collinear(symmetric: bool):
    x = np.array([[0.0, 0.0, 0.0], [1.3, 0.0, 0.0], [2.6 if symmetric else 3.1, 0.0, 0.0]])
    x = x @ random_rotation(np.random.default_rng(7)).T + [0.3, -1.0, 2.0]
    return x, ["A", "B", "A"]


# every group the structural tests below run on
def all_groups():
    out = {name: poly_group(name) for name in POLYHEDRA}
    x, sp = mixed_tetrahedron()
    out["tetrahedron_Y"] = find_point_group(x, sp)
    for sym in (True, False):
        x, sp = collinear(sym)
        out[f"collinear_{'sym' if sym else 'asym'}"] = find_point_group(x, sp)
    x = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.4, 0]])
    out["scalene"] = find_point_group(x, ["A", "A", "A"])
    return out


GROUPS = all_groups()
GROUP_IDS = sorted(GROUPS)


# ------------------------------------------------------------------ free clusters
@pytest.mark.parametrize("name", sorted(POLYHEDRA))
def test_polyhedron_group(name):
    label, order, _ = POLYHEDRA[name]
    g = poly_group(name)
    assert g.schoenflies == label
    assert g.order == order
    assert g.n_sites == len(polyhedron(name)[1])


@pytest.mark.parametrize("name", [n for n, v in POLYHEDRA.items() if v[2] is not None])
def test_polyhedron_pair_irreps(name):
    assert gamma_irreps(poly_group(name)) == POLYHEDRA[name][2]


def test_group_does_not_depend_on_radius():
    for name in ("tetrahedron", "octahedron", "trigonal_bipyramid"):
        sp, x = polyhedron(name, radius=0.7)
        assert find_point_group(x, sp).order == POLYHEDRA[name][1]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(POLYHEDRA)), seed=st.integers(0, 2**32 - 1), reflect=st.booleans(),
       shift=st.tuples(*[st.floats(-20, 20)] * 3), data=st.data())
def test_group_is_invariant_under_motion_and_relabelling(name, seed, reflect, shift, data):
    """Rotating, reflecting, translating and reordering the sites gives the same group."""
    label, order, _ = POLYHEDRA[name]
    species, x = polyhedron(name, radius=2.5)
    rng = np.random.default_rng(seed)
    perm = np.array(data.draw(st.permutations(range(len(x)))))
    y = (x @ random_rotation(rng, reflect).T + np.array(shift))[perm]
    g = find_point_group(y, [species[p] for p in perm])
    assert (g.schoenflies, g.order) == (label, order)
    assert Counter(gamma_irreps(g)) == Counter(gamma_irreps(poly_group(name)))
    # the operations really map the moved cluster onto itself
    c = y.mean(axis=0)
    for r, p in zip(g.rotations, g.permutations):
        np.testing.assert_allclose((y - c) @ r.T + c, y[p], atol=1e-8)


def test_species_lower_the_symmetry():
    x, sp = mixed_tetrahedron()
    g = find_point_group(x, sp)
    assert (g.schoenflies, g.order) == ("C3v", 6)
    # the odd site is fixed by every operation
    assert np.all(g.permutations[:, 2] == 2)


@pytest.mark.parametrize("odd, label, order", [
    ((0,), "C4v", 8),  # one apex replaced
    ((0, 1), "D4h", 16),  # trans pair
    ((0, 2), "C2v", 4),  # cis pair
    ((0, 2, 4), "C3v", 6),  # fac
    ((0, 1, 2), "C2v", 4),  # mer
])
def test_species_on_octahedron(odd, label, order):
    sp, x = polyhedron("octahedron", 2.0)
    sp = ["Y" if i in odd else s for i, s in enumerate(sp)]
    g = find_point_group(x, sp)
    assert (g.schoenflies, g.order) == (label, order)


def test_free_cluster_builder_matches_find_point_group():
    sp, x = polyhedron("octahedron", 3.0)
    c = free_cluster(x, sp, name="oct")
    assert c.group.order == 48 and c.kind == "free" and c.dimension == 3 and c.n_pairs == 15


# ------------------------------------------------------------------ collinear
def test_collinear_symmetric_is_dinfh():
    x, sp = collinear(True)
    g = find_point_group(x, sp)
    assert g.schoenflies == "D∞h"
    assert g.order == 2  # finite image on the sites: E and the reversal
    assert g.permutations[1].tolist() == [2, 1, 0]


def test_collinear_asymmetric_is_cinfv():
    x, sp = collinear(False)
    g = find_point_group(x, sp)
    assert g.schoenflies == "C∞v"
    assert g.order == 1


def test_homonuclear_pair_is_dinfh():
    g = find_point_group(np.array([[0.0, 0, 0], [0, 0, 2.0]]), ["A", "A"])
    assert (g.schoenflies, g.order) == ("D∞h", 2)
    g = find_point_group(np.array([[0.0, 0, 0], [0, 0, 2.0]]), ["A", "B"])
    assert (g.schoenflies, g.order) == ("C∞v", 1)


# ------------------------------------------------------------------ group axioms
@pytest.mark.parametrize("gid", GROUP_IDS)
def test_identity_first(gid):
    g = GROUPS[gid]
    np.testing.assert_allclose(g.rotations[0], np.eye(3), atol=1e-12)
    assert g.permutations[0].tolist() == list(range(g.n_sites))


@pytest.mark.parametrize("gid", GROUP_IDS)
def test_closure_and_latin_square(gid):
    g = GROUPS[gid]
    t = g.multiplication_table
    n = g.order
    assert t.shape == (n, n)
    for row in list(t) + list(t.T):
        assert sorted(row.tolist()) == list(range(n))
    prods = np.einsum("aij,bjk->abik", g.rotations, g.rotations)
    np.testing.assert_allclose(prods, g.rotations[t], atol=1e-8)
    assert np.all(t[0] == np.arange(n)) and np.all(t[:, 0] == np.arange(n))


@pytest.mark.parametrize("gid", GROUP_IDS)
def test_inverses(gid):
    g = GROUPS[gid]
    t, inv = g.multiplication_table, g.inverses
    a = np.arange(g.order)
    assert np.all(t[a, inv] == 0) and np.all(t[inv, a] == 0)
    np.testing.assert_allclose(g.rotations[inv], np.transpose(g.rotations, (0, 2, 1)), atol=1e-8)


@pytest.mark.parametrize("gid", GROUP_IDS)
def test_associativity(gid):
    g = GROUPS[gid]
    t = g.multiplication_table
    rng = np.random.default_rng(1)
    a, b, c = rng.integers(0, g.order, (3, 500))
    assert np.array_equal(t[t[a, b], c], t[a, t[b, c]])


@pytest.mark.parametrize("gid", GROUP_IDS)
def test_orthogonal_matrices(gid):
    g = GROUPS[gid]
    eye = np.broadcast_to(np.eye(3), g.rotations.shape)
    np.testing.assert_allclose(np.einsum("gij,gkj->gik", g.rotations, g.rotations), eye, atol=1e-10)


@pytest.mark.parametrize("gid", GROUP_IDS)
def test_permutations_compose_like_matrices(gid):
    """perm[a·b] = perm[a] ∘ perm[b]: site i -> perm[a][perm[b][i]]."""
    g = GROUPS[gid]
    t = g.multiplication_table
    for a in range(g.order):
        for b in range(g.order):
            assert np.array_equal(g.permutations[t[a, b]], g.permutations[a][g.permutations[b]])


@pytest.mark.parametrize("name", sorted(POLYHEDRA))
def test_operations_map_cluster_onto_itself(name):
    sp, x = polyhedron(name, radius=2.5)
    g = poly_group(name)
    c = x.mean(axis=0)
    for r, p in zip(g.rotations, g.permutations):
        np.testing.assert_allclose((x - c) @ r.T + c, x[p], atol=1e-8)
        assert [sp[i] for i in p] == list(sp)


@pytest.mark.parametrize("gid", GROUP_IDS)
def test_classes_partition_the_group(gid):
    g = GROUPS[gid]
    elems = sorted(i for c in g.classes for i in c)
    assert elems == list(range(g.order))
    assert g.classes[0] == (0,)
    t, inv = g.multiplication_table, g.inverses
    for cls in g.classes:
        for h in range(g.order):
            assert t[t[h, cls[0]], inv[h]] in cls


# ------------------------------------------------------------------ characters
@pytest.mark.parametrize("gid", GROUP_IDS)
def test_character_column_orthogonality(gid):
    g = GROUPS[gid]
    ct = g.character_table
    chi, sizes = ct.characters, ct.class_sizes
    cols = chi.conj().T @ chi
    np.testing.assert_allclose(cols, np.diag(g.order / sizes), atol=1e-9)


TEXTBOOK_SHAPES = {"Td": "tetrahedron", "Oh": "octahedron", "D3h": "trigonal_bipyramid", "Ih": "icosahedron"}


@pytest.mark.parametrize("name", sorted(TEXTBOOK_SHAPES) + ["C3v"])
def test_character_table_and_labels_match_the_textbook(name):
    """Characters *and* Mulliken labels against tables typed from Cotton (tests/data), in
    arbitrary orientation; classes matched by their geometric element and size."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from data.character_tables import TABLES

    if name == "C3v":
        species, x = polyhedron("tetrahedron")
        species = ["A", "B", "B", "B"]  # one distinct vertex: C3v
    else:
        species, x = polyhedron(TEXTBOOK_SHAPES[name])
    q, _ = np.linalg.qr(np.random.default_rng(11).standard_normal((3, 3)))
    g = find_point_group(x @ q.T, species)
    assert g.schoenflies == name
    table = TABLES[name]
    kinds = g.element_kinds()
    ours = {(kinds[c[0]], len(c)): k for k, c in enumerate(g.classes)}
    cols = [ours[key] for key in table["classes"]]
    ct = g.character_table
    assert sorted(ct.labels) == sorted(k for k in table if k != "classes")
    for label, chars in table.items():
        if label == "classes":
            continue
        got = ct.real_characters[ct.labels.index(label)][cols]
        np.testing.assert_allclose(got, chars, atol=1e-9, err_msg=f"{name} {label}")


@pytest.mark.parametrize("gid", GROUP_IDS)
def test_decompose_regular_representation(gid):
    """The regular representation contains each complex irrep dim times; on real irreps
    the multiplicity is the complex constituent's degree."""
    g = GROUPS[gid]
    ct = g.character_table
    chi = np.zeros(len(g.classes))
    chi[0] = g.order
    mult = ct.decompose(chi)
    expected = [int(round(ct.characters[m[0], 0].real)) for m in ct.real_of_complex]
    assert mult.tolist() == expected


@pytest.mark.parametrize("name", ["tetrahedron", "octahedron", "cube", "square", "triangle",
                                  "trigonal_bipyramid", "icosahedron"])
def test_mulliken_labels_standard(name):
    g = poly_group(name)
    assert set(g.character_table.labels) == STANDARD_LABELS[g.schoenflies]


def test_mulliken_labels_of_subgroups():
    x, sp = mixed_tetrahedron()
    g = find_point_group(x, sp)
    assert set(g.character_table.labels) == STANDARD_LABELS["C3v"]
    sp6, x6 = polyhedron("octahedron")
    g = find_point_group(x6, ["Y"] + list(sp6[1:]))
    assert set(g.character_table.labels) == STANDARD_LABELS["C4v"]


def test_td_pair_representation_labels():
    assert set(gamma_irreps(poly_group("tetrahedron"))) == {"A1", "E", "T2"}


def test_vector_representation_is_t1u_and_t2():
    """The Cartesian vector (χ = tr R) is T1u in Oh, T2 in Td, T1u in Ih."""
    for name, lab in (("octahedron", "T1u"), ("tetrahedron", "T2"), ("icosahedron", "T1u")):
        g = poly_group(name)
        ct = g.character_table
        chi = np.array([np.trace(g.rotations[c[0]]) for c in g.classes])
        mult = ct.decompose(chi)
        assert {l_: int(m) for l_, m in zip(ct.labels, mult) if m} == {lab: 1}


def test_character_table_real_characters_match_matrix_traces():
    """The Cartesian matrices give a true representation: its character decomposes with
    non-negative integer multiplicities for every group."""
    for gid, g in GROUPS.items():
        ct = g.character_table
        chi = np.array([np.trace(g.rotations[c[0]]) for c in g.classes])
        mult = ct.decompose(chi)
        assert np.all(mult >= 0)
        assert int((mult * ct.real_dims).sum()) == 3, gid


# ------------------------------------------------------- noisy (e.g. relaxed) coordinates
@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(["tetrahedron", "octahedron", "cube", "square", "trigonal_bipyramid", "icosahedron"]),
       noise=st.floats(1e-7, 2e-4), seed=st.integers(0, 2**31 - 1))
def test_noisy_coordinates_give_the_ideal_group_with_exact_operations(name, noise, seed):
    expected = {"tetrahedron": 24, "octahedron": 48, "cube": 48, "square": 16,
                "trigonal_bipyramid": 12, "icosahedron": 120}[name]
    rng = np.random.default_rng(seed)
    species, x = polyhedron(name, 2.9)
    x = x @ random_rotation(rng, reflect=True).T + noise * rng.standard_normal(x.shape)
    g = find_point_group(x, species, symprec=1e-3)
    assert g.order == expected
    # the refined operations are exactly orthogonal and exactly closed
    eye = np.broadcast_to(np.eye(3), g.rotations.shape)
    np.testing.assert_allclose(np.einsum("gij,gkj->gik", g.rotations, g.rotations), eye, atol=1e-12)
    prods = np.einsum("aij,bjk->abik", g.rotations, g.rotations)
    np.testing.assert_allclose(prods, g.rotations[g.multiplication_table], atol=1e-10)
