"""The sizes an image's hyp stacks and trace buffer are meant to have.

The lab's firmware follows the series' claim, a formula of Kconfig: the
overflow stack is 4 KiB whatever the page size, a hyp stack is one page,
and the protected trace buffer holds one entry per 16-byte frame record
over both stacks plus a terminator. A kernel tree decides its own
(``OVERFLOW_STACK_SIZE``, ``NVHE_STACK_SIZE``, ``NVHE_STACKTRACE_SIZE`` in
its asm/memory.h): the build evaluated them with the compiler
(pyharness/builder/kernel_numbers.py) and recorded them in the image's
non-allocated ``.nvhe_kernel_numbers`` section (csrc/kcompat/kernel_numbers.S).

The platform lays out the stacks from these sizes, the oracle walks the
stacks and caps the protected trace by them, and the footprint check holds
the firmware's symbols to them: never the firmware's symbols themselves.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from pyharness.elf.layout import Layout

KERNEL_NUMBERS_SECTION = ".nvhe_kernel_numbers"
KERNEL_NUMBERS_MAGIC = 0x4D554E4B4548564E  # "NVHEKNUM" as a little-endian u64
KERNEL_NUMBERS_VERSION = 1

LAB_OVERFLOW_STACK_SIZE = 4096
FRAME_RECORD_SIZE = 16


def lab_trace_buffer_size(page_size: int) -> int:
    """One CPU's buffer: an entry per record over both stacks, and a terminator."""
    return ((page_size + LAB_OVERFLOW_STACK_SIZE) // FRAME_RECORD_SIZE + 1) * 8


class StackSizesError(ValueError):
    """The record is malformed; the message says how."""


@dataclass(frozen=True)
class StackSizes:
    """Bytes per CPU, and where the numbers come from."""

    overflow_stack: int
    hyp_stack: int
    trace_buffer: int           # the protected trace buffer (when the image has one)
    va_bits: int
    source: str                 # "the lab's Kconfig formula" or "the kernel tree's"

    @classmethod
    def of_lab(cls, layout: Layout) -> StackSizes:
        """The series' claim for the lab's own firmware."""
        page = layout.page_size
        return cls(LAB_OVERFLOW_STACK_SIZE, page, lab_trace_buffer_size(page),
                   layout.va_bits, "the lab's Kconfig formula")

    @classmethod
    def from_record(cls, data: bytes) -> StackSizes:
        """A tree build's ``.nvhe_kernel_numbers`` record."""
        if len(data) < 48:
            raise StackSizesError(f"the record is {len(data)} bytes, not 48")
        magic, version, overflow, hyp, buffer, va_bits = struct.unpack_from("<6Q", data)
        if magic != KERNEL_NUMBERS_MAGIC or version != KERNEL_NUMBERS_VERSION:
            raise StackSizesError(f"magic {magic:#x} version {version}, expected "
                                  f"{KERNEL_NUMBERS_MAGIC:#x} (\"NVHEKNUM\") version "
                                  f"{KERNEL_NUMBERS_VERSION}")
        if hyp & (hyp - 1) or not (overflow and hyp and buffer):
            raise StackSizesError(f"sizes {overflow}, {hyp}, {buffer}: the hyp stack must "
                                  "be a power of two and none may be 0")
        return cls(overflow, hyp, buffer, va_bits, "the kernel tree's")

    @property
    def hyp_stack_shift(self) -> int:
        """The SP bit the vector tests: 1 on a hyp stack, 0 in its guard."""
        return self.hyp_stack.bit_length() - 1

    @property
    def trace_capacity(self) -> int:
        """How many pcs a CPU's buffer holds before its terminator."""
        return self.trace_buffer // 8 - 1
