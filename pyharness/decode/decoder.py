"""Every nVHE hyp call trace in a kernel log, frame by frame.

The log is read with ``pyharness.judge.tracelog`` as a pasted log (the
RFC's, the v5 and the mainline wordings, quoted mail replies, wrapped
lines, notes after frames, timestamps, caller ids). Each trace is
printed as structured frames, as text or JSON. With ``--elf VMLINUX`` every
printed address is symbolized again from the ELF itself, the way the kernel
prints it (``%pB``: look up ``addr - 1``, print ``name+0x(off+1)/0xsize``),
with file:line from DWARF, and every frame whose printed symbol, offset or
size disagrees with the ELF is flagged with both versions.

Which addresses go into the ELF: the kernel prints *link-time* addresses
(hyp pc + hyp offset, KASLR removed), so when a trace carries a
``Hyp Offset:`` line, or its addresses fall inside the ELF's code, they are
used as printed. Otherwise (a log whose addresses were printed relocated)
the shift is inferred from the printed symbol names and reported.

The command line is :mod:`pyharness.cli.decode`; output forms are
:mod:`pyharness.decode.text` and :mod:`pyharness.decode.jsonio`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from pyharness.decode.mail import mail_or_log_lines
from pyharness.decode.records import AddressMode, DecodedFrame, DecodedTrace, ElfLocation
from pyharness.elf.dwarf import SourceLine
from pyharness.elf.symbolizer import ElfSymbol, ElfSymbolizer
from pyharness.judge.logprefix import printk_drops
from pyharness.judge.logrecords import Frame, HypTrace, ParsedLog, ParsedPanic
from pyharness.judge.tracelog import parse_log


# The form of a trace another CPU's trace ran through (two CPUs panicking at once).
INTERLEAVED = "interleaved with another CPU's trace"
# The series' early revisions printed each frame's address alone.
BARE_ADDRESSES = "bare addresses"


def decode_text(text: str, elf_path: str | Path | None = None) -> list[DecodedTrace]:
    """Every hyp call trace in ``text``; with ``elf_path``, checked against that ELF.
    A mailbox or a MIME mail is read as :mod:`pyharness.decode.mail` reads it."""
    lines, log_forms = mail_or_log_lines(text.encode("utf-8", "surrogateescape"))
    parsed = parse_log(lines if lines is not None else text, pasted=True)
    drops = printk_drops(lines if lines is not None else text.splitlines())
    if elf_path is None:
        return decode_parsed(parsed, None, log_forms, drops)
    with ElfSymbolizer(Path(elf_path)) as symbolizer:
        return decode_parsed(parsed, symbolizer, log_forms, drops)


def decode_parsed(parsed: ParsedLog, symbolizer: ElfSymbolizer | None,
                  log_forms: tuple[str, ...] = (),
                  drops: Sequence[tuple[int, int]] = ()) -> list[DecodedTrace]:
    """Decode every trace of an already parsed log (``symbolizer``: optional
    ELF; ``log_forms``: how the file was read, e.g. as an mbox; ``drops``:
    where the kernel said it dropped messages, judge.logprefix.printk_drops)."""
    decoded: list[DecodedTrace] = []
    first_with: dict[tuple[Any, ...], int] = {}    # fingerprint -> trace number
    traces = parsed.traces
    interleaved = _interleaved(traces)
    for number, trace in enumerate(traces, start=1):
        fingerprint = _fingerprint(trace)
        duplicate_of = first_with.get(fingerprint)
        if duplicate_of is None:
            first_with[fingerprint] = number
        forms = log_forms + ((INTERLEAVED,) if number - 1 in interleaved else ())
        if trace.frames and all(f.symbol is None for f in trace.frames):
            forms += (BARE_ADDRESSES,)
        found = _decode_trace(number, trace, symbolizer, duplicate_of, forms)
        decoded.append(replace(found, notes=found.notes + _dropped_inside(trace, drops)))
    return decoded


def _dropped_inside(trace: HypTrace, drops: Sequence[tuple[int, int]]) -> tuple[str, ...]:
    """A note for each place between the trace's first and last line where
    the kernel said it dropped messages (its ring lapped before the console
    read it: two CPUs dumping long traces at once): frames may be missing,
    and the count printed is not the kernel's."""
    return tuple(f"the kernel dropped {count} printk messages at line {number}, inside this "
                 "trace: frames may be missing from it" for number, count in drops
                 if trace.line_number <= number <= trace.last_line)


