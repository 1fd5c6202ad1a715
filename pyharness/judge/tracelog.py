"""Console and kernel-log text -> structured nVHE hyp panic records.

Two readers use this module:

- the run checker, on our firmware's console, which wants *the one* panic
  of a run: ``parse_log(console).sole_panic()``;
- ``pyharness decode``, on real kernel logs and mailing-list threads, which
  wants *every* hyp call trace: ``parse_log(text).traces``.

A log is read line by line. Each line first loses its prefixes, in any
order and nesting: mail quoting (``> ``, ``>> ``, ``> > ``, `` | ``),
printk timestamps (``[  126.862960] ``), caller ids (``[  T412] ``,
``[    C0] ``), a syslog ``Mon DD HH:MM:SS host kernel: `` stamp, and
finally the ``kvm [PID]: `` prefix. What remains is matched against the
records the kernel (and our firmware) print around a hyp panic:

    nVHE hyp panic at: [<ADDR>] SYM+OFF/SIZE!        HypPanic "panic"
    nVHE hyp BUG at: FILE:LINE!                      HypPanic "bug-file"
    nVHE hyp BUG at: [<ADDR>] SYM+OFF/SIZE!          HypPanic "bug-addr"
    nVHE hyp CFI failure at: [<ADDR>] SYM+OFF/SIZE!  HypPanic "cfi"
    Invalid host exception to nVHE hyp!              HypPanic "invalid"
    Protected nVHE HYP call trace: ... footer        HypTrace "protected"
    Non-protected nVHE HYP call trace: ... footer    HypTrace "non-protected"
    nVHE call trace: ... ---[ end nVHE call trace ]---   HypTrace "mainline"
    nVHE HYP call trace: ... ---- end of ... ----    HypTrace "rfc"
    Cannot dump pKVM nVHE stacktrace: REASON         CannotDump
    Hyp Offset: 0x...                                ParsedPanic.hyp_offset
    Kernel panic - not syncing: ... Call trace: ... ---[ end Kernel panic ... ]---
                                                     HostPanic

Records that belong to one hyp panic (same quoting depth, close together,
in the kernel's order) are grouped into one ``ParsedPanic``. Unknown lines
between records are ignored; inside a trace, a few unknown lines are kept
as ``strays`` (a checker may flag them) and more than a few end the trace,
which is then reported without a footer, as is a trace cut off by the end
of the log.

``parse_log(text, pasted=True)`` (the decoder's) also takes what people do
to a log they paste: odd spaces read as spaces, lines a mail client wrapped
joined back (:mod:`pyharness.judge.logwrap`), a note after a frame kept
aside (``Frame.note``), a frame of an address alone (the early wording);
and it reads each CPU's printk stream on its own
(:class:`~pyharness.judge.logprefix.PrintkStreams`), so two CPUs'
interleaved panics are two. The checker's firmware console gets none of
these.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable

from pyharness.judge.frameline import HEX, INVALID_HOST_EXCEPTION as _INVALID
from pyharness.judge.frameline import PANIC_LINE_RE as _PANIC_RE
from pyharness.judge.frameline import parse_frame, parse_hyp_panic
from pyharness.judge.logprefix import PrintkStreams, split_lines
from pyharness.judge.logrecords import (OTHER_TRACE_FOOTERS, OTHER_TRACE_HEADERS,
                                        TRACE_FOOTERS, TRACE_HEADERS, CannotDump, Elision,
                                        Frame, HostPanic, HypPanic, HypTrace, LogLine,
                                        ParsedLog, ParsedPanic, TraceKind)
from pyharness.judge.logwrap import unwrap

_KIND_OF_HEADER = {**{text: kind for kind, text in TRACE_HEADERS.items()}, **OTHER_TRACE_HEADERS}
_KIND_OF_FOOTER = {**{text: kind for kind, text in TRACE_FOOTERS.items()}, **OTHER_TRACE_FOOTERS}

# How many unknown lines in a row a trace tolerates before it is closed
# (interleaved printk from another CPU, a mail client's wrapped line).
MAX_STRAYS_IN_A_ROW = 2
# Records further apart than this many lines are not one panic.
MAX_RECORD_GAP = 24
# A multi-line `---[ end Kernel panic ...` marker closes within this many lines.
MAX_END_MARKER_LINES = 8


# --------------------------------------------------------------------------
# One line -> one record piece

_CANNOT_DUMP_RE = re.compile(r"Cannot dump pKVM nVHE stacktrace: ?(?P<reason>.*)")
_HYP_OFFSET_RE = re.compile(rf"Hyp Offset: 0x(?P<value>{HEX})")
_KERNEL_PANIC_RE = re.compile(r"Kernel panic - not syncing: ?(?P<message>.*)")
_END_KERNEL_PANIC_RE = re.compile(r"---\[ end Kernel panic - not syncing:.*")
_CALL_TRACE = "Call trace:"
_REGISTERS_RE = re.compile(rf"(?:[A-Z][A-Z0-9_]*:{HEX}\s*)+")
_REGISTER_RE = re.compile(rf"(?P<name>[A-Z][A-Z0-9_]*):(?P<value>{HEX})")
_CPU_RE = re.compile(r"CPU: (?P<cpu>\d+) (?:UID: \d+ )?PID: (?P<pid>\d+) Comm: (?P<comm>\S+)")
_KERNEL_OFFSET_RE = re.compile(rf"Kernel Offset: 0x(?P<value>{HEX})")
_ELISION_RE = re.compile(r"(?:\.\s*){2,}|\[\s*\.\.\.\s*\]|\u2026")


def _starts_a_record(text: str) -> bool:
    """Whether a (stripped) line opens a record of its own."""
    return (text in _KIND_OF_HEADER or text == _INVALID
            or _PANIC_RE.fullmatch(text) is not None
            or _CANNOT_DUMP_RE.fullmatch(text) is not None
            or _HYP_OFFSET_RE.fullmatch(text) is not None
            or _KERNEL_PANIC_RE.fullmatch(text) is not None
            or text == _CALL_TRACE)


# --------------------------------------------------------------------------
# Builders: mutable while the log is read, frozen at the end


@dataclass
class _TraceBuilder:
    kind: TraceKind
    header: LogLine
    frames: list[Frame] = field(default_factory=list)
    elisions: list[Elision] = field(default_factory=list)
    strays: list[LogLine] = field(default_factory=list)
    pending_strays: list[LogLine] = field(default_factory=list)
    footer: LogLine | None = None
    forms: dict[str, None] = field(default_factory=dict)   # in order, each once

    def take(self, line: LogLine) -> None:
        """``line`` is the trace's: note how it was written."""
        self.forms.update(dict.fromkeys(line.forms))

    def keep_pending(self) -> None:
        self.strays += self.pending_strays
        self.pending_strays.clear()


