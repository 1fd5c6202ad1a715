"""A failed translation, turned into what the hardware would do.

Unicorn stops at the faulting instruction with the registers as before it
(docs/platform.md, "Exceptions"). At EL2 the harness delivers a data abort
to the hyp's vector with the exact FAR, computed from the instruction, or
an instruction abort for a fetch from an unmapped VA; at
EL1 an access to a hyp-private page in protected mode is an isolation
breach (a verdict, not a crash); anything else ends the run with an error
that names the access.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from unicorn import UC_MEM_FETCH, UC_MEM_WRITE, Uc
from unicorn import arm64_const as A

from pyharness.platform import a64
from pyharness.platform.addrspace import AddressSpaces
from pyharness.platform.el2_entry import data_abort_esr, enter_el2, instruction_abort_esr
from pyharness.platform.geometry import StackGeometry
from pyharness.platform.results import Breach, RunStatus


@dataclass
class FailedFill:
    """A TLB fill the address map refused, as the fill callback saw it."""

    va: int
    access: int
    el: int
    breach_pa: int | None  # set when the page exists but is hyp-private


class AbortHost(Protocol):
    """What the abort model needs from the machine."""

    uc: Uc
    spaces: AddressSpaces
    geometry: StackGeometry

    def finish(self, status: RunStatus, reason: str, *,
               breach: Breach | None = None) -> None: ...

    def describe_va(self, va: int, el: int) -> str: ...

    def instruction_at(self, va: int, el: int) -> int | None: ...

    def gpr(self, n: int) -> int: ...


def deliver(host: AbortHost, fault: FailedFill) -> None:
    """Model the exception a failed fill raises, or end the run."""
    uc, spaces = host.uc, host.spaces
    pc = uc.reg_read(A.UC_ARM64_REG_PC)
    el = fault.el
    access = {UC_MEM_WRITE: "write", UC_MEM_FETCH: "fetch"}.get(fault.access, "read")
    span = None
    if fault.access != UC_MEM_FETCH:
        insn = host.instruction_at(pc, el)
        if insn is not None:
            span = a64.data_access(insn, host.gpr, pc)

    def unmapped(va: int, at: int) -> bool:
        return spaces.translate(va, at) is None

    def private(va: int, at: int) -> bool:
        pa = spaces.translate(va, at)
        return pa is not None and spaces.is_hyp_private(pa)

    if fault.breach_pa is not None:
        va = _first_byte(span, el, private, host.geometry.page_size) if span else fault.va
        pa = spaces.translate(va, el)
        breach = Breach(va, pa if pa is not None else fault.breach_pa, pc, access,
                        _describe_target(host, va, el), host.describe_va(pc, el))
        host.finish(RunStatus.ISOLATION_BREACH, str(breach), breach=breach)
    elif fault.access == UC_MEM_FETCH and el >= 2:
        # An instruction abort: ELR and FAR are the address fetched from.
        enter_el2(uc, esr_value=instruction_abort_esr(), elr=pc, far=pc)
    elif fault.access == UC_MEM_FETCH:
        host.finish(RunStatus.ERROR, f"EL{el} instruction fetch from unmapped VA "
                                     f"{fault.va:#x} (pc {pc:#x})")
    elif el >= 2:
        far = _first_byte(span, el, unmapped, host.geometry.page_size) if span else fault.va
        enter_el2(uc, esr_value=data_abort_esr(fault.access == UC_MEM_WRITE), elr=pc, far=far)
    else:
        va = _first_byte(span, el, unmapped, host.geometry.page_size) if span else fault.va
        host.finish(RunStatus.ERROR, f"EL{el} data abort: {access} of unmapped VA {va:#x} "
                                     f"at pc {pc:#x} ({host.describe_va(pc, el)})")


def _first_byte(span: tuple[int, int], el: int, faulting: Callable[[int, int], bool],
                page: int) -> int:
    """The first byte of an access that faults: FAR is exact on hardware."""
    address, size = span
    probe = address
    while probe < address + size:
        if faulting(probe, el):
            return probe
        probe = (probe // page + 1) * page
    return address


def _describe_target(host: AbortHost, va: int, el: int) -> str:
    pa = host.spaces.translate(va, el)
    if pa is not None:
        cpu = host.geometry.hyp_stack_owner(pa)
        if cpu is not None:
            return f"hyp stack page of CPU {cpu}"
    return host.describe_va(va, el)
