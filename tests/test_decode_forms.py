"""pyharness decode on the forms real consoles and pasted logs arrive in
(issue 27): two CPUs panicking at once, indented text, odd spaces, syslog
and journal stamps, mbox and quoted-printable mail, a wrapped panic line,
the series' early wording, a %pB panic line at a function's first
instruction.

Every form is built from a real trace: the seed thread's sample output
(tests/data/seed_thread.log) or a real 6.12 kernel's console under QEMU
(tests/data/real/, made by the command in each test). What a trace must
hold comes from the trace as printed (its lines read by a plain regex
here) or from the run's own record, never from the decoder's output.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pyharness.decode import decode_text, format_json, format_text, traces_from_json
from pyharness.judge.logprefix import split_by_caller
from test_decode import FixtureElf, fixture_elf, mainline_log, run_decode  # noqa: F401

DATA = Path(__file__).resolve().parent / "data"
REPO = Path(__file__).resolve().parents[1]
SEED = DATA / "seed_thread.log"
SEED_LINES = SEED.read_text().split("\n")
SAMPLE = SEED_LINES[:15]        # the cover letter's own copy: panic line to footer
_PRINTED_FRAME = re.compile(r"\[<([0-9a-f]{16})>\] (\S+\+0x[0-9a-f]+/0x[0-9a-f]+)$")

# `pyharness qemu --config configs/pkvm_defconfig --kernel-src
# /usr/src/linux-source-6.12.tar.xz --scenario two_cpus --mode nvhe
# --kaslr-seed 16` (and 12): the console, and the frames its record expects
# (judge/kernel_path.py, from the kernel's code): hyp_panic's own frame,
# then these return addresses.
TWO_CPUS = DATA / "real" / "two_cpus_6.12_seed16.log"
TWO_CPUS_CUT = DATA / "real" / "two_cpus_6.12_seed12.log"
EXPECTED_RETURNS = [0xffff8000802adf18, 0xffff8000802adfb0, 0xffff8000802ac864]


def printed(lines: list[str]) -> list[tuple[int, str]]:
    """(address, symbol+off/size) of every frame line, as printed."""
    found = []
    for line in lines:
        match = _PRINTED_FRAME.search(line.rstrip())
        if match and "panic at" not in line:
            found.append((int(match[1], 16), match[2]))
    return found


def frames_of(decoded) -> list[tuple[int, str]]:
    return [(f.frame.address, f.frame.symbolic) for f in decoded.frames]


def check_round_trip(traces) -> None:
    assert traces_from_json(format_json(traces)) == traces


# -- two CPUs at once


def assert_expected_frames(decoded, complete: bool) -> None:
    frames = decoded.frames
    assert frames[0].frame.symbol == "__kvm_nvhe_hyp_panic"
    returns = [f.frame.address for f in frames[1:]]
    assert returns == (EXPECTED_RETURNS if complete else EXPECTED_RETURNS[:len(returns)])


def test_two_cpus_interleaved_come_apart_by_caller_id():
    traces = decode_text(TWO_CPUS.read_text())
    assert [(t.trace.stream, len(t.frames), t.trace.footer) for t in traces] == \
        [("T1", 4, True), ("C1", 4, False)]
    for decoded in traces:
        assert_expected_frames(decoded, complete=True)
        assert "interleaved with another CPU's trace" in decoded.forms
        assert decoded.duplicate_of is None          # another CPU, not a quoted copy
    assert traces[0].trace.hyp_offset == 0xfffef7a07fe00000
    text = format_text(traces)
    assert "CPU stream [T1]" in text and "CPU stream [C1]" in text
    assert "(4 frames, no footer: cut off after line" in text
    check_round_trip(traces)


def test_a_trace_another_cpu_cut_short_is_a_prefix_reported_as_cut():
    traces = decode_text(TWO_CPUS_CUT.read_text())
    assert [(t.trace.stream, len(t.frames), t.trace.footer) for t in traces] == \
        [("T1", 1, False), ("C0", 4, True)]
    assert_expected_frames(traces[0], complete=False)
    assert_expected_frames(traces[1], complete=True)


def test_a_long_trace_of_the_other_cpu_between_a_panic_line_and_its_trace():
    """The other CPU's long trace runs between one CPU's panic line and its
    header: how far apart a panic's records may be counts that CPU's own
    lines, not the other's. Spliced (131 copies of a real [C1] frame line
    into a real console) because the real consoles of two long traces
    (test_decode_two_cpus.py) interleave only inside the traces: there each
    CPU's header follows its panic line within a few lines."""
    lines = TWO_CPUS.read_text().split("\n")
    panic = next(i for i, line in enumerate(lines) if "[    T1] kvm [1]: nVHE hyp panic" in line)
    other = next(line for line in lines if "[    C1] kvm [0]:  [<" in line)
    lines[panic + 1:panic + 1] = [other] * 131
    traces = decode_text("\n".join(lines))
    mine = next(t for t in traces if t.trace.stream == "T1")
    assert mine.trace.panic is not None and mine.trace.panic.line_number == panic + 1
    assert_expected_frames(mine, complete=True)


