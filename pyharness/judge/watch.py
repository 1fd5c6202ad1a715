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
seen through the hyp's private range and through the kernel image). The
machine records the accesses (:meth:`Machine.watch_hits`, in C when the
helper library is built, see docs/platform.md); they become reasons when
:attr:`BoundsWatch.violations` is read, after the run.
"""

from __future__ import annotations

from typing import Callable

from pyharness.elf.image import Image
from pyharness.judge.code_lines import code_line
from pyharness.platform.geometry import stack_geometry
from pyharness.platform.hook_records import Hit
from pyharness.platform.machine import Machine

OVERFLOW_GUARD_BYTES = 256


class BoundsWatch:
    def __init__(self, image: Image, machine: Machine, cpu: int) -> None:
        self.image = image
        self.machine = machine
        self.cpu = cpu
        self.geometry = stack_geometry(image)
        # watch id -> (what it means, which of its hits count)
        self._watches: dict[int, tuple[str, Callable[[Hit], bool] | None]] = {}
        self._watch_shared_buffer()
        self._watch_below_overflow_stack()
        self._watch_other_cpus_stacks()

    @property
    def violations(self) -> list[str]:
        """One reason per offending access, in the order they happened."""
        notes = []
        for hit in self.machine.watch_hits():
            what, counts = self._watches.get(hit.watch, (None, None))
            if what is not None and (counts is None or counts(hit)):
                notes.append(f"{what} at PA {hit.address:#x} (pc {self._pc(hit.pc)})")
        if self.machine.watch_hits_dropped:
            notes.append(f"{self.machine.watch_hits_dropped} more accesses to watched "
                         "ranges were not recorded")
        return notes

    def _pc(self, pc: int) -> str:
        """The pc of an access with the code it is in: its symbol and
        ``file:line`` (hyp code at EL2, the host's at EL1)."""
        for el in (2, 1):
            link = self.machine.link_address(pc, el)
            hit = self.image.lookup(link) if link is not None else None
            if hit is not None:
                where = code_line(str(self.image.path), link, return_address=False)
                return f"{pc:#x}: {hit}{where}"
        return f"{pc:#x}"

    def _watch(self, pa: int, size: int, what: str, *, reads: bool = False,
               counts: Callable[[Hit], bool] | None = None) -> None:
        watch = (self.machine.watch_reads if reads else self.machine.watch_writes)(pa, size)
        self._watches[watch] = (what, counts)

    def _watch_shared_buffer(self) -> None:
        if not self.geometry.has_trace_buffer:
            return
        shared = self.geometry.shared_pages_pa
        own = self.geometry.trace_buffer_pa(self.cpu)
        for lo, hi in ((shared.lo, own.lo), (own.hi, shared.hi)):
            if hi > lo:
                self._watch(lo, hi - lo, "write outside this CPU's shared trace buffer")

    def _watch_below_overflow_stack(self) -> None:
        base = self.geometry.overflow_stack_pa(self.cpu).lo
        base_va = self.geometry.overflow_stack_va(self.cpu).lo
        # Other per-CPU variables live below the stack: only a write made
        # while SP has left the stack's bottom is an overflow.
        self._watch(base - OVERFLOW_GUARD_BYTES, OVERFLOW_GUARD_BYTES,
                    "write below the overflow stack", counts=lambda hit: hit.sp < base_va)

    def _watch_other_cpus_stacks(self) -> None:
        for other in range(self.geometry.nr_cpus):
            if other == self.cpu:
                continue
            for span in (self.geometry.hyp_stack_pa(other),
                         self.geometry.overflow_stack_pa(other)):
                self._watch(span.lo, span.size, "read of another CPU's hyp stack", reads=True)
