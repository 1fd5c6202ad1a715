"""The stacktrace footprint the series claims, checked on every run.

The overflow stack is 4 KiB whatever the page size; the protected-mode
buffer holds one entry per 16-byte frame record over the hyp stack (one
page) and the overflow stack, plus a zero terminator, and does not exist
at all without ``CONFIG_PROTECTED_NVHE_STACKTRACE``. The sizes come from
that formula and the layout record, never from the firmware's symbols;
the symbols are what is checked.
"""

from __future__ import annotations

from pyharness.elf.image import Image
from pyharness.platform.geometry import OVERFLOW_STACK, TRACE_BUFFER, StackGeometry

OVERFLOW_STACK_SIZE = 4096
FRAME_RECORD_SIZE = 16


def trace_buffer_entries(page_size: int) -> int:
    """Slots per CPU: one per frame record over both stacks, plus the terminator."""
    return (page_size + OVERFLOW_STACK_SIZE) // FRAME_RECORD_SIZE + 1


def trace_buffer_capacity(page_size: int) -> int:
    """How many pcs a CPU's buffer holds before its terminator."""
    return trace_buffer_entries(page_size) - 1


def footprint_problems(image: Image, geometry: StackGeometry) -> list[str]:
    """Each way the image's footprint differs from the claim, as a reason."""
    layout = image.layout
    problems = []
    if geometry.overflow_stack_size != OVERFLOW_STACK_SIZE:
        problems.append(f"footprint: {OVERFLOW_STACK} is {geometry.overflow_stack_size} "
                        f"bytes per CPU, not {OVERFLOW_STACK_SIZE}")
    if not layout.protected_stacktrace:
        if geometry.has_trace_buffer:
            problems.append(f"footprint: {TRACE_BUFFER} exists without "
                            "CONFIG_PROTECTED_NVHE_STACKTRACE")
        return problems
    if not geometry.has_trace_buffer:
        problems.append(f"footprint: no {TRACE_BUFFER} with CONFIG_PROTECTED_NVHE_STACKTRACE")
        return problems
    want = trace_buffer_entries(layout.page_size) * 8
    have = geometry.trace_buffer_pa(0).size
    if have != want:
        problems.append(f"footprint: {TRACE_BUFFER} holds {have} bytes per CPU, not "
                        f"{want} (((PAGE_SIZE + 4096) / 16 + 1) * 8)")
    return problems
