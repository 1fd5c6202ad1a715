"""pyharness.judge.tracelog: console and kernel-log text -> nVHE panic records."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from pyharness.judge.logrecords import TRACE_FOOTERS, TRACE_HEADERS
from pyharness.judge.logprefix import split_line, split_line_in_steps
from pyharness.judge.frameline import parse_frame
from pyharness.judge.tracelog import MAX_RECORD_GAP, parse_log

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture(scope="module")
def seed_text(seed_path: Path) -> str:
    return seed_path.read_text()


def data(name: str) -> str:
    return (DATA / name).read_text()


# -- the seed thread: the cover letter's sample output, then two quoted copies


def test_seed_holds_the_original_trace_and_its_two_quoted_copies(seed_text):
    log = parse_log(seed_text)
    traces = log.traces
    assert len(log) == 3 and len(traces) == 3
    assert [t.line_number for t in traces] == [2, 18, 34]
    assert [t.footer_line for t in traces] == [15, 31, 47]
    assert [t.quote_depth for t in traces] == [0, 1, 2]
    for trace in traces:
        assert trace.kind == "protected" and trace.footer
        assert trace.hyp_offset is None and trace.strays == ()
        assert len(trace.frames) == 10
        first, last = trace.frames[0], trace.frames[-1]
        assert first.address == 0xffff8000090a5570
        assert (first.symbol, first.offset, first.size) == ("__kvm_nvhe_hyp_panic", 0xac, 0xf8)
        assert last.address == 0xffff8000090a6864
        assert last.symbolic == "__kvm_nvhe___host_exit+0x64/0x64"
        assert trace.frames[1].symbolic == "__kvm_nvhe_hyp_panic_bad_stack+0x10/0x10"
        assert [f.symbol for f in trace.frames[2:6]] == ["__kvm_nvhe_recursive_death"] * 4


def test_seed_elision_is_a_marker_between_frames(seed_text):
    for trace in parse_log(seed_text).traces:
        (elision,) = trace.elisions
        assert elision.after_frames == 4
        assert elision.raw.strip().endswith(". . .")
        assert trace.frames[3].line_number < elision.line_number < trace.frames[4].line_number
    assert [t.elisions[0].line_number for t in parse_log(seed_text).traces] == [7, 23, 39]


def test_seed_panic_line_belongs_to_each_trace(seed_text):
    for panic in parse_log(seed_text):
        assert panic.panic is not None and panic.trace is not None
        assert panic.panic.kind == "panic"
        assert panic.trace.panic == panic.panic
        assert panic.panic.address == 0xffff8000090a51d0
        location = panic.panic.location
        assert location.symbolic == "__kvm_nvhe_recursive_death+0x10/0x34"
    assert [p.panic.line_number for p in parse_log(seed_text)] == [1, 17, 33]


# -- line prefixes


@pytest.mark.parametrize("raw, text, depth", [
    ("[  126.862960] kvm [371]:  [<ffff8000090a5570>] f+0x1/0x2",
     " [<ffff8000090a5570>] f+0x1/0x2", 0),
    ("[  126.86] [  T412] kvm [412]: nVHE call trace:", "nVHE call trace:", 0),
    ("[   71.993120][  T412] kvm [412]: Hyp Offset: 0x10", "Hyp Offset: 0x10", 0),
    ("[    C0] kvm [1]: ---[ end nVHE call trace ]---", "---[ end nVHE call trace ]---", 0),
    ("> [  126.86] [    C3] kvm [412]: x", "x", 1),
    ("> > [    1.000000] kvm [1]: x", "x", 2),
    (">> kvm [1]: x", "x", 2),
    (" | kvm [1]: x", "x", 1),
    ("| x", "x", 1),
    ("> | [ 1.5] kvm [7]: x", "x", 2),
    ("| > >> x", "x", 4),
    (">", "", 1),
    (">    . . .", "   . . .", 1),
    ("Jul 21 05:57:28 host kernel: kvm [1]: x", "x", 0),
    ("[    0.000520] Kernel panic - not syncing: HYP panic:",
     "Kernel panic - not syncing: HYP panic:", 0),
    ("plain text [1.0] stays", "plain text [1.0] stays", 0),
    ("line with CRLF\r", "line with CRLF", 0),
])
def test_split_line_strips_every_prefix(raw, text, depth):
    line = split_line(7, raw)
    assert (line.text, line.quote_depth, line.number) == (text, depth, 7)
    assert line.raw == raw.rstrip("\r")


@pytest.mark.parametrize("text, expected", [
    (" [<ffff800008b4d2cc>] __kvm_nvhe_hyp_panic+0xac/0xf8",
     (0xffff800008b4d2cc, "__kvm_nvhe_hyp_panic", 0xac, 0xf8, None)),
    (" [<ffff800008b4d2cc>] 0xffff800008b4d2cc", (0xffff800008b4d2cc, None, None, None, None)),
    ("  [<ffff800008000034>] foo.constprop.0+0x1c/0x40 [kvm]",
     (0xffff800008000034, "foo.constprop.0", 0x1c, 0x40, "kvm")),
    (" [<ffff800008000034>] show_stack+0x18/0x24 (C)",
     (0xffff800008000034, "show_stack", 0x18, 0x24, None)),
])
def test_parse_frame_forms(text, expected):
    frame = parse_frame(text, text, 1)
    assert frame is not None
    assert (frame.address, frame.symbol, frame.offset, frame.size, frame.module) == expected


def test_host_frames_may_omit_the_address_hyp_frames_may_not():
    assert parse_frame(" dump_backtrace+0xe4/0x110", "", 1) is None
    frame = parse_frame(" dump_backtrace+0xe4/0x110", "", 1, need_address=False)
    assert frame is not None and frame.address is None and frame.symbol == "dump_backtrace"
    assert parse_frame(" 0xffff800008000034", "", 1, need_address=False) is None
    assert parse_frame(" [<zzzz>] foo+0x1/0x2", "", 1) is None
    assert parse_frame(" [<ffff8000>] foo+0x1", "", 1) is None


# -- the mainline wording, with Hyp Offset, timestamps and caller ids


def test_mainline_sample_with_hyp_offset_and_host_panic():
    log = parse_log(data("mainline_hyp_offset.log"))
    panic = log.sole_panic()
    assert panic is not None
    assert panic.panic.kind == "bug-addr"
    assert panic.panic.location.symbolic == "__kvm_nvhe_handle___pkvm_host_share_hyp+0x3c/0x60"
    trace = panic.trace
    assert trace.kind == "mainline" and trace.footer and trace.footer_line == 8
    assert trace.header.endswith(TRACE_HEADERS["mainline"])
    assert trace.footer_raw.endswith(TRACE_FOOTERS["mainline"])
    assert panic.hyp_offset == trace.hyp_offset == 0xfffece8013600000
    assert [f.line_number for f in trace.frames] == [4, 5, 6, 7]
    bare = trace.frames[-1]
    assert bare.address == 0xffff800008b51234 and bare.symbol is None
    assert bare.symbolic == "0xffff800008b51234"

    host = panic.host
    assert host.message == "HYP panic:"
    assert [name for name, _ in host.registers] == ["PS", "PC", "ESR", "FAR", "HPFAR",
                                                    "PAR", "VCPU"]
    assert host.register("ESR") == 0xf2000800 and host.register("NOPE") is None
    # The host prints the hyp VA; adding the hyp offset gives the link address.
    assert (host.register("PC") + panic.hyp_offset) % 2**64 == panic.panic.address
    assert (host.cpu, host.pid, host.comm) == (3, 412, "kvm-vcpu-0")
    assert host.call_trace_line == 16
    assert [f.symbol for f in host.frames][:2] == ["dump_backtrace", "show_stack"]
    assert host.frames[-1].symbolic == "__arm64_sys_ioctl+0xa8/0xf0"
    assert all(f.address is None for f in host.frames)
    assert host.kernel_offset == 0x2a0000
    assert host.footer and host.end_line == 34     # the multi-line end marker's last line
    assert (panic.first_line, panic.last_line) == (2, 34)


# -- our firmware's console, as the run checker reads it


def test_firmware_console_is_one_panic_with_everything_the_checker_compares():
    panic = parse_log(data("firmware_console.log")).sole_panic()
    assert panic is not None
    assert panic.panic.kind == "panic" and panic.panic.line_number == 3
    assert panic.panic.location.symbolic == "__kvm_nvhe_nested_panic_a+0x10/0x18"
    trace = panic.trace
    assert trace.kind == "non-protected" and trace.footer_line == 13
    assert len(trace.frames) == 8 and trace.strays == () and trace.elisions == ()
    assert trace.frames[0].symbolic == "__kvm_nvhe_hyp_panic+0x38/0x38"
    assert trace.frames[-1].raw == ("[    0.000499] kvm [1]:  [<ffff800008001064>] "
                                    "__kvm_nvhe___host_exit+0x64/0x68")
    assert panic.cannot_dump is None and panic.hyp_offset is None
    host = panic.host
    assert host.register("PC") == 0xc021a0 and host.register("ESR") == 0
    assert (host.cpu, host.pid, host.comm) == (0, 1, "swapper/0")
    assert [f.symbol for f in host.frames] == ["nvhe_hyp_panic_handler", "host_main",
                                               "host_entry"]
    assert host.frames[0].address is None and host.frames[2].address == 0xffff800008000034
    assert host.footer and host.end_line == 23


def test_cannot_dump_and_bug_at_file_line():
    log = parse_log(data("cannot_dump.log"))
    panic = log.sole_panic()
    assert log.traces == ()
    assert panic.panic.kind == "bug-file"
    assert (panic.panic.file, panic.panic.file_line) == ("csrc/hyp/hyp-main.c", 57)
    assert panic.panic.location is None and panic.panic.address is None
    assert panic.cannot_dump.reason == "!CONFIG_PROTECTED_NVHE_STACKTRACE"
    assert panic.cannot_dump.line_number == 2
    assert panic.host.cpu == 1 and panic.host.footer


@pytest.mark.parametrize("line, kind, address, symbol", [
    ("kvm [1]: Invalid host exception to nVHE hyp!", "invalid", None, None),
    ("kvm [1]: nVHE hyp BUG at: [<ffff800008002240>] __kvm_nvhe_bug_depth2+0x14/0x20!",
     "bug-addr", 0xffff800008002240, "__kvm_nvhe_bug_depth2"),
    ("kvm [1]: nVHE hyp panic at: ffff800008b4d2cc!", "panic", 0xffff800008b4d2cc, None),
    ("kvm [1]: nVHE hyp BUG at: ffff800008b4d2cc!", "bug-addr", 0xffff800008b4d2cc, None),
])
def test_panic_line_kinds(line, kind, address, symbol):
    panic = parse_log(line + "\n").sole_panic()
    assert panic is not None and panic.trace is None
    assert (panic.panic.kind, panic.panic.address, panic.panic.symbol) == (kind, address, symbol)


# -- quoting, truncation, tolerance


def test_quoted_reply_finds_every_trace_at_its_depth():
    traces = parse_log(data("quoted_reply.log")).traces
    summary = [(t.line_number, t.kind, t.quote_depth, len(t.frames), t.footer)
               for t in traces]
    assert summary == [
        (8, "mainline", 1, 3, True),
        (18, "non-protected", 2, 2, True),
        (25, "protected", 1, 2, True),
        (32, "mainline", 2, 1, True),
        (36, "protected", 2, 1, True),
    ]
    first = traces[0]
    assert first.hyp_offset == 0xfffece8013600000
    assert first.panic is not None and first.panic.line_number == 7
    assert [(e.line_number, e.after_frames) for e in first.elisions] == [(11, 2)]
    assert traces[2].panic is None


def test_truncated_traces_have_no_footer():
    traces = parse_log(data("truncated.log")).traces
    assert len(traces) == 2
    cut, eof = traces
    assert not cut.footer and cut.footer_line is None
    assert [f.line_number for f in cut.frames] == [3, 5, 6]
    assert [s.number for s in cut.strays] == [4]           # an interleaved printk
    assert cut.last_line == 6
    assert not eof.footer and [f.line_number for f in eof.frames] == [13]
    assert eof.panic is not None and eof.panic.line_number == 11
    assert eof.strays == ()                                 # the half-printed last line


def test_unknown_lines_between_records_are_tolerated():
    text = "\n".join([
        "kvm [1]: nVHE hyp panic at: [<ffff800008000010>] __kvm_nvhe_f+0x10/0x20!",
        "some other driver: hello",
        "another line",
        "kvm [1]: Protected nVHE HYP call trace:",
        "kvm [1]:  [<ffff800008000010>] __kvm_nvhe_f+0x10/0x20",
        "kvm [1]: ---- End of Protected nVHE HYP call trace ----",
    ])
    panic = parse_log(text).sole_panic()
    assert panic is not None and panic.panic is not None and panic.trace is not None


def test_records_far_apart_are_separate_panics():
    text = "\n".join(
        ["kvm [1]: nVHE hyp panic at: [<ffff800008000010>] __kvm_nvhe_f+0x10/0x20!"]
        + ["unrelated"] * (MAX_RECORD_GAP + 1)
        + ["kvm [1]: nVHE call trace:", "kvm [1]: ---[ end nVHE call trace ]---"])
    log = parse_log(text)
    assert len(log) == 2 and log.sole_panic() is None
    assert log[0].trace is None and log[1].panic is None and log[1].trace.footer


def test_a_change_of_quoting_ends_a_trace():
    text = "\n".join([
        "> kvm [1]: nVHE call trace:",
        "> kvm [1]:  [<ffff800008000010>] __kvm_nvhe_f+0x10/0x20",
        "I think this frame is wrong.",
        "> kvm [1]:  [<ffff800008000020>] __kvm_nvhe_g+0x10/0x20",
        "> kvm [1]: ---[ end nVHE call trace ]---",
    ])
    (trace,) = parse_log(text).traces
    assert len(trace.frames) == 1 and not trace.footer


def test_two_runs_in_one_log_are_two_panics():
    console = data("firmware_console.log")
    log = parse_log(console + console)
    assert len(log) == 2 and log.sole_panic() is None
    assert log[1].panic.line_number == log[0].panic.line_number + len(console.split("\n")) - 1


def test_crlf_and_lf_logs_parse_the_same(seed_text):
    lf = parse_log(seed_text)
    crlf = parse_log(seed_text.replace("\n", "\r\n"))
    assert [(f.address, f.symbolic, f.line_number) for t in crlf.traces for f in t.frames] == \
        [(f.address, f.symbolic, f.line_number) for t in lf.traces for f in t.frames]


@pytest.mark.parametrize("junk", [
    "", "\n\n\n", "\x00\x01\xff" * 100, "[<\n" * 50, "kvm [1]: nVHE call trace:",
    "kvm [1]:  [<ffffffffffffffffffff>] f+0x1/0x1", "Kernel panic - not syncing:",
    "---[ end Kernel panic - not syncing: x", "Call trace:\n foo+0x1/0x2",
    "kvm [1]: nVHE hyp BUG at: !", "kvm [1]: nVHE hyp panic at: [<ffff>] !",
])
def test_junk_never_raises(junk):
    log = parse_log(junk)
    assert len(log) <= 1
    for panic in log:
        assert panic.first_line >= 0


PREFIX_PIECES = ["[    0.000001] ", "[ 1.5]", "[1.2] ", "[1.2]  ", "[1.2]\t", "kvm [1]: ",
                 "kvm [12]:", "> ", "| ", " >", "<3>", "[  T412] ", "[C3]",
                 "Nov 25 12:00:01 host kernel: ", "[Wed Nov 25 12:00:01 2026] ", "\t", " ",
                 "x", "[<ffffffc0>] f+0x1/0x2", "\r\n", "[", "]", "0", "."]


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(PREFIX_PIECES), min_size=1, max_size=6))
def test_the_usual_line_shortcut_strips_what_the_steps_strip(pieces):
    raw = "".join(pieces)
    assert split_line(7, raw) == split_line_in_steps(7, raw)
