"""One frame line of a kernel log (its prefixes already stripped) -> a
:class:`~pyharness.judge.logrecords.Frame`: ``[<ADDR>] SYM+OFF/SIZE``, a
bare ``0xADDR``, a module name, a newer kernel's ``(P)`` mark, and in a
pasted log a note after it."""

from __future__ import annotations

import functools
import re

from pyharness.judge.logrecords import Frame

HEX = r"[0-9a-fA-F]+"
_SYMBOL_FORM = (rf"(?P<symbol>[^\s+/\[\]()<>]+)\+0x(?P<offset>{HEX})/0x(?P<size>{HEX})"
                r"(?:\s+\[(?P<module>[^\]\s]+)\])?")
_FRAME = (rf"\s*(?:\[<(?P<address>{HEX})>\]\s+)?"
          rf"(?:{_SYMBOL_FORM}|0x(?P<bare>{HEX}))"
          r"(?:\s+\([A-Z]\))?")                       # newer kernels' " (P)" marks
_FRAME_RE = re.compile(_FRAME + r"\s*")
_NOTED_FRAME_RE = re.compile(_FRAME + r"(?:\s+(?P<note>\S.*?))?\s*")


def parse_frame(text: str, raw: str, line_number: int, *,
                need_address: bool = True, notes: bool = False) -> Frame | None:
    """A frame line (prefixes already removed), or None if it is not one.
    With ``notes``, text after the frame is its note rather than a mismatch."""
    fields = _frame_fields(text, need_address, notes)
    if fields is None:
        return None
    address, symbol, offset, size, module, note = fields
    return Frame(address=address, symbol=symbol, offset=offset, size=size, raw=raw,
                 line_number=line_number, module=module, note=note)


_FrameFields = tuple[int | None, str | None, int | None, int | None, str | None, str | None]


@functools.lru_cache(maxsize=4096)
def _frame_fields(text: str, need_address: bool, notes: bool) -> _FrameFields | None:
    """What a frame line's text says (kept: a long trace repeats a few
    frames thousands of times, only the timestamps differ)."""
    match = (_NOTED_FRAME_RE if notes else _FRAME_RE).fullmatch(text)
    if match is None:
        return None
    address = int(match["address"], 16) if match["address"] else None
    if address is None and (need_address or match["bare"]):
        return None
    note = match["note"] if notes else None
    if match["symbol"] is None:
        return address, None, None, None, None, note
    return (address, match["symbol"], int(match["offset"], 16), int(match["size"], 16),
            match["module"], note)