@dataclass
class _HostBuilder:
    message: str
    line: LogLine
    state: str = "message"   # message -> frames -> after -> end-continued
    registers: list[tuple[str, int]] = field(default_factory=list)
    cpu: int | None = None
    pid: int | None = None
    comm: str | None = None
    call_trace_line: int | None = None
    frames: list[Frame] = field(default_factory=list)
    kernel_offset: int | None = None
    end_line: int | None = None
    end_started: int | None = None


@dataclass
class _PanicBuilder:
    quote_depth: int
    last_line: int      # the position of its last line in its printk stream
    panic: HypPanic | None = None
    trace: _TraceBuilder | None = None
    cannot_dump: CannotDump | None = None
    hyp_offset: int | None = None
    host: _HostBuilder | None = None
    panic_forms: tuple[str, ...] = ()

    def accepts(self, line: LogLine, slot: str, position: int) -> bool:
        """Whether ``line`` (at ``position`` of the stream) can fill ``slot``
        of this panic."""
        if line.quote_depth != self.quote_depth:
            return False
        if position - self.last_line > MAX_RECORD_GAP or self.host is not None:
            return False
        if slot in ("trace", "cannot_dump"):
            return self.trace is None and self.cannot_dump is None
        if slot == "hyp_offset":
            return self.hyp_offset is None
        return True   # the host panic

    def freeze(self, stream: str | None = None) -> ParsedPanic:
        trace = None
        if self.trace is not None:
            t = self.trace
            forms = tuple(dict.fromkeys((*self.panic_forms, *t.forms)))
            trace = HypTrace(
                kind=t.kind, header=t.header.raw, line_number=t.header.number,
                frames=tuple(t.frames), elisions=tuple(t.elisions),
                strays=tuple(t.strays),
                footer_line=t.footer.number if t.footer else None,
                footer_raw=t.footer.raw if t.footer else None,
                footer_kind=_KIND_OF_FOOTER[t.footer.text.strip()] if t.footer else None,
                hyp_offset=self.hyp_offset, panic=self.panic,
                quote_depth=self.quote_depth, stream=stream, forms=forms)
        host = None
        if self.host is not None:
            h = self.host
            host = HostPanic(
                message=h.message, raw=h.line.raw, line_number=h.line.number,
                registers=tuple(h.registers), cpu=h.cpu, pid=h.pid, comm=h.comm,
                call_trace_line=h.call_trace_line, frames=tuple(h.frames),
                kernel_offset=h.kernel_offset, end_line=h.end_line)
        return ParsedPanic(panic=self.panic, trace=trace, cannot_dump=self.cannot_dump,
                           hyp_offset=self.hyp_offset, host=host,
                           quote_depth=self.quote_depth, stream=stream)


