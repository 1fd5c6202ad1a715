"""Lines a mail client or a terminal wrapped, joined back (for pasted logs).

A trace line with its prefixes is often longer than a mail client's 72 to
78 columns, so pasted logs arrive with a frame split in two: at the space
before the symbol, inside the symbol, inside an offset, inside the
address. The continuation keeps the quoting of its first half, or loses
it (wrapped after quoting). Two lines are joined when the first is not a
complete line of its own, the second is not either (or is only the rest
of a number), and together, with or without the space the wrap ate, they
make a complete frame or footer. Nothing else is ever joined, so an
ordinary log passes through unchanged. The checker never uses this: a
firmware that prints half a frame per line must fail.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Iterable, Iterator

from pyharness.judge.logrecords import LogLine

# The rest of a hex number split off the end of a complete-looking frame
# (``...+0x34/0x7`` then ``8``).
_DIGITS_RE = re.compile(r"[0-9a-fA-F]+")


WRAPPED = "wrapped lines"


def _joined(head: LogLine, tail: LogLine, text: str) -> LogLine:
    forms = tuple(dict.fromkeys((*head.forms, *tail.forms, WRAPPED)))
    return replace(head, raw=f"{head.raw}\n{tail.raw}", text=text, forms=forms)


def _join(head: LogLine, tail: LogLine,
          complete: Callable[[str], bool]) -> LogLine | None:
    """``head`` and ``tail`` as one line, if they are one wrapped line."""
    if tail.quote_depth not in (head.quote_depth, 0) or not tail.text.strip():
        return None
    rest = tail.text.strip()
    if complete(head.text):
        if _DIGITS_RE.fullmatch(rest) and complete(head.text.rstrip() + rest):
            return _joined(head, tail, head.text.rstrip() + rest)
        return None
    if complete(tail.text):
        return None
    for glue in ("", " "):
        text = head.text.rstrip() + glue + rest
        if complete(text):
            return _joined(head, tail, text)
    return None


def unwrap(lines: Iterable[LogLine], complete: Callable[[str], bool]) -> Iterator[LogLine]:
    """``lines`` with each wrapped pair joined; ``complete(text)`` says
    whether a line's text (prefixes removed) is a whole frame or footer."""
    pending: LogLine | None = None
    for line in lines:
        if pending is not None:
            joined = _join(pending, line, complete)
            if joined is not None:
                yield joined
                pending = None
                continue
            yield pending
        pending = line
    if pending is not None:
        yield pending
