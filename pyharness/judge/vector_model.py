"""What the hyp vector's stack-overflow test must decide, modelled from SP.

The series' design (csrc/hyp/host.S, the kernel's host.S): a hyp stack is
one page (a tree's NVHE_STACK_SIZE from 7.x on) placed so that bit
PAGE_SHIFT (NVHE_STACK_SHIFT) of every valid SP is 1 and, in the guard
below, 0. An exception taken at EL2 on SP_EL2 tests that bit of
the SP it was taken with; 0 sends it to the top of this CPU's overflow
stack and ``hyp_panic_bad_stack``, 1 straight to ``hyp_panic``. The model
hooks the vector's EL2h synchronous entry (SP as the exception left it)
and ``hyp_panic_bad_stack``'s entry, and when the unwind starts says
whether the vector did what the bit asks: for an overflow, for SP exactly
at a stack's top (the next page's first byte), for SP on the overflow
stack (a bit that depends on where the overflow stack sits).
"""

from __future__ import annotations

from pyharness.elf.image import Image
from pyharness.platform.geometry import Span
from pyharness.platform.machine import Machine

VECTOR = "__kvm_nvhe___kvm_hyp_host_vector"
BAD_STACK = "__kvm_nvhe_hyp_panic_bad_stack"
SYNC_EL2H = 0x200     # the current-EL, SP_ELx synchronous entry


class VectorModel:
    def __init__(self, image: Image, machine: Machine, overflow_stack: Span) -> None:
        self.page_shift = image.stack_sizes.hyp_stack_shift
        self.overflow_stack = overflow_stack
        self.events: list[tuple[str, int]] = []
        self.findings: list[str] = []
        vector, bad_stack = image.find_symbol(VECTOR), image.find_symbol(BAD_STACK)
        if vector is None or bad_stack is None:
            return
        machine.add_code_hook(vector.address + SYNC_EL2H, self._hook("vector"), space="hyp")
        machine.add_code_hook(bad_stack.address, self._hook("bad_stack"), space="hyp")

    def _hook(self, what: str):
        def on_entry(machine: Machine, _link_address: int) -> None:
            self.events.append((what, machine.register("sp")))
        return on_entry

    def decide(self) -> None:
        """At the unwind start: the last EL2h exception's decision."""
        entries = [i for i, (what, _) in enumerate(self.events) if what == "vector"]
        if not entries:
            return
        sp = self.events[entries[-1]][1]
        overflow = not sp >> self.page_shift & 1
        switched = [s for what, s in self.events[entries[-1] + 1:] if what == "bad_stack"]
        if overflow and not switched:
            self.findings.append(f"vector: SP {sp:#x} has bit {self.page_shift} clear, an "
                                 "overflow, but the vector did not move to the overflow stack")
        elif not overflow and switched:
            self.findings.append(f"vector: SP {sp:#x} has bit {self.page_shift} set, no "
                                 "overflow, but the vector moved to the overflow stack")
        elif switched and switched[0] != self.overflow_stack.hi:
            self.findings.append(f"vector: moved SP to {switched[0]:#x}, not to the top of "
                                 f"this CPU's overflow stack {self.overflow_stack.hi:#x}")