class _LogParser:
    """The line-by-line state machine behind ``parse_log``."""

    def __init__(self, pasted: bool = False, stream: str | None = None) -> None:
        self.pasted = pasted
        self.stream = stream
        self.position = 0
        self.done: list[_PanicBuilder] = []
        self.current: _PanicBuilder | None = None
        self.trace: _TraceBuilder | None = None
        self.host: _HostBuilder | None = None

    # -- entry points

    def feed(self, line: LogLine) -> None:
        self.position += 1      # records' distance counts this stream's lines only
        if self.trace is not None and self._feed_trace(line):
            return
        if self.host is not None and self._feed_host(line):
            return
        self._feed_top(line)

    def finish(self) -> ParsedLog:
        self._close_trace()
        self.host = None
        self._close_panic()
        return ParsedLog(tuple(p.freeze(self.stream) for p in self.done))

    # -- grouping

    def _close_trace(self) -> None:
        if self.trace is not None:
            self.trace.pending_strays.clear()
            self.trace = None

    def _close_panic(self) -> None:
        if self.current is not None:
            self.done.append(self.current)
            self.current = None

    def _panic_for(self, line: LogLine, slot: str) -> _PanicBuilder:
        """The open panic if ``line`` belongs to it, else a new one."""
        if self.current is None or not self.current.accepts(line, slot, self.position):
            self._close_panic()
            self.current = _PanicBuilder(quote_depth=line.quote_depth,
                                         last_line=self.position)
        self.current.last_line = self.position
        return self.current

    # -- outside any trace or host panic

    def _feed_top(self, line: LogLine) -> None:
        text = line.text.strip()
        if not text:
            return
        hyp_panic = parse_hyp_panic(line)
        if hyp_panic is not None:
            self._close_panic()
            panic = self._panic_for(line, "panic")
            panic.panic, panic.panic_forms = hyp_panic, line.forms
            return
        kind = _KIND_OF_HEADER.get(text)
        if kind is not None:
            self.trace = _TraceBuilder(kind=kind, header=line)
            self.trace.take(line)
            self._panic_for(line, "trace").trace = self.trace
            return
        match = _CANNOT_DUMP_RE.fullmatch(text)
        if match:
            self._panic_for(line, "cannot_dump").cannot_dump = CannotDump(
                raw=line.raw, line_number=line.number, reason=match["reason"])
            return
        match = _HYP_OFFSET_RE.fullmatch(text)
        if match:
            self._panic_for(line, "hyp_offset").hyp_offset = int(match["value"], 16)
            return
        match = _KERNEL_PANIC_RE.fullmatch(text)
        if match:
            self.host = _HostBuilder(message=match["message"], line=line)
            self._panic_for(line, "host").host = self.host
            return
        # Anything else between records: not ours, ignored.

    # -- inside a hyp trace; False: the line is not the trace's

    def _feed_trace(self, line: LogLine) -> bool:
        trace = self.trace
        assert trace is not None and self.current is not None
        text = line.text.strip()
        if not text:
            return True                       # blank lines, quoted or not
        if line.quote_depth != self.current.quote_depth:
            self._close_trace()
            return False
        if text in _KIND_OF_FOOTER:
            trace.keep_pending()
            trace.footer = line
            trace.take(line)
            self.current.last_line = self.position
            self._close_trace()
            return True
        frame = parse_frame(line.text, line.raw, line.number, notes=self.pasted,
                            address_only=self.pasted)
        if frame is not None:
            trace.keep_pending()
            trace.frames.append(frame)
            trace.take(line)
            self.current.last_line = self.position
            return True
        if _ELISION_RE.fullmatch(text):
            trace.keep_pending()
            trace.elisions.append(Elision(line_number=line.number, raw=line.raw,
                                          after_frames=len(trace.frames)))
            self.current.last_line = self.position
            return True
        if _starts_a_record(text) or len(trace.pending_strays) >= MAX_STRAYS_IN_A_ROW:
            self._close_trace()
            return False
        trace.pending_strays.append(line)
        return True

    # -- inside the host's panic; False: the line is not the host panic's

    def _feed_host(self, line: LogLine) -> bool:
        host = self.host
        assert host is not None and self.current is not None
        text = line.text.strip()
        if text and line.quote_depth != self.current.quote_depth:
            self.host = None
            return False
        if host.state == "end-continued":
            if text.endswith("]---"):
                host.end_line = line.number
                self.host = None
            elif line.number - (host.end_started or 0) >= MAX_END_MARKER_LINES:
                self.host = None
                return False
            return True
        if not text:
            return True
        if _END_KERNEL_PANIC_RE.fullmatch(text):
            self.current.last_line = self.position
            if text.endswith("]---"):
                host.end_line = line.number
                self.host = None
            else:                              # the message's lines follow
                host.state = "end-continued"
                host.end_started = line.number
            return True
        if _starts_a_record(text) and text != _CALL_TRACE:
            self.host = None
            return False
        self.current.last_line = self.position
        if host.state == "frames":
            frame = parse_frame(line.text, line.raw, line.number, need_address=False)
            if frame is not None:
                host.frames.append(frame)
                return True
            host.state = "after"
        if text == _CALL_TRACE and host.call_trace_line is None:
            host.call_trace_line = line.number
            host.state = "frames"
        elif host.state == "message" and _REGISTERS_RE.fullmatch(text):
            host.registers += [(m["name"], int(m["value"], 16))
                               for m in _REGISTER_RE.finditer(text)]
        elif (match := _CPU_RE.match(text)) and host.cpu is None:
            host.cpu, host.pid, host.comm = int(match["cpu"]), int(match["pid"]), match["comm"]
        elif match := _KERNEL_OFFSET_RE.match(text):
            host.kernel_offset = int(match["value"], 16)
        return True


