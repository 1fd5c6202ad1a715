"""The decoder's text output: one block per trace, one line per frame."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from pyharness.decode.mail import MBOX, MIME_MAIL
from pyharness.decode.records import DecodedFrame, DecodedTrace
from pyharness.judge.logrecords import TRACE_HEADERS, Elision, HypPanic, HypTrace, ParsedPanic
from pyharness.judge.logprefix import split_line


_TRACE_TITLES = {kind: header.rstrip(":") for kind, header in TRACE_HEADERS.items()}


def format_text(traces: list[DecodedTrace], *, elf_path: str | Path | None = None,
                untraced: Sequence[ParsedPanic] = ()) -> str:
    """A human-readable report of decoded traces (ends with a summary line);
    ``untraced``: panic lines no trace followed (decoder.untraced_panics)."""
    # Whose printk a trace is matters when several CPUs printed traces.
    several = len({t.trace.stream for t in traces}) > 1
    blocks = [_trace_text(t, len(traces), several) for t in traces]
    blocks += [_untraced_text(p) for p in untraced]
    blocks.append(_summary(traces, elf_path, len(untraced)))
    return "\n\n".join(blocks) + "\n"


def _trace_text(decoded: DecodedTrace, total: int, show_stream: bool) -> str:
    trace = decoded.trace
    quoted = f", quoted (depth {trace.quote_depth})" if trace.quote_depth else ""
    stream = ""
    if trace.stream and show_stream:
        whose = trace.stream if trace.stream.startswith("kvm") else f"[{trace.stream}]"
        stream = f", CPU stream {whose}"
    end = f"footer at line {trace.footer_line}" if trace.footer else _no_footer(trace)
    counts = f"{len(trace.frames)} frame{'s' if len(trace.frames) != 1 else ''}"
    if trace.elisions:
        counts += f", {len(trace.elisions)} elision{'s' if len(trace.elisions) != 1 else ''}"
    lines = [f"Trace {decoded.number} of {total}, line {trace.line_number}{quoted}{stream}: "
             f"{_TRACE_TITLES[trace.kind]} ({counts}, {end})"]
    if decoded.forms:
        lines.append(f"  read as: {', '.join(decoded.forms)}")
    if decoded.duplicate_of is not None:
        lines.append(f"  same frames as trace {decoded.duplicate_of}")
    if trace.panic is not None:
        lines.append(f"  {_panic_text(trace.panic, decoded.panic_location)}")
    if trace.hyp_offset is not None:
        lines.append(f"  Hyp Offset: {trace.hyp_offset:#x}")
    lines += [f"  note: {note}" for note in decoded.notes]
    body = [(f.frame.line_number, _frame_text(f)) for f in decoded.frames]
    body += [(e.line_number, _elision_text(e)) for e in trace.elisions]
    body += [(s.number, f"       line {s.number:<6} unrecognised line inside the trace: "
                        f"{s.raw.strip()}") for s in trace.strays]
    lines += [text for _, text in sorted(body)]
    return "\n".join(lines)


def _no_footer(trace: HypTrace) -> str:
    """Why a trace has no footer: the early wording printed none; else the
    log stops or turns to other lines there (another CPU's stop, a reboot,
    a paste cut short)."""
    if trace.kind == "rfc" and trace.frames and all(f.symbol is None for f in trace.frames):
        return "early wording: bare addresses, no end line"
    return f"no footer: cut off after line {trace.last_line}"


def _panic_text(panic: HypPanic, decoded: DecodedFrame | None) -> str:
    head = f"line {panic.line_number}: "
    if panic.kind == "invalid":
        return head + "Invalid host exception to nVHE hyp"
    if panic.kind == "bug-file":
        return head + f"nVHE hyp BUG at {panic.file}:{panic.file_line}"
    what = {"panic": "panic", "cfi": "CFI failure"}.get(panic.kind, "BUG")
    location = panic.location
    assert location is not None
    text = head + f"nVHE hyp {what} at [<{location.address:016x}>] {location.symbolic}"
    if "\n" in panic.raw:
        text += f"  (wrapped over lines {panic.line_number}-"\
                f"{panic.line_number + panic.raw.count(chr(10))})"
    text += _elf_suffix(decoded) if decoded else ""
    if decoded is not None and decoded.lookup_note:
        text += f"\n    looked up: {decoded.lookup_note}"
    return text


def _frame_text(decoded: DecodedFrame) -> str:
    frame = decoded.frame
    address = f"{frame.address:016x}" if frame.address is not None else "?" * 16
    note = f"  (note: {frame.note})" if frame.note else ""
    if "\n" in frame.raw:
        last = frame.line_number + frame.raw.count("\n")
        note += f"  (wrapped over lines {frame.line_number}-{last})"
    return (f"  #{decoded.index:<3} line {frame.line_number:<6} [<{address}>] "
            f"{frame.symbolic}{_elf_suffix(decoded)}{note}")


def _elf_suffix(decoded: DecodedFrame) -> str:
    elf = decoded.elf
    where = f" ({elf.source})" if elf is not None and elf.source else ""
    if decoded.mismatch is not None:
        return f"  MISMATCH: {decoded.mismatch}{where}"
    return f"  at {elf.source}" if elf is not None and elf.source else ""


def _elision_text(elision: Elision) -> str:
    dots = split_line(elision.line_number, elision.raw).text.strip()
    return f"       line {elision.line_number:<6} {dots}  (frames left out in the log)"


def _untraced_text(parsed: ParsedPanic) -> str:
    assert parsed.panic is not None
    stream = ""
    if parsed.stream:
        whose = parsed.stream if parsed.stream.startswith("kvm") else f"[{parsed.stream}]"
        stream = f", CPU stream {whose}"
    return (f"Panic line {parsed.panic.line_number}{stream}, no trace after it: cut short "
            "(the log ends there, or another CPU's panic stopped this one first)\n  "
            f"{_panic_text(parsed.panic, None)}")


def _summary(traces: list[DecodedTrace], elf_path: str | Path | None,
             untraced: int = 0) -> str:
    copies = sum(1 for t in traces if t.duplicate_of is not None)
    text = f"{len(traces)} trace{'s' if len(traces) != 1 else ''}"
    if copies:
        text += f" ({copies} repeat{'s' if copies != 1 else ''} of an earlier one)"
    if untraced:
        text += f"; {untraced} panic line{'s' if untraced != 1 else ''} without a trace"
    if elf_path is not None:
        bad = sum(len(t.mismatches) for t in traces)
        name = Path(elf_path).name
        text += (f"; {bad} printed location{'s disagree' if bad != 1 else ' disagrees'} "
                 f"with {name}"
                 if bad else f"; every printed location agrees with {name}")
    if any(form in (MBOX, MIME_MAIL) for t in traces for form in t.log_forms):
        text += "; line numbers count the lines of the messages as decoded"
    return text + "."
