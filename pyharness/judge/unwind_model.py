"""The unwinder's rules, modelled from their documented behaviour (never by
running the code under test), one row per generation (docs/oracle.md,
"Rules per generation").

The oracle follows the frame records the CPU made under these rules to
get the pcs a correct unwinder must report: a record must be 8-byte
aligned and lie wholly inside one of the walk's stacks; a stack the walk
has left is never entered again; on the same stack the next record must be
above the previous one, by at least ``min_step`` bytes: the lab and the v5
series ask only for "higher" (8 bytes, given the alignment), kernels since
6.1 consume the 16 bytes of each record (``unwind_consume_stack``), so a
record overlapping the previous one ends the walk.

7.x's walk (``unwind_find_stack`` tries the current stack, then the others;
``unwind_consume_stack`` destroys the stack found and makes it current)
keeps those rules; what 7.x changed for the oracle is its sizes
(``NVHE_STACK_SIZE`` hyp stacks: ``Image.stack_sizes``) and the Kconfig
name its ``Cannot dump`` line gives. The stacks' sizes are never a rule
here: they come with the image (the lab's formula, or the tree's numbers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol

from pyharness.judge.logrecords import TraceKind


@dataclass(frozen=True)
class UnwinderRules:
    """What differs between unwinder generations, as the oracle sees it."""

    name: str
    min_step: int                       # on one stack: next fp >= prev fp + min_step
    protected_header: TraceKind         # the dump's wording in protected mode
    non_protected_header: TraceKind     # ... and in non-protected mode
    buffer_per_cpu_variable: bool       # pkvm_stacktrace: DEFINE_PER_CPU, not [NR_CPUS][]
    stacktrace_option: str = "PROTECTED_NVHE_STACKTRACE"   # named by the Cannot dump line

    def header(self, protected: bool) -> TraceKind:
        return self.protected_header if protected else self.non_protected_header

    @property
    def cannot_dump_reason(self) -> str:
        """What follows ``Cannot dump pKVM nVHE stacktrace: ``."""
        return f"!CONFIG_{self.stacktrace_option}"


GENERATIONS: Mapping[str, UnwinderRules] = {
    "lab": UnwinderRules("lab", 8, "protected", "non-protected", False),
    "linux-6.1": UnwinderRules("linux-6.1", 16, "mainline", "mainline", True),
    "linux-6.12": UnwinderRules("linux-6.12", 16, "mainline", "mainline", True),
    "linux-7.x": UnwinderRules("linux-7.x", 16, "mainline", "mainline", True,
                               "PKVM_STACKTRACE"),
}


def rules_for(unwinder: str) -> UnwinderRules | None:
    return GENERATIONS.get(unwinder)


@dataclass(frozen=True)
class Stack:
    name: str
    lo: int
    hi: int

    def holds_record(self, fp: int) -> bool:
        return self.lo <= fp and fp + 16 <= self.hi


class RecordSource(Protocol):
    """Frame records by address: (saved fp, lr), or None where none is known."""

    def get(self, fp: int) -> tuple[int, int] | None: ...


@dataclass(frozen=True)
class Walk:
    """A walk over recorded frame records: (record fp, lr) of each record
    read, in order; a problem if it reached a record nobody saw made; and
    where it stopped (the fp it would read next, the rule that stops it
    there, in words)."""

    chain: list[tuple[int, int]]
    problem: str | None
    end_fp: int = 0
    end_rule: str = "termination"
    end_why: str = "fp 0: the end of the chain"


def walk(records: RecordSource, fp: int, stacks: list[Stack],
         rules: UnwinderRules) -> Walk:
    """Every record a correct unwinder reads from ``fp``, and why it stops."""
    chain: list[tuple[int, int]] = []
    done: set[str] = set()
    prev: Stack | None = None
    prev_fp = 0
    while fp:
        if fp & 7:
            return Walk(chain, None, fp, "alignment", f"fp {fp:#x} is not 8-byte aligned")
        stack = next((s for s in stacks if s.holds_record(fp)), None)
        if stack is None:
            return Walk(chain, None, fp, "bounds",
                        f"no stack holds a record at fp {fp:#x} (16 bytes)")
        if stack.name in done:
            return Walk(chain, None, fp, "stack transition",
                        f"fp {fp:#x} is back on the {stack.name} stack, which the walk left")
        if prev is not None and stack.name == prev.name and fp < prev_fp + rules.min_step:
            return Walk(chain, None, fp, "termination",
                        f"fp {fp:#x} is not {rules.min_step} bytes above the previous record "
                        f"{prev_fp:#x} on the same stack")
        if prev is not None and stack.name != prev.name:
            done.add(prev.name)
        prev, prev_fp = stack, fp
        record = records.get(fp)
        if record is None:
            return Walk(chain, f"oracle: no frame record was seen at {fp:#x}", fp,
                        "termination", f"no record was seen made at {fp:#x}")
        chain.append((fp, record[1]))
        fp = record[0]
    return Walk(chain, None)


def follow(records: RecordSource, fp: int, stacks: list[Stack],
           rules: UnwinderRules) -> tuple[list[tuple[int, int]], str | None]:
    """(record fp, lr) of every record a correct unwinder reads from ``fp``,
    in order, and a problem if the walk reached a record nobody saw made.
    ``records`` maps a record's address to (saved fp, lr)."""
    result = walk(records, fp, stacks, rules)
    return result.chain, result.problem
