"""Tests of ccdgen.symmetry.labels: element symbols, point-group names, Mulliken labels."""

from __future__ import annotations

from collections import Counter
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ccdgen.symmetry.group import PointGroup
from ccdgen.symmetry.labels import (
    PointGroupName,
    element_symbol,
    identify_point_group,
    mulliken_labels,
)

PHI = (1 + np.sqrt(5)) / 2


# ------------------------------------------------------------------ helpers
def rot(axis, angle):
    a = np.asarray(axis, float)
    a = a / np.linalg.norm(a)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * (k @ k)


def cn(n, axis=(0, 0, 1)):
    return rot(axis, 2 * np.pi / n)


def mirror(normal):
    v = np.asarray(normal, float)
    v = v / np.linalg.norm(v)
    return np.eye(3) - 2 * np.outer(v, v)


def sn(n, axis=(0, 0, 1)):
    return mirror(axis) @ cn(n, axis)


INV = -np.eye(3)
Z, X, Y = (0, 0, 1), (1, 0, 0), (0, 1, 0)


def closure(generators, max_order=200):
    """All products of the generators: (G, 3, 3), identity first."""
    def key(m):
        return (np.round(m, 6) + 0.0).tobytes()

    elems = {key(np.eye(3)): np.eye(3)}
    frontier = [np.eye(3)]
    gens = [np.asarray(g, float) for g in generators]
    while frontier:
        new = []
        for a in frontier:
            for g in gens:
                b = g @ a
                k = key(b)
                if k not in elems:
                    elems[k] = b
                    new.append(b)
        frontier = new
        assert len(elems) <= max_order
    return np.array(list(elems.values()))


def random_orthogonal(rng):
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    return q * np.sign(np.diag(r))


def rotated(rots, q):
    return np.einsum("ij,gjk,lk->gil", q, rots, q)


# name -> (generators, order, Hermann-Mauguin or None)
GROUPS = {
    "C1": ([np.eye(3)], 1, "1"),
    "Ci": ([INV], 2, "-1"),
    "Cs": ([mirror(Z)], 2, "m"),
    "C2": ([cn(2)], 2, "2"),
    "C3": ([cn(3)], 3, "3"),
    "C4": ([cn(4)], 4, "4"),
    "C6": ([cn(6)], 6, "6"),
    "C2v": ([cn(2), mirror(Y)], 4, "mm2"),
    "C3v": ([cn(3), mirror(Y)], 6, "3m"),
    "C4v": ([cn(4), mirror(Y)], 8, "4mm"),
    "C6v": ([cn(6), mirror(Y)], 12, "6mm"),
    "C5v": ([cn(5), mirror(Y)], 10, "5m"),
    "C2h": ([cn(2), INV], 4, "2/m"),
    "C3h": ([cn(3), mirror(Z)], 6, "-6"),
    "C4h": ([cn(4), INV], 8, "4/m"),
    "C6h": ([cn(6), INV], 12, "6/m"),
    "C5h": ([cn(5), mirror(Z)], 10, "-10"),
    "D2": ([cn(2), cn(2, X)], 4, "222"),
    "D3": ([cn(3), cn(2, X)], 6, "32"),
    "D4": ([cn(4), cn(2, X)], 8, "422"),
    "D6": ([cn(6), cn(2, X)], 12, "622"),
    "D2h": ([cn(2), cn(2, X), INV], 8, "mmm"),
    "D3h": ([cn(3), cn(2, X), mirror(Z)], 12, "-6m2"),
    "D4h": ([cn(4), cn(2, X), INV], 16, "4/mmm"),
    "D5h": ([cn(5), cn(2, X), mirror(Z)], 20, "-10m2"),
    "D6h": ([cn(6), cn(2, X), INV], 24, "6/mmm"),
    "D8h": ([cn(8), cn(2, X), INV], 32, "8/mmm"),
    "D2d": ([sn(4), cn(2, X)], 8, "-42m"),
    "D3d": ([cn(3), cn(2, X), INV], 12, "-3m"),
    "D4d": ([sn(8), cn(2, X)], 16, "-82m"),
    "D5d": ([cn(5), cn(2, X), INV], 20, "-5m"),
    "S4": ([sn(4)], 4, "-4"),
    "S6": ([sn(6)], 6, "-3"),
    "S8": ([sn(8)], 8, "-8"),
    "S10": ([sn(10)], 10, "-5"),
    "S12": ([sn(12)], 12, "-12"),
    "S24": ([sn(24)], 24, "-24"),
    "C12": ([cn(12)], 12, "12"),
    "T": ([cn(2), cn(3, (1, 1, 1))], 12, "23"),
    "Td": ([cn(2), cn(3, (1, 1, 1)), sn(4)], 24, "-43m"),
    "Th": ([cn(2), cn(3, (1, 1, 1)), INV], 24, "m-3"),
    "O": ([cn(4), cn(3, (1, 1, 1))], 24, "432"),
    "Oh": ([cn(4), cn(3, (1, 1, 1)), INV], 48, "m-3m"),
    "I": ([cn(2), cn(3, (1, 1, 1)), cn(5, (0, 1, PHI))], 60, "532"),
    "Ih": ([cn(2), cn(3, (1, 1, 1)), cn(5, (0, 1, PHI)), INV], 120, "m-3-5"),
}

