"""One kernel-log line without its prefixes: mail quoting (``> ``, ``>> ``,
``> > ``, `` | ``, ``   > |``, any depth, with leading spaces), indentation
(``git log`` indents 4 spaces, a quote often 2), printk timestamps, caller
ids (``[  T412] ``), a ``dmesg -T`` stamp, a syslog or journal stamp (``Oct
 1 12:00:00 host kernel: ``, ``2022-10-01T12:00:00.123456+00:00 host
kernel: ``), a console log level (``<3>``) and the ``kvm [PID]: `` prefix,
in any order and nesting. Each line says which of them it had (its
``forms``) and whose printk it is (its ``stream``: the caller id, else
``kvm [PID]``)."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Iterable, Iterator

from pyharness.judge.frameline import INVALID_HOST_EXCEPTION, PANIC_LINE_RE
from pyharness.judge.logrecords import (OTHER_TRACE_FOOTERS, OTHER_TRACE_HEADERS,
                                        TRACE_FOOTERS, TRACE_HEADERS, LogLine)

# The names a line's forms go by (in the decoder's output, too).
QUOTED = "mail quoting"
INDENTED = "indented"
PRINTK_TIME = "printk time"
CALLER_ID = "caller id"
SYSLOG = "syslog/journal stamp"
SYSLOG_ISO = "syslog/journal ISO stamp"
DMESG_T = "dmesg -T stamp"
LOG_LEVEL = "console log level"
KVM_PID = "kvm [PID]"
ODD_SPACES = "non-breaking spaces"

_QUOTE_RE = re.compile(r"[ \t]*[>|][ \t]?")
_INDENT_RE = re.compile(r"[ \t]+")
_OTHER_PREFIX_RES = (
    (PRINTK_TIME, re.compile(r"\[\s*\d+\.\d+\]\s?")),
    (CALLER_ID, re.compile(r"\[\s*(?P<caller>[TC]\d+)\]\s?")),
    (SYSLOG, re.compile(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d(?:\.\d+)? \S+ kernel: ")),
    (SYSLOG_ISO, re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?"
                            r"(?:Z|[+-]\d\d:?\d\d)? \S+ kernel: ")),
    (DMESG_T, re.compile(r"\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\]\s?")),
    (LOG_LEVEL, re.compile(r"<\d>")),
)
_KVM_PREFIX_RE = re.compile(r"kvm \[(?P<pid>\d+)\]: ?")
# The usual line, a printk time, perhaps a caller id right after it and
# perhaps "kvm [PID]: ", in one match: only where nothing the general loop
# strips could follow (each taken whole, as the loop takes it: an atomic
# group does not give back its space).
_ANY_PREFIX = re.sub(r"\(\?P<\w+>", "(?:", "|".join([_QUOTE_RE.pattern]
                                                       + [r.pattern for _, r in _OTHER_PREFIX_RES]))
_PRINTK_LINE_RE = re.compile(rf"(?>{_OTHER_PREFIX_RES[0][1].pattern})"
                             rf"(?>{_OTHER_PREFIX_RES[1][1].pattern})?"
                             rf"(?![ \t]*(?:{_ANY_PREFIX}))"
                             rf"(?:[ \t]*{_KVM_PREFIX_RE.pattern})?")
# The usual line's forms: (with a caller id, with kvm [PID]) -> forms.
_USUAL_FORMS = {(c, k): (PRINTK_TIME, *((CALLER_ID,) if c else ()), *((KVM_PID,) if k else ()))
                for c in (False, True) for k in (False, True)}
# Spaces an HTML mail or a web page writes instead of plain ones.
_SPACES = str.maketrans({c: " " for c in "\u00a0\u2007\u202f\u2009\u200a\u3000"})
_ODD_SPACE_RE = re.compile("[\u00a0\u2007\u202f\u2009\u200a\u3000]")


def split_line(number: int, raw: str) -> LogLine:
    """Strip every known prefix from one log line."""
    raw = raw.rstrip("\r\n")
    usual = _PRINTK_LINE_RE.match(raw)
    if usual:
        pid, caller = usual["pid"], usual["caller"]
        forms = _USUAL_FORMS[caller is not None, pid is not None]
        return LogLine(number=number, raw=raw, text=raw[usual.end():], quote_depth=0,
                       caller=caller, kvm_pid=int(pid) if pid else None, forms=forms)
    return split_line_in_steps(number, raw)


def split_line_in_steps(number: int, raw: str) -> LogLine:
    """:func:`split_line` one prefix at a time, without its shortcut for
    the usual line."""
    raw = raw.rstrip("\r\n")
    text, depth, pos = raw, 0, 0
    forms: list[str] = []
    caller: str | None = None
    while True:
        quote = _QUOTE_RE.match(text, pos)
        if quote:
            depth += 1
            pos = quote.end()
            continue
        indent = _INDENT_RE.match(text, pos)
        start = indent.end() if indent else pos
        for name, prefix in _OTHER_PREFIX_RES:
            other = prefix.match(text, start)
            if other is not None:
                break
        else:
            break
        if indent and not depth and not forms:
            forms.append(INDENTED)
        forms.append(name)
        caller = other.groupdict().get("caller") or caller
        pos = other.end()
    indent = _INDENT_RE.match(text, pos)
    kvm = _KVM_PREFIX_RE.match(text, indent.end() if indent else pos)
    if kvm:
        if indent and not depth and not forms:
            forms.append(INDENTED)
        forms.append(KVM_PID)
        pos = kvm.end()
    if depth:
        forms.insert(0, QUOTED)
    return LogLine(number=number, raw=raw, text=text[pos:], quote_depth=depth,
                   caller=caller, kvm_pid=int(kvm["pid"]) if kvm else None,
                   forms=tuple(dict.fromkeys(forms)))


def split_lines(lines: str | Iterable[str], *, odd_spaces: bool = False) -> Iterator[LogLine]:
    """Every line, numbered from 1, one at a time: of a string (where only
    ``\\n`` ends a line, or ``\\r`` in a text that has no ``\\n`` at all: an
    old Mac's line ends) or of an iterable of lines (a log being read).
    ``odd_spaces``: read a non-breaking (or other odd) space as a space, as
    an HTML mail needs (the line's ``raw`` keeps them)."""
    if isinstance(lines, str):
        ends = "\n" if "\n" in lines or "\r" not in lines else "\r"
        lines = lines.split(ends)
    for number, raw in enumerate(lines, start=1):
        if odd_spaces and _ODD_SPACE_RE.search(raw):
            line = split_line(number, raw.translate(_SPACES))
            yield replace(line, raw=raw.rstrip("\r\n"), forms=(*line.forms, ODD_SPACES))
        else:
            yield split_line(number, raw)


# The lines of a hyp dump as the host prints it, each behind `kvm [PID]: `:
# the panic line, the trace's header and frames, then its footer and the
# Hyp Offset line (or `Cannot dump`), after which panic() prints its own
# lines with no `kvm` prefix.
_DUMP_OPENERS = frozenset(TRACE_HEADERS.values()) | frozenset(OTHER_TRACE_HEADERS)
_DUMP_CLOSERS = frozenset(TRACE_FOOTERS.values()) | frozenset(OTHER_TRACE_FOOTERS)
_DUMP_CLOSER_STARTS = ("Hyp Offset:", "Cannot dump pKVM nVHE stacktrace")


def _dump_step(text: str) -> bool | None:
    """Whether a line of this text opens or continues a hyp dump (True),
    ends one (False), or is neither (None)."""
    text = text.strip()
    if text.startswith("[<") or text in _DUMP_OPENERS or text == INVALID_HOST_EXCEPTION \
            or PANIC_LINE_RE.fullmatch(text):
        return True
    if text in _DUMP_CLOSERS or text.startswith(_DUMP_CLOSER_STARTS):
        return False
    return None


class PrintkStreams:
    """Whose printk each line of a log is, line by line: its caller id
    (``T1``, ``C1``: a kernel with PRINTK_CALLER), or, in a kernel without
    them (a distribution's), its ``kvm [PID]`` (two CPUs panicking in KVM's
    init run as different tasks). A line with neither is the line before
    it's (lines before any: ``""``), except where that stream is in the
    middle of a hyp dump (from its panic line or header to its footer or
    ``Hyp Offset`` line) and the line is no part of a dump: a CPU printing
    its dump prints nothing else, so such a line (the host's ``Kernel
    panic`` message of the CPU that finished first, while the other's
    frames still come) is that of the stream that printed last and is not
    in a dump, if there is one (lines before any stream are none). In a
    log that mixes the two (a paste put together from two captures), a
    caller id first seen on a ``kvm [PID]`` that lines without caller ids
    already printed under joins their stream, and such a line joins the
    caller's stream it was seen on."""

    def __init__(self) -> None:
        self._key_of: dict[str, str] = {}     # caller id or "kvm [PID]" -> stream
        self._pid_only: set[str] = set()      # "kvm [PID]" streams of lines without a caller
        self._current = ""
        self._in_dump: set[str] = set()       # streams between a dump's start and its end
        self._latest: dict[str, None] = {}    # streams in the order they last printed

    def of(self, line: LogLine) -> str:
        """The stream ``line`` belongs to (call for each line, in order)."""
        pid = f"kvm [{line.kvm_pid}]" if line.kvm_pid is not None else None
        step = _dump_step(line.text)
        if line.caller is not None:
            key = self._key_of.get(line.caller)
            if key is None:
                key = pid if pid in self._pid_only else line.caller
                self._key_of[line.caller] = key
            if pid is not None:
                self._key_of.setdefault(pid, key)
        elif pid is not None:
            key = self._key_of.get(pid) or pid
            if key == pid:
                self._key_of[pid] = pid
                self._pid_only.add(pid)
        else:
            key = self._current
            if key in self._in_dump and step is None:
                key = next((k for k in reversed(self._latest)
                            if k and k not in self._in_dump), key)
        if step:
            self._in_dump.add(key)
        elif step is False:
            self._in_dump.discard(key)
        self._latest.pop(key, None)
        self._latest[key] = None
        self._current = key
        return key


def split_by_caller(console: list[str]) -> dict[str, list[str]]:
    """The console's lines per printk stream (:class:`PrintkStreams`), in
    order. The decoder (:mod:`pyharness.judge.tracelog`, pasted logs)
    follows the same rule."""
    streams: dict[str, list[str]] = {}
    whose = PrintkStreams()
    for raw, line in zip(console, split_lines(console)):
        streams.setdefault(whose.of(line), []).append(raw)
    return streams


# printk's own line when writers lapped the ring before the console read it
# (kernel/printk: "** %lu printk messages dropped **").
_DROPPED_RE = re.compile(r"\*\* (?P<count>\d+) printk messages dropped \*\*")


def noting_drops(lines: Iterable[str], drops: list[tuple[int, int]]) -> Iterator[str]:
    """The lines, unchanged, as they stream past; each place the kernel says
    it dropped messages is added to ``drops`` as (1-based line number, how
    many)."""
    for number, line in enumerate(lines, start=1):
        if (m := _DROPPED_RE.search(line)) is not None:
            drops.append((number, int(m.group("count"))))
        yield line


def printk_drops(lines: Iterable[str]) -> list[tuple[int, int]]:
    """Where the kernel says it dropped messages (:func:`noting_drops`)."""
    drops: list[tuple[int, int]] = []
    for _ in noting_drops(lines, drops):
        pass
    return drops


def printk_dropped(lines: Iterable[str]) -> int:
    """How many messages the kernel says it dropped in these lines (0: none;
    else the console does not hold everything that was printed)."""
    return sum(count for _, count in printk_drops(lines))
