"""Bounds watches: accesses that must never happen, whatever the firmware does.

- A hyp write into the shared pages outside the running CPU's own trace
  buffer (another CPU's buffer, or the padding after the last one): the
  protected-mode save overran its buffer.
- A hyp write just below the overflow stack while SP is below its base:
  the overflow stack itself overflowed.
- A read of another CPU's hyp stack or overflow stack, through the hyp
  mapping or the host's kernel mapping: an unwind wandered off its CPU.

Each becomes a reason on the run's record. Watches are on physical
ranges, so one watch covers every mapping of the same bytes (a hyp stack
seen through the hyp's private range and through the kernel image), and
costs a callback only when its range is touched.
"""

from __future__ import annotations

from .image import Image
from .machine import Machine

OVERFLOW_STACK = "__kvm_nvhe_overflow_stack"
PKVM_STACKTRACE = "__kvm_nvhe_pkvm_stacktrace"
OVERFLOW_GUARD_BYTES = 256


class BoundsWatch:
    def __init__(self, image: Image, machine: Machine, cpu: int) -> None:
        self.image = image
        self.machine = machine
        self.cpu = cpu
        self.violations: list[str] = []
        _, self._stride = image.percpu_area("hyp")
        self._watch_shared_buffer()
        self._watch_below_overflow_stack()
        self._watch_other_cpus_stacks()

    def _pa(self, link: int) -> int:
        return self.image.phys_address(link)

    def _note(self, what: str, pa: int) -> None:
        pc = self.machine.register("pc")
        self.violations.append(f"{what} at PA {pa:#x} (pc {pc:#x})")

    def _watch_shared_buffer(self) -> None:
        buffer = self.image.find_symbol(PKVM_STACKTRACE)
        if buffer is None:
            return
        per_cpu = buffer.size // self.image.layout.nr_cpus
        shared_lo = self._pa(self.image.address_of("__hyp_shared_start"))
        shared_hi = self._pa(self.image.address_of("__hyp_shared_end"))
        own_lo = self._pa(buffer.address) + self.cpu * per_cpu
        own_hi = own_lo + per_cpu

        def on_write(_machine: Machine, va: int, _size: int, _is_write: bool) -> None:
            self._note("write outside this CPU's shared trace buffer", va)
        for lo, hi in ((shared_lo, own_lo), (own_hi, shared_hi)):
            if hi > lo:
                self.machine.add_memory_watch(lo, hi - lo, on_write)

    def _overflow_stack_pa(self, cpu: int) -> int:
        return self._pa(self.image.address_of(OVERFLOW_STACK)) + cpu * self._stride

    def _watch_below_overflow_stack(self) -> None:
        base = self._overflow_stack_pa(self.cpu)
        base_va = base + self.image.layout.hyp_va_offset

        def on_write(machine: Machine, pa: int, _size: int, _is_write: bool) -> None:
            # Other per-CPU variables live below the stack: only a write made
            # while SP has left the stack's bottom is an overflow.
            if machine.register("sp") < base_va:
                self._note("write below the overflow stack", pa)
        self.machine.add_memory_watch(base - OVERFLOW_GUARD_BYTES, OVERFLOW_GUARD_BYTES,
                                      on_write)

    def _watch_other_cpus_stacks(self) -> None:
        image, machine = self.image, self.machine
        page = image.layout.page_size
        overflow = image.symbol(OVERFLOW_STACK)
        stack_pages = image.address_of("kvm_arm_hyp_stack_pages")

        def on_read(_machine: Machine, pa: int, _size: int, _is_write: bool) -> None:
            self._note("read of another CPU's hyp stack", pa)
        for other in range(image.layout.nr_cpus):
            if other == self.cpu:
                continue
            for pa, size in ((self._pa(stack_pages) + other * page, page),
                             (self._overflow_stack_pa(other), overflow.size)):
                machine.add_memory_watch(pa, size, on_read, reads=True, writes=False)
