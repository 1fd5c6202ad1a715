"""The unwinder's memory footprint per configuration, read from the built ELF.

Two objects carry the footprint the patch series claims:

- ``__kvm_nvhe_overflow_stack``: a per-CPU variable, so its symbol size is
  one CPU's overflow stack. The claim: 4 KiB whatever the page size (a
  kernel tree's: its own OVERFLOW_STACK_SIZE).
- ``__kvm_nvhe_pkvm_stacktrace``: ``[NR_CPUS][entries]``, so its symbol
  size covers every CPU (with a kernel tree's unwinder it is a per-CPU
  variable, so its size is one CPU's, repeated NR_CPUS times). The claim: ``((PAGE_SIZE + 4096) / 16 + 1) * 8``
  bytes per CPU (one entry per frame record over the hyp stack and the
  overflow stack, plus a terminator; a tree's: its NVHE_STACKTRACE_SIZE),
  and no buffer at all without ``CONFIG_PROTECTED_NVHE_STACKTRACE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pyharness.elf.image import load_image
from pyharness.elf.stack_sizes import LAB_OVERFLOW_STACK_SIZE, lab_trace_buffer_size
from pyharness.errors import HarnessError
from pyharness.platform.geometry import OVERFLOW_STACK as OVERFLOW_STACK_SYMBOL
from pyharness.platform.geometry import TRACE_BUFFER as STACKTRACE_SYMBOL
from pyharness.run.record import RunRecord

CLAIMED_OVERFLOW_STACK = LAB_OVERFLOW_STACK_SIZE
claimed_buffer_per_cpu = lab_trace_buffer_size


@dataclass(frozen=True)
class Footprint:
    config_name: str
    page_size: int
    nr_cpus: int
    protected_stacktrace: bool
    overflow_stack: int | None       # bytes per CPU; None: no such symbol
    stacktrace_total: int | None     # bytes for all CPUs; None: no such symbol
    claimed_overflow: int = CLAIMED_OVERFLOW_STACK   # the image's claim (a tree's own)
    claimed_buffer_size: int | None = None           # per CPU; None: the lab's formula

    @property
    def buffer_per_cpu(self) -> int | None:
        if self.stacktrace_total is None:
            return None
        return self.stacktrace_total // self.nr_cpus

    @property
    def claimed_buffer(self) -> int | None:
        if not self.protected_stacktrace:
            return None
        return self.claimed_buffer_size or claimed_buffer_per_cpu(self.page_size)

    @property
    def overflow_as_claimed(self) -> bool:
        return self.overflow_stack == self.claimed_overflow

    @property
    def buffer_as_claimed(self) -> bool:
        if self.stacktrace_total is not None and self.stacktrace_total % self.nr_cpus:
            return False
        return self.buffer_per_cpu == self.claimed_buffer


def read_footprint(config_name: str, elf: str) -> Footprint:
    """The footprint of one built image (raises HarnessError if unreadable);
    ``config_name`` labels it (a grid row: ``linux-6.12/pkvm``)."""
    image = load_image(elf)
    overflow = image.find_symbol(OVERFLOW_STACK_SYMBOL)
    buffer = image.find_symbol(STACKTRACE_SYMBOL)
    total = buffer.size if buffer else None
    if total is not None and image.kernel_generation is not None:
        total *= image.layout.nr_cpus  # a tree's buffer is per-CPU: the symbol is one copy
    return Footprint(config_name=config_name, page_size=1 << image.layout.page_shift,
                     nr_cpus=image.layout.nr_cpus,
                     protected_stacktrace=image.layout.protected_stacktrace,
                     overflow_stack=overflow.size if overflow else None,
                     stacktrace_total=total,
                     claimed_overflow=image.stack_sizes.overflow_stack,
                     claimed_buffer_size=image.stack_sizes.trace_buffer)


def footprints(records: Sequence[RunRecord]) -> list[Footprint]:
    """One footprint per configuration (and unwinder) whose image the records
    name and exists."""
    seen: dict[str, Footprint] = {}
    for record in records:
        if record.spec.row in seen or not record.elf:
            continue
        try:
            seen[record.spec.row] = read_footprint(record.spec.row, record.elf)
        except HarnessError:
            continue  # the image is gone (another machine's report): no bar for it
    return list(seen.values())
