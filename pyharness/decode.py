"""``pyharness decode``: every nVHE hyp call trace in a kernel log, frame by frame.

The log is read with ``pyharness.tracelog`` (both the v5 and the mainline
wordings, quoted mail replies, timestamps, caller ids). Each trace is
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

Exit codes: 0 decoded (and, with ``--elf``, every frame agrees), 1 no trace
found or a frame disagrees with the ELF, 2 bad input (unreadable log or ELF).
"""

from __future__ import annotations

import argparse
import bisect
import json
import posixpath
import struct
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal

from elftools.common.exceptions import DWARFError, ELFError, ELFParseError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from .errors import EXIT_CHECK_FAILED, EXIT_OK, HarnessError
from .tracelog import (Elision, Frame, HypPanic, HypTrace, ParsedLog, TRACE_HEADERS,
                       parse_log, split_line)

# The hypervisor's symbols are renamed with this prefix before the final link.
HYP_SYMBOL_PREFIX = "__kvm_nvhe_"

# What pyelftools raises on a truncated or corrupt ELF or DWARF.
# (pyelftools checks much of its input with assert statements.)
_CORRUPT_ELF_ERRORS = (ELFError, ELFParseError, DWARFError, ConstructError, struct.error,
                       ValueError, KeyError, IndexError, EOFError, UnicodeDecodeError,
                       OverflowError, AssertionError, OSError, MemoryError)

# --------------------------------------------------------------------------
# The ELF side: symbols (.symtab) and lines (.debug_line)


@dataclass(frozen=True)
class ElfSymbol:
    """A code symbol of the ELF, with every name it goes by."""

    name: str                 # the preferred name (a function over a label)
    names: tuple[str, ...]    # every symbol at this address
    address: int
    size: int                 # st_size, or ``span`` when st_size is 0
    span: int                 # up to the next symbol: what kallsyms calls the size

    def accepts_size(self, size: int) -> bool:
        return size in (self.size, self.span)


@dataclass(frozen=True)
class SourceLine:
    file: str
    line: int