EXPECTED_LABELS = {
    "C1": ["A"],
    "Ci": ["Ag", "Au"],
    "Cs": ["A'", "A''"],
    "C2": ["A", "B"],
    "C3": ["A", "E"],
    "C6": ["A", "B", "E1", "E2"],
    "C2v": ["A1", "A2", "B1", "B2"],
    "C3v": ["A1", "A2", "E"],
    "C4v": ["A1", "A2", "B1", "B2", "E"],
    "C5v": ["A1", "A2", "E1", "E2"],
    "C2h": ["Ag", "Bg", "Au", "Bu"],
    "C3h": ["A'", "E'", "A''", "E''"],
    "C4h": ["Ag", "Bg", "Eg", "Au", "Bu", "Eu"],
    "C5h": ["A'", "E1'", "E2'", "A''", "E1''", "E2''"],
    "D2": ["A", "B1", "B2", "B3"],
    "D3": ["A1", "A2", "E"],
    "D2h": ["Ag", "B1g", "B2g", "B3g", "Au", "B1u", "B2u", "B3u"],
    "D3h": ["A1'", "A2'", "E'", "A1''", "A2''", "E''"],
    "D4h": ["A1g", "A2g", "B1g", "B2g", "Eg", "A1u", "A2u", "B1u", "B2u", "Eu"],
    "D5h": ["A1'", "A2'", "E1'", "E2'", "A1''", "A2''", "E1''", "E2''"],
    "D6h": ["A1g", "A2g", "B1g", "B2g", "E1g", "E2g", "A1u", "A2u", "B1u", "B2u", "E1u", "E2u"],
    "D2d": ["A1", "A2", "B1", "B2", "E"],
    "D3d": ["A1g", "A2g", "Eg", "A1u", "A2u", "Eu"],
    "D4d": ["A1", "A2", "B1", "B2", "E1", "E2", "E3"],
    "D5d": ["A1g", "A2g", "E1g", "E2g", "A1u", "A2u", "E1u", "E2u"],
    "D8h": ["A1g", "A2g", "B1g", "B2g", "E1g", "E2g", "E3g"]
    + ["A1u", "A2u", "B1u", "B2u", "E1u", "E2u", "E3u"],
    "C12": ["A", "B", "E1", "E2", "E3", "E4", "E5"],
    "S12": ["A", "B", "E1", "E2", "E3", "E4", "E5"],
    "S4": ["A", "B", "E"],
    "S6": ["Ag", "Eg", "Au", "Eu"],
    "S8": ["A", "B", "E1", "E2", "E3"],
    "S10": ["Ag", "E1g", "E2g", "Au", "E1u", "E2u"],
    "T": ["A", "E", "T"],
    "Th": ["Ag", "Eg", "Tg", "Au", "Eu", "Tu"],
    "Td": ["A1", "A2", "E", "T1", "T2"],
    "O": ["A1", "A2", "E", "T1", "T2"],
    "Oh": ["A1g", "A2g", "Eg", "T1g", "T2g", "A1u", "A2u", "Eu", "T1u", "T2u"],
    "I": ["A", "T1", "T2", "G", "H"],
    "Ih": ["Ag", "T1g", "T2g", "Gg", "Hg", "Au", "T1u", "T2u", "Gu", "Hu"],
}


@lru_cache(maxsize=None)
def group_elements(name):
    return closure(GROUPS[name][0])


def build(rots):
    return PointGroup.from_operations(rots, np.zeros((len(rots), 1), int))


@lru_cache(maxsize=None)
def rotated_group(name, seed=12345):
    q = random_orthogonal(np.random.default_rng(seed + sum(map(ord, name))))
    return build(rotated(group_elements(name), q)), q


