"""Failures grouped by cause: the runs whose reasons say the same thing.

Two runs fail for the same cause when their verdicts match and their
reasons, each *normalised*, form the same set. Normalising removes what
differs from one run (or configuration) to the next while the bug stays
the same: addresses (KASLR, page size and VA size move them, and
pointer-authentication bits are part of an address), symbol names with
their offsets and sizes (each scenario panics in other functions), the
``file:line`` after a pc, frame numbers, counts, timestamps, the spacing
of console lines, each configuration's build directory (one compile
error breaks every configuration), and of a runaway, which bound it
passed and where the CPU was when it stopped. The words are kept, so another kind
of difference is another cause. The set (not the list) is compared, so a
trace that repeats one wrong frame 80 times and one that repeats it 12
times group together.

A trace wrong in one way (every pc moved by one delta, cut after frame
k, frames past the expected end: :mod:`pyharness.judge.frame_patterns`)
already has one reason naming that pattern, so one bug is one cause
across scenarios, configurations and modes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from pyharness.judge.verdict import Verdict
from pyharness.run.record import RunRecord

_RULES = (
    # A runaway (platform/runaway.py): which bound it passed and where the CPU
    # was (which printk, which callers) follow the configuration, not the bug.
    (re.compile(r"^stopped early, a runaway: the console holds \d+ (frame lines|lines|bytes)\b.*",
                re.S), r"stopped early, a runaway: more \1 than a valid run prints"),
    (re.compile(r"\S*/[^/\s]+-[0-9a-f]{12}\b"), "BUILD_DIR"),   # build/<config>-<hash>
    (re.compile(r"\s\([\w.+/-]+\.[chsS]:\d+\)"), " (FILE:LINE)"),  # after a pc
    (re.compile(r"[\w.$]+\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+"), "SYM"),
    (re.compile(r"\b[A-Za-z_][\w.$]*\+0x[0-9a-fA-F]+\b"), "SYM"),        # sym+off, no size
    (re.compile(r"\+0x[0-9a-fA-F]+/0x[0-9a-fA-F]+"), "+OFF/SIZE"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "0xN"),
    (re.compile(r"\b(?:[0-9a-fA-F]{16}|(?=\d*[a-fA-F])[0-9a-fA-F]{8,15})\b"), "ADDR"),
    (re.compile(r"\b\d+(?:\.\d+)?\b"), "N"),
    (re.compile(r"\b0xN at (ADDR|\?)"), r"SYM at \1"),   # a raw pointer where a symbol goes
    (re.compile(r"\s+"), " "),
)


def normalise(reason: str) -> str:
    """A reason without its run-specific numbers, addresses and spacing."""
    for pattern, replacement in _RULES:
        reason = pattern.sub(replacement, reason)
    return reason.strip()


CauseKey = tuple[str, tuple[str, ...]]


def cause_key(record: RunRecord) -> CauseKey:
    """What two runs share when they failed for the same cause."""
    reasons = record.reasons or ["no reason given"]
    return (str(record.verdict), tuple(sorted({normalise(r) for r in reasons})))


@dataclass(frozen=True)
class FailureGroup:
    """The runs of one cause, in matrix order."""

    verdict: Verdict
    key: CauseKey
    records: tuple[RunRecord, ...]

    @property
    def first(self) -> RunRecord:
        return self.records[0]

    def reasons(self) -> list[str]:
        """The first run's reasons, one per distinct normalised form, in its order."""
        seen: set[str] = set()
        out = []
        for reason in self.first.reasons or ["no reason given"]:
            form = normalise(reason)
            if form not in seen:
                seen.add(form)
                out.append(reason)
        return out


def group_failures(records: Sequence[RunRecord]) -> list[FailureGroup]:
    """Every run that did not pass, by cause: the largest group first, then
    fails before errors, then the order the causes first appear in."""
    groups: dict[CauseKey, list[RunRecord]] = {}
    for record in records:
        if not record.passed:
            groups.setdefault(cause_key(record), []).append(record)
    ordered = sorted(enumerate(groups.items()),
                     key=lambda item: (-len(item[1][1]),
                                       item[1][1][0].verdict is not Verdict.FAIL, item[0]))
    return [FailureGroup(verdict=runs[0].verdict, key=key, records=tuple(runs))
            for _, (key, runs) in ordered]
