"""pyharness decode on real consoles where two CPUs overflowed their hyp
stacks at once (issue 27): each CPU printed a trace of over a hundred
frames, the two interleaved line by line, and the CPU that finished first
stopped the other part way.

The consoles (tests/data/real/two_cpus_overflow_*.log, each saying in its
header how it was made): a 6.12 kbuild kernel with printk caller ids, and
Debian's own 6.12, whose CPUs' lines differ only by ``kvm [PID]``. What
each trace must hold is read here from the raw lines with a plain regex
per stream (header to footer, or to the stream's last frame), never from
the decoder's output. Last, the rule that gives a line without prefixes a
stream (the judge's split too), on the case Debian's console showed and
on small inputs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from pyharness.decode import decode_text, format_json, traces_from_json
from pyharness.judge.logprefix import PrintkStreams, split_by_caller, split_lines
from test_decode import run_decode

REAL = Path(__file__).resolve().parent / "data" / "real"
KBUILD = REAL / "two_cpus_overflow_6.12_seed2.log"
DEBIAN = REAL / "two_cpus_overflow_debian_6.12_seed1.log"

# A kvm line of one stream: the caller id where the kernel prints it, else
# the kvm [PID]; then the text after "kvm [PID]: ".
CALLER_LINE = re.compile(r"^\[[ \d.]+\]\[\s*(?P<stream>[TC]\d+)\] kvm \[\d+\]: (?P<text>.*)$")
PID_LINE = re.compile(r"^\[[ \d.]+\] (?P<stream>kvm \[\d+\]): (?P<text>.*)$")
_FRAME = re.compile(r" \[<(?P<address>[0-9a-f]{16})>\] (?P<symbol>\S+)$")


@dataclass
class PrintedTrace:
    """One stream's trace as the console printed it (line numbers from 1)."""

    stream: str
    panic_line: int = 0
    header_line: int = 0
    frames: list[tuple[int, int, str]] | None = None    # (line, address, sym+off/size)
    footer_line: int | None = None
    hyp_offset: int | None = None

    @property
    def last_frame_line(self) -> int:
        return self.frames[-1][0]


def printed_traces(path: Path, line_re: re.Pattern[str]) -> list[PrintedTrace]:
    """Every stream's trace, in the order of their panic lines."""
    traces: dict[str, PrintedTrace] = {}
    for number, raw in enumerate(path.read_text().split("\n"), start=1):
        match = line_re.match(raw)
        if match is None:
            continue
        trace = traces.setdefault(match["stream"], PrintedTrace(match["stream"]))
        text = match["text"]
        if text.startswith("nVHE hyp panic at: "):
            trace.panic_line = number
        elif text == "nVHE call trace:":
            trace.header_line, trace.frames = number, []
        elif text == "---[ end nVHE call trace ]---":
            trace.footer_line = number
        elif text.startswith("Hyp Offset: 0x"):
            trace.hyp_offset = int(text.split("0x")[1], 16)
        elif (frame := _FRAME.fullmatch(text)) and trace.frames is not None \
                and trace.footer_line is None:
            trace.frames.append((number, int(frame["address"], 16), frame["symbol"]))
    return sorted((t for t in traces.values() if t.frames is not None),
                  key=lambda t: t.panic_line)


CONSOLES = {
    "caller ids": (KBUILD, CALLER_LINE, {"C1": 102, "T1": 131}),
    "kvm [PID]": (DEBIAN, PID_LINE, {"kvm [1]": 131, "kvm [0]": 74}),
}


@pytest.fixture(params=sorted(CONSOLES))
def console(request) -> tuple[Path, list[PrintedTrace]]:
    path, line_re, counts = CONSOLES[request.param]
    printed = printed_traces(path, line_re)
    # The fixture is the one these tests are about: both traces long, one
    # cut short by the other CPU's stop.
    assert {t.stream: len(t.frames) for t in printed} == counts
    assert sorted(t.footer_line is not None for t in printed) == [False, True]
    return path, printed


def test_each_cpu_stream_is_its_own_trace_with_its_own_count(console):
    path, printed = console
    traces = decode_text(path.read_text())
    assert [(t.trace.stream, len(t.frames)) for t in traces] == \
        [(p.stream, len(p.frames)) for p in printed]
    for decoded, want in zip(traces, printed):
        assert [(f.frame.line_number, f.frame.address, f.frame.symbolic)
                for f in decoded.frames] == want.frames
        assert decoded.trace.line_number == want.header_line
        assert decoded.trace.panic.line_number == want.panic_line
        assert decoded.trace.footer_line == want.footer_line
        assert decoded.trace.hyp_offset == want.hyp_offset
        assert decoded.trace.last_line == (want.footer_line or want.last_frame_line)
        assert "interleaved with another CPU's trace" in decoded.forms
        assert decoded.duplicate_of is None