def test_without_caller_ids_the_kvm_pid_tells_the_cpus_apart():
    """A distribution kernel prints no caller ids: the same console without
    them comes apart by kvm [PID], as the judge splits it."""
    bare = [re.sub(r"\]\[\s*[TC]\d+\]", "]", line)
            for line in TWO_CPUS.read_text().split("\n")]
    traces = decode_text("\n".join(bare))
    assert [(t.trace.stream, len(t.frames)) for t in traces] == \
        [("kvm [1]", 4), ("kvm [0]", 4)]
    streams = split_by_caller(bare)                  # the judge's split, same rule
    assert {"kvm [1]", "kvm [0]"} <= set(streams)


def test_a_real_debian_console_where_one_cpu_printed_only_its_panic_line(capsys):
    """Debian's own 6.12 (no caller ids; `pyharness qemu --config pkvm
    --kernel-src debian:6.12@trixie --scenario two_cpus --kaslr-seed 6`):
    kvm [1] printed its panic line, then kvm [0] its whole trace, and the
    machine stopped. The trace is kvm [0]'s; kvm [1]'s line is reported as
    cut short."""
    path = DATA / "real" / "two_cpus_debian_6.12_seed6.log"
    (decoded,) = decode_text(path.read_text())
    assert decoded.trace.stream == "kvm [0]" and decoded.trace.footer
    assert decoded.trace.panic.line_number == 193
    assert [f.frame.address for f in decoded.frames[1:]] == \
        [0xffff800080df6ae8, 0xffff800080df6b8c, 0xffff800080df50fc]
    code, out, _ = run_decode([str(path)], capsys)
    assert code == 0
    assert "Panic line 192, CPU stream kvm [1], no trace after it: cut short" in out
    assert out.rstrip().endswith("1 trace; 1 panic line without a trace.")
    code, out, _ = run_decode(["--json", str(path)], capsys)
    (untraced,) = json.loads(out)["untraced_panics"]
    assert (untraced["line"], untraced["stream"]) == (192, "kvm [1]")


def test_json_names_the_stream_and_the_forms():
    document = json.loads(format_json(decode_text(TWO_CPUS.read_text())))
    first = document["traces"][0]
    assert first["stream"] == "T1"
    assert first["forms"] == ["interleaved with another CPU's trace", "printk time",
                              "caller id", "kvm [PID]"]


# -- text as people paste it


def test_git_log_indents_every_line_four_spaces():
    text = "\n".join("    " + line if line else "" for line in SEED_LINES)
    traces = decode_text(text)
    assert len(traces) == 3
    for decoded in traces:
        assert frames_of(decoded) == printed(SAMPLE)
        assert decoded.trace.panic is not None
        assert "indented" in decoded.forms or "mail quoting" in decoded.forms
    assert "indented" in traces[0].forms


def test_a_quoted_trace_indented_two_spaces():
    text = "\n".join(f">   {line}" if line else ">" for line in SAMPLE)
    (decoded,) = decode_text(text)
    assert frames_of(decoded) == printed(SAMPLE) and decoded.trace.quote_depth == 1
    assert decoded.trace.footer and len(decoded.trace.elisions) == 1


def test_non_breaking_spaces_of_an_html_mail():
    text = "\n".join(line.replace(" ", "\u00a0") for line in SAMPLE)
    (decoded,) = decode_text(text)
    assert frames_of(decoded) == printed(SAMPLE)
    assert decoded.trace.footer and "non-breaking spaces" in decoded.forms
    assert "\u00a0" in decoded.frames[0].frame.raw          # raw stays as in the log
    check_round_trip([decoded])


