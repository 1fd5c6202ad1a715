"""Exception entry to EL2, done by the harness (Unicorn never enters vectors).

docs/platform.md ("Exceptions") lists the events the platform delivers,
and "Unicorn facts the platform relies on" what this builds on. One of
them: writing PSTATE does not swap the banked stack pointers, so
:func:`enter_el2` saves the outgoing SP into its SP_ELx bank and loads
SP_EL2 itself (ERET, run natively, does its own swap).
"""

from __future__ import annotations

from unicorn import Uc
from unicorn import arm64_const as A

EC_HVC64 = 0x16
EC_INSTRUCTION_ABORT_SAME_EL = 0x21
EC_DATA_ABORT_SAME_EL = 0x25
EC_BRK64 = 0x3C

ESR_IL = 1 << 25
ISS_WNR = 1 << 6
DFSC_TRANSLATION_FAULT_L3 = 0x07

VECTOR_CURRENT_EL_SP0 = 0x000
VECTOR_CURRENT_EL_SPX = 0x200
VECTOR_LOWER_EL_A64 = 0x400

PSTATE_EL2H_DAIF_MASKED = 0x3C9
PSTATE_EL1H_DAIF_MASKED = 0x3C5

SCR_EL3_NS_HCE_RW = 0x501
# SCR_EL3.APK/API: EL3 lets the lower ELs use the pointer authentication
# key registers and instructions (they trap to EL3 otherwise).
SCR_EL3_APK = 1 << 16
SCR_EL3_API = 1 << 17
HCR_EL2_RW = 1 << 31

# QEMU's exception numbers, as UC_HOOK_INTR reports them.
EXCP_UDEF = 1
EXCP_SWI = 2
EXCP_PREFETCH_ABORT = 3
EXCP_DATA_ABORT = 4
EXCP_BKPT = 7
EXCP_HVC = 11
EXCP_SMC = 13
EXCP_HLT = 0x10001

_EXCEPTION_NAMES = {
    EXCP_UDEF: "UNDEFINED instruction",
    EXCP_SWI: "SVC",
    EXCP_PREFETCH_ABORT: "prefetch abort",
    EXCP_DATA_ABORT: "data abort (alignment or permission)",
    5: "IRQ",
    6: "FIQ",
    EXCP_BKPT: "BRK",
    8: "exception return",
    9: "kernel trap",
    EXCP_HVC: "HVC",
    12: "hypervisor trap",
    EXCP_SMC: "SMC",
    14: "virtual IRQ",
    15: "virtual FIQ",
    16: "semihosting call",
    EXCP_HLT: "WFI (halt)",
}

# (op0, op1, CRn, CRm, op2) of system registers Unicorn has no constant for.
SYSREG_SPSR_EL2 = (3, 4, 4, 0, 0)
SYSREG_HCR_EL2 = (3, 4, 1, 1, 0)
SYSREG_TPIDR_EL2 = (3, 4, 13, 0, 2)
SYSREG_SCR_EL3 = (3, 6, 1, 1, 0)
SYSREG_HPFAR_EL2 = (3, 4, 6, 0, 4)
SYSREG_TPIDR_EL0 = (3, 3, 13, 0, 2)

_SP_BANKS = (A.UC_ARM64_REG_SP_EL0, A.UC_ARM64_REG_SP_EL1, A.UC_ARM64_REG_SP_EL2)


def exception_name(number: int) -> str:
    return _EXCEPTION_NAMES.get(number, f"exception #{number}")


def current_el(pstate: int) -> int:
    return (pstate >> 2) & 3


def esr(ec: int, iss: int) -> int:
    """An ESR_ELx value for a 32-bit instruction (IL set)."""
    return (ec << 26) | ESR_IL | (iss & 0x1FFFFFF)


def data_abort_esr(is_write: bool) -> int:
    return esr(EC_DATA_ABORT_SAME_EL, DFSC_TRANSLATION_FAULT_L3 | (ISS_WNR if is_write else 0))


