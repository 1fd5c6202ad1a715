"""What one run's record keeps of a failure: caps on its reasons, console
and printed frames, each with a count of what was cut.

A failing run can name thousands of differences (every frame of a 64K
trace 4 bytes off) and print thousands of lines (a runaway dump): every
report, and ``report merge`` and ``--only-failed`` reading them back,
would carry them all. The judge sees everything; the record keeps

- reasons: at most :data:`REASONS_OF_A_KIND` of a kind (``frame N``,
  ``host frame N``, ``line missing (or out of order)``: the text before the
  first colon, numbers aside) and :data:`MAX_REASONS` in all, a note in
  place of each cut (``... 4332 more 'frame N' reasons cut``);
- a failing run's console: its first :data:`CONSOLE_HEAD` and last
  :data:`CONSOLE_TAIL` lines, a marker line between. A passing run's
  console is kept whole: the runaway stop (platform/runaway.py) bounds it;
- a failing run's printed frames: as many as expected and
  :data:`EXTRA_FRAMES` more.

``RunRecord.cut`` counts what each lost (``{"reasons": 4332, ...}``).
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Sequence, TypeVar

from pyharness.run.record import RunRecord

MAX_REASONS = 100
REASONS_OF_A_KIND = 20
CONSOLE_HEAD = 1000
CONSOLE_TAIL = 200
EXTRA_FRAMES = 200

_NUMBER = re.compile(r"\d+")
T = TypeVar("T")


def reason_kind(reason: str) -> str:
    """What makes reasons alike: the text before the first colon, with
    numbers as N (``frame 7: expected ...`` is a ``frame N``)."""
    head = reason.partition(":")[0]
    bare = head.rstrip("0123456789")
    if bare != head:                    # the common case, a number last
        head = bare + "N"
    return _NUMBER.sub("N", head) if any(c.isdigit() for c in head) else head


def cap_reasons(reasons: Sequence[str]) -> tuple[list[str], int]:
    """The reasons a record keeps, with a note for each kind cut, and how
    many were cut. The first reason is always kept."""
    seen: Counter[str] = Counter()
    cut_of: Counter[str] = Counter()
    kept: list[tuple[str, str]] = []
    over = 0
    for reason in reasons:
        kind = reason_kind(reason)
        seen[kind] += 1
        if seen[kind] > REASONS_OF_A_KIND:
            cut_of[kind] += 1
        elif len(kept) >= MAX_REASONS:
            over += 1
        else:
            kept.append((kind, reason))
    last = {kind: index for index, (kind, _) in enumerate(kept)}
    out = []
    for index, (kind, reason) in enumerate(kept):
        out.append(reason)
        if cut_of[kind] and last[kind] == index:
            out.append(f"... {cut_of[kind]} more '{kind}' reasons cut (a record keeps "
                       f"{REASONS_OF_A_KIND} of a kind)")
    if over:
        out.append(f"... {over} more reasons cut (a record keeps {MAX_REASONS})")
    return out, over + sum(cut_of.values())


def cap_console(console: Sequence[str]) -> tuple[list[str], int]:
    """A failing run's console as its record keeps it, and how many lines were cut."""
    cut = len(console) - CONSOLE_HEAD - CONSOLE_TAIL
    if cut <= 0:
        return list(console), 0
    marker = (f"[pyharness: {cut} console lines cut here; the record keeps the first "
              f"{CONSOLE_HEAD} and the last {CONSOLE_TAIL} of {len(console)}]")
    return [*console[:CONSOLE_HEAD], marker, *console[len(console) - CONSOLE_TAIL:]], cut


def cap_frames(frames: Sequence[T], expected: int) -> tuple[list[T], int]:
    """A failing run's printed frames: ``expected`` and EXTRA_FRAMES more."""
    keep = expected + EXTRA_FRAMES
    return list(frames[:keep]), max(0, len(frames) - keep)


def cap_record(record: RunRecord) -> RunRecord:
    """``record`` as it is kept: its reasons capped and, when it did not
    pass, its console and printed frames too; ``record.cut`` says how much."""
    cut = dict(record.cut)
    record.reasons, cut["reasons"] = cap_reasons(record.reasons)
    if not record.passed:
        record.console, cut["console"] = cap_console(record.console)
        record.actual, cut["actual"] = cap_frames(record.actual, len(record.expected))
    record.cut = {name: count for name, count in cut.items() if count}
    return record