def irreps_of(group, chi_per_element):
    """{label: multiplicity} of a real representation given its character per element."""
    ct = group.character_table
    chi = np.array([chi_per_element[c[0]] for c in group.classes])
    mult = ct.decompose(chi)
    return {lab: int(m) for lab, m in zip(ct.labels, mult) if m}


# ------------------------------------------------------------------ elements
@pytest.mark.parametrize(
    "matrix, symbol",
    [
        (np.eye(3), "E"),
        (INV, "i"),
        (mirror((1, 2, 3)), "σ"),
        (cn(2, (1, 1, 0)), "C2"),
        (cn(3), "C3"),
        (np.linalg.matrix_power(cn(3), 2), "C3"),  # C3^2 = C3^-1: same symbol
        (cn(5), "C5"),
        (np.linalg.matrix_power(cn(5), 2), "C5^2"),
        (np.linalg.matrix_power(cn(5), 3), "C5^2"),
        (np.linalg.matrix_power(cn(12), 5), "C12^5"),
        (sn(4), "S4"),
        (sn(6), "S6"),
        (sn(3), "S3"),
        (np.linalg.matrix_power(sn(5), 3), "S5^3"),
        (sn(10), "S10"),
        (np.linalg.matrix_power(sn(10), 3), "S10^3"),
        (sn(8, (1, -2, 0.5)), "S8"),
    ],
)
def test_element_symbol(matrix, symbol):
    assert element_symbol(matrix) == symbol
    q = random_orthogonal(np.random.default_rng(7))
    assert element_symbol(q @ matrix @ q.T) == symbol


def test_element_symbol_rejects_non_orthogonal():
    assert element_symbol(np.diag([1.0, 2.0, 1.0])) == "?"