class ElfSymbolizer:
    """Code symbols and DWARF line numbers of one AArch64 ELF (pyelftools)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._stream = path.open("rb")
        except FileNotFoundError:
            raise HarnessError(f"{path}: no such ELF file; pass the vmlinux that "
                               "printed the log with --elf") from None
        except IsADirectoryError:
            raise HarnessError(f"{path}: is a directory, not an ELF file") from None
        except OSError as err:
            raise HarnessError(f"{path}: cannot read the ELF ({err.strerror})") from None
        try:
            self._elf = ELFFile(self._stream)
            self._check_machine()
            self._check_section_bounds()
            self._code_ranges = self._load_code_ranges()
            self._symbols = self._load_symbols()
            self._lines = _LineTable(self._elf) if self._has_debug_line() else None
        except _CORRUPT_ELF_ERRORS as err:
            self.close()
            raise HarnessError(f"{path}: not a readable ELF file ({err}); pass an "
                               "AArch64 vmlinux with --elf") from None
        except HarnessError:
            self.close()
            raise
        self._addresses = [s.address for s in self._symbols]
        self._by_name: dict[str, list[ElfSymbol]] = {}
        for symbol in self._symbols:
            for name in symbol.names:
                self._by_name.setdefault(name, []).append(symbol)

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> ElfSymbolizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_line_info(self) -> bool:
        return self._lines is not None

    # -- loading

    def _check_machine(self) -> None:
        machine = self._elf["e_machine"]
        if machine != "EM_AARCH64":
            if isinstance(machine, int):
                machine = f"machine {machine}"
            raise HarnessError(f"{self.path}: an ELF for {machine}, not AArch64; pass "
                               "the arm64 vmlinux that printed the log with --elf")

    def _check_section_bounds(self) -> None:
        """Every section's bytes lie in the file (a truncated ELF fails here)."""
        file_size = self.path.stat().st_size
        for section in self._elf.iter_sections():
            if section["sh_type"] == "SHT_NOBITS":
                continue
            if section["sh_offset"] + section["sh_size"] > file_size:
                raise HarnessError(f"{self.path}: not a readable ELF file (section "
                                   f"{section.name or '?'} runs past the end of the file: "
                                   "truncated?); pass an AArch64 vmlinux with --elf")

    def _has_debug_line(self) -> bool:
        return any(self._elf.get_section_by_name(name) is not None
                   for name in (".debug_line", ".zdebug_line"))

    def _load_code_ranges(self) -> list[tuple[int, int, int]]:
        """(start, end, section index) of every allocated executable section."""
        ranges = []
        for index, section in enumerate(self._elf.iter_sections()):
            flags = section["sh_flags"]
            if flags & 0x2 and flags & 0x4 and section["sh_size"]:   # SHF_ALLOC, SHF_EXECINSTR
                start = section["sh_addr"]
                ranges.append((start, start + section["sh_size"], index))
        return sorted(ranges)

    def _load_symbols(self) -> list[ElfSymbol]:
        symtab = self._elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise HarnessError(f"{self.path}: has no symbol table (.symtab), so it "
                               "cannot symbolize; pass the unstripped vmlinux with --elf")
        code_sections = {index: end for _, end, index in self._code_ranges}
        by_address: dict[int, list[_SymbolCandidate]] = {}
        for symbol in symtab.iter_symbols():
            kind = symbol["st_info"]["type"]
            shndx = symbol["st_shndx"]
            if kind not in ("STT_FUNC", "STT_NOTYPE") or not isinstance(shndx, int):
                continue
            if shndx not in code_sections or not _is_kallsyms_name(symbol.name):
                continue
            by_address.setdefault(symbol["st_value"], []).append(_SymbolCandidate(
                name=symbol.name, is_function=kind == "STT_FUNC",
                is_global=symbol["st_info"]["bind"] == "STB_GLOBAL",
                size=symbol["st_size"], section_end=code_sections[shndx]))
        addresses = sorted(by_address)
        symbols = []
        for i, address in enumerate(addresses):
            candidates = sorted(by_address[address], key=_SymbolCandidate.preference)
            best = candidates[0]
            next_address = addresses[i + 1] if i + 1 < len(addresses) else best.section_end
            span = min(next_address, best.section_end) - address
            symbols.append(ElfSymbol(name=best.name, names=tuple(c.name for c in candidates),
                                     address=address, size=best.size or span, span=span))
        return symbols

    # -- queries

    def in_code(self, address: int) -> bool:
        """Whether ``address`` lies in an executable section of the ELF."""
        i = bisect.bisect_right(self._code_ranges, (address, float("inf"), 0)) - 1
        return i >= 0 and self._code_ranges[i][0] <= address < self._code_ranges[i][1]

    def symbol_containing(self, address: int) -> ElfSymbol | None:
        """The code symbol whose extent holds ``address`` (kallsyms' view)."""
        if not self.in_code(address):
            return None
        i = bisect.bisect_right(self._addresses, address) - 1
        if i < 0:
            return None
        symbol = self._symbols[i]
        if address >= symbol.address + max(symbol.size, symbol.span):
            return None
        return symbol

    def symbols_named(self, name: str) -> list[ElfSymbol]:
        return self._by_name.get(name, [])

    def source_line(self, address: int) -> SourceLine | None:
        """file:line of the instruction at ``address`` from .debug_line."""
        if self._lines is None:
            return None
        try:
            return self._lines.lookup(address)
        except _CORRUPT_ELF_ERRORS as err:
            raise HarnessError(f"{self.path}: corrupt DWARF line table ({err}); "
                               "rebuild the vmlinux with -g") from None


