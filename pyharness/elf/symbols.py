"""Symbols of an ELF: the one rule that picks a name per address, and the
kernel's renderings of an address (``%pS``, ``%pB``).

The rule (:func:`preference`): at an address several symbols share, a
function beats an object beats a label; then a global beats a local; then
a symbol with a size beats one without; then the smaller name wins. The
image loader, the oracle's function table and the log decoder's
symbolizer all use it. The firmware's kallsyms generator keeps its own
copy on purpose (docs/architecture.md, "Two symbol rules"); a test checks
both against binutils.

Renderings, done independently of the firmware so the checker can compute
what a line *should* say:

- ``%pS``: the function containing ``addr``, as ``name+0xoff/0xsize``;
- ``%pB`` (return addresses): look up ``addr - 1`` and print ``off + 1``,
  so a call that ends a function prints ``name+0xsize/0xsize``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Iterable, Iterator

from pyharness.elf.reader import HYP_SYMBOL_PREFIX, RawSymbol

ADDRESS_MASK = (1 << 64) - 1

_KIND_RANK = {"func": 0, "object": 1, "notype": 2}


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
    absolute: bool = False

    @property
    def is_hyp(self) -> bool:
        return self.name.startswith(HYP_SYMBOL_PREFIX)

    @classmethod
    def from_raw(cls, raw: RawSymbol) -> Symbol:
        return cls(raw.name, raw.address, raw.size, raw.kind, raw.is_global,
                   absolute=raw.section == "SHN_ABS")


@dataclass(frozen=True)
class SymbolHit:
    """The symbol an address falls in, and how far into it."""

    symbol: Symbol
    offset: int

    def __str__(self) -> str:
        return f"{self.symbol.name}+{self.offset:#x}"


def preference(sym: Symbol | RawSymbol) -> tuple[int, bool, bool, str]:
    """Sort key of the one symbol-choice rule: the smallest key names the address."""
    return (_KIND_RANK[sym.kind], not sym.is_global, sym.size == 0, sym.name)


def one_per_address(symbols: Iterable[Symbol]) -> list[Symbol]:
    """The preferred symbol at each address, in address order, each with its
    span to the next (the last one's span is its size)."""
    best: dict[int, Symbol] = {}
    for sym in symbols:
        known = best.get(sym.address)
        if known is None or preference(sym) < preference(known):
            best[sym.address] = sym
    ordered = [best[a] for a in sorted(best)]
    return [replace(sym, span=(nxt.address - sym.address if nxt is not None else sym.size))
            for sym, nxt in zip(ordered, ordered[1:] + [None])]


class SymbolTable:
    """Address -> symbol lookups over one symbol per address."""

    def __init__(self, symbols: Iterable[Symbol], *, extent: str = "size-or-span") -> None:
        self._symbols = one_per_address(symbols)
        self._starts = [s.address for s in self._symbols]
        self._extent = extent

    def __iter__(self) -> Iterator[Symbol]:
        return iter(self._symbols)

    def _length(self, sym: Symbol) -> int:
        return sym.size if self._extent == "size" else max(sym.size, sym.span)

    def containing(self, address: int) -> Symbol | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        sym = self._symbols[i]
        return sym if address - sym.address < self._length(sym) else None

    def lookup(self, address: int) -> SymbolHit | None:
        sym = self.containing(address)
        return None if sym is None else SymbolHit(sym, address - sym.address)


class FunctionTable:
    """Sized function symbols: the code extents of an image's functions."""

    def __init__(self, symbols: Iterable[Symbol]) -> None:
        self._table = SymbolTable((s for s in symbols if s.kind == "func" and s.size > 0),
                                  extent="size")
        self._by_name = {f.name: f for f in self._table}

    def containing(self, address: int) -> Symbol | None:
        return self._table.containing(address)

    def by_name(self, name: str) -> Symbol | None:
        return self._by_name.get(name)

    def __iter__(self) -> Iterator[Symbol]:
        return iter(self._table)


class KallsymsTable:
    """The kernel's view of an image's code for ``%pS``/``%pB``: every
    function and label between ``_text`` and ``_etext`` (mapping symbols and
    local labels were dropped by the reader), one per address by
    :func:`preference`, each as long as the distance to the next, the last
    one up to ``_etext``. An address outside [_text, _etext) has no symbol."""

    def __init__(self, symbols: Iterable[Symbol], text: int, etext: int) -> None:
        code = [s for s in symbols if s.kind in ("func", "notype") and not s.absolute
                and text <= s.address < etext]
        ordered = one_per_address(code)
        ends = [s.address for s in ordered[1:]] + [etext]
        self._symbols = [replace(s, span=end - s.address) for s, end in zip(ordered, ends)]
        self._starts = [s.address for s in self._symbols]
        self._etext = etext

    def __iter__(self) -> Iterator[Symbol]:
        return iter(self._symbols)

    def containing(self, address: int) -> Symbol | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0 or address >= self._etext:
            return None
        return self._symbols[i]

    def render_symbol(self, address: int, kaslr_offset: int = 0) -> str:
        """``%pS`` of a link-time address."""
        return self._render(address, 0, kaslr_offset)

    def render_backtrace(self, address: int, kaslr_offset: int = 0) -> str:
        """``%pB`` of a link-time return address."""
        return self._render(address - 1, 1, kaslr_offset)

    def _render(self, lookup: int, delta: int, kaslr_offset: int) -> str:
        """An address in no function prints as the raw pointer the kernel
        was given: the run-time address, KASLR offset included (64-bit)."""
        func = self.containing(lookup & ADDRESS_MASK)
        if func is None:
            return f"{(lookup + delta + kaslr_offset) & ADDRESS_MASK:#x}"
        return f"{func.name}+{lookup - func.address + delta:#x}/{func.span:#x}"