def test_the_text_output_says_which_trace_was_cut_short(console, capsys):
    path, printed = console
    code, out, err = run_decode([str(path)], capsys)
    assert code == 0 and err == ""
    for number, want in enumerate(printed, start=1):
        stream = want.stream if want.stream.startswith("kvm") else f"[{want.stream}]"
        end = (f"footer at line {want.footer_line}" if want.footer_line
               else f"no footer: cut off after line {want.last_frame_line}")
        assert (f"Trace {number} of 2, line {want.header_line}, CPU stream {stream}: "
                f"nVHE call trace ({len(want.frames)} frames, {end})") in out
    assert out.rstrip().endswith("2 traces.")
    assert "no trace after it" not in out


def test_the_json_output_keeps_each_stream_and_its_end(console, capsys):
    path, printed = console
    code, out, _ = run_decode(["--json", str(path)], capsys)
    assert code == 0
    document = json.loads(out)
    assert [(t["stream"], len(t["frames"]), t["footer"], t["footer_line"])
            for t in document["traces"]] == \
        [(p.stream, len(p.frames), p.footer_line is not None, p.footer_line) for p in printed]
    assert document["untraced_panics"] == []
    traces = decode_text(path.read_text())
    assert traces_from_json(format_json(traces)) == traces


def test_without_caller_ids_the_host_panic_is_the_cpu_that_finished():
    """On Debian's console kvm [1] finished its dump (footer, Hyp Offset)
    and its panic() began while kvm [0]'s frames still came: the `Kernel
    panic` message and what follows it belong to kvm [1], which the
    kernel's own `CPU: N UID: 0 PID: P` line after it names by PID. The
    judge splits the console by the same rule."""
    console = DEBIAN.read_text().split("\n")
    message = next(i for i, line in enumerate(console) if "Kernel panic - not syncing" in line)
    assert "kvm [0]:  [<" in console[message - 1]        # the other CPU was mid-trace
    whose = next(line for line in console[message:] if " UID: " in line)
    pid = re.search(r"\] CPU: \d+ UID: \d+ PID: (\d+) ", whose)[1]
    streams = split_by_caller(console)
    assert console[message] in streams[f"kvm [{pid}]"] and pid == "1"
    stopped = streams["kvm [0]"]
    assert not any("Kernel panic" in line or "Hyp Offset" in line for line in stopped)
    assert stopped[-1] == console[message - 1]


def _streams(lines: list[str]) -> list[str]:
    """Each line's stream by the rule the judge splits a console by."""
    whose = PrintkStreams()
    return [whose.of(line) for line in split_lines(lines)]


FRAME_A = "[ 4.2] kvm [0]:  [<ffff800080df6ae8>] __kvm_nvhe_handle___kvm_get_mdcr_el2+0x18/0x30"
FRAME_B = "[ 4.2] kvm [1]:  [<ffff800080df6ae8>] __kvm_nvhe_handle___kvm_get_mdcr_el2+0x18/0x30"


@pytest.mark.parametrize("lines, streams", [
    # One CPU: a line without prefixes inside its trace stays its own (a stray).
    (["[ 4.0] Booting", "[ 4.1] kvm [0]: nVHE call trace:", FRAME_A,
      "[ 4.2] usb 1-1: new device", FRAME_A],
     ["", "kvm [0]", "kvm [0]", "kvm [0]", "kvm [0]"]),
    # Both CPUs mid-dump: nothing else to go to, the line before's.
    (["[ 4.1] kvm [1]: nVHE call trace:", "[ 4.1] kvm [0]: nVHE call trace:", FRAME_B,
      FRAME_A, "[ 4.2] Kernel panic - not syncing: HYP panic:"],
     ["kvm [1]", "kvm [0]", "kvm [1]", "kvm [0]", "kvm [0]"]),
    # kvm [1] finished: its panic message and the lines after it are its own,
    # the other CPU's frames between them still the other's.
    (["[ 4.1] kvm [0]: nVHE call trace:", FRAME_B, "[ 4.2] kvm [1]: ---[ end nVHE call trace ]---",
      FRAME_A, "[ 4.3] kvm [1]: Hyp Offset: 0xffef8633ffe00000", FRAME_A,
      "[ 4.4] Kernel panic - not syncing: HYP panic:", "[ 4.4] PS:804003c9 PC:000ff9cc80ff6adc",
      FRAME_A, "[ 4.5] SMP: stopping secondary CPUs"],
     ["kvm [0]", "kvm [1]", "kvm [1]", "kvm [0]", "kvm [1]", "kvm [0]", "kvm [1]", "kvm [1]",
      "kvm [0]", "kvm [1]"]),
])
def test_a_line_without_prefixes_never_joins_a_stream_mid_dump_while_another_is_free(
        lines, streams):
    assert _streams(lines) == streams
