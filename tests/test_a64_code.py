"""The A64 words the real-kernel path writes and reads, against the cross
assembler's own encodings (binutils is the reference, not our tables)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pyharness.elf import a64_code as a64

CROSS = "aarch64-linux-gnu-"

# (our word, the instruction as binutils spells it); each is assembled at
# 0x1000, and a branch's target is written relative to it (". + N").
ENCODED = [
    (a64.b(0x1000, 0x1010), "b . + 0x10"),
    (a64.b(0x1000, 0x0f00), "b . - 0x100"),
    (a64.bl(0x1000, 0x1000 - 16), "bl . - 0x10"),
    (a64.b_cond(a64.NE, 0x1000, 0x1018), "b.ne . + 0x18"),
    (a64.b_cond(a64.EQ, 0x1000, 0x0ffc), "b.eq . - 4"),
    (a64.brk(0x800), "brk #0x800"),
    (a64.udf(0), "udf #0"),
    (a64.mrs_mpidr_el1(9), "mrs x9, mpidr_el1"),
    (a64.mrs_mdcr_el2(0), "mrs x0, mdcr_el2"),
    (a64.and_low_byte(9, 9), "and x9, x9, #0xff"),
    (a64.cmp_imm(9, 3), "cmp x9, #3"),
    (a64.mov_zero(9), "mov x9, xzr"),
    (a64.ldr(9, 9), "ldr x9, [x9]"),
    (a64.ldr(0, 1, 16), "ldr x0, [x1, #16]"),
    (a64.str_(9, 0, 8), "str x9, [x0, #8]"),
    (a64.sub_sp(32), "sub sp, sp, #32"),
    (a64.stp_fp_lr(0), "stp x29, x30, [sp]"),
    (a64.stp_fp_lr(-16, pre_index=True), "stp x29, x30, [sp, #-16]!"),
    (a64.mov_fp_sp(), "mov x29, sp"),
    (a64.RET, "ret"),
    (a64.NOP, "nop"),
    (a64.PACIASP, "paciasp"),
    (a64.BTI_C, "bti c"),
    (a64.AUTHENTICATE[a64.PACIASP], "autiasp"),
    (a64.AUTHENTICATE[a64.PACIBSP], "autibsp"),
]


def assemble(lines: list[str], tmp_path: Path) -> list[int]:
    """The words binutils makes of ``lines``, placed from 0x1000."""
    source = tmp_path / "words.s"
    source.write_text(".text\n.org 0x1000\n" + "\n".join(lines) + "\n")
    obj, raw = tmp_path / "words.o", tmp_path / "words.bin"
    subprocess.run([CROSS + "as", "-march=armv8.5-a", "-o", str(obj), str(source)],
                   check=True, capture_output=True)
    subprocess.run([CROSS + "objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)],
                   check=True, capture_output=True)
    data = raw.read_bytes()[0x1000:]
    return [int.from_bytes(data[i:i + 4], "little") for i in range(0, len(data), 4)]


def test_every_encoder_matches_the_assembler(tmp_path):
    # Each instruction assembled at 0x1000, alone, so its branch offsets match.
    for word, text in ENCODED:
        (expected,) = assemble([text], tmp_path)
        assert word == expected, f"{text}: ours {word:#010x}, binutils {expected:#010x}"


@pytest.mark.parametrize("text, target", [("bl . + 0x400", 0x1400), ("bl . - 0x800", 0x0800)])
def test_direct_call_target(tmp_path, text, target):
    (word,) = assemble([text], tmp_path)
    assert a64.direct_call_target(word, 0x1000) == target
    assert a64.is_call(word) and not a64.is_indirect_call(word)


@pytest.mark.parametrize("text", ["blr x8", "blraa x8, x9", "blraaz x3", "blrab x1, sp"])
def test_indirect_calls(tmp_path, text):
    (word,) = assemble([text], tmp_path)
    assert a64.is_indirect_call(word) and a64.is_call(word)


@pytest.mark.parametrize("text", ["b . + 0x400", "br x8", "ret", "nop", "add x0, x0, #1"])
def test_not_calls(tmp_path, text):
    (word,) = assemble([text], tmp_path)
    assert not a64.is_indirect_call(word)
    assert a64.direct_call_target(word, 0x1000) is None


@pytest.mark.parametrize("text, moved", [
    ("b . + 8", True), ("bl . + 8", True), ("b.ne . + 8", True), ("cbz x0, . + 8", True),
    ("tbnz w1, #3, . + 8", True), ("adrp x0, . + 0x2000", True), ("adr x0, . + 8", True),
    ("ldr x0, . + 8", True), ("stp x29, x30, [sp, #-16]!", False), ("mov x29, sp", False),
    ("paciasp", False), ("ldr x0, [x1, #8]", False), ("mrs x0, mdcr_el2", False)])
def test_pc_relative(tmp_path, text, moved):
    (word,) = assemble([text], tmp_path)
    assert a64.is_pc_relative(word) is moved


@pytest.mark.parametrize("text, down", [
    ("stp x29, x30, [sp, #-16]!", 16), ("stp x29, x30, [sp, #-112]!", 112),
    ("sub sp, sp, #32", 32), ("sub sp, sp, #1, lsl #12", 4096),
    ("stp d8, d9, [sp, #-64]!", 64), ("stp x29, x30, [sp, #16]", 0),
    ("stp x19, x20, [sp, #-32]!", 32), ("add sp, sp, #32", 0), ("mov x29, sp", 0)])
def test_stack_decrement(tmp_path, text, down):
    (word,) = assemble([text], tmp_path)
    assert a64.stack_decrement(word) == down


def test_branch_range_and_alignment_are_refused():
    with pytest.raises(ValueError):
        a64.b(0x1000, 0x1002)
    with pytest.raises(ValueError):
        a64.b_cond(a64.EQ, 0, 1 << 21)


def _spell(prefix: str, offset: int) -> str:
    return f"{prefix} . + {offset:#x}" if offset >= 0 else f"{prefix} . - {-offset:#x}"


@pytest.mark.parametrize("prefix, offset", [("b", 0x40), ("bl", -0x40), ("b.eq", 0x20),
                                            ("cbnz x3,", -8), ("tbz w1, #5,", 0x100)])
def test_relocated_branches_keep_their_target(tmp_path, prefix, offset):
    """Moved from 0x1000 to 0x1800, a branch still reaches 0x1000 + offset:
    the word binutils makes for that target assembled at 0x1800."""
    (word,) = assemble([_spell(prefix, offset)], tmp_path)
    (expected,) = assemble([_spell(prefix, 0x1000 + offset - 0x1800)], tmp_path)
    assert a64.relocated(word, 0x1000, 0x1800) == expected


@pytest.mark.parametrize("text", ["adrp x0, . + 0x2000", "ldr x0, . + 8", "adr x1, . + 4"])
def test_words_that_cannot_move(tmp_path, text):
    (word,) = assemble([text], tmp_path)
    assert a64.relocated(word, 0x1000, 0x1800) is None


def test_out_of_reach_and_plain_words(tmp_path):
    (tbz,) = assemble(["tbz w1, #5, . + 0x100"], tmp_path)
    assert a64.relocated(tbz, 0x1000, 0x1000 + (1 << 20)) is None
    assert a64.relocated(a64.NOP, 0, 0x4000) == a64.NOP
