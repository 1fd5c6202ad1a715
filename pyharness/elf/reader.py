"""The one place an ELF file is opened and its tables are read (pyelftools).

Every module that needs an ELF's symbols, sections, segments, relocations
or DWARF lines goes through :class:`ElfReader`: the firmware image loader
(:mod:`pyharness.elf.image`), the log decoder's symbolizer
(:mod:`pyharness.elf.symbolizer`) and the scenario list
(:mod:`pyharness.elf.scenario_table`). A damaged file becomes one
:class:`ElfReadError` message, whoever reads it.

The firmware's own kallsyms generator (:mod:`pyharness.builder.kallsyms_gen`)
reads ELFs itself, on purpose: it is part of the code under test, and the
oracle must not share its symbol choice (docs/architecture.md).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, TypeVar

from elftools.common.exceptions import DWARFError, ELFError, ELFParseError
from elftools.construct.core import ConstructError
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from pyharness.errors import HarnessError

HYP_SYMBOL_PREFIX = "__kvm_nvhe_"
T = TypeVar("T")

SHF_ALLOC = 0x2
SHF_EXECINSTR = 0x4

# What pyelftools raises on a truncated or corrupt ELF or DWARF (it checks
# much of its input with assert statements).
CORRUPT_ELF_ERRORS = (ELFError, ELFParseError, DWARFError, ConstructError, struct.error,
                      ValueError, KeyError, IndexError, EOFError, UnicodeDecodeError,
                      OverflowError, AssertionError, MemoryError)

# Assembler mapping symbols ($x, $d, with or without the hyp prefix) and
# local labels name no code of their own: kallsyms drops them.
_MAPPING_OR_LOCAL_LABEL = re.compile(r"^(?:%s)?(?:\$.*|\.L.*)$" % HYP_SYMBOL_PREFIX)

_KINDS = {"STT_FUNC": "func", "STT_OBJECT": "object", "STT_NOTYPE": "notype"}


class ElfReadError(HarnessError):
    """The file is not a readable ELF of the kind asked for (exit 2)."""


def is_mapping_or_local_label(name: str) -> bool:
    """``$x``, ``$d``, ``.L...`` (hyp-prefixed or not): not a symbol kallsyms keeps."""
    return not name.removeprefix(HYP_SYMBOL_PREFIX) or bool(_MAPPING_OR_LOCAL_LABEL.match(name))


@dataclass(frozen=True)
class RawSymbol:
    """One defined .symtab entry, before any choice between aliases."""

    name: str
    address: int
    size: int
    kind: str              # "func", "object" or "notype"
    is_global: bool
    section: int | str     # section index, or "SHN_ABS"/"SHN_COMMON"...


@dataclass(frozen=True)
class CodeRange:
    """An allocated, executable section."""

    start: int
    end: int
    section: int


class ElfReader:
    """An AArch64 ELF held in memory, with its tables read on demand.

    ``hint`` ends every error message: how to get a usable file.
    """

    def __init__(self, path: Path, data: bytes, *, hint: str) -> None:
        self.path = path
        self.size = len(data)
        self._hint = hint
        if data[:4] != b"\x7fELF":
            raise ElfReadError(f"{path}: not a readable ELF file: not an ELF file at all "
                               f"(no ELF magic); {hint}")
        try:
            self.elf = ELFFile(io.BytesIO(data))
            self._check_aarch64()
            self._check_extents()
        except ElfReadError:
            raise
        except CORRUPT_ELF_ERRORS as exc:
            raise self.damaged(exc) from None

    @classmethod
    def open(cls, path: Path, *, hint: str, missing: str | None = None) -> ElfReader:
        """Read ``path`` whole; a missing or unreadable file, or one that is
        not a regular file (``/dev/zero`` would be read until memory ran out,
        a FIFO would block), is an ElfReadError (``missing``: the message for
        a missing file, after the path)."""
        return cls(path, _read(path, hint, missing, lambda f: f.read()), hint=hint)

    def damaged(self, exc: BaseException) -> ElfReadError:
        """The one message for a damaged file, whatever pyelftools raised."""
        return ElfReadError(f"{self.path}: not a readable ELF file: damaged or truncated "
                            f"({type(exc).__name__}: {exc}); {self._hint}")

    # -- checks ------------------------------------------------------------

    def _check_aarch64(self) -> None:
        elf = self.elf
        machine = elf["e_machine"]
        if machine != "EM_AARCH64" or elf.elfclass != 64 or not elf.little_endian:
            if isinstance(machine, int):
                machine = f"machine {machine}"
            endian = "little" if elf.little_endian else "big"
            raise ElfReadError(f"{self.path}: not little-endian AArch64: an ELF for {machine} "
                               f"({elf.elfclass}-bit, {endian}-endian), not AArch64; "
                               f"{self._hint}")

    def _check_extents(self) -> None:
        """Catch truncation up front: every header and every byte of file data
        a segment or section claims must be inside the file."""
        hdr = self.elf.header
        tables = ((hdr["e_phoff"], hdr["e_phnum"] * hdr["e_phentsize"], "program headers"),
                  (hdr["e_shoff"], hdr["e_shnum"] * hdr["e_shentsize"], "section headers"))
        for offset, size, what in tables:
            if offset + size > self.size:
                self._truncated(what, offset + size)
        for seg in self.elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_offset"] + seg["p_filesz"] > self.size:
                self._truncated("a PT_LOAD segment", seg["p_offset"] + seg["p_filesz"])
        for sec in self.elf.iter_sections():
            if sec["sh_type"] != "SHT_NOBITS" and sec["sh_offset"] + sec["sh_size"] > self.size:
                self._truncated(f"section {sec.name or '#?'}", sec["sh_offset"] + sec["sh_size"])

    def _truncated(self, what: str, needed: int) -> None:
        raise ElfReadError(f"{self.path}: not a readable ELF file: truncated, {what} end at "
                           f"byte {needed:#x} but the file has {self.size:#x} bytes; "
                           f"{self._hint}")

    # -- tables --------------------------------------------------------------

    def section_data(self, name: str) -> bytes | None:
        section = self.elf.get_section_by_name(name)
        return None if section is None else section.data()

    def symbols(self) -> list[RawSymbol]:
        """Every defined function, object and label, minus mapping symbols
        and local labels."""
        symtab = self.elf.get_section_by_name(".symtab")
        if not isinstance(symtab, SymbolTableSection):
            raise ElfReadError(f"{self.path}: no symbol table (.symtab), the ELF was "
                               "stripped; use the unstripped vmlinux")
        out = []
        for sym in symtab.iter_symbols():
            kind = _KINDS.get(sym["st_info"]["type"])
            if kind is None or not sym.name or sym["st_shndx"] == "SHN_UNDEF":
                continue
            if kind == "notype" and is_mapping_or_local_label(sym.name):
                continue
            out.append(RawSymbol(sym.name, sym["st_value"], sym["st_size"], kind,
                                 sym["st_info"]["bind"] == "STB_GLOBAL", sym["st_shndx"]))
        return out

    def code_ranges(self) -> list[CodeRange]:
        """Every allocated executable section, by address."""
        ranges = []
        for index, section in enumerate(self.elf.iter_sections()):
            flags = section["sh_flags"]
            if flags & SHF_ALLOC and flags & SHF_EXECINSTR and section["sh_size"]:
                start = section["sh_addr"]
                ranges.append(CodeRange(start, start + section["sh_size"], index))
        return sorted(ranges, key=lambda r: r.start)

    def load_segments(self) -> Iterator[tuple[int, int, bytes, int]]:
        """(vaddr, memsz, file bytes, flags) of each non-empty PT_LOAD."""
        for seg in self.elf.iter_segments():
            if seg["p_type"] == "PT_LOAD" and seg["p_memsz"]:
                yield seg["p_vaddr"], seg["p_memsz"], seg.data(), seg["p_flags"]

    def has_debug_line(self) -> bool:
        return any(self.elf.get_section_by_name(name) is not None
                   for name in (".debug_line", ".zdebug_line"))


def _read(path: Path, hint: str, missing: str | None, read: Callable[[BinaryIO], T]) -> T:
    """``read`` on the open regular file at ``path``, or ElfReadError."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ElfReadError(f"{path}: not a regular file, not an ELF file; {hint}")
            return read(f)
    except FileNotFoundError:
        raise ElfReadError(f"{path}: {missing or 'no such file; ' + hint}") from None
    except IsADirectoryError:
        raise ElfReadError(f"{path}: is a directory, not an ELF file; {hint}") from None
    except OSError as exc:
        raise ElfReadError(f"{path}: cannot read it ({exc.strerror}); check the path "
                           "and its permissions") from None


