"""Code symbols and DWARF lines of any AArch64 ELF, as kallsyms sees them.

The log decoder uses this on whatever vmlinux printed a log: this
project's images or a real kernel's, so it needs no layout record. Code
symbols are the functions and labels in executable sections (mapping
symbols and local labels dropped); each address keeps every name it goes
by, the preferred one (:func:`pyharness.elf.symbols.preference`) first,
and a symbol's ``span`` runs to the next symbol: what kallsyms prints as
the size.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from pathlib import Path

from pyharness.elf.dwarf import LineTable, SourceLine
from pyharness.elf.reader import CORRUPT_ELF_ERRORS, ElfReader, ElfReadError
from pyharness.elf.symbols import preference

_HINT = "pass an AArch64 vmlinux with --elf"


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


class ElfSymbolizer:
    """Code symbols and DWARF line numbers of one AArch64 ELF."""

    def __init__(self, path: Path) -> None:
        self.path = path
        reader = ElfReader.open(path, hint=_HINT,
                                missing="no such ELF file; pass the vmlinux that printed "
                                        "the log with --elf")
        try:
            self._code_ranges = [(r.start, r.end, r.section) for r in reader.code_ranges()]
            self._symbols = self._load_symbols(reader)
            self._lines = LineTable(reader.elf) if reader.has_debug_line() else None
        except CORRUPT_ELF_ERRORS as exc:
            raise reader.damaged(exc) from None
        self._addresses = [s.address for s in self._symbols]
        self._by_name: dict[str, list[ElfSymbol]] = {}
        for symbol in self._symbols:
            for name in symbol.names:
                self._by_name.setdefault(name, []).append(symbol)

    def close(self) -> None:
        """Nothing stays open: kept so callers may use it as a context manager."""

    def __enter__(self) -> ElfSymbolizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_line_info(self) -> bool:
        return self._lines is not None

    def _load_symbols(self, reader: ElfReader) -> list[ElfSymbol]:
        code_end = {index: end for _, end, index in self._code_ranges}
        by_address: dict[int, list] = {}
        for sym in reader.symbols():
            if sym.kind == "object" or sym.section not in code_end:
                continue
            by_address.setdefault(sym.address, []).append(sym)
        addresses = sorted(by_address)
        symbols = []
        for i, address in enumerate(addresses):
            candidates = sorted(by_address[address], key=preference)
            best = candidates[0]
            section_end = code_end[best.section]
            next_address = addresses[i + 1] if i + 1 < len(addresses) else section_end
            span = min(next_address, section_end) - address
            symbols.append(ElfSymbol(name=best.name, names=tuple(c.name for c in candidates),
                                     address=address, size=best.size or span, span=span))
        return symbols

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
        except CORRUPT_ELF_ERRORS as err:
            raise ElfReadError(f"{self.path}: corrupt DWARF line table ({err}); "
                               "rebuild the vmlinux with -g") from None