@dataclass(frozen=True)
class _SymbolCandidate:
    """One .symtab entry while the symbols at an address are ranked."""

    name: str
    is_function: bool
    is_global: bool
    size: int
    section_end: int

    def preference(self) -> tuple[bool, bool, bool, str]:
        """Sort key: a sized global function first, then by name."""
        return (not self.is_function, not self.is_global, self.size == 0, self.name)


def _is_kallsyms_name(name: str) -> bool:
    """Not a mapping symbol ($x, $d) or local label (.L), hyp-prefixed or not."""
    bare = name.removeprefix(HYP_SYMBOL_PREFIX)
    return bool(bare) and not bare.startswith(("$", ".L"))


class _LineTable:
    """Address -> file:line from .debug_line, one compile unit at a time.

    Like addr2line: each row covers up to the next row's address, and of
    several rows at one address the last one counts.
    """

    def __init__(self, elf: ELFFile) -> None:
        self._dwarf = elf.get_dwarf_info()
        self._aranges = self._dwarf.get_aranges()
        self._by_cu: dict[int, tuple[list[int], list[tuple[int, str, int]]]] = {}
        self._all_cus: list[int] | None = None

    def lookup(self, address: int) -> SourceLine | None:
        cu_offset = self._aranges.cu_offset_at_addr(address) if self._aranges else None
        candidates = [cu_offset] if cu_offset is not None else self._every_cu()
        for offset in candidates:
            starts, rows = self._ranges_of(offset)
            i = bisect.bisect_right(starts, address) - 1
            if i >= 0 and address < rows[i][0]:
                _, file, line = rows[i]
                return SourceLine(file=file, line=line)
        return None

    def _every_cu(self) -> list[int]:
        if self._all_cus is None:
            self._all_cus = [cu.cu_offset for cu in self._dwarf.iter_CUs()]
        return self._all_cus

    def _ranges_of(self, cu_offset: int) -> tuple[list[int], list[tuple[int, str, int]]]:
        cached = self._by_cu.get(cu_offset)
        if cached is not None:
            return cached
        cu = self._dwarf.get_CU_at(cu_offset)
        program = self._dwarf.line_program_for_CU(cu)
        comp_dir_attr = cu.get_top_DIE().attributes.get("DW_AT_comp_dir")
        comp_dir = _text(comp_dir_attr.value) if comp_dir_attr else ""
        ranges: list[tuple[int, int, str, int]] = []
        if program is not None:
            names: dict[int, str] = {}
            sequence: list[Any] = []
            for entry in program.get_entries():
                state = entry.state
                if state is None:
                    continue
                if sequence and sequence[-1].address == state.address and not state.end_sequence:
                    sequence[-1] = state           # the last row at an address wins
                else:
                    sequence.append(state)
                if state.end_sequence:
                    for row, following in zip(sequence, sequence[1:]):
                        if row.address < following.address:
                            if row.file not in names:
                                names[row.file] = _file_name(program, row.file, comp_dir)
                            ranges.append((row.address, following.address,
                                           names[row.file], row.line))
                    sequence = []
        ranges.sort()
        result = ([r[0] for r in ranges], [(r[1], r[2], r[3]) for r in ranges])
        self._by_cu[cu_offset] = result
        return result


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


def _file_name(program: Any, index: int, comp_dir: str) -> str:
    """The full path of file ``index`` of a line program, as addr2line prints it."""
    header = program.header
    files, dirs = header["file_entry"], header["include_directory"]
    if header["version"] >= 5:           # 0-based; directory 0 is the compile dir
        entry = files[index]
        directory = _text(dirs[entry.dir_index]) if entry.dir_index < len(dirs) else comp_dir
    else:                                # 1-based; directory 0 is the compile dir
        entry = files[index - 1]
        directory = comp_dir if entry.dir_index == 0 else _text(dirs[entry.dir_index - 1])
    name = _text(entry.name)
    if posixpath.isabs(name):
        return name
    if not posixpath.isabs(directory):
        directory = posixpath.join(comp_dir, directory)
    return posixpath.join(directory, name)


