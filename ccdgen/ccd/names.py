"""Names of CCDs and irrep blocks, in text and LaTeX (one convention for every output)."""

from __future__ import annotations

import re


def block_tag(label: str, copy: int) -> str:
    """``Eg(2)`` for copy 2 of a repeated irrep, ``T1u`` for a single one."""
    return label + (f"({copy})" if copy else "")


def latex_irrep(label: str) -> str:
    """Mulliken label in LaTeX: ``A1g`` → ``A_{1g}``, ``E'`` → ``E'``, ``Γ3`` → ``\\Gamma_{3}``."""
    m = re.fullmatch(r"([A-Z])(\d*)([gu]?)('*)", label)
    if m:
        sub = m.group(2) + m.group(3)
        return m.group(1) + (f"_{{{sub}}}" if sub else "") + m.group(4)
    m = re.fullmatch(r"Γ(\d+)", label)
    if m:
        return f"\\Gamma_{{{m.group(1)}}}"
    return f"\\mathrm{{{label}}}"


def ccd_names(labels, style: str = "plain") -> list[str]:
    """Names of CCDs given as ``(irrep, copy, component)``: ``eta[Eg(1),2]`` (plain),
    ``η[Eg(1),2]`` (pretty), ``\\eta^{(1)}_{E_{g},2}`` (latex)."""
    out = []
    for label, copy, k in labels:
        if style == "latex":
            up = f"^{{({copy})}}" if copy else ""
            out.append(f"\\eta{up}_{{{latex_irrep(label)},{k}}}")
        else:
            out.append(f"{'eta' if style == 'plain' else 'η'}[{block_tag(label, copy)},{k}]")
    return out
