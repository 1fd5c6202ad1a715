"""The record every mutation operator produces: one textual edit of a file."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Edit:
    """Replace ``text[start:end]`` with ``replacement``.

    ``operator`` is the operator's short name (docs/mutation.md), ``what``
    a few words on this edit (``< -> <=``, ``16 -> 17``)."""

    start: int
    end: int
    replacement: str
    operator: str
    what: str

    def apply(self, text: str) -> str:
        return text[:self.start] + self.replacement + text[self.end:]


def blank(text: str) -> str:
    """What deleting ``text`` leaves: its newlines only, so that the lines
    after it keep their numbers (DWARF, BUG file:line, the report)."""
    return "\n" * text.count("\n")


# Operator names, in the order a mutant list is sorted by at one place.
OPERATORS = (
    "ror",         # relational operator replaced by another
    "const",       # integer constant +1, -1, x2, /2
    "aor",         # + <-> -, ++ <-> --
    "bitop",       # & <-> |, << <-> >>, &= <-> |=, ~ removed
    "lcr",         # && <-> ||
    "cond-drop",   # one operand of && / || removed
    "not-drop",    # ! removed
    "loop-bound",  # a loop condition's bound +1 / -1
    "stmt-del",    # a statement (or a whole if) removed
    "args-swap",   # two adjacent arguments swapped
    "string",      # a printed string changed
    "format",      # a printed conversion changed: %pB <-> %pS, %016lx -> %lx
    "tbz-swap",    # tbz <-> tbnz
    "tbz-bit",     # the tested bit number +1 / -1
    "asm-del",     # an instruction removed
    "asm-op",      # add <-> sub
    "asm-operands",  # the two source operands swapped
    "asm-branch",  # a branch sent to the other target of its region
    "asm-expr",    # + <-> - in an operand expression
)
