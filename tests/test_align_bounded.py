"""judge/align.py: the alignment's cost is bounded on long traces, and
what it finds is what the full LCS table finds (its length on any input,
its rows on small ones)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pyharness.judge import align as align_module
from pyharness.judge.align import align


def reference_lcs_rows(a: list, b: list) -> list[tuple[str, int | None, int | None]]:
    """The aligner as it was before the work bound: the common head and
    tail, then the full LCS table over the rest, every match a row, the
    frames between two matches paired up in order."""
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    mid_a, mid_b = a[head:len(a) - tail], b[head:len(b) - tail]
    n, m = len(mid_a), len(mid_b)
    table = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            table[i][j] = (table[i + 1][j + 1] + 1 if mid_a[i] == mid_b[j]
                           else max(table[i + 1][j], table[i][j + 1]))
    pairs = [(k, k) for k in range(head)]
    i = j = 0
    while i < n and j < m:
        if mid_a[i] == mid_b[j]:
            pairs.append((head + i, head + j))
            i, j = i + 1, j + 1
        elif table[i + 1][j] >= table[i][j + 1]:
            i += 1
        else:
            j += 1
    pairs += [(len(a) - tail + k, len(b) - tail + k) for k in range(tail)]
    rows: list[tuple[str, int | None, int | None]] = []
    i = j = 0
    for p, q in [*pairs, (len(a), len(b))]:
        both = min(p - i, q - j)
        rows += [("differ", i + k, j + k) for k in range(both)]
        rows += [("missing", k, None) for k in range(i + both, p)]
        rows += [("extra", None, k) for k in range(j + both, q)]
        if p < len(a):
            rows.append(("same", p, q))
        i, j = p + 1, q + 1
    return rows


def as_tuples(rows) -> list[tuple[str, int | None, int | None]]:
    return [(row.kind, row.expected, row.actual) for row in rows]


def assert_valid(rows, a: list, b: list) -> int:
    """Every item of both sides once, in order; a ``same`` row pairs equal
    items. Returns the number of matches."""
    assert [r.expected for r in rows if r.expected is not None] == list(range(len(a)))
    assert [r.actual for r in rows if r.actual is not None] == list(range(len(b)))
    same = [r for r in rows if r.kind == "same"]
    assert all(a[r.expected] == b[r.actual] for r in same)
    assert all(r.expected is not None and r.actual is not None
               for r in rows if r.kind == "differ")
    return len(same)


def lcs_length(a: list, b: list) -> int:
    return sum(1 for row in reference_lcs_rows(a, b) if row[0] == "same")


frames = st.lists(st.integers(0, 6), max_size=40)


@settings(max_examples=300, deadline=None)
@given(frames, frames)
def test_small_inputs_align_as_the_full_table_does(a, b):
    assert as_tuples(align(a, b)) == reference_lcs_rows(a, b)


@settings(max_examples=300, deadline=None)
@given(frames, frames)
def test_the_exact_paths_past_the_table_find_a_longest_common_subsequence(a, b):
    """With the table's size at 0 the frames go through the filter and
    Myers' diff: still an LCS."""
    old = align_module.EXACT_CELLS
    align_module.EXACT_CELLS = 0
    try:
        rows = align(a, b)
    finally:
        align_module.EXACT_CELLS = old
    assert assert_valid(rows, a, b) == lcs_length(a, b)


@settings(max_examples=300, deadline=None)
@given(frames, frames, st.integers(0, 60))
def test_out_of_work_the_rows_are_still_every_frame_in_order(a, b, work):
    """With little work left the anchors and the in-order fallback take
    over: a common subsequence, maybe shorter, never an invalid row."""
    rows = align(a, b, max_work=work)
    assert assert_valid(rows, a, b) <= lcs_length(a, b)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=60),
       st.lists(st.tuples(st.integers(0, 59), st.sampled_from(["drop", "add", "change"])),
                max_size=4))
def test_a_few_edits_are_found_exactly_in_any_length(prefix, edits):
    """A long trace with a few frames dropped, added or changed aligns as
    the table would (by length): Myers' diff is exact for few edits."""
    a = prefix * 40                     # 40 to 2400 frames, repeating
    b = list(a)
    for where, what in sorted(edits, reverse=True):
        where = where * len(b) // 60
        if what == "drop" and b:
            del b[where]
        elif what == "add":
            b.insert(where, 999)
        elif b:
            b[where] = 998
    rows = align(a, b)
    same = assert_valid(rows, a, b)
    assert same >= len(a) - 2 * len(edits)


class Frame:
    """A frame key that counts how often it is compared: the aligner's cost."""

    comparisons = 0

    def __init__(self, value: int) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        Frame.comparisons += 1
        return isinstance(other, Frame) and self.value == other.value

    def __hash__(self) -> int:
        return hash(self.value)


def comparisons(a: list[int], b: list[int]) -> int:
    left, right = [Frame(x) for x in a], [Frame(x) for x in b]
    Frame.comparisons = 0
    rows = align(left, right)
    spent = Frame.comparisons
    assert_valid(rows, left, right)
    return spent


def test_long_failing_traces_cost_what_the_bound_allows():
    """The shapes that were quadratic (31.7 s of CPU, about 19 million
    comparisons, for one 4352-frame trace): every frame off, a packed stack
    of few distinct frames with a stretch wrong, a runaway repeating one
    frame, the same frames in another order. Each costs a few passes over
    the frames and at most the work bound, counted in comparisons."""
    packed = [i % 7 for i in range(4352)]
    shapes = {
        "every frame off": (packed, [x + 100 for x in packed]),
        "a stretch wrong": (packed, packed[:2000] + [x + 100 for x in packed[2000:2100]]
                            + packed[2100:]),
        "shifted by one": (packed, packed[1:] + [5]),
        "runaway": (packed[:12], packed[:6] + [packed[6]] * 20_000),
        "sorted": (packed, sorted(packed)),
        "reversed": (packed[:1500], packed[1500:0:-1]),
    }
    for name, (a, b) in shapes.items():
        bound = 20 * (len(a) + len(b)) + 2 * align_module.MAX_WORK
        assert comparisons(a, b) <= bound, name


def test_matching_stays_linear_when_nothing_matches():
    a = list(range(50_000))
    b = [x + 1_000_000 for x in a]
    rows = align(a, b)
    assert [r.kind for r in rows] == ["differ"] * 50_000
