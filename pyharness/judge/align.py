"""Expected and actual frames side by side, aligned on a common
subsequence: a dropped frame is one gap, not every later row differing.

The rows are the common subsequence's matches (``same``), and between two
matches the frames only one side has: as many as both sides have there
pair up as ``differ`` (a frame printed wrong), the rest are ``missing``
(expected, not printed) or ``extra`` (printed, not expected).

The cost is bounded whatever the traces (a failing 64K trace has 4352
frames a side, and a runaway dump thousands more): every step is linear
or O(n log n) in the lengths, plus at most :data:`MAX_WORK` steps of
exact matching for the whole alignment.

1. The common head and tail are taken off: a passing trace costs nothing.
2. A frame only one side has can never match: those are left out.
3. What is left is matched exactly when it is small (the LCS table, at
   most :data:`EXACT_CELLS` cells), or when the two sides differ by few
   frames (Myers' O((n + m) D) greedy diff, stopped when it has used up
   the work left).
4. Otherwise frames that occur once on each side anchor the alignment
   (patience diff: the longest increasing run of their positions, O(n log
   n)), and each stretch between two anchors is aligned in turn, by the
   same steps. A stretch with no anchor and no work left is one gap: its
   frames pair up in order ("differs from frame k on").

Steps 1 and 3 find a longest common subsequence; the result then is one
(the one the table would find, for inputs of at most EXACT_CELLS). Step 4
finds a common subsequence, maybe not the longest: the rows are still
every frame of both sides once, in order.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import Hashable, Literal, Sequence

RowKind = Literal["same", "differ", "missing", "extra"]
# The largest LCS table filled (cells): about 7 ms of Python.
EXACT_CELLS = 40_000
# Steps of exact matching (table cells, Myers' diagonal steps) one
# alignment may take in all: about 50 ms of Python.
MAX_WORK = 300_000
# Stretches between anchors aligned within stretches, at most this deep.
MAX_DEPTH = 16

Pairs = list[tuple[int, int]]


@dataclass(frozen=True)
class AlignedRow:
    kind: RowKind
    expected: int | None     # index into the expected frames
    actual: int | None       # index into the actual frames


class _Work:
    """The exact-matching steps left to one alignment."""

    def __init__(self, steps: int) -> None:
        self.left = steps

    def take(self, steps: int) -> bool:
        """Spend ``steps`` if there are that many left."""
        if steps > self.left:
            return False
        self.left -= steps
        return True


def _table_pairs(a: Sequence[Hashable], b: Sequence[Hashable]) -> Pairs:
    """Index pairs of a longest common subsequence, from the full table."""
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


def _myers_pairs(a: Sequence[Hashable], b: Sequence[Hashable], work: _Work) -> Pairs | None:
    """A longest common subsequence by Myers' greedy shortest edit script,
    or None once it has spent the work left (the edit distance is large)."""
    n, m = len(a), len(b)
    reach = {1: 0}                      # diagonal k = x - y -> furthest x
    history: list[dict[int, int]] = []
    for d in range(n + m + 1):
        if not work.take(d + 1):        # the copy of the round's reach
            return None
        history.append(dict(reach))
        for k in range(-d, d + 1, 2):
            if k == -d or (k != d and reach[k - 1] < reach[k + 1]):
                x = reach[k + 1]
            else:
                x = reach[k - 1] + 1
            y, start = x - k, x
            while x < n and y < m and a[x] == b[y]:
                x, y = x + 1, y + 1
            if not work.take(x - start + 2):
                return None
            reach[k] = x
            if x >= n and y >= m:
                return _myers_trace(history, n, m)
    return None   # not reached: d = n + m always ends


def _myers_trace(history: list[dict[int, int]], x: int, y: int) -> Pairs:
    """The matches of the edit script that ``history`` (the furthest reach
    before each round) leads to (x, y) with."""
    pairs: Pairs = []
    for d in range(len(history) - 1, -1, -1):
        reach, k = history[d], x - y
        if d == 0:
            prev_x = prev_y = 0
        else:
            down = k == -d or (k != d and reach[k - 1] < reach[k + 1])
            prev_k = k + 1 if down else k - 1
            prev_x = reach[prev_k]
            prev_y = prev_x - prev_k
        while x > prev_x and y > prev_y:
            x, y = x - 1, y - 1
            pairs.append((x, y))
        x, y = prev_x, prev_y
    pairs.reverse()
    return pairs


def _anchor_pairs(a: Sequence[Hashable], b: Sequence[Hashable]) -> Pairs:
    """Frames that occur once on each side, as many as keep their order
    on both (a longest increasing run of their positions in ``b``)."""
    count_a, count_b = Counter(a), Counter(b)
    where_b = {key: j for j, key in enumerate(b) if count_b[key] == 1}
    candidates = [(i, where_b[key]) for i, key in enumerate(a)
                  if count_a[key] == 1 and key in where_b]
    tails: list[int] = []               # smallest last j of a run of each length
    tail_at: list[int] = []             # its index in candidates
    before: list[int] = []              # each candidate's predecessor in its run
    for index, (_, j) in enumerate(candidates):
        length = bisect_left(tails, j)
        before.append(tail_at[length - 1] if length else -1)
        if length == len(tails):
            tails.append(j)
            tail_at.append(index)
        else:
            tails[length], tail_at[length] = j, index
    pairs, index = [], tail_at[-1] if tail_at else -1
    while index >= 0:
        pairs.append(candidates[index])
        index = before[index]
    pairs.reverse()
    return pairs


def _common_pairs(a: Sequence[Hashable], b: Sequence[Hashable], work: _Work,
                  depth: int = 0) -> Pairs:
    """Matching index pairs of ``a`` and ``b`` (see the module's steps)."""
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    pairs = [(k, k) for k in range(head)]
    pairs += [(head + i, head + j)
              for i, j in _middle_pairs(a[head:len(a) - tail], b[head:len(b) - tail], work,
                                        depth)]
    pairs += [(len(a) - tail + k, len(b) - tail + k) for k in range(tail)]
    return pairs


def _middle_pairs(a: Sequence[Hashable], b: Sequence[Hashable], work: _Work,
                  depth: int) -> Pairs:
    if not a or not b:
        return []
    if len(a) * len(b) <= EXACT_CELLS and work.take(len(a) * len(b)):
        return _table_pairs(a, b)
    in_b, in_a = set(b), set(a)
    keep_a = [i for i, key in enumerate(a) if key in in_b]
    keep_b = [j for j, key in enumerate(b) if key in in_a]
    if not keep_a or not keep_b:
        return []
    a2, b2 = [a[i] for i in keep_a], [b[j] for j in keep_b]
    found: Pairs | None
    if len(a2) * len(b2) <= EXACT_CELLS and work.take(len(a2) * len(b2)):
        found = _table_pairs(a2, b2)
    else:
        found = _myers_pairs(a2, b2, work)
    if found is None:
        found = _anchored(a2, b2, work, depth) if depth < MAX_DEPTH else []
    return [(keep_a[i], keep_b[j]) for i, j in found]


def _anchored(a: Sequence[Hashable], b: Sequence[Hashable], work: _Work,
              depth: int) -> Pairs:
    """Matches around the anchors, each stretch between two aligned in turn."""
    anchors = _anchor_pairs(a, b)
    if not anchors:
        return []
    pairs: Pairs = []
    i0 = j0 = 0
    for i, j in [*anchors, (len(a), len(b))]:
        pairs += [(i0 + p, j0 + q) for p, q in _common_pairs(a[i0:i], b[j0:j], work,
                                                                  depth + 1)]
        if i < len(a):
            pairs.append((i, j))
        i0, j0 = i + 1, j + 1
    return pairs


def _gap(i0: int, i1: int, j0: int, j1: int) -> list[AlignedRow]:
    """Rows for expected[i0:i1] and actual[j0:j1], which share nothing."""
    both = min(i1 - i0, j1 - j0)
    rows = [AlignedRow("differ", i0 + k, j0 + k) for k in range(both)]
    rows += [AlignedRow("missing", i, None) for i in range(i0 + both, i1)]
    rows += [AlignedRow("extra", None, j) for j in range(j0 + both, j1)]
    return rows


def align(expected: Sequence[Hashable], actual: Sequence[Hashable], *,
          max_work: int = MAX_WORK) -> list[AlignedRow]:
    """Aligned rows of two sequences (compared with ``==``); at most
    ``max_work`` steps of exact matching (see the module's steps)."""
    rows: list[AlignedRow] = []
    i = j = 0
    for a, b in _common_pairs(expected, actual, _Work(max_work)):
        rows += _gap(i, a, j, b)
        rows.append(AlignedRow("same", a, b))
        i, j = a + 1, b + 1
    rows += _gap(i, len(expected), j, len(actual))
    return rows
