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


def split_line(number: int, raw: str) -> LogLine:
    """Strip every known prefix from one log line."""
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
