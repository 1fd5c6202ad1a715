"""One frame line of a kernel log (its prefixes already stripped) -> a
:class:`~pyharness.judge.logrecords.Frame`: ``[<ADDR>] SYM+OFF/SIZE``, a
bare ``0xADDR``, a module name, a newer kernel's ``(P)`` mark, and in a
pasted log a note after it or the address alone; and the hyp's panic line,
which prints one such location (:func:`parse_hyp_panic`)."""

from __future__ import annotations

import functools
import re

from pyharness.judge.logrecords import Frame, HypPanic, LogLine

HEX = r"[0-9a-fA-F]+"
_SYMBOL_FORM = (rf"(?P<symbol>[^\s+/\[\]()<>]+)\+0x(?P<offset>{HEX})/0x(?P<size>{HEX})"
                r"(?:\s+\[(?P<module>[^\]\s]+)\])?")
_FRAME = (rf"\s*(?:\[<(?P<address>{HEX})>\]\s+)?"
          rf"(?:{_SYMBOL_FORM}|0x(?P<bare>{HEX}))"
          r"(?:\s+\([A-Z]\))?")                       # newer kernels' " (P)" marks
_FRAME_RE = re.compile(_FRAME + r"\s*")
_NOTED_FRAME_RE = re.compile(_FRAME + r"(?:\s+(?P<note>\S.*?))?\s*")
# The series' early revisions printed the address alone: ``[<ffff...>]``.
_ADDRESS_ONLY_RE = re.compile(rf"\s*\[<(?P<address>{HEX})>\]\s*")


def parse_frame(text: str, raw: str, line_number: int, *,
                need_address: bool = True, notes: bool = False,
                address_only: bool = False) -> Frame | None:
    """A frame line (prefixes already removed), or None if it is not one.
    With ``notes``, text after the frame is its note rather than a mismatch;
    with ``address_only``, ``[<ADDR>]`` alone is a frame without a symbol."""
    fields = _frame_fields(text, need_address, notes)
    if fields is None:
        bare = _ADDRESS_ONLY_RE.fullmatch(text) if address_only else None
        if bare is None:
            return None
        fields = int(bare["address"], 16), None, None, None, None, None
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


INVALID_HOST_EXCEPTION = "Invalid host exception to nVHE hyp!"
PANIC_LINE_RE = re.compile(r"nVHE hyp (?P<what>panic|BUG|CFI failure) at: (?P<where>.*)!")
_BARE_ADDRESS_RE = re.compile(rf"\s*(?:0x)?(?P<address>{HEX})\s*")
_BUG_FILE_RE = re.compile(r"(?P<file>\S+):(?P<line>\d+)")


def parse_hyp_panic(line: LogLine) -> HypPanic | None:
    """The hyp panic/BUG/invalid-exception line, or None."""
    text = line.text.strip()
    if text == INVALID_HOST_EXCEPTION:
        return HypPanic(kind="invalid", raw=line.raw, line_number=line.number)
    match = PANIC_LINE_RE.fullmatch(text)
    if match is None:
        return None
    where = match["where"]
    location = parse_frame(where, line.raw, line.number)
    if location is None:
        # Older kernels: "nVHE hyp panic at: ffff800008b4d2cc!"
        bare = _BARE_ADDRESS_RE.fullmatch(where)
        if bare:
            location = Frame(address=int(bare["address"], 16), symbol=None, offset=None,
                             size=None, raw=line.raw, line_number=line.number)
    if match["what"] != "BUG":
        if location is None:
            return None
        return HypPanic(kind="cfi" if match["what"] == "CFI failure" else "panic",
                        raw=line.raw, line_number=line.number, location=location)
    if location is not None:
        return HypPanic(kind="bug-addr", raw=line.raw, line_number=line.number,
                        location=location)
    bug_file = _BUG_FILE_RE.fullmatch(where.strip())
    if bug_file is None:
        return None
    return HypPanic(kind="bug-file", raw=line.raw, line_number=line.number,
                    file=bug_file["file"], file_line=int(bug_file["line"]))
