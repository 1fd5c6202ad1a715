"""The ``file:line`` a pc in a reason points at, from the image's DWARF.

Frames are return addresses, printed ``%pB``-style: the call is the
instruction before, so the line of ``pc - 1`` is the one a reader wants
(as :func:`pyharness.run.runner.with_sources` does for the records'
frames). Code a kernel tree compiled names its file relative to the tree
(``arch/arm64/kvm/hyp/nvhe/stacktrace.c:106``), the lab's relative to the
checkout (``csrc/hyp/stacktrace.c:40``).
"""

from __future__ import annotations

from pathlib import Path

from pyharness.elf.dwarf import source_line
from pyharness.errors import HarnessError

MASK64 = (1 << 64) - 1


def where(elf: str, link_address: int, *, return_address: bool = True) -> str:
    """``file:line`` of the code at ``link_address`` in ``elf`` ('' when the
    image has no line there, or no ``elf`` was given)."""
    if not elf or not link_address:
        return ""
    address = (link_address - 1 if return_address else link_address) & MASK64
    try:
        found = source_line(Path(elf), address)
    except (HarnessError, OSError, ValueError):
        return ""
    return f"{found[0]}:{found[1]}" if found else ""


def code_line(elf: str, link_address: int, *, return_address: bool = True) -> str:
    """`` (file:line)`` to follow an address in a reason, or ''."""
    found = where(elf, link_address, return_address=return_address)
    return f" ({found})" if found else ""