def instruction_abort_esr() -> int:
    """A translation fault on an instruction fetch at EL2 (IFSC as DFSC)."""
    return esr(EC_INSTRUCTION_ABORT_SAME_EL, DFSC_TRANSLATION_FAULT_L3)


def imm16(insn: int) -> int:
    """The 16-bit immediate of HVC, SVC, SMC and BRK."""
    return (insn >> 5) & 0xFFFF


def is_hvc(insn: int) -> bool:
    return insn & 0xFFE0001F == 0xD4000002


def is_brk(insn: int) -> bool:
    return insn & 0xFFE0001F == 0xD4200000


def sysreg_read(uc: Uc, reg: tuple[int, int, int, int, int]) -> int:
    return uc.cpr_read(*reg)


def sysreg_write(uc: Uc, reg: tuple[int, int, int, int, int], value: int) -> None:
    uc.cpr_write(*reg, value)


def sync_el_state(uc: Uc) -> None:
    """Make Unicorn rebuild its cached EL state after a PSTATE write: any
    system register write through CP_REG does it (TPIDR_EL0, unchanged)."""
    sysreg_write(uc, SYSREG_TPIDR_EL0, uc.reg_read(A.UC_ARM64_REG_TPIDR_EL0))


def set_pstate(uc: Uc, pstate: int) -> None:
    """Switch PSTATE (mode and all), keeping the banked SPs right."""
    old = uc.reg_read(A.UC_ARM64_REG_PSTATE)
    uc.reg_write(_sp_bank(old), uc.reg_read(A.UC_ARM64_REG_SP))
    uc.reg_write(A.UC_ARM64_REG_PSTATE, pstate)
    sync_el_state(uc)
    uc.reg_write(A.UC_ARM64_REG_SP, uc.reg_read(_sp_bank(pstate)))


def _sp_bank(pstate: int) -> int:
    return _SP_BANKS[current_el(pstate)] if pstate & 1 else A.UC_ARM64_REG_SP_EL0


def vector_offset(from_pstate: int) -> int:
    """Offset in VBAR_EL2's table of a synchronous exception taken to EL2."""
    if current_el(from_pstate) < 2:
        return VECTOR_LOWER_EL_A64
    return VECTOR_CURRENT_EL_SPX if from_pstate & 1 else VECTOR_CURRENT_EL_SP0


def enter_el2(uc: Uc, *, esr_value: int, elr: int, far: int | None = None) -> int:
    """Take a synchronous exception to EL2 as the architecture does: ELR,
    SPSR (the old PSTATE), ESR and FAR; EL2h with DAIF masked; PC at the
    vector. Returns the new PC."""
    pstate = uc.reg_read(A.UC_ARM64_REG_PSTATE)
    uc.reg_write(A.UC_ARM64_REG_ELR_EL2, elr)
    sysreg_write(uc, SYSREG_SPSR_EL2, pstate)
    uc.reg_write(A.UC_ARM64_REG_ESR_EL2, esr_value)
    if far is not None:
        uc.reg_write(A.UC_ARM64_REG_FAR_EL2, far)
    set_pstate(uc, PSTATE_EL2H_DAIF_MASKED)
    pc = uc.reg_read(A.UC_ARM64_REG_VBAR_EL2) + vector_offset(pstate)
    uc.reg_write(A.UC_ARM64_REG_PC, pc)
    return pc


def reset_to_el2(uc: Uc) -> None:
    """The CPU as the platform hands it over: EL2h, DAIF masked, EL3 set up
    for a non-secure AArch64 EL2 with HVC enabled and pointer authentication
    untrapped, EL1 AArch64."""
    sysreg_write(uc, SYSREG_SCR_EL3, SCR_EL3_NS_HCE_RW | SCR_EL3_API | SCR_EL3_APK)
    set_pstate(uc, PSTATE_EL2H_DAIF_MASKED)
    sysreg_write(uc, SYSREG_HCR_EL2, HCR_EL2_RW)