@pytest.mark.parametrize("stamp, form", [
    ("2026-12-05T17:31:02.123456+00:00 qemu kernel: ", "syslog/journal ISO stamp"),
    ("2026-12-05T17:31:02+0000 qemu kernel: ", "syslog/journal ISO stamp"),
    ("Dec 05 17:31:02.123456 qemu kernel: ", "syslog/journal stamp"),
    ("Dec  5 17:31:02 qemu kernel: ", "syslog/journal stamp"),
])
def test_syslog_and_journal_stamps(stamp, form):
    """rsyslog's RFC 3339 stamp keeps the printk time after `kernel: `;
    journalctl's short forms drop it."""
    lines = TWO_CPUS.read_text().split("\n")
    keep_time = "T" in stamp[:11]
    restamped = [stamp + (re.sub(r"\]\[\s*[TC]\d+\]", "]", line) if keep_time
                          else re.sub(r"^\[[^\]]*\]\[\s*[TC]\d+\] ", "", line))
                 for line in lines if line]
    traces = decode_text("\n".join(restamped))
    assert [(t.trace.stream, len(t.frames)) for t in traces] == [("kvm [1]", 4), ("kvm [0]", 4)]
    assert form in traces[0].forms


def test_mbox_of_quoted_printable_messages():
    mbox = DATA / "mail" / "thread.mbox"
    raw = mbox.read_bytes()
    assert b"=\n" in raw and b"=20" in raw                # soft line breaks, =20
    traces = decode_text(raw.decode())
    assert [t.trace.quote_depth for t in traces] == [0, 1, 0, 0]
    assert frames_of(traces[0]) == frames_of(traces[1]) == printed(SAMPLE)
    assert traces[0].trace.panic.location.symbolic == "__kvm_nvhe_recursive_death+0x10/0x34"
    assert [t.trace.stream for t in traces[2:]] == ["T1", "C1"]
    for decoded in traces:
        assert decoded.forms[:2] == ("mbox", "quoted-printable")


def test_mbox_through_the_command_line(capsys):
    code, out, err = run_decode([str(DATA / "mail" / "thread.mbox")], capsys)
    assert code == 0 and err == ""
    assert "read as: mbox, quoted-printable, printk time, kvm [PID]" in out
    assert "line numbers count the lines of the messages as decoded" in out
    code, out, _ = run_decode(["--json", str(DATA / "mail" / "thread.mbox")], capsys)
    assert json.loads(out)["traces"][0]["log_forms"] == ["mbox", "quoted-printable"]


def test_one_eml_message(capsys):
    code, out, _ = run_decode([str(DATA / "mail" / "reply.eml")], capsys)
    assert code == 0
    assert "Trace 1 of 1" in out and "quoted (depth 1)" in out
    assert "read as: MIME mail, quoted-printable, mail quoting" in out
    (decoded,) = decode_text((DATA / "mail" / "reply.eml").read_text())
    assert frames_of(decoded) == printed(SAMPLE)


def test_an_html_page_is_refused_in_one_line(tmp_path, capsys):
    page = tmp_path / "message.html"
    body = "\n".join(SAMPLE).replace("<", "&lt;").replace(">", "&gt;")
    page.write_text(f"<!DOCTYPE html>\n<html><body><pre>{body}</pre></body></html>\n")
    code, out, err = run_decode([str(page)], capsys)
    assert code == 2 and out == ""
    assert "an HTML page" in err and "raw text or the thread's mbox" in err
    assert len(err.strip().splitlines()) == 1


def test_a_plain_paste_with_a_subject_line_is_not_read_as_mail():
    text = "Subject: Re: the trace\n\n" + "\n".join(SAMPLE)
    (decoded,) = decode_text(text)
    assert decoded.trace.line_number == 4 and "mbox" not in decoded.forms


def test_a_wrapped_panic_line_is_kept():
    panic = SAMPLE[0]
    cut = panic.index("__kvm_nvhe_recursive")
    wrapped = [panic[:cut].rstrip(), panic[cut:], *SAMPLE[1:]]
    (decoded,) = decode_text("\n".join(wrapped))
    assert decoded.trace.panic is not None
    assert decoded.trace.panic.location.symbolic == "__kvm_nvhe_recursive_death+0x10/0x34"
    assert frames_of(decoded) == printed(SAMPLE)
    assert "wrapped over lines 1-2" in format_text([decoded])
    assert "wrapped lines" in decoded.forms
    inside = panic.index("death") + 2                   # a wrap inside the symbol
    (decoded,) = decode_text("\n".join([panic[:inside], panic[inside:], *SAMPLE[1:]]))
    assert decoded.trace.panic.location.symbolic == "__kvm_nvhe_recursive_death+0x10/0x34"


