"""The README's Python examples run as written (from the repository root)."""

from __future__ import annotations

import re

import pytest
from conftest import REPO


def blocks() -> list[str]:
    text = (REPO / "README.md").read_text()
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_has_python_examples():
    assert len(blocks()) >= 3


@pytest.mark.slow
def test_readme_python_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    ns: dict = {}
    code = "\n".join(blocks()).replace('"models/mine.ckpt"', repr(str(tmp_path / "mine.ckpt")))
    code = code.replace("TrainConfig(kind=\"cluster\", order=2, hidden=(8,))",
                        "TrainConfig(kind=\"cluster\", order=2, hidden=(8,), epochs=3)")
    exec(compile(code, "README.md", "exec"), ns)
    assert ns["phi"]["PbBr6"].shape == (100, 8, 6)
    assert ns["out"]["forces"].shape == (4, 40, 3)
