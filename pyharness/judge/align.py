"""Expected and actual frames side by side, aligned on a longest common
subsequence: a dropped frame is one gap, not every later row differing.

The rows are the LCS's matches (``same``), and between two matches the
frames only one side has: as many as both sides have there pair up as
``differ`` (a frame printed wrong), the rest are ``missing`` (expected,
not printed) or ``extra`` (printed, not expected). The common head and
tail are taken off first, so a long passing trace costs nothing; a middle
too large for the quadratic table falls back to :mod:`difflib`'s matching
blocks.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Hashable, Literal, Sequence

RowKind = Literal["same", "differ", "missing", "extra"]
# Cells of the LCS table beyond which difflib's heuristic matching is used.
MAX_TABLE_CELLS = 4_000_000


@dataclass(frozen=True)
class AlignedRow:
    kind: RowKind
    expected: int | None     # index into the expected frames
    actual: int | None       # index into the actual frames


def _lcs_pairs(a: Sequence[Hashable], b: Sequence[Hashable]) -> list[tuple[int, int]]:
    """Index pairs of a longest common subsequence of ``a`` and ``b``."""
    if len(a) * len(b) > MAX_TABLE_CELLS:
        matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
        return [(block.a + k, block.b + k) for block in matcher.get_matching_blocks()
                for k in range(block.size)]
    n, m = len(a), len(b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = table[i], table[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if a[i] == b[j] else max(below[j], row[j + 1])
    pairs, i, j = [], 0, 0
    while i < n and j < m:
        if a[i] == b[j]:
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    return pairs


def _gap(i0: int, i1: int, j0: int, j1: int) -> list[AlignedRow]:
    """Rows for expected[i0:i1] and actual[j0:j1], which share nothing."""
    both = min(i1 - i0, j1 - j0)
    rows = [AlignedRow("differ", i0 + k, j0 + k) for k in range(both)]
    rows += [AlignedRow("missing", i, None) for i in range(i0 + both, i1)]
    rows += [AlignedRow("extra", None, j) for j in range(j0 + both, j1)]
    return rows


def align(expected: Sequence[Hashable], actual: Sequence[Hashable]) -> list[AlignedRow]:
    """Aligned rows of two sequences (compared with ``==``)."""
    head = 0
    while head < min(len(expected), len(actual)) and expected[head] == actual[head]:
        head += 1
    tail = 0
    while (tail < min(len(expected), len(actual)) - head
           and expected[-1 - tail] == actual[-1 - tail]):
        tail += 1
    middle = _lcs_pairs(expected[head:len(expected) - tail], actual[head:len(actual) - tail])
    rows = [AlignedRow("same", k, k) for k in range(head)]
    i, j = head, head
    for a, b in middle:
        rows += _gap(i, head + a, j, head + b)
        rows.append(AlignedRow("same", head + a, head + b))
        i, j = head + a + 1, head + b + 1
    rows += _gap(i, len(expected) - tail, j, len(actual) - tail)
    rows += [AlignedRow("same", len(expected) - tail + k, len(actual) - tail + k)
             for k in range(tail)]
    return rows