# ------------------------------------------------------------------ group names
@pytest.mark.parametrize("name", sorted(GROUPS))
def test_identify_point_group(name):
    _, order, hm = GROUPS[name]
    rots = group_elements(name)
    assert len(rots) == order
    got = identify_point_group(rots)
    assert isinstance(got, PointGroupName)
    assert got.schoenflies == name
    if hm is not None:
        assert got.hermann_mauguin == hm
    group, _ = rotated_group(name)
    assert group.order == order
    assert (group.schoenflies, group.hermann_mauguin) == tuple(got)


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(["D3h", "Td", "Oh", "D4d", "C5v", "S6", "Ih", "C2v", "D2"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_names_independent_of_orientation(name, seed):
    q = random_orthogonal(np.random.default_rng(seed))
    rots = rotated(group_elements(name), q)
    rots = rots[np.random.default_rng(seed).permutation(len(rots))]
    assert identify_point_group(rots).schoenflies == name


def test_not_a_group():
    rots = np.array([np.eye(3), cn(3)])  # not closed
    assert identify_point_group(rots) == ("?", "?")
    assert identify_point_group(np.array([np.eye(3), np.diag([2.0, 1, 1])])) == ("?", "?")
    assert mulliken_labels(rots, np.ones((2, 2))) == ["Γ1", "Γ2"]


# ------------------------------------------------------------------ Mulliken labels
@pytest.mark.parametrize("name", sorted(EXPECTED_LABELS))
def test_label_multisets(name):
    expected = Counter(EXPECTED_LABELS[name])
    std = build(group_elements(name))
    assert Counter(std.character_table.labels) == expected
    group, _ = rotated_group(name)
    labels = group.character_table.labels
    assert Counter(labels) == expected
    assert len(set(labels)) == len(labels)
    # the letter matches the dimension of the real irrep
    letter_dim = {"A": 1, "B": 1, "E": 2, "T": 3, "G": 4, "H": 5}
    assert [letter_dim[lab[0]] for lab in labels] == list(group.character_table.real_dims)


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(["D3h", "D4h", "C4v", "D2d", "Td", "D2h", "C2v", "S8", "D6h"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_label_multisets_any_orientation(name, seed):
    q = random_orthogonal(np.random.default_rng(seed))
    group = build(rotated(group_elements(name), q))
    assert Counter(group.character_table.labels) == Counter(EXPECTED_LABELS[name])


def vector_chars(group):
    return np.trace(group.rotations, axis1=1, axis2=2)


def axial_chars(group):
    return np.linalg.det(group.rotations) * vector_chars(group)


def axis_chars(group, axis):
    """Character of the 1-d representation spanned by an invariant axis."""
    return np.einsum("i,gij,j->g", axis, group.rotations, axis)


@pytest.mark.parametrize(
    "name, vector, axial",
    [
        ("Td", {"T2": 1}, {"T1": 1}),
        ("Oh", {"T1u": 1}, {"T1g": 1}),
        ("O", {"T1": 1}, {"T1": 1}),
        ("Th", {"Tu": 1}, {"Tg": 1}),
        ("T", {"T": 1}, {"T": 1}),
        ("Ih", {"T1u": 1}, {"T1g": 1}),
        ("I", {"T1": 1}, {"T1": 1}),
        ("D3h", {"E'": 1, "A2''": 1}, {"E''": 1, "A2'": 1}),
        ("D4h", {"Eu": 1, "A2u": 1}, {"Eg": 1, "A2g": 1}),
        ("D6h", {"E1u": 1, "A2u": 1}, {"E1g": 1, "A2g": 1}),
        ("C3v", {"E": 1, "A1": 1}, {"E": 1, "A2": 1}),
        ("C2v", {"A1": 1, "B1": 1, "B2": 1}, {"A2": 1, "B1": 1, "B2": 1}),
        ("D2d", {"E": 1, "B2": 1}, {"E": 1, "A2": 1}),
        ("D2h", {"B1u": 1, "B2u": 1, "B3u": 1}, {"B1g": 1, "B2g": 1, "B3g": 1}),
        ("D2", {"B1": 1, "B2": 1, "B3": 1}, {"B1": 1, "B2": 1, "B3": 1}),
        ("S4", {"E": 1, "B": 1}, {"E": 1, "A": 1}),
        ("D5h", {"E1'": 1, "A2''": 1}, {"E1''": 1, "A2'": 1}),
        ("C3", {"E": 1, "A": 1}, {"E": 1, "A": 1}),
        ("Cs", {"A'": 2, "A''": 1}, {"A''": 2, "A'": 1}),
    ],
)
def test_vector_and_axial_vector(name, vector, axial):
    for group in (build(group_elements(name)), rotated_group(name)[0]):
        assert irreps_of(group, vector_chars(group)) == vector
        assert irreps_of(group, axial_chars(group)) == axial


@pytest.mark.parametrize(
    "name, label", [("D3h", "A2''"), ("C2v", "A1"), ("D4h", "A2u"), ("C3v", "A1"), ("D4d", "B2")]
)
def test_z_vector(name, label):
    group, q = rotated_group(name)
    z = q @ np.array([0.0, 0.0, 1.0])
    assert irreps_of(group, axis_chars(group, z)) == {label: 1}


def test_standard_orientation_conventions():
    # C2v: B1 is symmetric under σv(xz), so x is B1 and y is B2
    g = build(group_elements("C2v"))
    assert irreps_of(g, axis_chars(g, np.array([1.0, 0, 0]))) == {"B1": 1}
    assert irreps_of(g, axis_chars(g, np.array([0.0, 1, 0]))) == {"B2": 1}
    # D2h: z, y, x are B1u, B2u, B3u
    g = build(group_elements("D2h"))
    for axis, lab in zip(np.eye(3), ["B3u", "B2u", "B1u"]):
        assert irreps_of(g, axis_chars(g, axis)) == {lab: 1}
    # D4h with C2' along x: B1g is symmetric under C2'(x) (x^2 - y^2)
    g = build(group_elements("D4h"))
    ct = g.character_table
    b1g = ct.real_characters[ct.labels.index("B1g")]
    assert b1g[g.class_of[g.index_of(cn(2, X))]] == pytest.approx(1.0)
    assert b1g[g.class_of[g.index_of(cn(2, (1, 1, 0)))]] == pytest.approx(-1.0)


def test_specific_characters():
    # Td: T2 has chi(σd) = +1; Ih: T1 has chi(C5) = (1 + √5)/2; O: T1 has chi(C4) = +1
    for name, op, lab, value in [
        ("Td", mirror((1, -1, 0)), "T2", 1.0),
        ("Td", mirror((1, -1, 0)), "T1", -1.0),
        ("I", cn(5, (0, 1, PHI)), "T1", PHI),
        ("I", cn(5, (0, 1, PHI)), "T2", 1 - PHI),
        ("Ih", cn(5, (0, 1, PHI)), "T1u", PHI),
        ("O", cn(4), "T1", 1.0),
        ("Oh", cn(4), "A2g", -1.0),
        ("D6h", cn(6), "E1g", 1.0),
        ("D6h", cn(6), "E2u", -1.0),
        ("D4d", sn(8), "E1", np.sqrt(2)),
        ("D4d", sn(8), "E3", -np.sqrt(2)),
    ]:
        g = build(group_elements(name))
        ct = g.character_table
        chi = ct.real_characters[ct.labels.index(lab)]
        assert chi[g.class_of[g.index_of(op)]] == pytest.approx(value), (name, lab)
