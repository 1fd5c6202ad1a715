"""A real kernel's dump judged when its console lost lines.

The kernel says so itself: ``** N printk messages dropped **`` where its
console skipped records, because the writers lapped the printk ring (two
CPUs dumping long traces at once outrun a serial console) or because a
CPU stopped by another's panic never finished the record it was writing.
Lost lines can only leave frames out: a printed trace that is the expected
one with some frames left out, and no more of them than were dropped, is
no evidence against the unwinder; any frame that is not the expected one
in its place still is.
"""

from __future__ import annotations

from pyharness.judge.kernel_path import ExpectedFrame
from pyharness.judge.logrecords import Frame

# A run of one frame printed ``count`` times in a row (a recursion).
FrameRun = tuple[Frame, int]


def frame_runs(frames: tuple[Frame, ...]) -> list[FrameRun]:
    """The frames, each run of one frame printed again and again as one."""
    runs: list[FrameRun] = []
    for frame in frames:
        if runs and runs[-1][0].address == frame.address and \
                runs[-1][0].symbolic == frame.symbolic:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((frame, 1))
    return runs


def frame_matches(exp: ExpectedFrame, frame: Frame) -> bool:
    """Whether a printed frame is the expected one (an "in" frame: any
    address in its function)."""
    if exp.kind == "in":
        return frame.symbol == exp.function
    return frame.address == exp.address and frame.symbolic == exp.text


def frames_left_out(expected: tuple[ExpectedFrame, ...], frames: tuple[Frame, ...]) -> int | None:
    """How many frames the printed ones lack, when they are the expected
    trace with frames left out (each printed run in order the next expected
    frame it matches, never more often than that frame may repeat); None
    when they are not (a frame out of place, one too many, or a call chain
    expected, which is not a fixed list)."""
    if any(exp.kind == "chain" for exp in expected):
        return None
    missing = 0
    position = 0
    for frame, count in frame_runs(frames):
        while position < len(expected) and not frame_matches(expected[position], frame):
            missing += expected[position].repeat[0]
            position += 1
        if position == len(expected):
            return None
        least, most = expected[position].repeat
        if count > most:
            return None
        missing += max(0, least - count)
        position += 1
    return missing + sum(exp.repeat[0] for exp in expected[position:])
