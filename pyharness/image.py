"""Loading the firmware's vmlinux ELF (pyelftools).

:func:`load_image` returns an :class:`Image`: the PT_LOAD segments, the
symbols (sorted, with an address -> symbol+offset lookup), the dynamic
relocations needed to run the image at its link address plus a KASLR
offset, and the platform :class:`~pyharness.layout.Layout` record. Parsed
images are cached per process, keyed on (path, size, mtime_ns), so a
matrix never parses the same ELF twice.

Anything that is not one of this project's images (another architecture,
not an ELF, no layout record) or a damaged one raises :class:`ImageError`
with one message: what is wrong, with which file, and how to fix it.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from elftools.common.exceptions import ELFError, ELFParseError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from .errors import HarnessError
from .layout import LAYOUT_SECTION, Layout, LayoutError

MASK64 = (1 << 64) - 1

R_AARCH64_NONE = 0
R_AARCH64_ABS64 = 257
R_AARCH64_RELATIVE = 1027

SHF_ALLOC = 0x2
SHT_RELR = 19

HYP_SYMBOL_PREFIX = "__kvm_nvhe_"

# What pyelftools raises on a truncated or corrupt file.
_CORRUPT_ELF_ERRORS = (ELFError, ELFParseError, ConstructError, struct.error, ValueError,
                       KeyError, IndexError, EOFError, UnicodeDecodeError, OverflowError)

# Assembler mapping symbols ($x, $d, with or without the hyp prefix) and
# local labels name no code of their own.
_NOT_A_SYMBOL = re.compile(r"^(?:%s)?(?:\$[xd](?:\..*)?|\.L.*)$" % HYP_SYMBOL_PREFIX)

_REBUILD_HINT = "rebuild it with `pyharness build`"


class ImageError(HarnessError):
    """The ELF cannot be used as a firmware image (exit 2 from the CLI)."""


@dataclass(frozen=True)
class Segment:
    """A PT_LOAD segment at its link-time address."""

    vaddr: int
    memsz: int
    data: bytes  # the file bytes; memsz - len(data) zero bytes follow
    flags: int   # PF_X = 1, PF_W = 2, PF_R = 4

    @property
    def end(self) -> int:
        return self.vaddr + self.memsz


@dataclass(frozen=True)
class Symbol:
    """An ELF symbol at its link-time address.

    ``size`` is ``st_size``; ``span`` is the distance to the next symbol in
    the lookup table (what kallsyms reports as a symbol's size), zero for
    symbols that are not in that table.
    """

    name: str
    address: int
    size: int
    kind: str  # "func", "object" or "notype"
    is_global: bool
    span: int = 0

    @property
    def is_hyp(self) -> bool:
        return self.name.startswith(HYP_SYMBOL_PREFIX)


@dataclass(frozen=True)
class SymbolHit:
    """The symbol an address falls in, and how far into it."""

    symbol: Symbol
    offset: int

    def __str__(self) -> str:
        return f"{self.symbol.name}+{self.offset:#x}"


@dataclass(frozen=True)
class Relocation:
    """One 64-bit word to patch when the image is placed.

    At run time the word at ``offset + kaslr`` holds ``value + kaslr`` when
    ``shifts`` (R_AARCH64_RELATIVE, or ABS64 against a symbol of the image)
    and ``value`` otherwise (ABS64 against an absolute symbol).
    """

    offset: int
    value: int
    shifts: bool


class Image:
    """A parsed firmware image. Build it with :func:`load_image`."""

    def __init__(self, path: Path, layout: Layout, segments: tuple[Segment, ...],
                 symbols: tuple[Symbol, ...], relocations: tuple[Relocation, ...]) -> None:
        self.path = path
        self.layout = layout
        self.segments = segments
        self.relocations = relocations
        self._by_name: dict[str, Symbol] = {}
        for sym in symbols:
            known = self._by_name.get(sym.name)
            if known is None or (sym.is_global and not known.is_global):
                self._by_name[sym.name] = sym
        self.link_base = layout.kimage_vaddr
        end = max(seg.end for seg in segments)
        if "_end" in self._by_name:
            end = max(end, self._by_name["_end"].address)
        page = layout.page_size
        self.link_end = (end + page - 1) // page * page
        self._table = _lookup_table(s for s in symbols if self.contains(s.address))
        self._table_addresses = [s.address for s in self._table]
        with_span = {(s.name, s.address): s for s in self._table}
        self.symbols = tuple(sorted((with_span.get((s.name, s.address), s) for s in symbols),
                                    key=lambda s: (s.address, s.name)))
        self._pristine = self._assemble()
        self._placed: dict[int, bytes] = {}

    def __repr__(self) -> str:
        return f"Image({str(self.path)!r})"

    # -- symbols ---------------------------------------------------------

    def find_symbol(self, name: str) -> Symbol | None:
        return self._by_name.get(name)

    def symbol(self, name: str) -> Symbol:
        """The symbol called ``name``; :class:`ImageError` if there is none."""
        sym = self._by_name.get(name)
        if sym is None:
            raise ImageError(f"{self.path}: no symbol {name!r} in the image; "
                             f"{_REBUILD_HINT} from this project's sources")
        return sym

    def address_of(self, name: str) -> int:
        return self.symbol(name).address

    def lookup(self, address: int) -> SymbolHit | None:
        """The function/object/label a link-time address falls in, or None."""
        i = bisect.bisect_right(self._table_addresses, address) - 1
        if i < 0:
            return None
        sym = self._table[i]
        if address >= sym.address + max(sym.size, sym.span):
            return None
        return SymbolHit(sym, address - sym.address)

    def describe(self, address: int) -> str:
        """``sym+0xoff`` for a link-time address, or the bare hex."""
        hit = self.lookup(address)
        return str(hit) if hit else f"{address:#x}"

    # -- placement -------------------------------------------------------

    def contains(self, link_address: int) -> bool:
        return self.link_base <= link_address < self.link_end

    def percpu_area(self, side: str) -> tuple[int, int]:
        """(link-time start, stride) of the ``"hyp"`` or ``"host"`` per-CPU
        area: NR_CPUS equal copies between ``__{side}_percpu_start`` and
        ``__{side}_percpu_end``."""
        start = self.address_of(f"__{side}_percpu_start")
        span = self.address_of(f"__{side}_percpu_end") - start
        nr_cpus = self.layout.nr_cpus
        if span <= 0 or span % nr_cpus:
            raise ImageError(f"{self.path}: __{side}_percpu_end - __{side}_percpu_start = "
                             f"{span:#x} is not NR_CPUS ({nr_cpus}) equal copies; fix the "
                             "linker script")
        return start, span // nr_cpus

    def phys_address(self, link_address: int) -> int:
        """Where a link-time image address lives in physical memory."""
        return self.layout.image_phys_base + (link_address - self.link_base)

    def kaslr_offset(self, seed: int) -> int:
        """The run's KASLR offset: a seeded multiple of ``kaslr_align`` below
        ``kaslr_max``, or zero when the image was built without
        CONFIG_RANDOMIZE_BASE. The same seed always gives the same offset,
        whatever the Python version."""
        layout = self.layout
        if not layout.randomize_base:
            return 0
        slots = layout.kaslr_max // layout.kaslr_align
        digest = hashlib.sha256(f"nvhe-lab kaslr {seed}".encode()).digest()
        return int.from_bytes(digest[:8], "little") % slots * layout.kaslr_align

    def memory_image(self, kaslr_offset: int) -> bytes:
        """The bytes from ``_text`` to ``_end`` (page-rounded) as they sit in
        RAM for a run at ``kaslr_offset``: segments copied, relocations
        applied. Placed images are cached per offset."""
        placed = self._placed.get(kaslr_offset)
        if placed is None:
            buf = bytearray(self._pristine)
            for rel in self.relocations:
                value = rel.value + kaslr_offset if rel.shifts else rel.value
                struct.pack_into("<Q", buf, rel.offset - self.link_base, value & MASK64)
            placed = bytes(buf)
            if len(self._placed) >= 8:
                self._placed.clear()
            self._placed[kaslr_offset] = placed
        return placed

    def _assemble(self) -> bytes:
        buf = bytearray(self.link_end - self.link_base)
        for seg in self.segments:
            start = seg.vaddr - self.link_base
            buf[start:start + len(seg.data)] = seg.data
        return bytes(buf)


# ---------------------------------------------------------------------------
# Loading and the per-process cache

_cache: dict[tuple[str, int, int], Image] = {}
_cache_lock = threading.Lock()


def load_image(path: str | os.PathLike[str]) -> Image:
    """Parse ``path`` (once per process and file version) into an :class:`Image`."""
    path = Path(path)
    try:
        real = path.resolve(strict=True)
        st = real.stat()
    except FileNotFoundError:
        raise ImageError(f"{path}: no such file; build an image with `pyharness build` "
                         "and pass the vmlinux it reports") from None
    except OSError as exc:
        raise ImageError(f"{path}: cannot read it ({exc.strerror}); check the path "
                         "and its permissions") from None
    if not real.is_file():
        raise ImageError(f"{path}: not a regular file; pass the vmlinux ELF itself")
    key = (str(real), st.st_size, st.st_mtime_ns)
    with _cache_lock:
        image = _cache.get(key)
        if image is None:
            image = _parse(path, real)
            _cache[key] = image
    return image


def clear_image_cache() -> None:
    with _cache_lock:
        _cache.clear()


def _parse(shown: Path, real: Path) -> Image:
    try:
        data = real.read_bytes()
    except OSError as exc:
        raise ImageError(f"{shown}: cannot read it ({exc.strerror}); check the path "
                         "and its permissions") from None
    if data[:4] != b"\x7fELF":
        raise ImageError(f"{shown}: not an ELF file; pass the vmlinux built by "
                         "`pyharness build`")
    try:
        elf = ELFFile(io.BytesIO(data))
        machine = elf["e_machine"]
        if machine != "EM_AARCH64" or elf.elfclass != 64 or not elf.little_endian:
            raise ImageError(f"{shown}: an ELF for {machine} ({elf.elfclass}-bit), not "
                             "little-endian AArch64; pass the vmlinux built by "
                             "`pyharness build`")
        _check_extents(shown, elf, len(data))
        layout = _read_layout(shown, elf)
        segments = _read_segments(shown, elf, layout)
        symbols = _read_symbols(shown, elf)
        relocations = _read_relocations(shown, elf)
    except ImageError:
        raise
    except _CORRUPT_ELF_ERRORS as exc:
        raise ImageError(f"{shown}: a damaged or truncated ELF ({type(exc).__name__}: "
                         f"{exc}); {_REBUILD_HINT}") from None
    image = Image(shown, layout, segments, symbols, relocations)
    _check_placement(shown, image)
    return image


def _check_extents(shown: Path, elf: ELFFile, file_size: int) -> None:
    """Catch truncation up front: every header and every byte of file data
    a segment or section claims must be inside the file."""
    hdr = elf.header
    tables = ((hdr["e_phoff"], hdr["e_phnum"] * hdr["e_phentsize"], "program headers"),
              (hdr["e_shoff"], hdr["e_shnum"] * hdr["e_shentsize"], "section headers"))
    for offset, size, what in tables:
        if offset + size > file_size:
            _truncated(shown, what, offset + size, file_size)
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_LOAD" and seg["p_offset"] + seg["p_filesz"] > file_size:
            _truncated(shown, "a PT_LOAD segment", seg["p_offset"] + seg["p_filesz"],
                       file_size)
    for sec in elf.iter_sections():
        if sec["sh_type"] != "SHT_NOBITS" and sec["sh_offset"] + sec["sh_size"] > file_size:
            _truncated(shown, f"section {sec.name or '#?'}",
                       sec["sh_offset"] + sec["sh_size"], file_size)


def _truncated(shown: Path, what: str, needed: int, size: int) -> None:
    raise ImageError(f"{shown}: truncated ELF: {what} end at byte {needed:#x} but the "
                     f"file has {size:#x} bytes; {_REBUILD_HINT}")


def _read_layout(shown: Path, elf: ELFFile) -> Layout:
    section = elf.get_section_by_name(LAYOUT_SECTION)
    if section is None:
        raise ImageError(f"{shown}: no {LAYOUT_SECTION} section, so not an image of this "
                         "project (docs/platform.md, \"Layout record\"); pass the vmlinux "
                         "built by `pyharness build`")
    try:
        return Layout.from_bytes(section.data())
    except LayoutError as exc:
        raise ImageError(f"{shown}: bad {LAYOUT_SECTION} record: {exc}; the image and "
                         f"the harness disagree on csrc/include/platform.h, "
                         f"{_REBUILD_HINT}") from None


def _read_segments(shown: Path, elf: ELFFile, layout: Layout) -> tuple[Segment, ...]:
    segments = []
    for seg in elf.iter_segments():
        if seg["p_type"] != "PT_LOAD" or seg["p_memsz"] == 0:
            continue
        segments.append(Segment(seg["p_vaddr"], seg["p_memsz"], seg.data(), seg["p_flags"]))
    if not segments:
        raise ImageError(f"{shown}: no PT_LOAD segment, nothing to run; {_REBUILD_HINT}")
    segments.sort(key=lambda s: s.vaddr)
    return tuple(segments)


def _read_symbols(shown: Path, elf: ELFFile) -> tuple[Symbol, ...]:
    symtab = elf.get_section_by_name(".symtab")
    if symtab is None:
        raise ImageError(f"{shown}: no symbol table (.symtab), the image was stripped; "
                         "use the unstripped vmlinux")
    symbols = []
    for sym in symtab.iter_symbols():
        kind = {"STT_FUNC": "func", "STT_OBJECT": "object", "STT_NOTYPE": "notype"}.get(
            sym["st_info"]["type"])
        if kind is None or not sym.name or sym["st_shndx"] == "SHN_UNDEF":
            continue
        if kind == "notype" and _NOT_A_SYMBOL.match(sym.name):
            continue
        symbols.append(Symbol(sym.name, sym["st_value"], sym["st_size"], kind,
                              sym["st_info"]["bind"] == "STB_GLOBAL"))
    return tuple(symbols)


def _lookup_table(symbols: Iterable[Symbol]) -> list[Symbol]:
    """One symbol per address for address -> symbol lookups, each with its
    span to the next. At a shared address a function beats an object beats
    a label; then a plain name beats a ``__kvm_nvhe_`` one (the linker
    script's aliases that let hyp code name host symbols); then a global
    beats a local; then the name decides."""
    rank = {"func": 0, "object": 1, "notype": 2}
    best: dict[int, Symbol] = {}
    for sym in symbols:
        known = best.get(sym.address)
        key = (rank[sym.kind], sym.is_hyp, not sym.is_global, sym.name)
        if known is None or key < (rank[known.kind], known.is_hyp, not known.is_global,
                                    known.name):
            best[sym.address] = sym
    ordered = [best[a] for a in sorted(best)]
    table = []
    for sym, nxt in zip(ordered, ordered[1:] + [None]):
        span = nxt.address - sym.address if nxt is not None else sym.size
        table.append(Symbol(sym.name, sym.address, sym.size, sym.kind, sym.is_global, span))
    return table


def _read_relocations(shown: Path, elf: ELFFile) -> tuple[Relocation, ...]:
    relocations = []
    for section in elf.iter_sections():
        if not section["sh_flags"] & SHF_ALLOC:
            continue  # static relocations (ld -q) are not applied at run time
        if section["sh_type"] == SHT_RELR or section["sh_type"] == "SHT_RELR" \
                or section.name == ".relr.dyn":
            raise ImageError(f"{shown}: packed RELR relocations ({section.name}) are not "
                             "supported; link without -z pack-relative-relocs")
        if not isinstance(section, RelocationSection):
            continue
        if not section.is_RELA():
            raise ImageError(f"{shown}: REL relocations in {section.name}; AArch64 images "
                             "use RELA, link with the project's linker script")
        symtab = elf.get_section(section["sh_link"]) if section["sh_link"] else None
        for rel in section.iter_relocations():
            kind = rel["r_info_type"]
            offset, addend = rel["r_offset"], rel["r_addend"]
            if kind == R_AARCH64_NONE:
                continue
            if kind == R_AARCH64_RELATIVE:
                relocations.append(Relocation(offset, addend & MASK64, True))
            elif kind == R_AARCH64_ABS64:
                relocations.append(_abs64(shown, section.name, symtab, rel["r_info_sym"],
                                          offset, addend))
            else:
                raise ImageError(f"{shown}: relocation type {kind} at {offset:#x} in "
                                 f"{section.name} is not supported (only "
                                 "R_AARCH64_RELATIVE and R_AARCH64_ABS64 are); link with "
                                 "-pie and build the objects without -fPIC/GOT references")
    return tuple(relocations)


def _abs64(shown: Path, where: str, symtab, index: int, offset: int,
           addend: int) -> Relocation:
    if symtab is None or index == 0:
        return Relocation(offset, addend & MASK64, False)
    sym = symtab.get_symbol(index)
    if sym["st_shndx"] == "SHN_UNDEF":
        if sym["st_info"]["bind"] == "STB_WEAK":
            return Relocation(offset, addend & MASK64, False)
        raise ImageError(f"{shown}: R_AARCH64_ABS64 at {offset:#x} in {where} refers to "
                         f"undefined symbol {sym.name!r}; the image must be self-contained")
    shifts = sym["st_shndx"] != "SHN_ABS"
    return Relocation(offset, (sym["st_value"] + addend) & MASK64, shifts)


def _check_placement(shown: Path, image: Image) -> None:
    layout = image.layout
    text = image.find_symbol("_text")
    if text is not None and text.address != layout.kimage_vaddr:
        raise ImageError(f"{shown}: _text is at {text.address:#x} but the layout record "
                         f"says KIMAGE_VADDR is {layout.kimage_vaddr:#x}; {_REBUILD_HINT}")
    for seg in image.segments:
        if seg.vaddr < image.link_base:
            raise ImageError(f"{shown}: a PT_LOAD segment starts at {seg.vaddr:#x}, below "
                             f"KIMAGE_VADDR {image.link_base:#x}; link the image at "
                             "KIMAGE_VADDR")
    room = layout.phys_ram_size - layout.image_phys_offset
    if image.link_end - image.link_base > room:
        raise ImageError(f"{shown}: the image spans {image.link_end - image.link_base:#x} "
                         f"bytes but only {room:#x} of RAM are available after "
                         "IMAGE_PHYS_OFFSET; make it smaller")
    for rel in image.relocations:
        if not image.link_base <= rel.offset <= image.link_end - 8:
            raise ImageError(f"{shown}: a relocation patches {rel.offset:#x}, outside the "
                             f"image [{image.link_base:#x}, {image.link_end:#x}); "
                             f"{_REBUILD_HINT}")