def _whole_line(text: str) -> bool:
    """Whether a line's text is a complete frame, footer or panic line (for
    joining wraps)."""
    return (parse_frame(text, "", 0, notes=True) is not None
            or text.strip() in _KIND_OF_FOOTER
            or ("nVHE hyp" in text
                and parse_hyp_panic(LogLine(number=0, raw=text, text=text, quote_depth=0))
                is not None))


def parse_log(text: str | Iterable[str], *, pasted: bool = False) -> ParsedLog:
    """Every hyp panic (panic line, trace, hyp offset, host panic) in ``text``:
    a string, or an iterable of its lines (read as they come).

    ``pasted`` (the decoder's): also read odd spaces as spaces, join
    wrapped lines, allow notes after frames and frames of an address alone,
    and read each printk stream on its own (by caller id, else ``kvm
    [PID]``; :func:`pyharness.judge.logprefix.split_by_caller`'s rule), so
    two CPUs' interleaved traces come apart."""
    if not pasted:
        parser = _LogParser()
        for line in split_lines(text):
            parser.feed(line)
        return parser.finish()
    parsers: dict[str, _LogParser] = {}
    whose = PrintkStreams()
    for line in unwrap(split_lines(text, odd_spaces=True), _whole_line):
        key = whose.of(line)
        parser = parsers.get(key)
        if parser is None:
            parser = parsers[key] = _LogParser(pasted=True, stream=key or None)
        parser.feed(line)
    panics = [p for parser in parsers.values() for p in parser.finish()]
    return ParsedLog(tuple(sorted(panics, key=lambda p: p.first_line)))
