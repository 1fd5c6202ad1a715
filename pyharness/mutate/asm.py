"""Mutation operators for the hypervisor vector's assembly (host.S).

Assembly is mutated line by line inside the regions a target names (the
``hyp_el2_vect`` macro, the ``mov x29, xzr`` that ends the hyp's frame
chain): comments, labels, assembler directives (``.balign``, ``.macro``)
and preprocessor lines are left alone.
"""

from __future__ import annotations

import re
from typing import Iterator

from pyharness.mutate.edits import Edit

_COMMENT = re.compile(r"/\*.*?\*/|//.*$")
_INSTRUCTION = re.compile(r"^(?P<indent>\s*)(?P<mnemonic>[a-z][a-z0-9.]*)(?P<space>\s+)"
                          r"(?P<operands>.*?)\s*$")
_TBZ = re.compile(r"^(?P<reg>\w+)\s*,\s*#(?P<bit>[^,]+?)\s*,\s*(?P<target>\S+)$")
_ADDSUB = ("add", "sub")


def _instructions(text: str, lines: range) -> Iterator[tuple[int, int, re.Match[str]]]:
    """(line number, offset of the line, match) of each instruction line."""
    offsets = [0]
    for line in text.splitlines(keepends=True):
        offsets.append(offsets[-1] + len(line))
    all_lines = text.splitlines()
    for number in lines:
        if not 1 <= number <= len(all_lines):
            continue
        code = _COMMENT.sub(lambda m: " " * len(m.group(0)), all_lines[number - 1])
        if code.lstrip().startswith(("#", ".")) or code.rstrip().endswith(":"):
            continue
        match = _INSTRUCTION.match(code)
        if match:
            yield number, offsets[number - 1], match


def _operands(match: re.Match[str]) -> list[str]:
    return [part.strip() for part in match.group("operands").split(",")]


def asm_operators(text: str, lines: range) -> Iterator[Edit]:
    branch_targets = []
    for _, _, match in _instructions(text, lines):
        if match.group("mnemonic") == "b":
            branch_targets.append(match.group("operands").strip())
    for number, base, match in _instructions(text, lines):
        yield from _line_edits(base, match, sorted(set(branch_targets)))


def _line_edits(base: int, match: re.Match[str], targets: list[str]) -> Iterator[Edit]:
    mnemonic = match.group("mnemonic")
    m_start, m_end = base + match.start("mnemonic"), base + match.end("mnemonic")
    o_start, o_end = base + match.start("operands"), base + match.end("operands")
    operands = match.group("operands")
    if mnemonic in ("tbz", "tbnz"):
        other = "tbnz" if mnemonic == "tbz" else "tbz"
        yield Edit(m_start, m_end, other, "tbz-swap", f"{mnemonic} -> {other}")
        tested = _TBZ.match(operands)
        if tested:
            bit = tested.group("bit")
            b_start = o_start + tested.start("bit")
            b_end = o_start + tested.end("bit")
            for delta in ("+ 1", "- 1"):
                yield Edit(b_start, b_end, f"({bit} {delta})", "tbz-bit",
                           f"bit {bit} -> {bit} {delta}")
    if mnemonic in _ADDSUB:
        other = "sub" if mnemonic == "add" else "add"
        yield Edit(m_start, m_end, other, "asm-op", f"{mnemonic} -> {other}")
        parts = _operands(match)
        if len(parts) == 3 and parts[1] != parts[2]:
            swapped = f"{parts[0]}, {parts[2]}, {parts[1]}"
            yield Edit(o_start, o_end, swapped, "asm-operands",
                       f"{parts[1]} <-> {parts[2]}")
    if mnemonic == "b" and len(targets) > 1:
        for target in targets:
            if target != operands.strip():
                yield Edit(o_start, o_end, target, "asm-branch", f"b {operands} -> b {target}")
    for op in re.finditer(r"(?<=\w)\s*([+-])\s*(?=\w)", operands):
        sign = op.group(1)
        other = "-" if sign == "+" else "+"
        at = o_start + op.start(1)
        yield Edit(at, at + 1, other, "asm-expr", f"{sign} -> {other}")
    line_start, line_end = base + match.start("mnemonic"), o_end
    yield Edit(line_start, line_end, "", "asm-del", f"{mnemonic} {operands} removed")
