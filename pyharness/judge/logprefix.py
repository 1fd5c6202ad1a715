"""One kernel-log line without its prefixes: mail quoting (``> ``, ``>> ``,
``> > ``, `` | ``, ``   > |``, any depth, with leading spaces), printk
timestamps, caller ids (``[  T412] ``), a ``dmesg -T`` or syslog stamp, a
console log level (``<3>``) and the ``kvm [PID]: `` prefix, in any order
and nesting."""

from __future__ import annotations

import re
from typing import Iterable, Iterator

from pyharness.judge.logrecords import LogLine

_QUOTE_RE = re.compile(r"[ \t]*[>|][ \t]?")
_OTHER_PREFIX_RES = (
    re.compile(r"\[\s*\d+\.\d+\]\s?"),                          # printk time
    re.compile(r"\[\s*[TC]\d+\]\s?"),                           # caller id
    re.compile(r"[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \S+ kernel: "),  # syslog
    re.compile(r"\[[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d \d{4}\]\s?"),  # dmesg -T
    re.compile(r"<\d>"),                                          # console log level
)
_KVM_PREFIX_RE = re.compile(r"kvm \[\d+\]: ?")
# The usual line, a printk time and perhaps "kvm [PID]: ", in one match:
# only where nothing the general loop strips could follow the time (taken
# whole, as the loop takes it: an atomic group does not give back its space).
_ANY_PREFIX = "|".join([_QUOTE_RE.pattern] + [r.pattern for r in _OTHER_PREFIX_RES])
_PRINTK_LINE_RE = re.compile(rf"(?>{_OTHER_PREFIX_RES[0].pattern})(?!{_ANY_PREFIX})"
                             rf"(?:{_KVM_PREFIX_RE.pattern})?")


def split_line(number: int, raw: str) -> LogLine:
    """Strip every known prefix from one log line."""
    raw = raw.rstrip("\r\n")
    usual = _PRINTK_LINE_RE.match(raw)
    if usual:
        return LogLine(number=number, raw=raw, text=raw[usual.end():], quote_depth=0)
    return split_line_in_steps(number, raw)


def split_line_in_steps(number: int, raw: str) -> LogLine:
    """:func:`split_line` one prefix at a time, without its shortcut for
    the usual line."""
    raw = raw.rstrip("\r\n")
    text, depth, pos = raw, 0, 0
    while True:
        quote = _QUOTE_RE.match(text, pos)
        if quote:
            depth += 1
            pos = quote.end()
            continue
        other = next((m for r in _OTHER_PREFIX_RES if (m := r.match(text, pos))), None)
        if other is None:
            break
        pos = other.end()
    kvm = _KVM_PREFIX_RE.match(text, pos)
    if kvm:
        pos = kvm.end()
    return LogLine(number=number, raw=raw, text=text[pos:], quote_depth=depth)


def split_lines(lines: str | Iterable[str]) -> Iterator[LogLine]:
    """Every line, numbered from 1, one at a time: of a string (where only
    ``\n`` ends a line, or ``\r`` in a text that has no ``\n`` at all: an
    old Mac's line ends) or of an iterable of lines (a log being read)."""
    if isinstance(lines, str):
        ends = "\n" if "\n" in lines or "\r" not in lines else "\r"
        lines = lines.split(ends)
    return (split_line(i, raw) for i, raw in enumerate(lines, start=1))
