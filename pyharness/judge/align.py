"""Expected against printed, aligned: a longest common subsequence, so one
dropped frame is one "missing" reason and not a cascade of "expected A,
got B" for every frame after it."""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

E = TypeVar("E")
A = TypeVar("A")


# Above this many cells the middle is compared position by position (a
# 64K-page overflow trace has thousands of frames; LCS is quadratic).
MAX_TABLE = 1_000_000

Pairs = list[tuple[int | None, int | None]]


def align(expected: Sequence[E], actual: Sequence[A],
          same: Callable[[E, A], bool]) -> Pairs:
    """Pairs (expected index, actual index) in order; None on one side is a
    missing or an extra line. Mismatched lines at the same place pair up as
    (i, j) with ``same`` false, so a changed frame reads as one change.
    The common head and tail are matched first; LCS aligns what differs."""
    n, m = len(expected), len(actual)
    head = 0
    while head < min(n, m) and same(expected[head], actual[head]):
        head += 1
    tail = 0
    while tail < min(n, m) - head and same(expected[n - 1 - tail], actual[m - 1 - tail]):
        tail += 1
    middle = _align_middle(expected[head:n - tail], actual[head:m - tail], same)
    return ([(k, k) for k in range(head)]
            + [(None if i is None else i + head, None if j is None else j + head)
               for i, j in middle]
            + [(n - tail + k, m - tail + k) for k in range(tail)])


def _align_middle(expected: Sequence[E], actual: Sequence[A],
                  same: Callable[[E, A], bool]) -> Pairs:
    n, m = len(expected), len(actual)
    if n * m > MAX_TABLE:
        return ([(k, k) for k in range(min(n, m))] + [(k, None) for k in range(m, n)]
                + [(None, k) for k in range(n, m)])
    # lcs[i][j]: length of the LCS of expected[i:] and actual[j:]
    lcs = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        row, below = lcs[i], lcs[i + 1]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if same(expected[i], actual[j]) \
                else max(below[j], row[j + 1])
    pairs: list[tuple[int | None, int | None]] = []
    i = j = 0
    while i < n and j < m:
        if same(expected[i], actual[j]):
            pairs.append((i, j))
            i, j = i + 1, j + 1
        elif lcs[i + 1][j + 1] == lcs[i][j]:
            pairs.append((i, j))          # a changed line: neither is kept elsewhere
            i, j = i + 1, j + 1
        elif lcs[i + 1][j] >= lcs[i][j + 1]:
            pairs.append((i, None))
            i += 1
        else:
            pairs.append((None, j))
            j += 1
    pairs += [(k, None) for k in range(i, n)] + [(None, k) for k in range(j, m)]
    return pairs
