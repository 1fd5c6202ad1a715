"""Where the oracle hooks an image's hyp code, found once per image by
reading its instructions (never by running the code under test)."""

from __future__ import annotations

import functools
import struct
from dataclasses import dataclass

from pyharness.elf.image import Image
from pyharness.elf.symbols import FunctionTable

HYP_PREFIX = "__kvm_nvhe_"
# Where the hyp hands its unwinder the place to start: the kernel's entry
# point, kvm_nvhe_prepare_backtrace(fp, pc), in the lab and in the trees.
PREPARE_BACKTRACE = "__kvm_nvhe_kvm_nvhe_prepare_backtrace"


def _is_frame_setup(word: int) -> int | None:
    """``add x29, sp, #imm`` (``mov x29, sp`` is imm 0) -> imm, else None."""
    if word & 0xFFC003FF == 0x910003FD:
        return (word >> 10) & 0xFFF
    return None


def _stp_fp_lr(word: int) -> tuple[str, int] | None:
    """``stp x29, x30, [sp, #off]`` ('offset') or ``[sp, #off]!`` ('pre')."""
    forms = {0xA9007BFD: "offset", 0xA9807BFD: "pre"}
    form = forms.get(word & 0xFFC07FFF)
    if form is None:
        return None
    imm7 = (word >> 15) & 0x7F
    if imm7 & 0x40:
        imm7 -= 0x80
    return form, imm7 * 8


@dataclass(frozen=True)
class HypCodePoints:
    """Where the oracle hooks an image's hyp code (static, per image)."""

    functions: FunctionTable
    frame_setups: tuple[tuple[int, int], ...]   # (link address, imm) of each frame setup


@functools.lru_cache(maxsize=16)
def hyp_code_points(image: Image) -> HypCodePoints:
    """Scan the hyp text once per image (images are cached per process):
    every frame-pointer setup that follows, anywhere earlier in its
    function, a store of the {x29, x30} pair to the record it points at
    (a compiler may schedule other instructions between the two)."""
    functions = image.functions
    text = image.memory_image(0)

    def word(link_address: int) -> int:
        return struct.unpack_from("<I", text, link_address - image.link_base)[0]

    setups = []
    for func in functions:
        if not func.name.startswith(HYP_PREFIX):
            continue
        for addr in range(func.address, func.address + func.size, 4):
            imm = _is_frame_setup(word(addr))
            if imm is None:
                continue
            for back in range(addr - 4, func.address - 4, -4):
                stp = _stp_fp_lr(word(back))
                if stp and (stp[0] == "pre" and imm == 0 or
                            stp[0] == "offset" and stp[1] == imm):
                    setups.append((addr, imm))
                    break
    return HypCodePoints(functions, tuple(setups))
