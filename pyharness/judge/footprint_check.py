"""The stacktrace footprint claimed for the image, checked on every run.

The lab's claim is the series': the overflow stack is 4 KiB whatever the
page size; the protected-mode buffer holds one entry per 16-byte frame
record over the hyp stack (one page) and the overflow stack, plus a zero
terminator, and does not exist at all without
``CONFIG_PROTECTED_NVHE_STACKTRACE``. A kernel tree claims its own
``OVERFLOW_STACK_SIZE`` and ``NVHE_STACKTRACE_SIZE`` (evaluated from its
asm/memory.h when the image was built). The sizes come from that formula
or those numbers (``Image.stack_sizes``), never from the firmware's
symbols; the symbols are what is checked.
"""

from __future__ import annotations

from pyharness.elf.image import Image
from pyharness.platform.geometry import OVERFLOW_STACK, TRACE_BUFFER, StackGeometry

_FORMULA = {"overflow": "4096", "buffer": "((PAGE_SIZE + 4096) / 16 + 1) * 8"}
_TREE = {"overflow": "the tree's OVERFLOW_STACK_SIZE", "buffer": "the tree's NVHE_STACKTRACE_SIZE"}


def footprint_problems(image: Image, geometry: StackGeometry) -> list[str]:
    """Each way the image's footprint differs from the claim, as a reason."""
    layout, sizes = image.layout, image.stack_sizes
    claim = _TREE if image.kernel_generation else _FORMULA
    problems = []
    if geometry.overflow_symbol_size != sizes.overflow_stack:
        problems.append(f"footprint: {OVERFLOW_STACK} is {geometry.overflow_symbol_size} "
                        f"bytes per CPU, not {sizes.overflow_stack} ({claim['overflow']})")
    if not layout.protected_stacktrace:
        if geometry.has_trace_buffer:
            problems.append(f"footprint: {TRACE_BUFFER} exists without "
                            "CONFIG_PROTECTED_NVHE_STACKTRACE")
        return problems
    if not geometry.has_trace_buffer:
        problems.append(f"footprint: no {TRACE_BUFFER} with CONFIG_PROTECTED_NVHE_STACKTRACE")
        return problems
    have = geometry.trace_buffer_pa(0).size
    if have != sizes.trace_buffer:
        problems.append(f"footprint: {TRACE_BUFFER} holds {have} bytes per CPU, not "
                        f"{sizes.trace_buffer} ({claim['buffer']})")
    return problems