# --------------------------------------------------------------------------
# Decoded records


@dataclass(frozen=True)
class ElfLocation:
    """What the ELF says about an address, in the kernel's ``%pB`` form."""

    function: str
    symbol_address: int
    offset: int
    size: int
    file: str | None = None
    line: int | None = None

    @property
    def printed(self) -> str:
        return f"{self.function}+{self.offset:#x}/{self.size:#x}"

    @property
    def source(self) -> str | None:
        return f"{self.file}:{self.line}" if self.file is not None else None


@dataclass(frozen=True)
class DecodedFrame:
    """A printed frame and, with an ELF, what the ELF says about it."""

    frame: Frame
    index: int | None                   # position in the trace; None: the panic line
    lookup_address: int | None = None   # the address looked up in the ELF
    elf: ElfLocation | None = None
    mismatch: str | None = None         # why the printed form disagrees with the ELF


# How a trace's printed addresses were looked up in the ELF: "as printed" (no
# ELF given), "link-time" (used as printed), "relocated" (shifted by a slide
# inferred from the printed symbols), "unmatched" (the ELF does not fit).
AddressMode = Literal["as printed", "link-time", "relocated", "unmatched"]


@dataclass(frozen=True)
class DecodedTrace:
    """One hyp call trace of the log, decoded."""

    number: int                          # 1-based, in log order
    trace: HypTrace
    frames: tuple[DecodedFrame, ...]
    panic_location: DecodedFrame | None = None   # the panic/BUG line's address
    address_mode: AddressMode = "as printed"
    slide: int = 0                       # printed address - ELF address
    duplicate_of: int | None = None      # number of an earlier trace with the same frames
    notes: tuple[str, ...] = ()

    @property
    def mismatches(self) -> tuple[DecodedFrame, ...]:
        located = [self.panic_location] if self.panic_location else []
        return tuple(f for f in [*located, *self.frames] if f.mismatch is not None)


# --------------------------------------------------------------------------
# Decoding


def decode_text(text: str, elf_path: str | Path | None = None) -> list[DecodedTrace]:
    """Every hyp call trace in ``text``; with ``elf_path``, checked against that ELF."""
    parsed = parse_log(text)
    if elf_path is None:
        return decode_parsed(parsed, None)
    with ElfSymbolizer(Path(elf_path)) as symbolizer:
        return decode_parsed(parsed, symbolizer)


def decode_parsed(parsed: ParsedLog, symbolizer: ElfSymbolizer | None) -> list[DecodedTrace]:
    """Decode every trace of an already parsed log (``symbolizer``: optional ELF)."""
    decoded: list[DecodedTrace] = []
    first_with: dict[tuple[Any, ...], int] = {}    # fingerprint -> trace number
    for number, trace in enumerate(parsed.traces, start=1):
        fingerprint = _fingerprint(trace)
        duplicate_of = first_with.get(fingerprint)
        if duplicate_of is None:
            first_with[fingerprint] = number
        decoded.append(_decode_trace(number, trace, symbolizer, duplicate_of))
    return decoded


def _fingerprint(trace: HypTrace) -> tuple[Any, ...]:
    panic = trace.panic
    return (trace.kind,
            None if panic is None else (panic.kind, panic.address, panic.file, panic.file_line),
            tuple((f.address, f.symbolic) for f in trace.frames),
            tuple(e.after_frames for e in trace.elisions))


