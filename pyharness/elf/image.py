"""Loading the firmware's vmlinux ELF (pyelftools).

:func:`load_image` returns an :class:`Image`: the PT_LOAD segments, the
symbols (sorted, with an address -> symbol+offset lookup), the dynamic
relocations needed to run the image at its link address plus a KASLR
offset, the platform :class:`~pyharness.elf.layout.Layout` record, which
nVHE unwinder the image carries (``Image.unwinder``) and the sizes of its
stacks and trace buffer (``Image.stack_sizes``). Parsed
images are cached per process, keyed on (path, size, mtime_ns), so a
matrix never parses the same ELF twice.

Anything that is not one of this project's images (another architecture,
not an ELF, no layout record) or a damaged one raises :class:`ImageError`
with one message: what is wrong, with which file, and how to fix it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from elftools.elf.relocation import RelocationSection

from pyharness.elf.layout import LAYOUT_SECTION, Layout, LayoutError
from pyharness.elf.stack_sizes import KERNEL_NUMBERS_SECTION, StackSizes, StackSizesError
from pyharness.elf.reader import CORRUPT_ELF_ERRORS, ElfReader, ElfReadError
from pyharness.elf.symbols import FunctionTable, KallsymsTable, Symbol, SymbolHit, SymbolTable

MASK64 = (1 << 64) - 1

R_AARCH64_NONE = 0
R_AARCH64_ABS64 = 257
R_AARCH64_RELATIVE = 1027

SHF_ALLOC = 0x2
SHT_RELR = 19

_REBUILD_HINT = "rebuild it with `pyharness build`"

# Which nVHE unwinder an image carries (csrc/host/unwinder.c): a
# NUL-terminated "lab" or "linux-<generation>" in a non-allocated section.
# Images from before the section existed carry the lab's.
UNWINDER_SECTION = ".nvhe_unwinder"
LAB_UNWINDER = "lab"
_UNWINDER_NAME = re.compile(r"lab|linux-\d+\.(?:\d+|x)")


class ImageError(ElfReadError):
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
                 symbols: tuple[Symbol, ...], relocations: tuple[Relocation, ...],
                 unwinder: str = LAB_UNWINDER, stack_sizes: StackSizes | None = None) -> None:
        self.path = path
        self.layout = layout
        self._unwinder = unwinder
        # The sizes the stacks and buffer are meant to have (elf/stack_sizes.py).
        self.stack_sizes = stack_sizes or StackSizes.of_lab(layout)
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
        self._table = SymbolTable(s for s in symbols if self.contains(s.address))
        with_span = {(s.name, s.address): s for s in self._table}
        self.symbols = tuple(sorted((with_span.get((s.name, s.address), s) for s in symbols),
                                    key=lambda s: (s.address, s.name)))
        self._pristine = self._assemble()
        self._placed: dict[int, bytes] = {}

    def __repr__(self) -> str:
        return f"Image({str(self.path)!r})"

    @property
    def unwinder(self) -> str:
        """The nVHE unwinder built into the image: ``"lab"`` (the lab's own),
        or ``"linux-6.1"`` / ``"linux-6.12"`` / ``"linux-7.x"`` (a kernel
        tree's, built with ``--kernel-src``)."""
        return self._unwinder

    @property
    def kernel_generation(self) -> str | None:
        """The kernel generation of a tree's unwinder ("6.12"), None for the lab's."""
        return None if self._unwinder == LAB_UNWINDER else self._unwinder.removeprefix("linux-")

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
        return self._table.lookup(address)

    @functools.cached_property
    def functions(self) -> FunctionTable:
        """The sized functions: where each function's code is."""
        return FunctionTable(self.symbols)

    @functools.cached_property
    def kallsyms(self) -> KallsymsTable:
        """The code symbols as the kernel's kallsyms sees them, for the
        %pS/%pB renderings (sizes run to the next symbol)."""
        return KallsymsTable(self.symbols, self.address_of("_text"),
                             self.address_of("_etext"))

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
    hint = "pass the vmlinux built by `pyharness build`"
    try:
        reader = ElfReader.open(real, hint=hint)
        reader.path = shown
        layout = _read_layout(shown, reader)
        segments = _read_segments(shown, reader)
        symbols = tuple(Symbol.from_raw(s) for s in reader.symbols())
        relocations = _read_relocations(shown, reader.elf)
        unwinder = _read_unwinder(shown, reader)
        stack_sizes = _read_stack_sizes(shown, reader)
    except ImageError:
        raise
    except ElfReadError as exc:
        raise ImageError(str(exc).replace(str(real), str(shown), 1)) from None
    except CORRUPT_ELF_ERRORS as exc:
        raise ImageError(str(reader.damaged(exc))) from None
    image = Image(shown, layout, segments, symbols, relocations, unwinder, stack_sizes)
    _check_placement(shown, image)
    return image


def _read_layout(shown: Path, reader: ElfReader) -> Layout:
    data = reader.section_data(LAYOUT_SECTION)
    if data is None:
        raise ImageError(f"{shown}: no {LAYOUT_SECTION} section, so not an image of this "
                         "project (docs/platform.md, \"Layout record\"); pass the vmlinux "
                         "built by `pyharness build`")
    try:
        return Layout.from_bytes(data)
    except LayoutError as exc:
        raise ImageError(f"{shown}: bad {LAYOUT_SECTION} record: {exc}; the image and "
                         f"the harness disagree on csrc/include/platform.h, "
                         f"{_REBUILD_HINT}") from None


def _read_unwinder(shown: Path, reader: ElfReader) -> str:
    data = reader.section_data(UNWINDER_SECTION)
    if data is None:
        return LAB_UNWINDER
    name, nul, _ = data.partition(b"\0")
    text = name.decode("ascii", errors="replace")
    if not nul or not _UNWINDER_NAME.fullmatch(text):
        raise ImageError(f"{shown}: bad {UNWINDER_SECTION} section {data[:32]!r}: expected "
                         f"a NUL-terminated \"lab\" or \"linux-<generation>\" "
                         f"(csrc/host/unwinder.c); {_REBUILD_HINT}")
    return text


def _read_stack_sizes(shown: Path, reader: ElfReader) -> StackSizes | None:
    """A tree build's numbers; None (the lab's formula) without the section."""
    data = reader.section_data(KERNEL_NUMBERS_SECTION)
    try:
        return None if data is None else StackSizes.from_record(data)
    except StackSizesError as exc:
        raise ImageError(f"{shown}: bad {KERNEL_NUMBERS_SECTION} section: {exc} "
                         f"(csrc/kcompat/kernel_numbers.S); {_REBUILD_HINT}") from None


def _read_segments(shown: Path, reader: ElfReader) -> tuple[Segment, ...]:
    segments = [Segment(vaddr, memsz, data, flags)
                for vaddr, memsz, data, flags in reader.load_segments()]
    if not segments:
        raise ImageError(f"{shown}: no PT_LOAD segment, nothing to run; {_REBUILD_HINT}")
    segments.sort(key=lambda s: s.vaddr)
    return tuple(segments)


def _read_relocations(shown: Path, elf) -> tuple[Relocation, ...]:
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
