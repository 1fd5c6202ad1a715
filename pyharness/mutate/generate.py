"""Mutants of the unwinding path: which files, which edits, in which order.

A :class:`Target` is a file of the firmware tree (or of a kernel tree)
with the scenarios likeliest to notice a change in it. :func:`generate`
runs every operator over every target and returns the :class:`Mutant`
list: deterministic (file order, then position, then operator), without
duplicates (two edits that give the same file are one mutant), each with a
sequential id and a key that does not depend on line numbers
(docs/mutation.md, "Keys").
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from pyharness.errors import HarnessError
from pyharness.mutate.asm import asm_operators
from pyharness.mutate.edits import OPERATORS, Edit
from pyharness.mutate.lexer import Condition, Token, line_of, tokenize
from pyharness.mutate.operators import EXPRESSION_OPERATORS
from pyharness.mutate.statements import STATEMENT_OPERATORS


@dataclass(frozen=True)
class Target:
    """A file to mutate, relative to its tree's root."""

    path: str
    # Scenarios (globs) to try first on a mutant of this file, best first.
    focus: tuple[str, ...] = ()
    # Assembly: (first line pattern, last line pattern) of each region to
    # mutate; a None end is a one-line region.
    regions: tuple[tuple[str, str | None], ...] = ()
    # Functions (regex) whose code runs only in one mode: their mutants try
    # that mode's runs first.
    modes: tuple[tuple[str, str], ...] = ()

    @property
    def is_asm(self) -> bool:
        return self.path.endswith(".S")


_PANICS = ("hyp_panic", "bug", "invalid_host_exception", "stack_overflow")

LAB_TARGETS = (
    Target("csrc/include/stacktrace/common.h",
           focus=("unwind_selftest", "fault_fp_*", "fault_*_past_top",
                  "fault_overflow_hyp_overflow", "stack_overflow", "hyp_panic",
                  "fault_longest_chain", "*packed_stacks")),
    Target("csrc/include/stacktrace/nvhe.h",
           focus=("*packed_stacks", "fault_longest_chain", "stack_overflow",
                  "buffer_overrun_probe", "fault_*_past_top", "fault_overflow_hyp_overflow")),
    Target("csrc/hyp/stacktrace.c",
           focus=("stack_overflow", "*packed_stacks", "fault_longest_chain",
                  "buffer_overrun_probe", "fault_overflow_hyp_overflow", "hyp_panic", "fault_*"),
           modes=((r"pkvm|on_accessible_stack", "protected"),
                  (r"hyp_prepare_backtrace|hyp_(overflow_)?stack_base", "nvhe"))),
    Target("csrc/hyp/switch.c", focus=("stack_overflow", "hyp_panic", "bug", "el2t_fault")),
    Target("csrc/hyp/host.S",
           focus=("stack_overflow", "fault_at_stack_top", "fault_on_overflow_stack",
                  "el2t_fault", "fault_overflow_hyp_overflow", "hyp_panic"),
           regions=((r"^\s*\.macro\s+hyp_el2_vect\b", r"^\s*\.endm\b"),
                    (r"^\s*mov\s+x29,\s*xzr\b", None))),
    Target("csrc/host/handle_exit.c",
           focus=("hyp_panic", "bug", "invalid_host_exception", "fault_lr_tagged",
                  "brk_not_bug*", "hvc_at_el2", "*_at_function_entry", "wild_jump",
                  "invalid_aarch32_exception", "stack_overflow", "fault_*"),
           modes=((r"pkvm", "protected"),
                  (r"hyp_dump_backtrace|hyp_on_accessible_stack|hyp_stack_addr_to_kern_va|"
                   r"hyp_stacktrace_info", "nvhe"))),
    Target("csrc/host/panic.c", focus=_PANICS),
)


@dataclass(frozen=True)
class Mutant:
    """One edit of one file, and what the report and the planner need."""

    id: str                  # "m017": position in the full list
    key: str                 # stable across unrelated edits (equivalents list)
    file: str                # relative to the tree's root
    line: int
    operator: str
    what: str
    before: str              # the line(s) the edit touches, whitespace collapsed
    after: str
    edit: Edit
    function: str | None = None
    define: str | None = None
    conditions: tuple[Condition, ...] = ()
    focus: tuple[str, ...] = ()
    mode: str | None = None  # the mode whose runs go first, if any
    tree: str = "lab"        # "lab", or "linux" for a kernel tree

    def location(self) -> str:
        return f"{self.file}:{self.line}"

    def diff(self) -> tuple[str, str]:
        return f"- {self.before}", f"+ {self.after}"