def _decode_trace(number: int, trace: HypTrace, symbolizer: ElfSymbolizer | None,
                  duplicate_of: int | None) -> DecodedTrace:
    panic_frame = trace.panic.location if trace.panic else None
    if symbolizer is None:
        return DecodedTrace(
            number=number, trace=trace,
            frames=tuple(DecodedFrame(frame=f, index=i) for i, f in enumerate(trace.frames)),
            panic_location=DecodedFrame(frame=panic_frame, index=None) if panic_frame else None,
            duplicate_of=duplicate_of)
    mode, slide, note = _address_mapping(trace, symbolizer)
    frames = tuple(_decode_frame(f, i, symbolizer, slide) for i, f in enumerate(trace.frames))
    panic_location = (_decode_frame(panic_frame, None, symbolizer, slide)
                      if panic_frame and panic_frame.address is not None else None)
    return DecodedTrace(number=number, trace=trace, frames=frames,
                        panic_location=panic_location, address_mode=mode, slide=slide,
                        duplicate_of=duplicate_of, notes=(note,))


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
    symbol = symbolizer.symbol_containing(address - 1)
    if index is None:
        # The panic line's address is the faulting instruction: kernels
        # render it with %pB, this project's firmware with %pS (exact). The
        # two differ only on a function's first instruction; accept either.
        exact = symbolizer.symbol_containing(address)
        if exact is not None and frame.symbol in exact.names \
                and frame.offset == address - exact.address:
            symbol = exact
    if symbol is None:
        mismatch = (None if frame.symbol is None else
                    f"printed {frame.symbolic}, but the ELF has no function at {address:#x}")
        return DecodedFrame(frame=frame, index=index, lookup_address=address, mismatch=mismatch)
    # A frame's address is a return address (look at the call, addr - 1); the
    # panic line's is the faulting instruction itself.
    source = symbolizer.source_line(address - 1 if index is not None else address)
    location = ElfLocation(function=symbol.name, symbol_address=symbol.address,
                           offset=address - symbol.address, size=symbol.size,
                           file=source.file if source else None,
                           line=source.line if source else None)
    agrees = (frame.symbol in symbol.names and frame.offset == location.offset
              and frame.size is not None and symbol.accepts_size(frame.size))
    mismatch = None
    if not agrees:
        printed = "no symbol" if frame.symbol is None else frame.symbolic
        mismatch = f"printed {printed}, ELF has {location.printed}"
    return DecodedFrame(frame=frame, index=index, lookup_address=address,
                        elf=location, mismatch=mismatch)


# --------------------------------------------------------------------------
# Text output

_TRACE_TITLES = {kind: header.rstrip(":") for kind, header in TRACE_HEADERS.items()}


def format_text(traces: list[DecodedTrace], *, elf_path: str | Path | None = None) -> str:
    """A human-readable report of decoded traces (ends with a summary line)."""
    blocks = [_trace_text(t, len(traces)) for t in traces]
    blocks.append(_summary(traces, elf_path))
    return "\n\n".join(blocks) + "\n"


def _trace_text(decoded: DecodedTrace, total: int) -> str:
    trace = decoded.trace
    quoted = f", quoted (depth {trace.quote_depth})" if trace.quote_depth else ""
    end = (f"footer at line {trace.footer_line}" if trace.footer
           else "no footer: cut off after line " + str(trace.last_line))
    counts = f"{len(trace.frames)} frame{'s' if len(trace.frames) != 1 else ''}"
    if trace.elisions:
        counts += f", {len(trace.elisions)} elision{'s' if len(trace.elisions) != 1 else ''}"
    lines = [f"Trace {decoded.number} of {total}, line {trace.line_number}{quoted}: "
             f"{_TRACE_TITLES[trace.kind]} ({counts}, {end})"]
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


def _panic_text(panic: HypPanic, decoded: DecodedFrame | None) -> str:
    head = f"line {panic.line_number}: "
    if panic.kind == "invalid":
        return head + "Invalid host exception to nVHE hyp"
    if panic.kind == "bug-file":
        return head + f"nVHE hyp BUG at {panic.file}:{panic.file_line}"
    what = "panic" if panic.kind == "panic" else "BUG"
    location = panic.location
    assert location is not None
    text = head + f"nVHE hyp {what} at [<{location.address:016x}>] {location.symbolic}"
    return text + (_elf_suffix(decoded) if decoded else "")


