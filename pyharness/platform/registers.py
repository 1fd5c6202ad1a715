"""The CPU's registers by name, as Unicorn numbers them."""

from __future__ import annotations

import functools

from unicorn import Uc, UcError
from unicorn import arm64_const as A

from pyharness.platform.native_lib import RegisterBatch
from pyharness.platform.results import MachineError
from pyharness.platform.el2_entry import (SYSREG_HCR_EL2, SYSREG_HPFAR_EL2, SYSREG_SPSR_EL2,
                                          SYSREG_TPIDR_EL2, current_el, sysreg_read)

GPR_IDS = tuple([A.UC_ARM64_REG_X0 + n for n in range(29)]
                 + [A.UC_ARM64_REG_X29, A.UC_ARM64_REG_X30])

REGISTER_IDS = {
    **{f"x{n}": reg for n, reg in enumerate(GPR_IDS)},
    "fp": A.UC_ARM64_REG_X29, "lr": A.UC_ARM64_REG_X30, "sp": A.UC_ARM64_REG_SP,
    "pc": A.UC_ARM64_REG_PC, "pstate": A.UC_ARM64_REG_PSTATE,
}

SYSREG_IDS = {
    "elr_el2": A.UC_ARM64_REG_ELR_EL2, "esr_el2": A.UC_ARM64_REG_ESR_EL2,
    "far_el2": A.UC_ARM64_REG_FAR_EL2, "vbar_el2": A.UC_ARM64_REG_VBAR_EL2,
    "sp_el0": A.UC_ARM64_REG_SP_EL0, "sp_el1": A.UC_ARM64_REG_SP_EL1,
    "sp_el2": A.UC_ARM64_REG_SP_EL2, "elr_el1": A.UC_ARM64_REG_ELR_EL1,
    "esr_el1": A.UC_ARM64_REG_ESR_EL1, "far_el1": A.UC_ARM64_REG_FAR_EL1,
    "vbar_el1": A.UC_ARM64_REG_VBAR_EL1, "tpidr_el1": A.UC_ARM64_REG_TPIDR_EL1,
    "par_el1": A.UC_ARM64_REG_PAR_EL1,
}


_BATCH = ([(f"x{n}", reg) for n, reg in enumerate(GPR_IDS)]
          + [("pstate", A.UC_ARM64_REG_PSTATE), ("sp", A.UC_ARM64_REG_SP),
             ("pc", A.UC_ARM64_REG_PC)] + list(SYSREG_IDS.items()))
_BATCH_NAMES = tuple(name for name, _ in _BATCH)
_BATCH_IDS = tuple(reg for _, reg in _BATCH)
_SYSREGS = (("spsr_el2", SYSREG_SPSR_EL2), ("hcr_el2", SYSREG_HCR_EL2),
            ("tpidr_el2", SYSREG_TPIDR_EL2), ("hpfar_el2", SYSREG_HPFAR_EL2))
_ALL_NAMES = _BATCH_NAMES + tuple(name for name, _ in _SYSREGS)


@functools.lru_cache(maxsize=1)
def _batch() -> RegisterBatch:
    return RegisterBatch(_BATCH_IDS, [encoding for _, encoding in _SYSREGS], A.UC_ARM64_REG_CP_REG)


def read_registers(uc: Uc) -> dict[str, int]:
    """The CPU's registers now: x0..x30, sp, pc, pstate, el and the EL1/EL2
    system registers a post-mortem needs. Banked SPs are shown as the CPU
    would (the live SP in its own bank)."""
    # One call into Unicorn for all of them, into buffers made once: a
    # read each cost ~6 us of binding, the binding's batch ~4 us a register.
    try:
        regs = dict(zip(_ALL_NAMES, _batch().read(uc)))
    except UcError:   # a system register this CPU model refuses
        regs = registers_through_binding(uc)
    pstate = regs["pstate"]
    regs["el"] = current_el(pstate)
    live_bank = (f"sp_el{current_el(pstate)}" if pstate & 1 else "sp_el0")
    regs[live_bank] = regs["sp"]
    return regs


def registers_through_binding(uc: Uc) -> dict[str, int]:
    """What :func:`read_registers` reads in one C call, through the
    binding's calls (leaving out a system register Unicorn refuses)."""
    regs = dict(zip(_BATCH_NAMES, uc.reg_read_batch(_BATCH_IDS)))
    for name, encoding in _SYSREGS:
        try:
            regs[name] = sysreg_read(uc, encoding)
        except UcError:
            pass
    return regs


class RegisterAccess:
    """Reading and writing the CPU's registers by name (mixed into the
    machine; hooks call :meth:`register` on every frame, so it stays cheap)."""

    uc: Uc

    def gpr(self, n: int) -> int:
        """General register n (31 = SP), for instruction decoding."""
        if n == 31:
            return self.uc.reg_read(A.UC_ARM64_REG_SP)
        return self.uc.reg_read(GPR_IDS[n])

    def current_el(self) -> int:
        return current_el(self.uc.reg_read(A.UC_ARM64_REG_PSTATE))

    def register(self, name: str) -> int:
        """One register now, cheaply: ``x0``..``x30``, ``fp``, ``lr``, ``sp``,
        ``pc`` or ``pstate`` (for hooks; :meth:`registers` reads them all)."""
        reg = REGISTER_IDS.get(name)
        if reg is None:
            raise MachineError(f"unknown register {name!r}; use x0..x30, fp, lr, sp, pc "
                               "or pstate")
        return self.uc.reg_read(reg)

    def set_register(self, name: str, value: int) -> None:
        """Change one register (as :meth:`register` names them), from a hook."""
        reg = REGISTER_IDS.get(name)
        if reg is None:
            raise MachineError(f"unknown register {name!r}; use x0..x30, fp, lr, sp, pc")
        self.uc.reg_write(reg, value)

    def registers(self) -> dict[str, int]:
        """The CPU's registers now (:func:`~pyharness.platform.registers.read_registers`)."""
        return read_registers(self.uc)