def untraced_panics(parsed: ParsedLog) -> list[ParsedPanic]:
    """Panic lines no trace followed (nor a ``Cannot dump`` line): a CPU
    stopped before it printed its trace (another CPU's panic reboots the
    machine), or a log cut short."""
    return [p for p in parsed if p.panic is not None and p.trace is None
            and p.cannot_dump is None]


def _interleaved(traces: tuple[HypTrace, ...]) -> set[int]:
    """The indexes of the traces another stream's trace has lines among
    (a sweep by first line: each pair that overlaps is met once)."""
    order = sorted(range(len(traces)), key=lambda i: traces[i].line_number)
    found: set[int] = set()
    for k, i in enumerate(order):
        for j in order[k + 1:]:
            if traces[j].line_number > traces[i].last_line:
                break
            if traces[j].stream != traces[i].stream:
                found.update((i, j))
    return found


def _fingerprint(trace: HypTrace) -> tuple[Any, ...]:
    panic = trace.panic
    return (trace.kind, trace.stream,      # two CPUs' same trace is not a quoted copy
            None if panic is None else (panic.kind, panic.address, panic.file, panic.file_line),
            tuple((f.address, f.symbolic) for f in trace.frames),
            tuple(e.after_frames for e in trace.elisions))


def _decode_trace(number: int, trace: HypTrace, symbolizer: ElfSymbolizer | None,
                  duplicate_of: int | None, log_forms: tuple[str, ...]) -> DecodedTrace:
    panic_frame = trace.panic.location if trace.panic else None
    if symbolizer is None:
        return DecodedTrace(
            number=number, trace=trace,
            frames=tuple(DecodedFrame(frame=f, index=i) for i, f in enumerate(trace.frames)),
            panic_location=DecodedFrame(frame=panic_frame, index=None) if panic_frame else None,
            duplicate_of=duplicate_of, log_forms=log_forms)
    mode, slide, note = _address_mapping(trace, symbolizer)
    frames = tuple(_decode_frame(f, i, symbolizer, slide) for i, f in enumerate(trace.frames))
    panic_location = (_decode_frame(panic_frame, None, symbolizer, slide)
                      if panic_frame and panic_frame.address is not None else None)
    return DecodedTrace(number=number, trace=trace, frames=frames,
                        panic_location=panic_location, address_mode=mode, slide=slide,
                        duplicate_of=duplicate_of, notes=(note,), log_forms=log_forms)


def _address_mapping(trace: HypTrace,
                     symbolizer: ElfSymbolizer) -> tuple[AddressMode, int, str]:
    """How the trace's printed addresses map onto the ELF: (mode, slide, why)."""
    elf_name = symbolizer.path.name
    if trace.hyp_offset is not None:
        return ("link-time", 0, f"the log gives Hyp Offset {trace.hyp_offset:#x}, so the "
                f"printed addresses are {elf_name} link-time addresses; used as printed")
    located = [f for f in _frames_with_panic(trace) if f.address is not None]
    if not located:
        return "unmatched", 0, "the trace prints no address to look up"
    inside = [f for f in located if symbolizer.in_code(f.address - 1)]
    if len(inside) == len(located):
        return "link-time", 0, f"the printed addresses are {elf_name} link-time addresses"
    votes: Counter[int] = Counter()
    named = [f for f in located if f.symbol is not None and f.offset is not None]
    for frame in named:
        for symbol in symbolizer.symbols_named(frame.symbol or ""):
            votes[frame.address - frame.offset - symbol.address] += 1   # type: ignore[operator]
    if votes:
        slide, count = votes.most_common(1)[0]
        if slide != 0 and count * 2 > len(named):
            return ("relocated", slide, f"the printed addresses are {slide:#x} away from "
                    f"{elf_name}'s (inferred from {count} of {len(named)} printed symbols); "
                    "looked up shifted back")
    if inside:
        return ("link-time", 0, f"{len(located) - len(inside)} of {len(located)} printed "
                f"addresses are outside {elf_name}'s code")
    return ("unmatched", 0, f"no printed address lies in {elf_name}'s code and the printed "
            f"symbols do not place them: is {elf_name} the kernel that printed this log?")