# -- the series' early wording


def early_wording(lines: list[str]) -> list[str]:
    """The sample as the early revisions printed it: `nVHE HYP call trace:`,
    each frame's address alone, no end line."""
    out = []
    for line in lines:
        if "End of" in line:
            continue
        line = line.replace("Protected nVHE HYP call trace:", "nVHE HYP call trace:")
        out.append(re.sub(r"(\[<[0-9a-f]{16}>\]) \S+$", r"\1", line))
    return out


def test_early_wording_bare_addresses_no_end_line():
    lines = early_wording(SAMPLE) + ["[  127.000000] usb 1-1: reset", "[  127.1] eth0: up",
                                     "[  127.2] eth0: down"]
    (decoded,) = decode_text("\n".join(lines))
    assert decoded.trace.kind == "rfc" and not decoded.trace.footer
    assert [f.frame.address for f in decoded.frames] == [a for a, _ in printed(SAMPLE)]
    assert all(f.frame.symbol is None for f in decoded.frames)
    assert len(decoded.trace.elisions) == 1
    assert "early wording: bare addresses, no end line" in format_text([decoded])
    assert "bare addresses" in decoded.forms


def test_early_wording_with_elf_symbolizes_without_a_mismatch(fixture_elf):
    elf = fixture_elf
    frames = [f"[  1.0] kvm [9]:  [<{a:016x}>]" for a in elf.returns]
    log = "\n".join(["[  1.0] kvm [9]: nVHE HYP call trace:", *frames])
    (decoded,) = decode_text(log, elf.path)
    assert [f.elf.printed for f in decoded.frames] == [elf.pb(a) for a in elf.returns]
    assert decoded.mismatches == ()


# -- --elf: a %pB panic line at a function's first instruction


def test_panic_at_a_functions_first_instruction_says_what_was_looked_up(fixture_elf, capsys,
                                                                         tmp_path):
    """%pB of the fault address looks up address - 1: at a function's first
    instruction it names the function before, with its whole size as the
    offset. The line agrees; file:line is the faulting pc's, in the
    function that faulted, and the decoder says so."""
    elf = fixture_elf
    # kallsyms' view (nm's addresses): the function before __kvm_nvhe_leaf
    # runs up to it, so %pB of leaf's first instruction is before+span/span.
    by_address = sorted((start, n) for n, (start, _) in elf.symbols.items())
    name = "__kvm_nvhe_leaf"
    leaf = elf.symbols[name][0]
    before_start, before = max(item for item in by_address if item[0] < leaf)
    span = leaf - before_start
    printed_as = f"{before}+{span:#x}/{span:#x}"
    log = mainline_log([(a, elf.pb(a)) for a in elf.returns], panic=(leaf, printed_as))
    (decoded,) = decode_text(log, elf.path)
    panic = decoded.panic_location
    assert panic.mismatch is None and panic.lookup_address == leaf
    assert f"{panic.elf.file}:{panic.elf.line}" == elf.addr2line([leaf])[0]
    assert f"{leaf - 1:#x}" in panic.lookup_note
    assert f"first instruction of {name}" in panic.lookup_note
    path = tmp_path / "panic.log"
    path.write_text(log)
    code, out, _ = run_decode(["--elf", str(elf.path), str(path)], capsys)
    assert code == 0 and "looked up: the panic line names" in out
    check_round_trip([decoded])


# -- the seed thread itself


SHARED_SEEDS = sorted((REPO.parent / "shared" / "reference").glob("000_*.txt"))


@pytest.mark.parametrize("thread", [SEED, *SHARED_SEEDS], ids=lambda p: p.name)
def test_every_copy_of_the_seed_thread_holds_the_same_traces(thread):
    """The fixture's log lines, and the whole thread when ../shared is
    beside the repository, decode to the same three traces."""
    traces = decode_text(thread.read_text())
    assert [t.trace.quote_depth for t in traces] == [0, 1, 2]
    for decoded in traces:
        assert frames_of(decoded) == printed(SAMPLE)