_NT_GNU_BUILD_ID = 3
_SHT_NOTE = 7
_MAX_NOTES = 1 << 16


def content_key(path: Path, *, hint: str, missing: str | None = None) -> str:
    """A cheap key of an ELF file's content, without reading it whole: its
    size and the sha256 of its GNU build-id note when it has one (a few KiB
    of section headers and notes read), else the sha256 of the whole file.
    The same errors as :meth:`ElfReader.open` for a file it cannot read."""
    return _read(path, hint, missing, _key_of)


def _key_of(f: BinaryIO) -> str:
    size = os.fstat(f.fileno()).st_size
    build_id = _build_id(f, size)
    if build_id is not None:
        return f"{size}-build-id-{hashlib.sha256(build_id).hexdigest()}"
    f.seek(0)
    return f"{size}-sha256-{hashlib.file_digest(f, 'sha256').hexdigest()}"


def _build_id(f: BinaryIO, size: int) -> bytes | None:
    """The descriptor of a 64-bit little-endian ELF's NT_GNU_BUILD_ID note
    (in an SHT_NOTE section), or None (no note, or not such an ELF)."""
    header = f.read(64)
    if len(header) < 64 or header[:4] != b"\x7fELF" or header[4:6] != b"\x02\x01":
        return None
    shoff, = struct.unpack_from("<Q", header, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", header, 0x3a)
    if shentsize < 0x40 or shoff + shnum * shentsize > size:
        return None
    f.seek(shoff)
    table = f.read(shnum * shentsize)
    for i in range(shnum):
        sh_type, = struct.unpack_from("<I", table, i * shentsize + 4)
        offset, length = struct.unpack_from("<QQ", table, i * shentsize + 0x18)
        if sh_type != _SHT_NOTE or offset + length > size or length > _MAX_NOTES:
            continue
        f.seek(offset)
        found = _note(f.read(length), _NT_GNU_BUILD_ID, b"GNU\0")
        if found is not None:
            return found
    return None


def _note(notes: bytes, wanted: int, owner: bytes) -> bytes | None:
    pos = 0
    while pos + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from("<III", notes, pos)
        name_at = pos + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        end = desc_at + (descsz + 3) // 4 * 4
        if desc_at + descsz > len(notes):
            return None
        if kind == wanted and notes[name_at:name_at + namesz] == owner:
            return notes[desc_at:desc_at + descsz]
        pos = end
    return None
