"""The toolchain axis (CONFIG_CC_IS_CLANG) and the hardening axes
(ARM64_PTR_AUTH_KERNEL, ARM64_BTI_KERNEL), checked on the shipped
pkvm_clang (Clang/LLVM, pac-ret+bti, VA 48) and pkvm_pac (GCC, pac-ret,
VA 39) images and in the emulator.

What the image holds is read with GNU objdump and pyelftools, which know
nothing of the build; what the CPU did is read from emulated memory and
system registers during a run.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from unicorn import UC_ARCH_ARM64, UC_HOOK_INTR, UC_HOOK_TLB_FILL, UC_MODE_ARM, UC_PROT_ALL
from unicorn import UC_TLB_VIRTUAL, Uc
from unicorn import arm64_const as A

from pyharness.builder import cache as builder
from pyharness.elf.image import load_image
from pyharness.kconfig import resolve as kconfig
from pyharness.platform.results import MachineError
from pyharness.run.runner import RunRequest, judge, observe
from pyharness.builder.toolchain import find_toolchain
from pyharness.judge.tracelog import parse_log

REPO = Path(__file__).resolve().parents[1]
OBJDUMP = "aarch64-linux-gnu-objdump"

# csrc/include/asm/pointer_auth.h
HYP_APIA_KEY_LO = 0x2D79656B2D707968
HOST_APIA_KEY_LO = 0x2D79656B74736F68
APIAKEYLO_EL1 = (3, 0, 2, 1, 0)       # op0, op1, CRn, CRm, op2 (Unicorn's cpr order below)

# Entered by exception, ERET or reset (SYM_CODE_START): no landing pad needed.
SYM_CODE = {"host_entry", "host_halt", "__kvm_nvhe___kvm_hyp_init", "__kvm_nvhe___host_exit",
            "__kvm_nvhe___host_enter", "__kvm_nvhe___host_enter_callee_saved",
            "__kvm_nvhe___kvm_hyp_host_vector"}

needs_clang = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("clang", "ld.lld", "llvm-objcopy")),
    reason="no clang/ld.lld/llvm-objcopy; apt-get install clang lld llvm")
needs_objdump = pytest.mark.skipif(shutil.which(OBJDUMP) is None,
                                   reason=f"no {OBJDUMP}; apt-get install binutils-aarch64-linux-gnu")


@functools.lru_cache(maxsize=None)
def built(config: str) -> builder.BuildResult:
    return builder.build(config)


def comment(elf: Path) -> str:
    with open(elf, "rb") as f:
        section = ELFFile(f).get_section_by_name(".comment")
        return section.data().decode(errors="replace") if section is not None else ""


@functools.lru_cache(maxsize=None)
def disassembly(elf: Path) -> dict[str, list[str]]:
    """function symbol -> its instructions ('mnemonic operands'), from objdump."""
    out = subprocess.run([OBJDUMP, "-d", "--no-show-raw-insn", str(elf)], capture_output=True,
                         text=True, check=True).stdout
    functions: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        head = re.match(r"^[0-9a-f]+ <(.+)>:$", line)
        if head:
            current = functions.setdefault(head[1], [])
            continue
        insn = re.match(r"^\s*[0-9a-f]+:\t(.*?)\s*(//.*)?$", line)
        if insn and current is not None:
            current.append(" ".join(insn[1].split()))
    return functions


@functools.lru_cache(maxsize=None)
def sized_functions(elf: Path) -> frozenset[str]:
    with open(elf, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        return frozenset(s.name for s in symtab.iter_symbols()
                         if s["st_info"]["type"] == "STT_FUNC" and s["st_size"] > 0)


# -- the toolchain ------------------------------------------------------------

@needs_clang
def test_clang_and_lld_made_the_clang_image():
    result = built("pkvm_clang")
    text = comment(result.elf)
    assert "clang version" in text and "LLD" in text, text
    assert "GCC:" not in text, text
    commands = json.loads((result.build_dir / "compile_commands.json").read_text())
    assert commands and all(Path(c["command"].split()[0]).name.startswith("clang")
                            and "aarch64-none-elf" in c["command"] for c in commands)
    stamp = json.loads((result.build_dir / "build.json").read_text())
    assert stamp["toolchain"].startswith("clang: ") and "LLD" in stamp["toolchain"]


def test_gcc_stays_the_default():
    assert kconfig.resolve(kconfig.find_config("pkvm_pac")).enabled("CC_IS_GCC")
    text = comment(built("pkvm_pac").elf)
    assert "GCC:" in text and "clang" not in text, text


@needs_clang
def test_the_build_key_holds_the_compiler_and_its_versions():
    clang = find_toolchain(clang=True)
    gcc = find_toolchain()
    assert clang.compiler == "clang" and gcc.compiler == "gcc"
    assert clang.version.startswith("clang: ") and "clang version" in clang.version
    config = kconfig.resolve(kconfig.find_config("pkvm_clang"))
    assert builder.recipe_key(config, clang) != builder.recipe_key(config, gcc)


def test_missing_clang_says_how_to_install(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = dict(os.environ, PATH=str(empty))
    env.pop("LLVM", None)
    proc = subprocess.run([sys.executable, "-m", "pyharness", "build", "--config", "pkvm_clang",
                           "--out", str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "apt-get install clang lld" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_both_new_configs_are_shipped():
    names = [kconfig.config_name(p) for p in kconfig.named_configs()]
    assert {"pkvm_clang", "pkvm_pac"} <= set(names)
    pac = kconfig.resolve(kconfig.find_config("pkvm_pac"))
    assert pac.enabled("ARM64_PTR_AUTH_KERNEL") and pac.summary.va_bits != 48
    clang = kconfig.resolve(kconfig.find_config("pkvm_clang"))
    assert clang.enabled("CC_IS_CLANG") and clang.enabled("ARM64_BTI_KERNEL")


# -- what the images hold ---------------------------------------------------------

@needs_objdump
@pytest.mark.parametrize("config", ["pkvm_pac", pytest.param("pkvm_clang", marks=needs_clang)])
def test_recursive_death_signs_its_return_address(config):
    body = disassembly(built(config).elf)["__kvm_nvhe_recursive_death"]
    assert body[0] == "paciasp", body[:4]
    # Authenticated on every way out (GCC may schedule work between
    # autiasp and ret).
    assert body.count("autiasp") == body.count("ret") > 0, body


def _signed_before_saved(body: list[str]) -> bool:
    """paciasp runs before the first store of x30 (the frame record)."""
    store = next(i for i, insn in enumerate(body) if insn.startswith("stp x29, x30"))
    return "paciasp" in body[:store]


@needs_objdump
@pytest.mark.parametrize("config", ["pkvm_pac", pytest.param("pkvm_clang", marks=needs_clang)])
def test_every_function_that_saves_lr_signs_it_first(config):
    result = built(config)
    functions = disassembly(result.elf)
    saving = [name for name in sized_functions(result.elf) - SYM_CODE
              if any(insn.startswith("stp x29, x30") for insn in functions.get(name, ()))]
    assert len(saving) > 20
    assert not [name for name in saving if not _signed_before_saved(functions[name])]


@needs_objdump
@needs_clang
def test_bti_landing_pads_at_function_entries():
    result = built("pkvm_clang")
    functions = disassembly(result.elf)
    entries = {name: functions[name][0] for name in sized_functions(result.elf) - SYM_CODE}
    missing = {name: first for name, first in entries.items()
               if first not in ("paciasp", "bti c")}
    assert not missing
    assert entries["__kvm_nvhe___hyp_do_panic"] == "bti c"      # SYM_FUNC_START, assembly
    assert "bti c" in entries.values()                          # a C function that signs nothing


@needs_objdump
def test_no_landing_pads_without_bti():
    functions = disassembly(built("pkvm_pac").elf)
    assert not [name for name, body in functions.items() if "bti c" in body or "bti j" in body]


# -- what the CPU did -------------------------------------------------------------

def _watch_records(machine, image, records: list[tuple[int, int]], keys: dict[str, int]):
    """At hyp_panic's entry, walk the frame records from x29 in emulated
    memory (as EL2 sees it); note the APIA key there and in the host's
    panic handler."""

    def at_hyp_panic(m, _link):
        keys["hyp"] = m.uc.cpr_read(*APIAKEYLO_EL1)
        fp = m.register("x29")
        while fp and len(records) < 1000:
            try:
                next_fp, lr = m.read_u64(fp, 2), m.read_u64(fp + 8, 2)
            except MachineError:
                break
            records.append((fp, lr))
            fp = next_fp

    def at_host_handler(m, _link):
        keys["host"] = m.uc.cpr_read(*APIAKEYLO_EL1)

    machine.add_code_hook(image.address_of("__kvm_nvhe_hyp_panic"), at_hyp_panic, space="hyp")
    machine.add_code_hook(image.address_of("nvhe_hyp_panic_handler"), at_host_handler)


@pytest.mark.parametrize("scenario", ["hyp_panic", "stack_overflow"])
@pytest.mark.parametrize("mode", ["nvhe", "protected"])
@pytest.mark.parametrize("config", ["pkvm_pac", pytest.param("pkvm_clang", marks=needs_clang)])
def test_signed_records_in_memory_print_masked(config, mode, scenario):
    records: list[tuple[int, int]] = []
    keys: dict[str, int] = {}
    obs = observe(RunRequest(config=config, scenario=scenario, mode=mode, cpu=0, kaslr_seed=3),
                  lambda machine, image: _watch_records(machine, image, records, keys))
    record = judge(obs)
    assert record.verdict == "pass", record.reasons
    va_bits = obs.built.config.summary.va_bits
    mask = (1 << va_bits) - 1

    # Every saved lr carries a PAC above the hyp's VA size (TCR_EL2.T0SZ)...
    assert len(records) >= 5 and records[-1][0] and not any(r[0] & 7 for r in records)
    assert all(lr >> va_bits for _, lr in records), [hex(lr) for _, lr in records]
    if va_bits < 48:
        # ...some of it below bit 48, so a 48-bit mask would print it.
        assert any((lr & ((1 << 48) - 1)) >> va_bits for _, lr in records)

    # The dump prints exactly those records' lrs, masked to VA_BITS and
    # turned into link-time addresses (hyp VA -> PA -> image link address).
    image = load_image(obs.built.elf)
    layout = image.layout
    expected = [(lr & mask) - layout.hyp_va_offset - layout.image_phys_base + image.link_base
                for _, lr in records]
    assert all(image.contains(address) for address in expected)
    panic = parse_log("\n".join(record.console)).sole_panic()
    assert [f.address for f in panic.trace.frames][-len(expected):] == expected
    # The host strips the PAC of its own return addresses too.
    assert any(re.search(r"\] +host_main\+0x[0-9a-f]+/0x[0-9a-f]+$", line)
               for line in record.console), record.console

    # Each EL signed with its own key: the hyp's at EL2, the host's back at EL1.
    assert keys == {"hyp": HYP_APIA_KEY_LO, "host": HOST_APIA_KEY_LO}


# -- what the platform can and cannot do (Unicorn 2.1.4, max CPU) ------------------

ADR_X16_PLUS_8 = 0x10000050     # adr x16, .+8
BR_X16 = 0xD61F0200             # br x16
MOV_X7_1 = 0xD2800027           # mov x7, #1    (no landing pad)
B_SELF = 0x14000000             # b .


def _branch_to_no_landing_pad(virtual_tlb: bool, guarded: bool) -> tuple[int, list[int]]:
    """Run `adr x16; br x16` onto a `mov` at EL2 with SCTLR_EL2.BT set, under
    the harness's virtual TLB or under the CPU's own stage-1 tables (GP bit
    as given). Returns (x7, exception numbers seen)."""
    pa = 0x4000_0000
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_cpu_model(A.UC_CPU_ARM64_MAX)
    if virtual_tlb:
        uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)

        def fill(_uc, va, _access, entry, _data):
            entry.paddr, entry.perms = va, UC_PROT_ALL
            return pa <= va < pa + 0x200000
        uc.hook_add(UC_HOOK_TLB_FILL, fill)
    uc.mem_map(pa, 0x200000)
    uc.mem_write(pa, struct.pack("<4I", ADR_X16_PLUS_8, BR_X16, MOV_X7_1, B_SELF))
    excs: list[int] = []

    def on_exception(u, number, _data):
        excs.append(number)
        u.emu_stop()
    uc.hook_add(UC_HOOK_INTR, on_exception)
    uc.cpr_write(3, 6, 1, 1, 0, 0x501 | 3 << 16)            # SCR_EL3: NS HCE RW API APK
    uc.reg_write(A.UC_ARM64_REG_PSTATE, 0x3C9)               # EL2h
    uc.cpr_write(3, 3, 13, 0, 2, 0)                          # TPIDR_EL0: resync the EL
    uc.cpr_write(3, 4, 1, 1, 0, 1 << 31)                     # HCR_EL2.RW
    sctlr = 1 << 36                                          # BT
    if not virtual_tlb:
        # 39-bit VA, 4K granule: one level-1 table, one level-2 table with
        # a 2 MiB block mapping the code to itself.
        l1, l2 = pa + 0x100000, pa + 0x101000
        uc.mem_write(l1 + 8, struct.pack("<Q", l2 | 0b11))
        uc.mem_write(l2, struct.pack("<Q", pa | 1 << 10 | 3 << 8 | 0b01
                                     | (1 << 50 if guarded else 0)))
        uc.cpr_write(3, 4, 10, 2, 0, 0xFF)                   # MAIR_EL2: attr0 normal WB
        uc.cpr_write(3, 4, 2, 0, 2, 1 << 31 | 1 << 23 | 2 << 16 | 3 << 12 | 1 << 10
                     | 1 << 8 | 25)                          # TCR_EL2
        uc.cpr_write(3, 4, 2, 0, 0, l1)                      # TTBR0_EL2
        sctlr |= 1                                           # M
    uc.cpr_write(3, 4, 1, 0, 0, uc.cpr_read(3, 4, 1, 0, 0) | sctlr)
    uc.emu_start(pa, pa + 12, count=10)
    return uc.reg_read(A.UC_ARM64_REG_X7), excs


def test_unicorn_enforces_bti_only_on_guarded_pages_of_its_own_tables():
    """docs/platform.md, "Pointer authentication and BTI": BTI exists in
    the max model and traps (as UNDEF, QEMU's exception 1) a BR to a
    non-landing-pad on a page whose stage-1 descriptor has GP; the virtual
    TLB the harness uses cannot mark a page guarded, so nothing traps."""
    assert _branch_to_no_landing_pad(virtual_tlb=False, guarded=True) == (0, [1])
    assert _branch_to_no_landing_pad(virtual_tlb=False, guarded=False) == (1, [])
    assert _branch_to_no_landing_pad(virtual_tlb=True, guarded=True) == (1, [])
