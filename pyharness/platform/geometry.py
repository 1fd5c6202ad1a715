"""Where each CPU's hyp stack, overflow stack and trace buffer are: worked
out once, from the image's symbols, layout record and stack sizes (the
lab's formula, or a kernel tree's numbers: elf/stack_sizes.py), for the
address map, the oracle, the bounds watches and the machine's messages.

Hyp VAs are the hyp's own view (docs/platform.md, "Virtual address
spaces"); PAs are where the bytes sit in RAM, which is what memory watches
see whatever mapping an access goes through.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from pyharness.elf.image import Image, ImageError

# The firmware symbols the geometry is read from (the hyp's carry the
# __kvm_nvhe_ prefix of the final link).
HYP_STACK_PAGES = "kvm_arm_hyp_stack_pages"
HOST_TASK_STACKS = "host_task_stacks"
OVERFLOW_STACK = "__kvm_nvhe_overflow_stack"
TRACE_BUFFER = "__kvm_nvhe_pkvm_stacktrace"
SHARED_START = "__hyp_shared_start"
SHARED_END = "__hyp_shared_end"


@dataclass(frozen=True)
class Span:
    """A half-open address range [lo, hi)."""

    lo: int
    hi: int

    @property
    def size(self) -> int:
        return self.hi - self.lo

    def __contains__(self, address: int) -> bool:
        return self.lo <= address < self.hi

    def holds(self, address: int, size: int) -> bool:
        """Whether all of [address, address + size) lies inside."""
        return self.lo <= address and address + size <= self.hi


class StackGeometry:
    """The per-CPU stacks and buffers of one image."""

    def __init__(self, image: Image) -> None:
        self.image = image
        layout = self.layout = image.layout
        self.page_size = layout.page_size
        self.sizes = image.stack_sizes
        self.hyp_stack_size = self.sizes.hyp_stack
        self.nr_cpus = layout.nr_cpus
        _, self.hyp_percpu_stride = image.percpu_area("hyp")
        self._stack_pages = image.address_of(HYP_STACK_PAGES)
        self._buffer = image.find_symbol(TRACE_BUFFER)

    @functools.cached_property
    def _overflow(self):
        return self.image.symbol(OVERFLOW_STACK)

    def _hyp_va_of_pa(self, pa: int) -> int:
        return pa + self.layout.hyp_va_offset

    # -- the hyp stack: one per CPU (a page, or a tree's NVHE_STACK_SIZE), a
    #    guard of the same size below -------------------------------------------

    def hyp_stack_va(self, cpu: int) -> Span:
        base = self.layout.hyp_stack_va(cpu, self.hyp_stack_size)
        return Span(base, base + self.hyp_stack_size)

    def hyp_stack_pa(self, cpu: int) -> Span:
        base = self.image.phys_address(self._stack_pages) + cpu * self.hyp_stack_size
        return Span(base, base + self.hyp_stack_size)

    @property
    def hyp_stack_pages_link(self) -> Span:
        """The host's array backing every CPU's hyp stack (link-time addresses)."""
        return Span(self._stack_pages,
                    self._stack_pages + self.nr_cpus * self.hyp_stack_size)

    def hyp_stack_owner(self, pa: int) -> int | None:
        """The CPU whose hyp stack holds ``pa``, if any."""
        first = self.hyp_stack_pa(0).lo
        if first <= pa < first + self.nr_cpus * self.hyp_stack_size:
            return (pa - first) // self.hyp_stack_size
        return None

    def host_task_stack_link(self, cpu: int) -> Span:
        """The host's task stack of ``cpu`` (link-time; add the KASLR offset)."""
        stacks = self.image.symbol(HOST_TASK_STACKS)
        size = stacks.size // self.nr_cpus
        return Span(stacks.address + cpu * size, stacks.address + (cpu + 1) * size)

    # -- the overflow stack: a per-CPU variable ------------------------------

    def overflow_stack_pa(self, cpu: int) -> Span:
        """The stack the vector and the unwinder mean: OVERFLOW_STACK_SIZE bytes
        from the symbol (the footprint check holds the symbol to that size)."""
        base = self.image.phys_address(self._overflow.address) + cpu * self.hyp_percpu_stride
        return Span(base, base + self.sizes.overflow_stack)

    def overflow_stack_va(self, cpu: int) -> Span:
        pa = self.overflow_stack_pa(cpu)
        return Span(self._hyp_va_of_pa(pa.lo), self._hyp_va_of_pa(pa.hi))

    # -- the protected-mode trace buffer, shared with the host ---------------

    @property
    def has_trace_buffer(self) -> bool:
        return self._buffer is not None

    @property
    def trace_buffer_is_percpu_variable(self) -> bool:
        """A kernel tree's ``DEFINE_PER_CPU(..., pkvm_stacktrace)``: CPU n's
        copy at the hyp per-CPU stride; the lab's is ``[NR_CPUS][entries]``."""
        return self.image.unwinder != "lab"

    def trace_buffer_pa(self, cpu: int) -> Span:
        """This CPU's part of the shared trace buffer."""
        if self._buffer is None:
            raise ImageError(f"{self.image.path}: no {TRACE_BUFFER}: the image was built "
                             "without CONFIG_PROTECTED_NVHE_STACKTRACE")
        if self.trace_buffer_is_percpu_variable:
            per_cpu, stride = self._buffer.size, self.hyp_percpu_stride
        else:
            per_cpu = stride = self._buffer.size // self.nr_cpus
        base = self.image.phys_address(self._buffer.address) + cpu * stride
        return Span(base, base + per_cpu)

    @property
    def overflow_symbol_size(self) -> int:
        """What the image's overflow stack symbol spans (one CPU's copy)."""
        return self._overflow.size

    @property
    def shared_pages_pa(self) -> Span:
        return Span(self.image.phys_address(self.image.address_of(SHARED_START)),
                    self.image.phys_address(self.image.address_of(SHARED_END)))


@functools.lru_cache(maxsize=16)
def stack_geometry(image: Image) -> StackGeometry:
    """The geometry of ``image`` (images are cached per process, so is this)."""
    return StackGeometry(image)
