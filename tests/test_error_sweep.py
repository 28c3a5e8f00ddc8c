"""Every bad spec key and command-line option gets one clear message, never a traceback.

A systematic sweep: for every spec key (``[crystal]``, ``[options]``, each cluster kind, the
top level) and every option of every subcommand, bad values of each type class (wrong type,
NaN, inf, negative, zero, huge, empty, bool where a number belongs, number where a bool
belongs, text where a list belongs, unknown choice) run through the command line in-process
(``ccdgen.cli.main.main``).  Each must exit with code 2 and print exactly one
``ccdgen <command>: error: ...`` message that names the key or option, and no traceback.
The inputs that used to crash the interpreter (NaN reaching spglib: a segfault) run in a
subprocess.  A few edge values that are valid must still be accepted.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ccdgen.cli.main import build_parser, main

REPO = Path(__file__).resolve().parents[1]
XYZ = REPO / "examples" / "clusters" / "tetrahedron.xyz"
NAN, INF = float("nan"), float("inf")
DELETE = object()  #: a case value that removes the key

#: The subcommand that runs the spec sweep (all subcommands load specs through
#: ``cli.common.load_problem``; ``inspect`` is the one users start with).
CMD = "inspect"


# ------------------------------------------------------------------ writing specs
def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(v)


def _table_list(v) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def toml_doc(doc: dict) -> str:
    lines = [f"{k} = {toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict) and not _table_list(v)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{k}]")
            lines += [f"{kk} = {toml_value(x)}" for kk, x in v.items()]
        elif _table_list(v):
            for entry in v:
                lines.append(f"[[{k}]]")
                lines += [f"{kk} = {toml_value(x)}" for kk, x in entry.items()]
    return "\n".join(lines) + "\n"


LATTICE = [[5.9436, 0.0, 0.0], [0.0, 5.9436, 0.0], [0.0, 0.0, 5.9436]]
SPECIES = ["Pb", "Br", "Br", "Br", "Cs"]
POSITIONS = [[0.0, 0.0, 0.0], [0.5, 0.0, 0.0], [0.0, 0.5, 0.0], [0.0, 0.0, 0.5], [0.5, 0.5, 0.5]]
CLUSTERS = {
    "pairs": {"name": "pair", "kind": "pairs", "count": 2, "max_length": 4.5},
    "triplets": {"name": "tri", "kind": "triplets", "count": 1, "max_length": 4.5},
    "polyhedron": {"name": "oct", "kind": "polyhedron", "center": "Pb", "neighbors": "Br", "count": 6},
    "sites": {"name": "two", "kind": "sites", "sites": [[0, 0, 0], [0.5, 0, 0]]},
}


def spec_doc(section: str = "pairs", key: str | None = None, value=DELETE) -> dict:
    """The good spec with ``section.key`` set to ``value`` (or removed)."""
    doc = {"crystal": {"lattice": LATTICE, "species": list(SPECIES), "positions": POSITIONS}}
    if section == "options":
        doc["options"] = {"metric": "exp", "sigma": 0.15, "max_order": 2, "truncate": "auto", "symprec": 1e-3}
    doc["clusters"] = [dict(CLUSTERS.get(section, CLUSTERS["pairs"]))]
    target = {"options": doc.get("options"), "crystal": doc["crystal"]}.get(section, doc["clusters"][0])
    if key is not None:
        if value is DELETE:
            target.pop(key, None)
        else:
            target[key] = value
    return doc


def run_main(argv, capsys):
    rc = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_clear_error(rc, err, names, cmd):
    """Exit code 2, one ``ccdgen <cmd>: error:`` message naming ``names``, no traceback."""
    assert "Traceback" not in err, err
    assert rc == 2, f"rc={rc}\n{err}"
    prefix = "ccdgen: error: " if cmd is None else f"ccdgen {cmd}: error: "
    assert err.startswith(prefix), err
    assert err.count("error:") == 1, err
    assert "internal error" not in err, err
    for name in names:
        assert name.lower() in err.lower(), f"{name!r} not named in:\n{err}"


# ------------------------------------------------------------------ value classes
def _number_bad(key):
    return [("numeric-text", "0.1"), ("text", "abc"), ("empty", ""), ("bool", True), ("list", [0.1]),
            ("table", {"a": 1}), ("nan", NAN), ("inf", INF), ("-inf", -INF), ("negative", -1.0),
            ("zero", 0.0), ("huge", 1e300), ("huge-integer", 10 ** 400)]


def _int_bad(key, zero_ok=False, huge=True):
    cases = [("float", 1.5), ("float-integral", 2.0), ("text", "2"), ("bool", True), ("list", [2]),
             ("nan", NAN), ("inf", INF), ("negative", -1), ("empty", "")]
    if not zero_ok:
        cases.append(("zero", 0))
    if huge:
        cases.append(("huge", 10 ** 9))
    return cases


BOOL_BAD = [("text-no", "no"), ("text-true", "true"), ("zero", 0), ("one", 1), ("float", 1.0),
            ("list", [True]), ("empty", ""), ("nan", NAN)]
TEXT_BAD = [("number", 3), ("bool", True), ("list", ["x"]), ("empty", ""), ("table", {"a": 1}), ("nan", NAN)]


def _spec_cases():
    """(id, section, key, value, names that the message must contain)."""
    c = []

    def add(section, key, bad, names=None):
        for label, value in bad:
            c.append((f"{section}.{key}={label}", section, key, value, names or [key]))

    # [options]
    add("options", "metric", TEXT_BAD + [("case", "Exp"), ("unknown", "cubic")])
    add("options", "sigma", _number_bad("sigma") + [("above-1", 5.0)])
    add("options", "symprec", _number_bad("symprec") + [("one-angstrom", 1.0)])
    add("options", "max_order", _int_bad("max_order", zero_ok=True) + [("above-limit", 41)])
    add("options", "truncate", [("true", True), ("text-all", "all"), ("text-none", "none"), ("case", "Auto"),
                                ("numeric-text", "3"), ("empty", ""), ("zero", 0), ("negative", -3),
                                ("float", 1.5), ("nan", NAN), ("inf", INF), ("list", []), ("table", {"a": 1})])
    add("options", "metirc", [("unknown-key", "exp")], ["metirc", "metric"])
    # [[clusters]] kind = "pairs" / "triplets"
    for kind in ("pairs", "triplets"):
        add(kind, "max_length", _number_bad("max_length") + [("too-long", 1e6)])
        add(kind, "count", _int_bad("count"))
        add(kind, "max_length", [("missing", DELETE)])
    add("triplets", "max_length", [("too-long-for-triplets", 20.0)])
    add("pairs", "name", TEXT_BAD + [("unsafe", "Pb Br6"), ("digit-first", "1pair")])
    add("pairs", "kind", TEXT_BAD + [("case", "Pairs"), ("unknown", "quads"), ("missing", DELETE)])
    for key, value in (("center", "Pb"), ("neighbors", "Br"), ("include_center", True), ("sites", [[0, 0, 0]])):
        add("pairs", key, [("not-for-kind", value)], [key, "pairs"])
    add("pairs", "max_lenght", [("typo", 4.5)], ["max_lenght", "max_length"])
    # polyhedron
    for key in ("center", "neighbors"):
        add("polyhedron", key, TEXT_BAD + [("not-in-crystal", "Sn"), ("lower-case", "pb"), ("missing", DELETE)])
    add("polyhedron", "count", _int_bad("count") + [("above-limit", 65), ("splits-shell", 5),
                                                    ("missing", DELETE)])
    add("polyhedron", "include_center", BOOL_BAD)
    add("polyhedron", "max_length", [("not-for-kind", 4.5)], ["max_length", "polyhedron"])
    add("polyhedron", "centre", [("typo", "Pb")], ["centre", "center"])
    # sites
    add("sites", "sites", [
        ("text", "abc"), ("number", 5), ("bool", True), ("table", {"a": 1}), ("missing", DELETE),
        ("short-entry", [[0, 0], [0.5, 0, 0]]), ("text-entry", [["Pb", 0, 0], [0.5, 0, 0]]),
        ("bool-entry", [[True, 0, 0], [0.5, 0, 0]]), ("nan-entry", [[NAN, 0, 0], [0.5, 0, 0]]),
        ("inf-entry", [[INF, 0, 0], [0.5, 0, 0]]), ("float-in-integer-site", [[0.5, 0, 0, 0], [0, 0, 0]]),
        ("huge-offset", [[0, 10 ** 9, 0, 0], [0, 0, 0, 0]]), ("huge-position", [[1e300, 0, 0], [0, 0, 0]]),
        ("huge-integer", [[0, 10 ** 400, 0, 0], [0, 0, 0, 0]]),
        ("string-list", ["0 0 0", "0.5 0 0"]),
        ("too-many", [[0, n, 0, 0] for n in range(65)])])
    add("sites", "sites", [("empty", []), ("one-site", [[0, 0, 0]])], ["site"])
    add("sites", "sites", [("not-a-crystal-site", [[0, 0, 0], [0.25, 0, 0]])], ["not a crystal site"])
    add("sites", "sites", [("basis-out-of-range", [[0, 0, 0, 0], [7, 0, 0, 0]]),
                           ("negative-basis", [[0, 0, 0, 0], [-1, 0, 0, 0]])], ["basis index"])
    add("sites", "sites", [("same-site-twice", [[0, 0, 0], [0.5, 0, 0], [0, 0, 0]])], ["same site twice"])
    # [crystal]
    add("crystal", "lattice", [
        ("flat-9", [5.9436, 0, 0, 0, 5.9436, 0, 0, 0, 5.9436]), ("2x2", [[5.0, 0.0], [0.0, 5.0]]),
        ("3x2", [[5.0, 0.0], [0.0, 5.0], [0.0, 0.0]]), ("two-vectors", LATTICE[:2]),
        ("four-vectors", LATTICE + [[1.0, 1.0, 1.0]]), ("text-entry", [["5.9", 0, 0]] + LATTICE[1:]),
        ("text", "cubic"), ("empty", []), ("nan", [[NAN, 0, 0]] + LATTICE[1:]),
        ("inf", [[INF, 0, 0]] + LATTICE[1:]), ("bool", [[True, 0, 0]] + LATTICE[1:]),
        ("zero-volume", LATTICE[:2] + [[0.0, 0.0, 0.0]]), ("dependent", LATTICE[:2] + [[5.9436, 5.9436, 0.0]]),
        ("left-handed", LATTICE[:2] + [[0.0, 0.0, -5.9436]]), ("huge", [[1e300, 0, 0], [0, 1e300, 0], [0, 0, 1e300]]),
        ("huge-integer", [[10 ** 400, 0, 0]] + LATTICE[1:]),
        ("missing", DELETE)])
    add("crystal", "lattice", [("tiny", [[0.02, 0, 0], [0, 0.02, 0], [0, 0, 0.02]]),
                               ("short-translation", [[3.0, 0, 0], [3.05, 0.01, 0], [0, 0, 3.0]])],
        ["periodic image"])
    add("crystal", "species", [
        ("unknown-element", SPECIES[:4] + ["Xx"]), ("lower-case", ["pb"] + SPECIES[1:]),
        ("atomic-number", [82] + SPECIES[1:]), ("bool", [False] + SPECIES[1:]), ("text", "PbBr3Cs"),
        ("empty", []), ("empty-symbol", [""] + SPECIES[1:]), ("nested", [["Pb"]] + SPECIES[1:]),
        ("count-mismatch", SPECIES + ["Cs"]), ("missing", DELETE)])
    add("crystal", "positions", [
        ("text-entry", POSITIONS[:4] + ["a"]), ("short-vector", POSITIONS[:4] + [[0.5, 0.5]]),
        ("flat", [x for p in POSITIONS for x in p]), ("nan", POSITIONS[:4] + [[0.5, NAN, 0.5]]),
        ("inf", POSITIONS[:4] + [[0.5, INF, 0.5]]), ("bool", POSITIONS[:4] + [[0.5, True, 0.5]]),
        ("count-mismatch", POSITIONS[:4]), ("empty", []), ("text", "abc"), ("missing", DELETE)])
    add("crystal", "positions", [("collapsed", POSITIONS[:4] + [[0.0, 0.0, 0.001]])], ["apart"])
    add("crystal", "cartesian", BOOL_BAD)
    add("crystal", "file", [("number", 5), ("bool", True), ("empty", ""), ("list", ["a.cif"])])
    add("crystal", "file", [("missing-file", "missing.cif")], ["missing.cif", "does not exist"])
    add("crystal", "file", [("folder", ".")], ["folder"])
    add("crystal", "specis", [("typo", SPECIES)], ["specis", "species"])
    return c


SPEC_CASES = _spec_cases()


@pytest.mark.parametrize("section, key, value, names", [c[1:] for c in SPEC_CASES],
                         ids=[c[0] for c in SPEC_CASES])
def test_bad_spec_value(tmp_path, capsys, section, key, value, names):
    doc = spec_doc(section, key, value)
    if key == "file":  # a structure file instead of the inline crystal
        doc["crystal"] = {"file": value}
    path = tmp_path / "spec.toml"
    path.write_text(toml_doc(doc))
    rc, out, err = run_main([CMD, path], capsys)
    assert_one_clear_error(rc, err, names, CMD)
    assert out == ""


# ------------------------------------------------------------------ spec documents and files
TOP_CASES = [
    ("clusters-empty", {"crystal": spec_doc()["crystal"], "clusters": []}, ["clusters"]),
    ("clusters-number", {"clusters": 5, "crystal": spec_doc()["crystal"]}, ["clusters"]),
    ("clusters-of-numbers", {"clusters": [5], "crystal": spec_doc()["crystal"]}, ["clusters[0]"]),
    ("clusters-of-text", {"clusters": ["pairs"], "crystal": spec_doc()["crystal"]}, ["clusters[0]"]),
    ("clusters-missing", {"crystal": spec_doc()["crystal"]}, ["clusters"]),
    ("crystal-missing", {"clusters": spec_doc()["clusters"]}, ["crystal"]),
    ("crystal-number", {"crystal": 5, "clusters": spec_doc()["clusters"]}, ["crystal"]),
    ("options-number", {"options": 5, **spec_doc()}, ["options"]),
    ("unknown-top-key", {**spec_doc(), "cluster": [{"kind": "pairs", "max_length": 4.0}]}, ["cluster", "clusters"]),
    ("duplicate-names", {**spec_doc(), "clusters": [CLUSTERS["pairs"], {**CLUSTERS["triplets"], "name": "pair"}]},
     ["duplicate name"]),
    ("file-and-inline", {"crystal": {**spec_doc()["crystal"], "file": "POSCAR"},
                         "clusters": spec_doc()["clusters"]}, ["file"]),
]


@pytest.mark.parametrize("doc, names", [c[1:] for c in TOP_CASES], ids=[c[0] for c in TOP_CASES])
def test_bad_spec_document(tmp_path, capsys, doc, names):
    path = tmp_path / "spec.toml"
    path.write_text(toml_doc(doc))
    rc, out, err = run_main([CMD, path], capsys)
    assert_one_clear_error(rc, err, names, CMD)


GOOD_TOML = toml_doc(spec_doc()).encode()
YAML_GOOD = """crystal:
  lattice: [[5.9436, 0, 0], [0, 5.9436, 0], [0, 0, 5.9436]]
  species: [Pb, Br, Br, Br, Cs]
  positions: [[0, 0, 0], [0.5, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0.5, 0.5, 0.5]]
