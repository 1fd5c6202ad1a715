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

from pyharness.elf import symbol_cache
from pyharness.elf.dwarf import LineTable, SourceLine
from pyharness.elf.reader import CORRUPT_ELF_ERRORS, ElfReader, ElfReadError, content_key
from pyharness.elf.symbols import preference

_HINT = "pass an AArch64 vmlinux with --elf"
_MISSING = "no such ELF file; pass the vmlinux that printed the log with --elf"


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
    """Code symbols and DWARF line numbers of one AArch64 ELF, read once per
    ELF content and kept (:mod:`pyharness.elf.symbol_cache`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key = content_key(path, hint=_HINT, missing=_MISSING)
        self._table: LineTable | None = None
        index = symbol_cache.load_index(self._key)
        if index is None:
            index = self._read_index()
            symbol_cache.save_index(self._key, index)
        self._code_ranges = index.code_ranges
        self._has_lines = index.has_lines
        self._units = index.units
        self._unit_starts = [u[0] for u in index.units or ()]
        self._rows = symbol_cache.load_rows(self._key) if index.has_lines \
            else symbol_cache.UnitRows()
        self._unit_index: dict[int, list[int]] = {}
        self._index = index
        self._addresses = index.addresses
        self._made: dict[int, ElfSymbol] = {}       # symbols asked for, made once
        self._by_name: dict[str, list[int]] = {}
        for i, names in enumerate(index.names):
            for name in names:
                self._by_name.setdefault(name, []).append(i)

    def _symbol(self, i: int) -> ElfSymbol:
        symbol = self._made.get(i)
        if symbol is None:
            index = self._index
            names = tuple(index.names[i])
            symbol = self._made[i] = ElfSymbol(name=names[0], names=names,
                                               address=index.addresses[i],
                                               size=index.sizes[i], span=index.spans[i])
        return symbol

    def _open(self) -> ElfReader:
        return ElfReader.open(self.path, hint=_HINT, missing=_MISSING)

    def _read_index(self) -> symbol_cache.SymbolIndex:
        """Everything the index holds, from the ELF itself."""
        reader = self._open()
        try:
            code_ranges = [(r.start, r.end, r.section) for r in reader.code_ranges()]
            addresses, sizes, spans, names = _code_symbols(reader, code_ranges)
            if reader.has_debug_line():
                self._table = LineTable(reader.elf)
                units = self._table.units()
            else:
                units = None
        except CORRUPT_ELF_ERRORS as exc:
            raise reader.damaged(exc) from None
        return symbol_cache.SymbolIndex(code_ranges=code_ranges, addresses=addresses,
                                        sizes=sizes, spans=spans, names=names,
                                        has_lines=self._table is not None, units=units)

    def close(self) -> None:
        """Keep the line rows this decode read for the next one."""
        if self._rows.changed:
            symbol_cache.save_rows(self._key, self._rows)

    def __enter__(self) -> ElfSymbolizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_line_info(self) -> bool:
        return self._has_lines

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
        symbol = self._symbol(i)
        if address >= symbol.address + max(symbol.size, symbol.span):
            return None
        return symbol

    def symbols_named(self, name: str) -> list[ElfSymbol]:
        return [self._symbol(i) for i in self._by_name.get(name, ())]

    def source_line(self, address: int) -> SourceLine | None:
        """file:line of the instruction at ``address`` from .debug_line (as
        addr2line: each row covers up to the next; the compile unit from
        .debug_aranges, its rows kept for the next decode)."""
        if not self._has_lines:
            return None
        try:
            unit = self._unit_at(address)
            if unit is None:
                return self._line_table().lookup(address)   # every unit searched
            rows = self._rows.rows.get(unit)
            if rows is None:
                rows = self._rows.rows[unit] = self._line_table().unit_rows(unit)
                self._rows.changed = True
        except CORRUPT_ELF_ERRORS as err:
            raise ElfReadError(f"{self.path}: corrupt DWARF line table ({err}); "
                               "rebuild the vmlinux with -g") from None
        starts = self._unit_index.get(unit)
        if starts is None:
            starts = self._unit_index[unit] = [row[0] for row in rows]
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and address < rows[i][1]:
            return SourceLine(file=rows[i][2], line=rows[i][3])
        return None

    def _unit_at(self, address: int) -> int | None:
        """The compile unit .debug_aranges puts ``address`` in (None: no
        aranges, or the address is in none of them)."""
        if self._units is None:
            return None
        i = bisect.bisect_right(self._unit_starts, address) - 1
        if i >= 0 and address < self._units[i][1]:
            return self._units[i][2]
        return None

    def _line_table(self) -> LineTable:
        if self._table is None:
            reader = self._open()
            self._table = LineTable(reader.elf)
        return self._table


_Columns = tuple[list[int], list[int], list[int], list[list[str]]]


def _code_symbols(reader: ElfReader, code_ranges: list[tuple[int, int, int]]) -> _Columns:
    """Every code symbol by address, as columns: its address, size (st_size,
    or its span when 0), span to the next symbol (or its section's end) and
    names in preference order."""
    code_end = {index: end for _, end, index in code_ranges}
    by_address: dict[int, list] = {}
    for sym in reader.symbols():
        if sym.kind == "object" or sym.section not in code_end:
            continue
        by_address.setdefault(sym.address, []).append(sym)
    addresses = sorted(by_address)
    sizes, spans, names = [], [], []
    for i, address in enumerate(addresses):
        candidates = sorted(by_address[address], key=preference)
        best = candidates[0]
        section_end = code_end[best.section]
        next_address = addresses[i + 1] if i + 1 < len(addresses) else section_end
        span = min(next_address, section_end) - address
        sizes.append(best.size or span)
        spans.append(span)
        names.append([c.name for c in candidates])
    return addresses, sizes, spans, names
