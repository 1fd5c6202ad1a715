"""Just enough A64 decoding to know where a load or store goes.

Unicorn's TLB-fill hook sees the page of a failed access, not the access's
address (an ``stp`` to ``...0fc0`` arrives as ``...0c00``), while FAR must be
exact. :func:`data_access` decodes the faulting instruction and, from the
registers before it ran, returns the address and size it accesses.
"""

from __future__ import annotations

from typing import Callable

MASK64 = (1 << 64) - 1

# read_register(n) returns Xn for n in 0..30 and SP for 31 (base registers
# use SP for 31; index registers use XZR, handled here).
RegisterReader = Callable[[int], int]


def _sext(value: int, bits: int) -> int:
    sign = 1 << (bits - 1)
    return (value & (sign - 1)) - (value & sign)


def _extend(value: int, option: int) -> int:
    """The register-offset extend: UXTW, LSL/UXTX, SXTW, SXTX."""
    if option == 0b010:
        return value & 0xFFFFFFFF
    if option == 0b110:
        return _sext(value & 0xFFFFFFFF, 32)
    if option == 0b111:
        return _sext(value, 64)
    return value


def data_access(insn: int, read_register: RegisterReader, pc: int) -> tuple[int, int] | None:
    """``(address, size)`` of the data access ``insn`` makes, or None when it
    is not a load/store this decoder knows (the caller falls back to the
    fill address)."""
    rn = (insn >> 5) & 0x1F
    size = insn >> 30
    vector = (insn >> 26) & 1

    def base() -> int:
        return read_register(rn)

    # Load/store register pair (no-allocate, post-index, offset, pre-index).
    if insn & 0x3A000000 == 0x28000000:
        opc = insn >> 30
        scale = 2 + opc if vector else (3 if opc == 0b10 else 2)
        index = (insn >> 23) & 0b11
        imm = 0 if index == 0b01 else _sext((insn >> 15) & 0x7F, 7) << scale
        return (base() + imm) & MASK64, 2 << scale

    # Load register (literal), PC-relative.
    if insn & 0x3B000000 == 0x18000000:
        opc = insn >> 30
        width = (4, 8, 16)[opc] if vector and opc < 3 else (4, 8, 4, 0)[opc]
        if width == 0:
            return None  # PRFM
        return (pc + (_sext((insn >> 5) & 0x7FFFF, 19) << 2)) & MASK64, width

    scale = size
    if vector and (insn >> 23) & 1:
        scale = 4  # 128-bit SIMD&FP register

    # Load/store register, unsigned immediate offset.
    if insn & 0x3B000000 == 0x39000000:
        return (base() + (((insn >> 10) & 0xFFF) << scale)) & MASK64, 1 << scale

    if insn & 0x3B200000 == 0x38000000:
        # Unscaled immediate, post-index, unprivileged, pre-index.
        kind = (insn >> 10) & 0b11
        imm = 0 if kind == 0b01 else _sext((insn >> 12) & 0x1FF, 9)
        return (base() + imm) & MASK64, 1 << scale

    if insn & 0x3B200C00 == 0x38200800:
        # Register offset: [Xn, Rm{, extend {#amount}}].
        rm = (insn >> 16) & 0x1F
        offset = 0 if rm == 31 else _extend(read_register(rm), (insn >> 13) & 0b111)
        if (insn >> 12) & 1:
            offset <<= scale
        return (base() + offset) & MASK64, 1 << scale

    if insn & 0x3B200C00 == 0x38200000:
        return base(), 1 << size  # atomic memory operations (LDADD, SWP, ...)

    if insn & 0x3F000000 == 0x08000000:
        pair = (insn >> 21) & 1 and size >= 2
        return base(), (2 if pair else 1) << size  # exclusives, acquire/release

    if insn & 0x3F200C00 == 0x19000000:
        return (base() + _sext((insn >> 12) & 0x1FF, 9)) & MASK64, 1 << size  # LDAPUR/STLUR

    if insn & 0xBF000000 in (0x0C000000, 0x0D000000):
        return base(), 1  # SIMD structure loads/stores: at least the first byte

    return None
