"""Whole-trace patterns: one reason for a trace that is wrong in one way.

A bug in the unwinder or its printing rarely breaks one frame: it moves
every pc by the same amount, leaves tag bits in, stops the walk early or
lets it run on. Frame by frame that is dozens of reasons, each naming
other functions, and a matrix of them dozens of causes. Here, where the
expected and the printed frames are both known, such a trace gets one
reason naming its pattern (and, as an example, the first frame that
shows it); :mod:`pyharness.reports.causes` groups on that reason.

Only addresses and printed symbols are compared: the patterns are
- every frame printed the same ``delta`` away from its expected pc;
- frames whose pc differs from the expected one only above bit 32
  (pointer-authentication or tag bits left in), the others right;
- the trace cut after frame k (a proper prefix of the expected), said as
  the first frame missing;
- frames past the expected end (the expected trace a proper prefix), said
  as the first frame unexpected.
Anything else is left to the frame-by-frame alignment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

MASK64 = (1 << 64) - 1
# Differences only above this bit are tag or pointer-authentication bits:
# no VA_BITS the lab or a kernel configures is below 36.
HIGH_BITS_FROM = 32


@dataclass(frozen=True)
class PrintedPc:
    """A frame as compared here: its address (None if the line had none)
    and what the line says after it."""

    address: int | None
    symbol: str


Describe = Callable[[int], str]


def _lowest_set_bit(value: int) -> int:
    return (value & -value).bit_length() - 1


def _shift(expected: Sequence[PrintedPc], actual: Sequence[PrintedPc],
           want: Describe, got: Describe) -> str | None:
    if len(expected) != len(actual) or not expected:
        return None
    if any(a.address is None for a in actual):
        return None
    deltas = {(a.address - e.address) & MASK64 for e, a in zip(expected, actual)}
    if len(deltas) != 1:
        return None
    delta = deltas.pop()
    if delta == 0:
        return None
    if delta >> 63:
        way = f"{(-delta) & MASK64:#x} before"
    else:
        way = f"{delta:#x} past"
    return (f"every frame printed {way} its expected pc ({len(expected)} frames; "
            f"frame 0: expected {want(0)}, got {got(0)})")


def _high_bits(expected: Sequence[PrintedPc], actual: Sequence[PrintedPc],
               want: Describe, got: Describe) -> str | None:
    if len(expected) != len(actual) or not expected:
        return None
    wrong = []
    for k, (e, a) in enumerate(zip(expected, actual)):
        if a.address is None:
            return None
        diff = a.address ^ e.address
        if diff and _lowest_set_bit(diff) < HIGH_BITS_FROM:
            return None
        if diff:
            wrong.append((k, _lowest_set_bit(diff)))
    if not wrong:
        return None
    first, low = wrong[0][0], min(bit for _, bit in wrong)
    return (f"{len(wrong)} of {len(expected)} frames printed with bits from bit {low} up "
            f"that their expected pcs lack (pointer-authentication or tag bits left in; "
            f"frame {first}: expected {want(first)}, got {got(first)})")


def _cut(expected: Sequence[PrintedPc], actual: Sequence[PrintedPc],
         want: Describe, got: Describe) -> str | None:
    if len(actual) >= len(expected) or list(expected[:len(actual)]) != list(actual):
        return None
    n, missing = len(actual), len(expected) - len(actual)
    if not actual:
        return f"frame 0: missing, expected {want(0)}: no frame printed, {missing} expected"
    return (f"frame {n}: missing, expected {want(n)}: the trace cut after frame {n - 1}, "
            f"{missing} expected frames not printed")


def _past_end(expected: Sequence[PrintedPc], actual: Sequence[PrintedPc],
              want: Describe, got: Describe) -> str | None:
    if len(actual) <= len(expected) or list(actual[:len(expected)]) != list(expected):
        return None
    n, extra = len(expected), actual[len(expected):]
    repeating = ", all the same frame" if len(extra) > 1 and len(set(extra)) == 1 else ""
    return (f"frame {n}: unexpected {got(n)}: {len(extra)} frames past the expected end"
            f"{repeating}")


_PATTERNS = (_shift, _high_bits, _cut, _past_end)


def trace_pattern(expected: Sequence[PrintedPc], actual: Sequence[PrintedPc],
                  want: Describe, got: Describe) -> str | None:
    """One reason for the whole trace if it is wrong in one of the ways
    above, else None. ``want(i)``/``got(j)`` describe expected frame i and
    printed frame j (only those a reason names)."""
    for pattern in _PATTERNS:
        reason = pattern(expected, actual, want, got)
        if reason is not None:
            return reason
    return None