def collapse(text: str) -> str:
    return " ".join(text.split())


def _regions(text: str, target: Target) -> list[range]:
    lines = text.splitlines()
    out = []
    for start_pattern, end_pattern in target.regions:
        for number, line in enumerate(lines, 1):
            if not re.search(start_pattern, line):
                continue
            end = number
            if end_pattern is not None:
                end = next((n for n in range(number + 1, len(lines) + 1)
                            if re.search(end_pattern, lines[n - 1])), len(lines))
            out.append(range(number, end + 1))
    return out


def _edits(text: str, target: Target) -> Iterable[tuple[Edit, Token | None]]:
    if target.is_asm:
        for region in _regions(text, target):
            for edit in asm_operators(text, region):
                yield edit, None
        return
    tokens, _ = tokenize(text)
    by_start = {t.start: t for t in tokens}
    for operator in (*EXPRESSION_OPERATORS, *STATEMENT_OPERATORS):
        for edit in operator(text, tokens):
            token = by_start.get(edit.start) or _token_at(tokens, edit.start)
            yield edit, token


def _token_at(tokens: Sequence[Token], offset: int) -> Token | None:
    best = None
    for token in tokens:
        if token.start > offset:
            break
        best = token
    return best


def _line_span(text: str, start: int, end: int) -> tuple[int, int]:
    first = text.rfind("\n", 0, start) + 1
    last = text.find("\n", end)
    return first, len(text) if last < 0 else last


def _mode_for(target: Target, function: str | None, conditions: Sequence[Condition]) -> str | None:
    if any(c.symbol == "CONFIG_PROTECTED_NVHE_STACKTRACE" and c.want for c in conditions):
        return "protected"
    for pattern, mode in target.modes:
        if function and re.search(pattern, function):
            return mode
    return None


def mutants_of(tree: str, root: Path, targets: Sequence[Target],
               id_prefix: str = "m") -> list[Mutant]:
    """Every mutant of the targets under root, in their deterministic order."""
    drafts: list[tuple[tuple[int, int, int, int], Target, str, Edit, Token | None]] = []
    texts: dict[str, str] = {}
    for file_index, target in enumerate(targets):
        path = root / target.path
        try:
            text = texts[target.path] = path.read_text(encoding="utf-8")
        except OSError as err:
            raise HarnessError(f"{path}: cannot read a file to mutate ({err.strerror})") from None
        for serial, (edit, token) in enumerate(_edits(text, target)):
            order = (file_index, edit.start, OPERATORS.index(edit.operator), serial)
            drafts.append((order, target, text, edit, token))
    drafts.sort(key=lambda d: d[0])

    seen: set[tuple[str, str]] = set()
    occurrences: dict[tuple[str, str, str, str], int] = {}
    out: list[Mutant] = []
    for _, target, text, edit, token in drafts:
        mutated = edit.apply(text)
        fingerprint = (target.path, hashlib.sha256(mutated.encode()).hexdigest())
        if mutated == text or fingerprint in seen:
            continue
        seen.add(fingerprint)
        first, last = _line_span(text, edit.start, edit.end)
        before = collapse(text[first:last])
        after = collapse(mutated[first:last + len(mutated) - len(text)])
        signature = (target.path, edit.operator, before, after)
        occurrence = occurrences.get(signature, 0)
        occurrences[signature] = occurrence + 1
        digest = hashlib.sha1(f"{before}\0{after}\0{occurrence}".encode()).hexdigest()[:10]
        conditions = token.conditions if token else ()
        function = token.function if token else None
        out.append(Mutant(
            id=f"{id_prefix}{len(out) + 1:03d}", key=f"{target.path}:{edit.operator}:{digest}",
            file=target.path, line=line_of(text, edit.start), operator=edit.operator,
            what=edit.what, before=before, after=after, edit=edit, function=function,
            define=token.define if token else None, conditions=conditions,
            focus=target.focus, mode=_mode_for(target, function, conditions), tree=tree))
    return out


def select_files(mutants: Sequence[Mutant], patterns: Sequence[str],
                 known: Sequence[str]) -> list[Mutant]:
    """The mutants whose file matches one of the globs (all without globs)."""
    if not patterns:
        return list(mutants)
    unknown = [p for p in patterns if not any(fnmatch.fnmatchcase(f, p) for f in known)]
    if unknown:
        raise HarnessError(f"--files {' '.join(unknown)}: matches none of the files mutated "
                           f"({', '.join(known)})")
    return [m for m in mutants if any(fnmatch.fnmatchcase(m.file, p) for p in patterns)]
