"""The exceptions Unicorn reports, modelled as the CPU would take them.

Unicorn never delivers an exception to the guest's vectors
(docs/platform.md, "Exceptions"): an HVC from EL1 and a BRK at EL2 enter
the hyp's vector through :func:`~pyharness.platform.el2_entry.enter_el2`;
a WFI with nothing to wake the CPU, and any other exception, end the run
with an error naming where it happened.
"""

from __future__ import annotations

from typing import Protocol

from unicorn import Uc
from unicorn import arm64_const as A

from pyharness.platform.el2_entry import (EC_BRK64, EC_HVC64, EXCP_BKPT, EXCP_HLT, EXCP_HVC,
                                          EXCP_SMC, EXCP_SWI, enter_el2, esr, exception_name,
                                          imm16, is_brk, is_hvc)
from pyharness.platform.results import RunStatus

WFI = 0xD503207F


class TrapHost(Protocol):
    """What the trap model needs from the machine."""

    uc: Uc

    def finish(self, status: RunStatus, reason: str) -> None: ...

    def current_el(self) -> int: ...

    def describe_va(self, va: int, el: int) -> str: ...

    def instruction_at(self, va: int, el: int) -> int | None: ...

    def pc_text(self) -> str: ...


def take_exception(host: TrapHost, number: int) -> None:
    """Enter EL2 for an exception the platform models, or end the run."""
    uc = host.uc
    try:
        pc = uc.reg_read(A.UC_ARM64_REG_PC)
        el = host.current_el()
        if number == EXCP_HVC and el in (1, 2):
            # From EL1 the host's hypercall; at EL2 it is taken to EL2 too.
            insn = host.instruction_at(pc - 4, el)
            if insn is not None and is_hvc(insn):
                enter_el2(uc, esr_value=esr(EC_HVC64, imm16(insn)), elr=pc)
                return
        elif number == EXCP_BKPT and el == 2:
            insn = host.instruction_at(pc, el)
            if insn is not None and is_brk(insn):
                enter_el2(uc, esr_value=esr(EC_BRK64, imm16(insn)), elr=pc)
                return
        if number == EXCP_HLT:
            halted_in_wfi(host, pc - 4 if host.instruction_at(pc - 4, el) == WFI else pc, el)
            return
        # HVC, SVC and SMC report the pc after the instruction.
        where = pc - 4 if number in (EXCP_HVC, EXCP_SWI, EXCP_SMC) else pc
        host.finish(RunStatus.ERROR, f"unexpected exception at EL{el}: "
                                     f"{exception_name(number)} at "
                                     f"pc {where:#x} ({host.describe_va(where, el)})")
    except Exception as exc:
        host.finish(RunStatus.ERROR, f"internal error modelling {exception_name(number)}:"
                                     f" {type(exc).__name__}: {exc}")


def stopped_without_cause(host: TrapHost) -> None:
    """Unicorn stopped with no fault, exit or budget to explain it."""
    pc = host.uc.reg_read(A.UC_ARM64_REG_PC)
    el = host.current_el()
    for where in (pc - 4, pc):
        if host.instruction_at(where, el) == WFI:
            halted_in_wfi(host, where, el)
            return
    host.finish(RunStatus.ERROR, f"emulation stopped unexpectedly at pc {host.pc_text()}")


def halted_in_wfi(host: TrapHost, pc: int, el: int) -> None:
    host.finish(RunStatus.ERROR, f"the CPU halted in WFI at EL{el}, pc {pc:#x} "
                                 f"({host.describe_va(pc, el)}), without writing the exit "
                                 "register")
