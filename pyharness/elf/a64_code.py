"""The few A64 instructions a real kernel's fault injection writes and its
judge reads.

Writing (:mod:`pyharness.run.kernel_faults`): branches, the faulting
instructions (a load through a null pointer, ``brk``, ``udf``), the stack
recursion, and the CPU test (``mrs`` MPIDR_EL1, ``and``, ``cmp``).
Reading (:mod:`pyharness.judge.kernel_path`): is a word a call (``bl``,
``blr``, ``blraa``...) and where does a direct one go; is it a landing pad
(``paciasp``, ``bti c``); how far a prologue moves SP down.

``tests/test_a64_code.py`` checks every encoder against the cross
assembler's own bytes.
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1

NOP = 0xD503201F
RET = 0xD65F03C0
# Hints that may open a function and must stay where they are: the
# target of an indirect call lands on them (BTI), and paciasp signs the
# return address its epilogue authenticates.
PACIASP = 0xD503233F
PACIBSP = 0xD503237F
BTI_C = 0xD503245F
BTI_JC = 0xD50324DF
LANDING_PADS = frozenset((PACIASP, PACIBSP, BTI_C, BTI_JC))
# What authenticates, at the same SP, what each pac instruction signed.
AUTHENTICATE = {PACIASP: 0xD50323BF, PACIBSP: 0xD50323FF}     # autiasp, autibsp

# Condition codes of b.cond.
EQ, NE = 0x0, 0x1


def _branch_offset(frm: int, to: int, bits: int) -> int:
    delta = to - frm
    if delta % 4:
        raise ValueError(f"branch from {frm:#x} to {to:#x}: not a multiple of 4")
    words = delta >> 2
    if not -(1 << (bits - 1)) <= words < (1 << (bits - 1)):
        raise ValueError(f"branch from {frm:#x} to {to:#x}: out of range")
    return words & ((1 << bits) - 1)


def b(frm: int, to: int) -> int:
    """``b to``, placed at ``frm``."""
    return 0x14000000 | _branch_offset(frm, to, 26)


def bl(frm: int, to: int) -> int:
    """``bl to``, placed at ``frm``."""
    return 0x94000000 | _branch_offset(frm, to, 26)


def b_cond(cond: int, frm: int, to: int) -> int:
    """``b.<cond> to``, placed at ``frm``."""
    return 0x54000000 | (_branch_offset(frm, to, 19) << 5) | cond


def brk(imm: int) -> int:
    return 0xD4200000 | ((imm & 0xFFFF) << 5)


def udf(imm: int = 0) -> int:
    return imm & 0xFFFF


def mrs(rt: int, op0: int, op1: int, crn: int, crm: int, op2: int) -> int:
    """``mrs xRT, S<op0>_<op1>_C<crn>_C<crm>_<op2>``."""
    return (0xD5300000 | ((op0 - 2) << 19) | (op1 << 16) | (crn << 12) | (crm << 8)
            | (op2 << 5) | rt)


def mrs_mpidr_el1(rt: int) -> int:
    return mrs(rt, 3, 0, 0, 0, 5)


def mrs_mdcr_el2(rt: int) -> int:
    return mrs(rt, 3, 4, 1, 1, 1)


def and_low_byte(rd: int, rn: int) -> int:
    """``and xRD, xRN, #0xff`` (a 64-bit logical immediate: N=1, immr=0, imms=7)."""
    return 0x92401C00 | (rn << 5) | rd


def cmp_imm(rn: int, imm: int) -> int:
    """``cmp xRN, #imm`` (``subs xzr, xRN, #imm``), imm < 4096."""
    if not 0 <= imm < 4096:
        raise ValueError(f"cmp immediate {imm} out of range")
    return 0xF100001F | (imm << 10) | (rn << 5)


def mov_zero(rd: int) -> int:
    """``mov xRD, xzr``."""
    return 0xAA1F03E0 | rd


