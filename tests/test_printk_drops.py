"""A console that lost lines: two CPUs dumping 2047-frame traces at once
(64 KiB pages) outran the serial console, the kernel's stock 128 KiB printk
ring was lapped and it printed "** N printk messages dropped **" instead
(tests/data/real/two_cpus_overflow_64k_dropped_6.12_seed0.log says how the
console was made).

The decoder says so for each trace the drops fall inside; the judge calls
such a run an error, never a failure of the unwinder (its counts are the
console's, not the kernel's); a boot asks for a ring that holds every line
a valid dump may print, so that it does not happen."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyharness.decode import decode_text, format_json, traces_from_json
from pyharness.judge.logprefix import printk_dropped
from pyharness.platform.qemu import BootOptions, kernel_command_line, log_buffer_bytes
from test_decode import run_decode
from test_decode_two_cpus import KBUILD, CALLER_LINE, printed_traces

DROPPED = Path(__file__).resolve().parent / "data" / "real" / \
    "two_cpus_overflow_64k_dropped_6.12_seed0.log"
_MARKER = re.compile(r"^\*\* (\d+) printk messages dropped \*\*$")


def markers(path: Path) -> list[tuple[int, int]]:
    """(line, count) of each drop line, by a plain match of the raw lines."""
    return [(number, int(m.group(1)))
            for number, raw in enumerate(path.read_text().split("\n"), start=1)
            if (m := _MARKER.match(raw))]


def test_the_fixture_lost_lines_of_both_traces():
    printed = printed_traces(DROPPED, CALLER_LINE)
    assert len(printed) == 2 and all(len(t.frames) < 2047 for t in printed)
    assert sum(count for _, count in markers(DROPPED)) == 1198
    assert printk_dropped(DROPPED.read_text().split("\n")) == 1198


def test_each_trace_says_where_the_kernel_dropped_messages_inside_it(capsys):
    printed = {t.stream: t for t in printed_traces(DROPPED, CALLER_LINE)}
    traces = decode_text(DROPPED.read_text())
    assert [t.trace.stream for t in traces] == ["T1", "C1"]
    for decoded in traces:
        want = printed[decoded.trace.stream]
        assert len(decoded.frames) == len(want.frames)
        first, last = want.header_line, want.footer_line or want.last_frame_line
        inside = [(n, c) for n, c in markers(DROPPED) if first <= n <= last]
        assert inside                          # both traces span every drop here
        assert [n for n in decoded.notes if "dropped" in n] == [
            f"the kernel dropped {c} printk messages at line {n}, inside this trace: "
            "frames may be missing from it" for n, c in inside]
    code, out, _ = run_decode([str(DROPPED)], capsys)
    assert code == 0
    assert out.count("note: the kernel dropped 910 printk messages at line ") == 2
    code, out, _ = run_decode(["--json", str(DROPPED)], capsys)
    assert all(any("dropped 286 printk" in n for n in t["notes"])
               for t in json.loads(out)["traces"])
    assert traces_from_json(format_json(traces)) == traces


def test_a_console_that_lost_nothing_has_no_such_note():
    assert all(not any("dropped" in n for n in t.notes)
               for t in decode_text(KBUILD.read_text()))


@pytest.mark.parametrize("lines, wanted", [
    (None, 1 << 20), (561, 1 << 20), (4097, 2 << 20), (2 * 4640, 4 << 20)])
def test_the_ring_asked_for_holds_every_frame_line_a_valid_dump_may_print(lines, wanted):
    assert log_buffer_bytes(lines) == wanted
    options = BootOptions(image=Path("Image"), mode="nvhe", max_frame_lines=lines)
    assert f" log_buf_len={wanted}" in kernel_command_line(options)