def _frame_text(decoded: DecodedFrame) -> str:
    frame = decoded.frame
    address = f"{frame.address:016x}" if frame.address is not None else "?" * 16
    return (f"  #{decoded.index:<3} line {frame.line_number:<6} [<{address}>] "
            f"{frame.symbolic}{_elf_suffix(decoded)}")


def _elf_suffix(decoded: DecodedFrame) -> str:
    elf = decoded.elf
    where = f" ({elf.source})" if elf is not None and elf.source else ""
    if decoded.mismatch is not None:
        return f"  MISMATCH: {decoded.mismatch}{where}"
    return f"  at {elf.source}" if elf is not None and elf.source else ""


def _elision_text(elision: Elision) -> str:
    dots = split_line(elision.line_number, elision.raw).text.strip()
    return f"       line {elision.line_number:<6} {dots}  (frames left out in the log)"


def _summary(traces: list[DecodedTrace], elf_path: str | Path | None) -> str:
    copies = sum(1 for t in traces if t.duplicate_of is not None)
    text = f"{len(traces)} trace{'s' if len(traces) != 1 else ''}"
    if copies:
        text += f" ({copies} repeat{'s' if copies != 1 else ''} of an earlier one)"
    if elf_path is not None:
        bad = sum(len(t.mismatches) for t in traces)
        name = Path(elf_path).name
        text += (f"; {bad} printed location{'s disagree' if bad != 1 else ' disagrees'} "
                 f"with {name}"
                 if bad else f"; every printed location agrees with {name}")
    return text + "."


# --------------------------------------------------------------------------
# JSON output (and back, for tools that store it)


def format_json(traces: list[DecodedTrace], *, source: str | None = None,
                elf_path: str | Path | None = None) -> str:
    document = {
        "source": source,
        "elf": str(elf_path) if elf_path is not None else None,
        "traces": [_trace_to_json(t) for t in traces],
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
        "footer": trace.footer,
        "footer_line": trace.footer_line,
        "footer_raw": trace.footer_raw,
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
        "printed": frame.symbolic,
        "lookup_address": _hex(decoded.lookup_address),
        "elf": None if elf is None else {
            "function": elf.function, "symbol_address": _hex(elf.symbol_address),
            "offset": elf.offset, "size": elf.size, "printed": elf.printed,
            "file": elf.file, "line": elf.line},
        "mismatch": decoded.mismatch,
    }


def _decoded_frame_from_json(data: dict[str, Any]) -> DecodedFrame:
    frame = Frame(address=_unhex(data["address"]), symbol=data["symbol"],
                  offset=data["offset"], size=data["size"], raw=data["raw"],
                  line_number=data["line"], module=data["module"])
    elf_data = data["elf"]
    elf = None if elf_data is None else ElfLocation(
        function=elf_data["function"], symbol_address=int(elf_data["symbol_address"], 16),
        offset=elf_data["offset"], size=elf_data["size"], file=elf_data["file"],
        line=elf_data["line"])
    return DecodedFrame(frame=frame, index=data["index"],
                        lookup_address=_unhex(data["lookup_address"]), elf=elf,
                        mismatch=data["mismatch"])


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
        hyp_offset=_unhex(data["hyp_offset"]), panic=panic,
        quote_depth=data["quote_depth"])
    return DecodedTrace(number=data["number"], trace=trace, frames=frames,
                        panic_location=panic_location, address_mode=data["address_mode"],
                        slide=int(data["slide"], 16), duplicate_of=data["duplicate_of"],
                        notes=tuple(data["notes"]))


# --------------------------------------------------------------------------
# Command line


