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

from pyharness.elf.image import Image
from pyharness.platform.geometry import stack_geometry
from pyharness.platform.machine import Machine

OVERFLOW_GUARD_BYTES = 256


class BoundsWatch:
    def __init__(self, image: Image, machine: Machine, cpu: int) -> None:
        self.image = image
        self.machine = machine
        self.cpu = cpu
        self.geometry = stack_geometry(image)
        self.violations: list[str] = []
        self._watch_shared_buffer()
        self._watch_below_overflow_stack()
        self._watch_other_cpus_stacks()

    def _note(self, what: str, pa: int) -> None:
        pc = self.machine.register("pc")
        self.violations.append(f"{what} at PA {pa:#x} (pc {pc:#x})")

    def _watch_shared_buffer(self) -> None:
        if not self.geometry.has_trace_buffer:
            return
        shared = self.geometry.shared_pages_pa
        own = self.geometry.trace_buffer_pa(self.cpu)

        def on_write(_machine: Machine, va: int, _size: int, _is_write: bool) -> None:
            self._note("write outside this CPU's shared trace buffer", va)
        for lo, hi in ((shared.lo, own.lo), (own.hi, shared.hi)):
            if hi > lo:
                self.machine.add_memory_watch(lo, hi - lo, on_write)

    def _watch_below_overflow_stack(self) -> None:
        base = self.geometry.overflow_stack_pa(self.cpu).lo
        base_va = self.geometry.overflow_stack_va(self.cpu).lo

        def on_write(machine: Machine, pa: int, _size: int, _is_write: bool) -> None:
            # Other per-CPU variables live below the stack: only a write made
            # while SP has left the stack's bottom is an overflow.
            if machine.register("sp") < base_va:
                self._note("write below the overflow stack", pa)
        self.machine.add_memory_watch(base - OVERFLOW_GUARD_BYTES, OVERFLOW_GUARD_BYTES,
                                      on_write)

    def _watch_other_cpus_stacks(self) -> None:
        def on_read(_machine: Machine, pa: int, _size: int, _is_write: bool) -> None:
            self._note("read of another CPU's hyp stack", pa)
        for other in range(self.geometry.nr_cpus):
            if other == self.cpu:
                continue
            for span in (self.geometry.hyp_stack_pa(other),
                         self.geometry.overflow_stack_pa(other)):
                self.machine.add_memory_watch(span.lo, span.size, on_read, reads=True,
                                              writes=False)
