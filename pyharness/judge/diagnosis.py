"""A failing trace's diagnosis: where it first departs from the oracle's,
the frame records the oracle read there, and which unwinder rule looks
broken.

The oracle's walk (:func:`pyharness.judge.unwind_model.walk`) read one
frame record per frame after the first: frame ``i`` prints the return
address of record ``i - 1``, each record on a stack with known bounds
(:mod:`pyharness.platform.geometry`). Set beside the printed frames, the
first difference says which rule the unwinder under test applied wrongly:

- a printed pc that is the expected one moved (by one delta for every
  frame, or in its tag bits only) or that no record holds: **translation**
  (hyp VA -> kernel address, or the tag mask);
- the printed trace stops early (a full trace buffer aside: **bounds**),
  at a record the rules accept: the rule
  that record tests (**stack transition** if it lies on another stack than
  the one before, **bounds** if it is at its stack's edge, **alignment**
  if it is 8- but not 16-byte aligned), else **termination**;
- frames past the oracle's end: the rule that ended the oracle's walk
  (``fp 0``: **termination**; a misaligned fp: **alignment**; off every
  stack: **bounds**; back on a stack left: **stack transition**), or the
  trace buffer's size in protected mode (**bounds**).

With the rule comes the code that holds it: the function (``unwind()``,
``kvm_nvhe_dump_backtrace_entry()``, ...) and its ``file:line`` from the
image's DWARF, in the kernel tree when the unwinder came from one.

These are the likeliest readings, not proofs; the records are shown so a
reader can check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pyharness.elf.dwarf_functions import function_definitions

from pyharness.judge.code_lines import where
from pyharness.judge.expectation import ExpectedFrame, Expectation, WalkRecord
from pyharness.judge.frame_patterns import HIGH_BITS_FROM, MASK64
from pyharness.judge.verdict import ChainEntry, Diagnosis, FrameLine

EDGE_BYTES = 16      # a record this close to its stack's top or bottom tests "bounds"

# The functions that hold each rule, the kernel's names (6.x) first, then
# the lab's; the first the image's DWARF defines is named.
RULE_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "translation": ("kvm_nvhe_dump_backtrace_entry",),
    "termination": ("unwind", "unwind_common"),
    "alignment": ("unwind_next_frame_record", "unwind_next_common"),
    "bounds": ("unwind_find_next_stack", "unwind_find_stack", "stackinfo_on_stack", "on_stack"),
    "stack transition": ("unwind_consume_stack", "unwind_next_common"),
    "trace buffer": ("pkvm_save_backtrace_entry",),
}


def rule_site(elf: str, rule: str, protected: bool) -> str:
    """``name() at file:line`` of the code holding ``rule`` in ``elf`` (the
    hyp's copy when the walk ran at EL2, the host's otherwise), or ''. A
    kernel tree's function comes before the lab's (a tree build still
    carries the lab's self-test helpers)."""
    if not elf:
        return ""
    found = [(name, place) for name in RULE_FUNCTIONS.get(rule, ())
             for place in function_definitions(Path(elf), name)]
    if not found:
        return ""
    from_tree = [item for item in found if not item[1].file.startswith("csrc/")]
    found = from_tree or found
    side = [item for item in found if ("/hyp/" in item[1].file) == protected] or found
    name, place = side[0]
    return f"{name}() at {place.file}:{place.line}"


def _address(line: FrameLine) -> int | None:
    try:
        return int(line.address, 16) if line.address else None
    except ValueError:
        return None


def _first_difference(expected: Sequence[ExpectedFrame],
                      printed: Sequence[FrameLine]) -> int | None:
    for k in range(max(len(expected), len(printed))):
        if k >= len(expected) or k >= len(printed):
            return k
        if (_address(printed[k]), printed[k].symbol) != (expected[k].address,
                                                         expected[k].symbol):
            return k
    return None


def _entry(expect: Expectation, index: int) -> ChainEntry:
    record: WalkRecord = expect.walk[index]
    return ChainEntry(frame=index + 1, fp=f"{record.fp:016x}", lr=f"{record.lr:016x}",
                      stack=record.stack, lo=f"{record.lo:016x}", hi=f"{record.hi:016x}",
                      source=where(expect.elf, record.link))


def _record_rule(expect: Expectation, index: int) -> tuple[str, str]:
    """The rule record ``index`` of the walk tests, for an unwinder that
    stopped before it although the rules accept it."""
    record = expect.walk[index]
    at = f"the record at fp {record.fp:#x} (frame {index + 1})"
    if index > 0 and expect.walk[index - 1].stack != record.stack:
        return ("stack transition", f"the unwinder stopped at {at}, the first on the "
                f"{record.stack} stack after the {expect.walk[index - 1].stack} stack; "
                "a walk may move to another stack once")
    if record.hi - (record.fp + 16) < EDGE_BYTES or record.fp - record.lo < EDGE_BYTES:
        return ("bounds", f"the unwinder stopped at {at}, which lies wholly inside the "
                f"{record.stack} stack [{record.lo:#x}, {record.hi:#x}) at its edge")
    if record.fp % 16:
        return ("alignment", f"the unwinder stopped at {at}, which is 8-byte aligned "
                "(all a record must be) but not 16-byte aligned")
    return ("termination", f"the unwinder stopped at {at}, which the rules accept")


def _differ_rule(expect: Expectation, printed: Sequence[FrameLine], k: int) -> tuple[str, str]:
    """A frame printed with another pc than the oracle's."""
    got = _address(printed[k])
    want = expect.frames[k].address
    if got is None:
        return ("translation", "the frame printed no address")
    pairs = [(f.address, _address(p)) for f, p in zip(expect.frames, printed)]
    deltas = {(a - e) & MASK64 for e, a in pairs if a is not None}
    delta = (got - want) & MASK64
    if len(deltas) == 1 and len(pairs) == len(expect.frames) == len(printed):
        return ("translation", f"every printed pc is {delta:#x} off the recorded return "
                "address's kernel address: the hyp VA -> kernel address step adds the wrong "
                "offset")
    diff = got ^ want
    if diff and (diff & -diff).bit_length() - 1 >= HIGH_BITS_FROM:
        return ("translation", f"the printed pc differs from the recorded one only in bits "
                f"{(diff & -diff).bit_length() - 1} and up: tag or pointer-authentication "
                "bits were not masked before translating")
    others = [i for i, f in enumerate(expect.frames) if f.address == got]
    if others and others[0] < k:
        return ("termination", f"frame {k} printed the pc of the oracle's frame {others[0]} "
                "again: the unwinder went back down the chain")
    if others and 0 < k <= len(expect.walk):
        rule, why = _record_rule(expect, k - 1)
        return rule, why.replace("stopped at", "skipped", 1)
    return ("translation", "the printed pc is no recorded return address")


def _past_end_rule(expect: Expectation) -> tuple[str, str]:
    if expect.truncated:
        return ("bounds", f"the trace buffer holds {len(expect.frames)} entries here; "
                "the dump went past them")
    end = expect.walk_end
    if end is None:
        return ("termination", "the printed trace goes on where the oracle's ended")
    return (end.rule, f"the oracle's walk ends there ({end.why}); the unwinder went on")


def _records_near(expect: Expectation, k: int) -> tuple[ChainEntry, ...]:
    """The records that gave frames k-1, k and k+1 (those the walk has)."""
    indices = [i for i in (k - 2, k - 1, k) if 0 <= i < len(expect.walk)]
    return tuple(_entry(expect, i) for i in indices)


def _line(frame: FrameLine | None, elf: str) -> FrameLine | None:
    if frame is None or frame.source:
        return frame
    address = _address(frame)
    found = where(elf, address) if address is not None else ""
    return FrameLine(frame.address, frame.symbol, found) if found else frame


def diagnose(expect: Expectation, printed: Sequence[FrameLine]) -> Diagnosis | None:
    """The diagnosis of a hyp panic's printed frames against the oracle's
    (None when they agree, or when no trace was expected)."""
    if expect.kind != "hyp-panic" or expect.dump in (None, "cannot-dump"):
        return None
    k = _first_difference(expect.frames, printed)
    if k is None:
        return None
    if k < len(expect.frames) and k < len(printed):
        rule, why = _differ_rule(expect, printed, k)
    elif k >= len(printed):
        if expect.truncated and k > 0:
            rule, why = ("bounds", f"the trace buffer holds {len(expect.frames)} entries "
                         f"here; the save stopped after {k}")
        elif k == 0 or k - 1 >= len(expect.walk):
            rule, why = ("termination", "no frame was printed" if k == 0 else
                         "the printed trace stops early")
        else:
            rule, why = _record_rule(expect, k - 1)
    else:
        rule, why = _past_end_rule(expect)
    want = expect.frames[k].line() if k < len(expect.frames) else None
    got = printed[k] if k < len(printed) else None
    end = expect.walk_end
    walk_side = expect.protected and rule != "translation"
    site = "trace buffer" if why.startswith("the trace buffer") else rule
    walk_side = walk_side or site == "trace buffer"
    return Diagnosis(frame=k, rule=rule, why=why, expected=_line(want, expect.elf),
                     printed=_line(got, expect.elf), records=_records_near(expect, k),
                     walk_end=f"{end.why} [{end.rule}]" if end else "",
                     site=rule_site(expect.elf, site, walk_side))