clusters:
  - {name: oct, kind: polyhedron, center: Pb, neighbors: Br, count: 6}
"""
FILE_CASES = [
    ("binary", "spec.toml", bytes(range(256)) * 4, ["binary"]),
    ("latin-1", "spec.toml", GOOD_TOML + "# caf\xe9\n".encode("latin-1"), ["UTF-8", "line"]),
    ("invalid-toml", "spec.toml", b"[crystal\nlattice = 3\n", ["not valid TOML"]),
    ("empty-toml", "spec.toml", b"", ["crystal"]),
    ("unknown-suffix", "spec.json", b"{}", ["unknown spec format"]),
    ("no-suffix", "POSCAR", b"Cs Pb Br\n", ["unknown spec format"]),
    ("empty-yaml", "spec.yaml", b"", ["empty"]),
    ("yaml-list", "spec.yaml", b"- 1\n- 2\n", ["spec", "table"]),
    ("invalid-yaml", "spec.yaml", b"crystal: [\n", ["not valid YAML"]),
    ("yaml-duplicate-key", "spec.yaml", (YAML_GOOD + "clusters: []\n").encode(), ["duplicate key 'clusters'"]),
    ("yaml-NO", "spec.yaml", YAML_GOOD.replace("[Pb, Br", "[NO, Br").encode(), ["species", "NO", "quote it"]),
    ("yaml-No", "spec.yaml", YAML_GOOD.replace("[Pb, Br", "[No, Br").encode(), ["species", "No", "quote it"]),
    ("yaml-ON", "spec.yaml", YAML_GOOD.replace("[Pb, Br", "[ON, Br").encode(), ["species", "ON", "quote it"]),
    ("yaml-yes", "spec.yaml", YAML_GOOD.replace("[Pb, Br", "[yes, Br").encode(), ["species", "yes", "quote it"]),
    ("yaml-center-no", "spec.yaml", YAML_GOOD.replace("center: Pb", "center: no").encode(), ["center", "quote it"]),
    ("yaml-exponent-as-text", "spec.yaml", (YAML_GOOD + "options: {symprec: 1e-3}\n").encode(),
     ["symprec", "1.0e-3"]),
    ("yaml-include-center-text", "spec.yaml",
     YAML_GOOD.replace("count: 6}", 'count: 6, include_center: "no"}').encode(), ["include_center"]),
    ("yaml-null", "spec.yaml", YAML_GOOD.replace("count: 6", "count: ~").encode(), ["count"]),
    ("yaml-nan", "spec.yaml", (YAML_GOOD + "options: {sigma: .nan}\n").encode(), ["sigma"]),
]


@pytest.mark.parametrize("name, data, names", [c[1:] for c in FILE_CASES], ids=[c[0] for c in FILE_CASES])
def test_bad_spec_file(tmp_path, capsys, name, data, names):
    path = tmp_path / name
    path.write_bytes(data)
    rc, out, err = run_main([CMD, path], capsys)
    assert_one_clear_error(rc, err, names, CMD)


def _file(name, data=None):
    """A maker of a source path inside the test folder: a file (bytes/str), a folder (data
    is ``dir``) or nothing (None)."""
    def make(d):
        path = d / name
        if data == "dir":
            path.mkdir()
        elif isinstance(data, bytes):
            path.write_bytes(data)
        elif isinstance(data, str):
            path.write_text(data)
        return path
    return make


@pytest.mark.parametrize("make, names", [
    (_file("missing.toml"), ["missing.toml", "does not exist"]),
    (lambda d: d, ["folder"]),
    (_file("dir.toml", "dir"), ["folder"]),
    (_file("missing.xyz"), ["missing.xyz", "does not exist"]),
    (_file("dir.xyz", "dir"), ["folder"]),
    (_file("bin.xyz", bytes(range(256))), ["bin.xyz"]),
    (_file("one.xyz", "1\n\nC 0 0 0\n"), ["at least 2 sites"]),
    (_file("xx.xyz", "2\n\nXx 0 0 0\nC 0 0 1.5\n"), ["xx.xyz"]),
    (_file("nan.xyz", "2\n\nC 0 0 0\nC 0 nan 1.5\n"), ["NaN"]),
    (lambda d: "", ["folder"]),
], ids=["missing", "folder", "folder-named-toml", "missing-xyz", "folder-named-xyz", "binary-xyz",
        "one-atom-xyz", "unknown-element-xyz", "nan-xyz", "empty-name"])
def test_bad_source(tmp_path, capsys, make, names):
    rc, out, err = run_main([CMD, make(tmp_path)], capsys)
    assert_one_clear_error(rc, err, names, CMD)


# ------------------------------------------------------------------ command-line options
@pytest.fixture(scope="module")
def good_spec(tmp_path_factory):
    path = tmp_path_factory.mktemp("sweep") / "good.toml"
    path.write_bytes(GOOD_TOML)
    return path


def _option_cases():
    """(id, argv after the source, option named, commands)."""
    source_cmds = ("inspect", "compile", "modes")
    c = []

    def add(option, values, cmds=source_cmds, names=None):
        for v in values:
            for cmd in cmds:
                c.append((f"{cmd} {option} {v!r}", cmd, [option, v], names or [option]))

    add("--sigma", ["nan", "inf", "-inf", "-1", "0", "5", "1e300", "abc", "", "0x10"])
    add("--symprec", ["nan", "inf", "-1", "0", "1", "1e300", "abc", ""])
    add("--truncate", ["abc", "-3", "0", "1.5", "", "true", "nan"])
    add("--metric", ["Exp", "cubic", ""])
    add("--order", ["-1", "41", "100", "abc", "1.5", ""], cmds=("inspect", "compile"))
    add("--tile", ["0", "-1", "5000", "abc", "1.5", ""], cmds=("compile",))
    add("--format", ["bogus", ""], cmds=("inspect",))
    add("--in", ["bogus"], cmds=("inspect",))
    add("--basis", ["bogus"], cmds=("inspect",))
    add("--cluster", ["NOPE", ""], names=["--cluster", "clusters are"])
    add("--cluster", ["pair"], names=["pair1", "pair2"])
    add("--show-code", ["NOPE"], cmds=("compile",), names=["--show-code", "pair1"])
    for cmd, flag in (("inspect", "--json"), ("inspect", "--exact"), ("inspect", "--expand"),
                      ("compile", "--json"), ("modes", "--truncated-only")):
        c.append((f"{cmd} {flag}=1", cmd, [f"{flag}=1"], [flag]))
    c.append(("inspect --sigmaa", "inspect", ["--sigmaa", "0.1"], ["--sigmaa"]))
    c.append(("inspect --sigma missing value", "inspect", ["--sigma"], ["--sigma"]))
    return c


OPTION_CASES = _option_cases()


@pytest.mark.parametrize("cmd, extra, names", [c[1:] for c in OPTION_CASES], ids=[c[0] for c in OPTION_CASES])
def test_bad_option(good_spec, tmp_path, capsys, cmd, extra, names):
    argv = [cmd, good_spec, *extra]
    if cmd == "modes":
        argv += ["-o", tmp_path / "modes"]
    rc, out, err = run_main(argv, capsys)
    assert_one_clear_error(rc, err, names, cmd)
    assert not (tmp_path / "modes").exists()


@pytest.mark.parametrize("output, names", [
    ("afile", ["afile", "existing file"]),
    ("afile/sub", ["afile", "existing file"]),
    ("", ["-o", "empty"]),
])
def test_bad_modes_output(good_spec, tmp_path, capsys, output, names):
    (tmp_path / "afile").write_text("x")
    rc, out, err = run_main(["modes", good_spec, "-o", tmp_path / output if output else ""], capsys)
    assert_one_clear_error(rc, err, names, "modes")
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize("argv, cmd, names", [
    (["cache", "ls", "--kind", "bogus"], "cache", ["--kind", "invariants", "kernels"]),
    (["cache", "clear", "--kind", "bogus"], "cache", ["--kind", "invariants", "kernels"]),
    (["cache", "ls", "--kind", ""], "cache", ["--kind"]),
    (["cache", "path", "--kind", "kernels"], "cache", ["--kind", "path"]),
    (["cache", "bogus"], "cache", ["action", "ls", "clear", "path"]),
    (["cache"], "cache", ["action"]),
    ([], None, ["command"]),
    (["bogus"], None, ["bogus", "inspect"]),
    (["inspect"], "inspect", ["source"]),
    (["--bogus"], None, ["command"]),
])
def test_bad_command_line(capsys, argv, cmd, names):
    rc, out, err = run_main(argv, capsys)
    assert_one_clear_error(rc, err, names, cmd)


def test_cache_kinds_cover_every_writer():
    """``cache --kind`` lists every kind that a module of ccdgen writes."""
    from ccdgen.cli.cache_cmd import CACHE_KINDS

    written = set()
    for path in (REPO / "ccdgen").rglob("*.py"):
        text = path.read_text()
        written.update(re.findall(r'^CACHE_KIND\w*\s*=\s*"([^"]+)"', text, flags=re.M))
        written.update(re.findall(r'get_or_build\(\s*"([^"]+)"', text))
    assert {"invariants", "kernels"} <= written
    assert written <= set(CACHE_KINDS), sorted(written - set(CACHE_KINDS))


# ------------------------------------------------------------------ crashes of the interpreter
def _cli(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "ccdgen.cli.main", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("how", ["cli-nan", "toml-nan", "toml-inf", "xyz-nan", "sigma-nan"])
def test_nan_never_reaches_spglib(tmp_path, how):
    """NaN/inf tolerances segfaulted spglib (exit -11); now: exit 2 and one message."""
    doc = spec_doc("options", "symprec", INF if how == "toml-inf" else NAN)
    path = tmp_path / "spec.toml"
    path.write_text(toml_doc(doc if how.startswith("toml") else spec_doc()))
    args = {"cli-nan": [path, "--symprec", "nan"], "toml-nan": [path], "toml-inf": [path],
            "xyz-nan": [XYZ, "--symprec", "nan"], "sigma-nan": [path, "--sigma", "nan"]}[how]
    r = _cli("inspect", *args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and r.stderr.count("error:") == 1
    assert ("sigma" if how == "sigma-nan" else "symprec") in r.stderr


# ------------------------------------------------------------------ valid edge values stay valid
def _load(tmp_path, text, name="spec.toml"):
    from ccdgen.pipeline import load

    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return load(path)


def test_valid_edges_are_accepted(tmp_path):
    from ccdgen.spec import check_sigma, check_symprec, parse_options

    o = parse_options({"sigma": 1, "symprec": 0.5, "max_order": 0, "truncate": False, "metric": "log"})
    assert (o.sigma, o.symprec, o.max_order, o.truncate) == (1.0, 0.5, 0, False)
    assert parse_options({"truncate": 3}).truncate == 3
    assert check_sigma(1e-9) == 1e-9 and check_symprec(1e-12) == 1e-12
    # a byte-order mark, X (ASE's dummy species), include_center = true
    doc = spec_doc("polyhedron", "include_center", True)
    doc["crystal"]["species"] = ["Pb", "Br", "Br", "Br", "X"]
    p = _load(tmp_path, b"\xef\xbb\xbf" + toml_doc(doc).encode())
    assert p.clusters[0].n_sites == 7 and p.crystal.species[-1] == "X"
    # YAML: yes is a boolean where a boolean belongs, a quoted "No" is text
    text = YAML_GOOD.replace("count: 6}", "count: 6, include_center: yes}")
    assert _load(tmp_path, text, "spec.yaml").clusters[0].n_sites == 7
    text = YAML_GOOD.replace("[Pb, Br", "[Y, Br").replace("center: Pb", "center: Y")  # Y is yttrium
    assert _load(tmp_path, text, "spec.yaml").crystal.species[0] == "Y"
    doc = spec_doc()
    doc["crystal"]["species"] = ["No", "Br", "Br", "Br", "Cs"]
    assert _load(tmp_path, toml_doc(doc)).crystal.species[0] == "No"


@pytest.mark.parametrize("text, value", [("none", False), ("all", False), ("false", False), ("auto", "auto"),
                                         ("AUTO", "auto"), ("12", 12)])
def test_cli_truncate_spellings(good_spec, text, value):
    args = build_parser().parse_args(["inspect", str(good_spec), "--truncate", text])
    assert args.truncate == value


def test_cli_numbers_parse(good_spec):
    args = build_parser().parse_args(["compile", str(good_spec), "--sigma", "1", "--symprec", "1e-5",
                                      "--order", "0", "--tile", "4096"])
    assert (args.sigma, args.symprec, args.order, args.tile) == (1.0, 1e-5, 0, 4096)


def test_cartesian_positions_equal_fractional(tmp_path):
    """cartesian = true with positions x·L gives the same crystal as fractional x."""
    lat = [[5.0, 0.0, 0.0], [1.0, 6.0, 0.0], [0.5, 0.7, 7.0]]
    frac = np.array([[0.0, 0.0, 0.0], [0.3, 0.1, 0.6]])
    docs = []
    for cart in (False, True):
        doc = spec_doc()
        doc["crystal"] = {"lattice": lat, "species": ["Pb", "Br"],
                          "positions": (frac @ np.array(lat) if cart else frac).tolist(), "cartesian": cart}
        docs.append(doc)
    from ccdgen.spec import parse_crystal

    a, b = (parse_crystal(d["crystal"], tmp_path) for d in docs)
    np.testing.assert_allclose(a.frac, b.frac, atol=1e-12)


@pytest.mark.parametrize("lattice", [
    [[5.9436, 0, 0], [0, 5.9436, 0], [0, 0, 5.9436]],
    [[3.0, 0, 0], [2.9, 0.5, 0], [0.1, 0.2, 9.0]],  # very skewed: the shortest vector is not a1
    [[20.0, 0, 0], [0, 2.0, 0], [0, 0, 3.0]],
])
def test_nearest_neighbour_distance_against_brute_force(lattice):
    """The cut-off (shortest lattice vector) loses no neighbour: compare all images |n| ≤ 6."""
    from ccdgen.geometry.structure import Crystal

    frac = np.array([[0.0, 0.0, 0.0], [0.37, 0.21, 0.55], [0.8, 0.6, 0.1]])
    cr = Crystal.from_arrays(lattice, ["Pb", "Br", "Cs"], frac)
    n = np.array(np.meshgrid(*[np.arange(-6, 7)] * 3, indexing="ij")).reshape(3, -1).T
    d = (cr.frac[None, :, None, :] - cr.frac[:, None, None, :] + n[None, None]) @ cr.cell
    r = np.linalg.norm(d, axis=-1)
    assert math.isclose(cr.nearest_neighbour_distance(), float(r[r > 1e-9].min()), rel_tol=1e-12)


# ------------------------------------------------------------------ what main() does with other exceptions
@pytest.mark.parametrize("exc, rc, words", [
    (PermissionError(13, "Permission denied", "/no/such/out.png"), 2, ["Permission denied", "/no/such/out.png"]),
    (KeyError("Xx"), 1, ["internal error", "KeyError", "--traceback"]),
])
def test_main_reports_other_exceptions_in_one_message(monkeypatch, capsys, exc, rc, words):
    from ccdgen.cli import cache_cmd

    def boom(args):
        raise exc

    monkeypatch.setattr(cache_cmd, "run", boom)
    assert main(["cache", "ls"]) == rc
    err = capsys.readouterr().err
    assert err.startswith("ccdgen cache: ") and "Traceback" not in err and err.count("error") == 1
    for w in words:
        assert w in err
    with pytest.raises(type(exc)):  # --traceback shows the real thing
        main(["cache", "--traceback", "ls"])


def test_help_and_version_return_zero(capsys):
    assert main(["--version"]) == 0 and "ccdgen" in capsys.readouterr().out
    assert main(["inspect", "--help"]) == 0 and "--symprec" in capsys.readouterr().out