def ldr(rt: int, rn: int, offset: int = 0) -> int:
    """``ldr xRT, [xRN, #offset]`` (unsigned offset, a multiple of 8)."""
    return 0xF9400000 | ((offset // 8) << 10) | (rn << 5) | rt


def str_(rt: int, rn: int, offset: int = 0) -> int:
    """``str xRT, [xRN, #offset]`` (unsigned offset, a multiple of 8)."""
    return 0xF9000000 | ((offset // 8) << 10) | (rn << 5) | rt


def sub_sp(imm: int) -> int:
    """``sub sp, sp, #imm``."""
    return 0xD10003FF | (imm << 10)


def stp_fp_lr(offset: int = 0, *, pre_index: bool = False) -> int:
    """``stp x29, x30, [sp, #offset]`` or, pre-indexed, ``[sp, #offset]!``."""
    imm7 = (offset // 8) & 0x7F
    base = 0xA9800000 if pre_index else 0xA9000000
    return base | (imm7 << 15) | (30 << 10) | (31 << 5) | 29


def mov_fp_sp() -> int:
    """``mov x29, sp``."""
    return 0x910003FD


# -- reading -------------------------------------------------------------------

def direct_call_target(word: int, pc: int) -> int | None:
    """Where ``bl`` at ``pc`` goes, or None if ``word`` is not a ``bl``."""
    if word & 0xFC000000 != 0x94000000:
        return None
    offset = word & 0x03FFFFFF
    if offset & 0x02000000:
        offset -= 1 << 26
    return (pc + offset * 4) & MASK64


def is_indirect_call(word: int) -> bool:
    """``blr xN`` or one of the authenticating forms (``blraa``, ``blrab``,
    ``blraaz``, ``blrabz``)."""
    if word & 0xFFFFFC1F == 0xD63F0000:
        return True
    return word & 0xFEFFF800 == 0xD63F0800


def is_call(word: int) -> bool:
    return direct_call_target(word, 0) is not None or is_indirect_call(word)


def is_pc_relative(word: int) -> bool:
    """Whether the instruction's effect depends on where it sits (branches,
    adr/adrp, literal loads): such a word cannot be moved elsewhere."""
    return (word & 0x7C000000 == 0x14000000            # b, bl
            or word & 0xFF000010 == 0x54000000         # b.cond
            or word & 0x7E000000 == 0x34000000         # cbz, cbnz
            or word & 0x7E000000 == 0x36000000         # tbz, tbnz
            or word & 0x1F000000 == 0x10000000         # adr, adrp
            or word & 0x3B000000 == 0x18000000)        # ldr (literal)


# Branches a word can be moved with: (mask, value, offset's low bit, width).
_RELOCATABLE = ((0x7C000000, 0x14000000, 0, 26),     # b, bl
                (0xFF000010, 0x54000000, 5, 19),     # b.cond
                (0x7E000000, 0x34000000, 5, 19),     # cbz, cbnz
                (0x7E000000, 0x36000000, 5, 14))     # tbz, tbnz


def relocated(word: int, old_pc: int, new_pc: int) -> int | None:
    """``word`` moved from ``old_pc`` to ``new_pc`` with its branch target
    kept, or None when it cannot be (adr, adrp, a literal load, a target
    out of the branch's reach). A word that is not PC-relative is itself."""
    if not is_pc_relative(word):
        return word
    for mask, value, low, width in _RELOCATABLE:
        if word & mask == value:
            field_mask = ((1 << width) - 1) << low
            offset = (word & field_mask) >> low
            if offset & (1 << (width - 1)):
                offset -= 1 << width
            target = old_pc + 4 * offset
            try:
                moved = _branch_offset(new_pc, target, width)
            except ValueError:
                return None
            return (word & ~field_mask) | (moved << low)
    return None


def stack_decrement(word: int) -> int:
    """How many bytes ``word`` moves SP down, in a prologue: ``sub sp, sp,
    #imm`` (optionally shifted by 12) or a pre-indexed store pair to SP with
    a negative offset; 0 for anything else."""
    if word & 0xFF8003FF == 0xD10003FF:                 # sub sp, sp, #imm{, lsl #12}
        imm = (word >> 10) & 0xFFF
        return imm << 12 if word & (1 << 22) else imm
    if word & 0x3BC00000 == 0x29800000 and (word >> 5) & 0x1F == 31:
        # stp (pre-index) to SP: opc, 101, V, 011, L=0, imm7 scaled by the size
        imm7 = (word >> 15) & 0x7F
        imm7 -= 0x80 if imm7 & 0x40 else 0
        opc, simd = word >> 30, bool(word & (1 << 26))
        scale = (4 << opc) if simd else (8 if opc == 2 else 4)
        return -imm7 * scale if imm7 < 0 else 0
    return 0
