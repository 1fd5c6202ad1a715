"""The kernel's symbol renderings, computed in Python from the ELF.

These are the rules the firmware's printk follows (docs/firmware.md), done
independently here so the checker can compute what a line *should* say:

- ``%pS``: the function containing ``addr``, as ``name+0xoff/0xsize``;
- ``%pB`` (return addresses): look up ``addr - 1`` and print ``off + 1``,
  so a call that ends a function prints ``name+0xsize/0xsize``.

Only sized function symbols count; at a shared address a global beats a
local, then the smaller name wins.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from .image import Image


ADDRESS_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class Function:
    name: str
    address: int
    size: int


class FunctionTable:
    """Sized function symbols of an image, for address -> function lookups."""

    def __init__(self, image: Image) -> None:
        best: dict[int, tuple[bool, str, int]] = {}
        for sym in image.symbols:
            if sym.kind != "func" or sym.size <= 0:
                continue
            key = (not sym.is_global, sym.name, sym.size)
            if sym.address not in best or key < best[sym.address]:
                best[sym.address] = key
        self._functions = [Function(name, addr, size)
                           for addr, (_, name, size) in sorted(best.items())]
        self._starts = [f.address for f in self._functions]

    def containing(self, address: int) -> Function | None:
        i = bisect.bisect_right(self._starts, address) - 1
        if i < 0:
            return None
        func = self._functions[i]
        return func if address - func.address < func.size else None

    def by_name(self, name: str) -> Function | None:
        for func in self._functions:
            if func.name == name:
                return func
        return None

    def __iter__(self):
        return iter(self._functions)

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
        return f"{func.name}+{lookup - func.address + delta:#x}/{func.size:#x}"