def read_log(source: str | None) -> tuple[str, str]:
    """(text, name) of the log at ``source``; ``-`` or None reads stdin."""
    if source is None or source == "-":
        stdin = sys.stdin
        if stdin is None or (source is None and stdin.isatty()):
            raise HarnessError("no log to decode: give a log file, or `-` and pipe "
                               "the log into stdin")
        data = stdin.buffer.read()
        name = "<stdin>"
    else:
        path = Path(source)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise HarnessError(f"{path}: no such file; give the kernel log to decode "
                               "(or `-` to read stdin)") from None
        except IsADirectoryError:
            raise HarnessError(f"{path}: is a directory; give the kernel log file to "
                               "decode") from None
        except OSError as err:
            raise HarnessError(f"{path}: cannot read the log ({err.strerror})") from None
        name = str(path)
    return data.decode("utf-8", errors="replace"), name


def _explain_nothing_found(parsed: ParsedLog, name: str) -> str:
    message = f"no nVHE hyp call trace found in {name}"
    cannot = [p.cannot_dump for p in parsed if p.cannot_dump is not None]
    panics = [p.panic for p in parsed if p.panic is not None]
    if cannot:
        message += (f"; line {cannot[0].line_number} says the kernel could not dump it "
                    f"({cannot[0].reason})")
    elif panics:
        message += f"; there is a hyp panic line at line {panics[0].line_number} but no trace"
    return message


def run_decode(args: argparse.Namespace) -> int:
    """The ``decode`` subcommand: 0 decoded, 1 nothing found or a mismatch, 2 bad input."""
    text, name = read_log(args.log)
    symbolizer = ElfSymbolizer(args.elf) if args.elf is not None else None
    try:
        parsed = parse_log(text)
        traces = decode_parsed(parsed, symbolizer)
        if symbolizer is not None and not symbolizer.has_line_info:
            print(f"pyharness decode: {args.elf} has no DWARF line table; file:line left "
                  "out (build with -g)", file=sys.stderr)
    finally:
        if symbolizer is not None:
            symbolizer.close()
    if args.json:
        sys.stdout.write(format_json(traces, source=name, elf_path=args.elf))
    elif traces:
        sys.stdout.write(format_text(traces, elf_path=args.elf))
    if not traces:
        print(f"pyharness decode: {_explain_nothing_found(parsed, name)}", file=sys.stderr)
        return EXIT_CHECK_FAILED
    if any(t.mismatches for t in traces):
        return EXIT_CHECK_FAILED
    return EXIT_OK


def configure_decode_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--elf", type=Path, default=None, metavar="VMLINUX",
                        help="re-symbolize every address from this ELF (symbols and "
                             "DWARF file:line) and flag printed locations that disagree")
    parser.add_argument("--json", action="store_true",
                        help="print JSON (one object per trace) instead of text")
    parser.add_argument("log", nargs="?", default=None, metavar="LOG",
                        help="the kernel log, console capture or mail thread; "
                             "`-` (or nothing, with a pipe) reads stdin")
    parser.set_defaults(handler=run_decode)


_DECODE_HELP = "decode the nVHE hyp call traces of a kernel log"
_DECODE_DESCRIPTION = (
    "Find every nVHE hyp call trace in a kernel log (v5 `Protected/Non-protected nVHE "
    "HYP call trace:` and mainline `nVHE call trace:` wordings, with timestamps, caller "
    "ids and mail quoting) and print each frame by frame. With --elf, check every "
    "printed symbol+offset/size against the ELF and give file:line.")
_DECODE_EPILOG = ("Exit codes: 0 traces decoded (and with --elf all agree), 1 no trace "
                  "found or a printed location disagrees with the ELF, 2 bad input.")


def add_decode_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``decode`` on the ``pyharness`` command line."""
    parser = subparsers.add_parser("decode", help=_DECODE_HELP,
                                   description=_DECODE_DESCRIPTION, epilog=_DECODE_EPILOG)
    configure_decode_parser(parser)


def main(argv: Iterable[str] | None = None) -> int:
    """``python -m pyharness.decode``: the same as ``pyharness decode``."""
    from .cli import main as cli_main

    return cli_main(["decode", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