def _frames_with_panic(trace: HypTrace) -> list[Frame]:
    frames = list(trace.frames)
    if trace.panic is not None and trace.panic.location is not None:
        frames.append(trace.panic.location)
    return frames


def _decode_frame(frame: Frame, index: int | None, symbolizer: ElfSymbolizer,
                  slide: int) -> DecodedFrame:
    """Symbolize one printed address by the ``%pB`` rule and compare."""
    if frame.address is None:
        return DecodedFrame(frame=frame, index=index)
    address = frame.address - slide
    if index is None:
        return _decode_panic_location(frame, address, symbolizer)
    # A frame's address is a return address: %pB looks at the call, addr - 1.
    symbol = symbolizer.symbol_containing(address - 1)
    if symbol is None:
        mismatch = (None if frame.symbol is None else
                    f"printed {frame.symbolic}, but the ELF has no function at {address:#x}")
        return DecodedFrame(frame=frame, index=index, lookup_address=address, mismatch=mismatch)
    location = _location(symbol, address, symbolizer.source_line(address - 1))
    return DecodedFrame(frame=frame, index=index, lookup_address=address, elf=location,
                        mismatch=_disagreement(frame, symbol, location))


def _location(symbol: ElfSymbol, address: int, source: SourceLine | None) -> ElfLocation:
    return ElfLocation(function=symbol.name, symbol_address=symbol.address,
                       offset=address - symbol.address, size=symbol.size,
                       file=source.file if source else None,
                       line=source.line if source else None)


def _disagreement(frame: Frame, symbol: ElfSymbol, location: ElfLocation) -> str | None:
    """Why the printed symbol disagrees with the ELF's; None when it agrees,
    or when the log printed the address alone (the early wording)."""
    if frame.symbol is None:
        return None
    if (frame.symbol in symbol.names and frame.offset == location.offset
            and frame.size is not None and symbol.accepts_size(frame.size)):
        return None
    return f"printed {frame.symbolic}, ELF has {location.printed}"


def _decode_panic_location(frame: Frame, address: int,
                           symbolizer: ElfSymbolizer) -> DecodedFrame:
    """The panic line's address is the faulting instruction. Kernels print
    it with %pB (the symbol of ``addr - 1``), this project's firmware with
    %pS (exact); the two differ only at a function's first instruction,
    where %pB names the function before with its whole size as the offset.
    Either agrees; file:line is always the faulting pc's, and when the two
    name different functions the note says which address gave what."""
    exact = symbolizer.symbol_containing(address)
    before = symbolizer.symbol_containing(address - 1)
    source = symbolizer.source_line(address)
    printed_as_pb = (before is not None and before is not exact
                     and frame.symbol is not None and frame.symbol in before.names)
    symbol = before if printed_as_pb else exact or before
    if symbol is None:
        mismatch = (None if frame.symbol is None else
                    f"printed {frame.symbolic}, but the ELF has no function at {address:#x}")
        return DecodedFrame(frame=frame, index=None, lookup_address=address, mismatch=mismatch)
    location = _location(symbol, address, source)
    note = None
    if printed_as_pb and exact is not None:
        where = f" ({source.file}:{source.line})" if source else ""
        note = (f"the panic line names {before.name}, the symbol of {address - 1:#x} (%pB "
                f"looks up the address - 1); the faulting pc {address:#x} is the first "
                f"instruction of {exact.name}, and file:line{where} is the pc's")
    return DecodedFrame(frame=frame, index=None, lookup_address=address, elf=location,
                        mismatch=_disagreement(frame, symbol, location), lookup_note=note)
