"""A kernel's ``System.map``: every symbol's address and type, read fast.

The real-kernel path reads symbols from here rather than from ``vmlinux``
(64 MB with DWARF; pyelftools takes seconds): fault injection needs a
symbol's offset in the Image (``address - _text``), the judge the
kallsyms view (:class:`pyharness.elf.symbols.KallsymsTable`) and the
bytes of the code around each return address, which the Image itself
holds at the same offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pyharness.elf.reader import is_mapping_or_local_label
from pyharness.elf.symbols import KallsymsTable, Symbol
from pyharness.errors import HarnessError

# The hyp object's symbols carry this prefix in vmlinux (kvm_nvhe_sym()).
HYP_PREFIX = "__kvm_nvhe_"

_LINE = re.compile(r"^([0-9a-fA-F]{8,16}) ([a-zA-Z]) (\S+)$")
# Types kallsyms keeps as code: text symbols, global, local and weak.
_CODE_TYPES = frozenset("TtWw")
_PREFIXED_MAPPING = re.compile(r"^__\w+?_(\$[a-z]|\.L)")


@dataclass(frozen=True)
class MapSymbol:
    address: int
    kind: str            # nm's type letter
    name: str


class SystemMap:
    """The symbols of one kernel, by name and by address."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError as err:
            raise HarnessError(f"{path}: cannot read the kernel's System.map "
                               f"({err.strerror}); build the kernel again") from None
        self.symbols: list[MapSymbol] = []
        self.by_name: dict[str, MapSymbol] = {}
        for line in text.splitlines():
            match = _LINE.match(line)
            if match:
                sym = MapSymbol(int(match.group(1), 16), match.group(2), match.group(3))
                self.symbols.append(sym)
                self.by_name.setdefault(sym.name, sym)
        for needed in ("_text", "_etext"):
            if needed not in self.by_name:
                raise HarnessError(f"{path} has no {needed}: not the System.map of an "
                                   "arm64 kernel")

    @property
    def text(self) -> int:
        return self.by_name["_text"].address

    @property
    def etext(self) -> int:
        return self.by_name["_etext"].address

    def address(self, name: str) -> int | None:
        sym = self.by_name.get(name)
        return sym.address if sym else None

    def hyp(self, name: str) -> int | None:
        """A hyp symbol's address, by its name in the hyp object (``hyp_panic``)."""
        return self.address(HYP_PREFIX + name)

    def image_offset(self, address: int) -> int:
        """Where a link-time address sits in the Image (it starts at _text)."""
        return address - self.text

    @cached_property
    def kallsyms(self) -> KallsymsTable:
        """The kernel's ``%pS``/``%pB`` view: code symbols in [_text, _etext),
        one per address by :func:`kernel_alias_rank`, each as long as the
        distance to the next."""
        chosen: dict[int, tuple[tuple[int, int, int], MapSymbol]] = {}
        for order, sym in enumerate(self.symbols):
            if sym.kind not in _CODE_TYPES or not self.text <= sym.address < self.etext \
                    or _not_in_kallsyms(sym.name):
                continue
            rank = kernel_alias_rank(sym, order)
            known = chosen.get(sym.address)
            if known is None or rank < known[0]:
                chosen[sym.address] = (rank, sym)
        code = [Symbol(name=s.name, address=s.address, size=0, kind="func",
                       is_global=s.kind.isupper()) for _, s in chosen.values()]
        return KallsymsTable(code, self.text, self.etext)


def _not_in_kallsyms(name: str) -> bool:
    """Mapping symbols and local labels (``$x``, ``.L``), also under a
    prefix (``__kvm_nvhe_$x``, ``__pi_$x``): kallsyms leaves them out."""
    return is_mapping_or_local_label(name) or bool(_PREFIXED_MAPPING.match(name))


def kernel_alias_rank(sym: MapSymbol, order: int) -> tuple[int, int, int]:
    """Which of several symbols at one address the kernel's kallsyms prints
    (scripts/kallsyms sorts aliases so, and the lookup takes the first): a
    weak symbol after a strong one, then fewer leading underscores first,
    then the order nm listed them in."""
    return (sym.kind in "wW", len(sym.name) - len(sym.name.lstrip("_")), order)
