"""The decoder's JSON output, and back (for tools that store it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from pyharness.decode.records import DecodedFrame, DecodedTrace, ElfLocation
from pyharness.judge.logrecords import Elision, Frame, HypPanic, HypTrace, ParsedPanic
from pyharness.judge.logprefix import split_line


def format_json(traces: list[DecodedTrace], *, source: str | None = None,
                elf_path: str | Path | None = None,
                untraced: Sequence[ParsedPanic] = ()) -> str:
    """The traces as one JSON document; ``untraced``: panic lines no trace
    followed (decoder.untraced_panics), under ``untraced_panics``."""
    document = {
        "source": source,
        "elf": str(elf_path) if elf_path is not None else None,
        "traces": [_trace_to_json(t) for t in traces],
        "untraced_panics": [{"stream": p.stream, "quote_depth": p.quote_depth,
                             **_panic_to_json(p.panic, None)} for p in untraced if p.panic],
    }
    return json.dumps(document, indent=2) + "\n"


def traces_from_json(document: str | dict[str, Any]) -> list[DecodedTrace]:
    """The inverse of ``format_json``."""
    data = json.loads(document) if isinstance(document, str) else document
    return [_trace_from_json(t) for t in data["traces"]]


def _hex(value: int | None) -> str | None:
    return f"{value:#x}" if value is not None else None


def _unhex(value: str | None) -> int | None:
    return int(value, 16) if value is not None else None


def _trace_to_json(decoded: DecodedTrace) -> dict[str, Any]:
    trace = decoded.trace
    return {
        "number": decoded.number,
        "line": trace.line_number,
        "kind": trace.kind,
        "header": trace.header,
        "quote_depth": trace.quote_depth,
        "stream": trace.stream,
        "forms": list(decoded.forms),
        "log_forms": list(decoded.log_forms),
        "footer": trace.footer,
        "footer_line": trace.footer_line,
        "footer_raw": trace.footer_raw,
        "footer_kind": trace.footer_kind,
        "hyp_offset": _hex(trace.hyp_offset),
        "duplicate_of": decoded.duplicate_of,
        "address_mode": decoded.address_mode,
        "slide": _hex(decoded.slide),
        "notes": list(decoded.notes),
        "panic": _panic_to_json(trace.panic, decoded.panic_location),
        "frames": [_decoded_frame_to_json(f) for f in decoded.frames],
        "elisions": [{"line": e.line_number, "raw": e.raw, "after_frames": e.after_frames}
                     for e in trace.elisions],
        "strays": [{"line": s.number, "raw": s.raw} for s in trace.strays],
    }


def _panic_to_json(panic: HypPanic | None, decoded: DecodedFrame | None) -> dict[str, Any] | None:
    if panic is None:
        return None
    location = None
    if panic.location is not None:
        location = _decoded_frame_to_json(decoded or DecodedFrame(panic.location, None))
    return {"kind": panic.kind, "line": panic.line_number, "raw": panic.raw,
            "file": panic.file, "file_line": panic.file_line, "location": location}


def _decoded_frame_to_json(decoded: DecodedFrame) -> dict[str, Any]:
    frame, elf = decoded.frame, decoded.elf
    return {
        "index": decoded.index,
        "line": frame.line_number,
        "raw": frame.raw,
        "address": _hex(frame.address),
        "symbol": frame.symbol,
        "offset": frame.offset,
        "size": frame.size,
        "module": frame.module,
        "note": frame.note,
        "printed": frame.symbolic,
        "lookup_address": _hex(decoded.lookup_address),
        "lookup_note": decoded.lookup_note,
        "elf": None if elf is None else {
            "function": elf.function, "symbol_address": _hex(elf.symbol_address),
            "offset": elf.offset, "size": elf.size, "printed": elf.printed,
            "file": elf.file, "line": elf.line},
        "mismatch": decoded.mismatch,
    }


def _decoded_frame_from_json(data: dict[str, Any]) -> DecodedFrame:
    frame = Frame(address=_unhex(data["address"]), symbol=data["symbol"],
                  offset=data["offset"], size=data["size"], raw=data["raw"],
                  line_number=data["line"], module=data["module"], note=data.get("note"))
    elf_data = data["elf"]
    elf = None if elf_data is None else ElfLocation(
        function=elf_data["function"], symbol_address=int(elf_data["symbol_address"], 16),
        offset=elf_data["offset"], size=elf_data["size"], file=elf_data["file"],
        line=elf_data["line"])
    return DecodedFrame(frame=frame, index=data["index"],
                        lookup_address=_unhex(data["lookup_address"]), elf=elf,
                        mismatch=data["mismatch"], lookup_note=data.get("lookup_note"))


def _trace_from_json(data: dict[str, Any]) -> DecodedTrace:
    panic_data = data["panic"]
    panic = panic_location = None
    if panic_data is not None:
        if panic_data["location"] is not None:
            panic_location = _decoded_frame_from_json(panic_data["location"])
        panic = HypPanic(kind=panic_data["kind"], raw=panic_data["raw"],
                         line_number=panic_data["line"],
                         location=panic_location.frame if panic_location else None,
                         file=panic_data["file"], file_line=panic_data["file_line"])
    frames = tuple(_decoded_frame_from_json(f) for f in data["frames"])
    trace = HypTrace(
        kind=data["kind"], header=data["header"], line_number=data["line"],
        frames=tuple(f.frame for f in frames),
        elisions=tuple(Elision(line_number=e["line"], raw=e["raw"],
                               after_frames=e["after_frames"]) for e in data["elisions"]),
        strays=tuple(split_line(s["line"], s["raw"]) for s in data["strays"]),
        footer_line=data["footer_line"], footer_raw=data["footer_raw"],
        footer_kind=data.get("footer_kind"),
        hyp_offset=_unhex(data["hyp_offset"]), panic=panic,
        quote_depth=data["quote_depth"], stream=data.get("stream"),
        forms=tuple(f for f in data.get("forms", ()) if f not in data.get("log_forms", ())))
    return DecodedTrace(number=data["number"], trace=trace, frames=frames,
                        panic_location=panic_location, address_mode=data["address_mode"],
                        slide=int(data["slide"], 16), duplicate_of=data["duplicate_of"],
                        notes=tuple(data["notes"]), log_forms=tuple(data.get("log_forms", ())))
