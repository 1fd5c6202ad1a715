"""pyharness.native: the C hooks library and its Python fallback agree.

The library (native/, built by the package install) and the Python
callbacks must give the same records: instruction counts, budget stops,
frame records and watch hits on a small hand-assembled program, and the
same results, expectations, violations and verdicts on real scenario runs
(``PYHARNESS_NATIVE=1`` against ``=0``). Also: a budget stop is exact, and
read watches installed at the first mapping of their pages miss nothing.
"""

from __future__ import annotations

import ctypes
import dataclasses
import mmap
import shutil
import struct
from pathlib import Path

import pytest
from unicorn import (UC_ARCH_ARM64, UC_HOOK_TLB_FILL, UC_MODE_ARM, UC_PROT_ALL, UC_TLB_VIRTUAL,
                     Uc)
from unicorn import arm64_const as A

from conftest import Scenario
from pyharness.builder import cache as build
from pyharness.elf.image import Image, load_image
from pyharness.platform import a64, native, native_lib
from pyharness.platform.machine import Machine
from pyharness.platform.results import RunOptions, RunStatus
from pyharness.run.runner import RunRequest, judge, observe
from pyharness.run.scenarios import find_scenario

BACKENDS = [native.NativeHooks, native.PythonHooks]


def test_the_library_is_built_and_loaded(monkeypatch):
    monkeypatch.delenv(native.ENV_SWITCH, raising=False)
    assert native.unavailable_reason() is None
    assert native.backend() == "native"
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.backend() == "python"


def test_requiring_a_missing_library_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setattr(native_lib, "_LIBS", None)
    monkeypatch.setenv(native.ENV_LIBRARY, str(tmp_path / "libnvhe_hooks.so"))
    monkeypatch.setenv(native.ENV_SWITCH, "1")
    with pytest.raises(native.NativeError, match="PYHARNESS_NATIVE=1 but the native hooks "
                                                 "library is not built"):
        native.make_hooks(Uc(UC_ARCH_ARM64, UC_MODE_ARM))
    monkeypatch.delenv(native.ENV_SWITCH)
    assert isinstance(native.make_hooks(Uc(UC_ARCH_ARM64, UC_MODE_ARM)), native.PythonHooks)


# --------------------------------------------------------------------------
# A small program in raw Unicorn

RAM = 0x4000_0000
RAM_SIZE = 0x10_0000

# x1 = RAM + 0x2000 (watched), x2 = RAM + 0x3000; 100 times: str x3, [x1, #8];
# str x3, [x2, #8]; stp x3, x3, [x1, #16]; ldr x4, [x1, #8]; then two nops.
LOOP = (0xD2800C83, 0xF9000423, 0xF9000443, 0xA9010C23, 0xF9400424, 0xF1000463, 0x54FFFF61,
        0xD503201F, 0xD503201F)
# x1 = RAM + 0x2000 (watched page), x2 = RAM + 0x1c00: stur x3, [x1, #9]
# (unaligned); str w3 at x1 + 0x3fe (crosses out of the page); str x3 at
# x2 + 0x3fc (crosses into it from below); sturh w3, [x1, #0x21]; nops.
UNALIGNED = (0xD2822443, 0xF2A66883, 0xF8009023, 0x910FF824, 0xB9000083, 0x910FF045,
             0xF90000A3, 0x78021023, 0xD503201F, 0xD503201F)


def small_machine(backend, program: tuple[int, ...], x2: int = RAM + 0x3000, **limits):
    uc = Uc(UC_ARCH_ARM64, UC_MODE_ARM)
    uc.ctl_set_tlb_mode(UC_TLB_VIRTUAL)
    ram = mmap.mmap(-1, RAM_SIZE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(ram))
    uc.mem_map_ptr(RAM, RAM_SIZE, UC_PROT_ALL, address)

    def fill(_uc, va, _access, entry, _data):
        entry.paddr, entry.perms = va, UC_PROT_ALL
        return True
    uc.hook_add(UC_HOOK_TLB_FILL, fill)
    uc.mem_write(RAM, struct.pack(f"<{len(program)}I", *program))
    uc.reg_write(A.UC_ARM64_REG_X1, RAM + 0x2000)
    uc.reg_write(A.UC_ARM64_REG_X2, x2)
    uc.reg_write(A.UC_ARM64_REG_SP, RAM + 0x8000)
    hooks = backend(uc, **limits)
    hooks.set_ram(RAM, address, RAM_SIZE)
    return uc, ram, hooks


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.backend)
def test_frames_watches_and_counts_on_a_small_program(backend):
    uc, ram, hooks = small_machine(backend, LOOP)
    hooks.add_frame_setup_hooks([RAM + 4])               # the first str
    write = hooks.add_write_watch(RAM + 0x2008, RAM + 0x2010)
    read = hooks.add_read_watch(RAM + 0x2008, RAM + 0x2010)
    uc.emu_start(RAM, RAM + 4 * (len(LOOP) - 1))
    results = hooks.results()
    assert (results.backend, results.instructions, results.stop_reason) == \
        (backend.backend, 1 + 6 * 100 + 1, None)
    assert len(results.frames) == 100
    assert results.frames[0] == native.Frame(RAM + 4, RAM + 0x8000, 0, 0)
    # Per iteration one store and one load start in [0x2008, 0x2010) (the
    # stp's words start at 0x2010 and 0x2018).
    writes = [h for h in results.hits if h.watch == write]
    reads = [h for h in results.hits if h.watch == read]
    assert len(writes) == 100 and len(reads) == 100
    assert writes[0] == native.Hit(write, "write", RAM + 0x2008, 8, RAM + 4, RAM + 0x8000)
    assert reads[-1] == native.Hit(read, "read", RAM + 0x2008, 8, RAM + 16, RAM + 0x8000)
    # Writes to the watched (natively: read-only) page landed.
    assert struct.unpack_from("<3Q", ram, 0x2008) == (1, 1, 1)
    assert struct.unpack_from("<Q", ram, 0x3008) == (1,)


def test_both_backends_record_the_same_small_program():
    def record(backend, program, x2=RAM + 0x3000):
        uc, ram, hooks = small_machine(backend, program, x2)
        hooks.add_frame_setup_hooks([RAM + 8, RAM + 12])
        hooks.add_write_watch(RAM + 0x2000, RAM + 0x2400)
        hooks.add_read_watch(RAM + 0x2000, RAM + 0x2010)
        uc.emu_start(RAM, RAM + 4 * (len(program) - 1))
        return dataclasses.replace(hooks.results(), backend=""), bytes(ram[0x1c00:0x2800])

    for program, x2 in ((LOOP, RAM + 0x3000), (UNALIGNED, RAM + 0x1C00)):
        assert record(native.NativeHooks, program, x2) == \
            record(native.PythonHooks, program, x2)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.backend)
def test_unaligned_stores_to_a_watched_page_are_seen_once_and_land(backend):
    uc, ram, hooks = small_machine(backend, UNALIGNED, x2=RAM + 0x1C00)
    hooks.add_write_watch(RAM + 0x2000, RAM + 0x2400)
    uc.emu_start(RAM, RAM + 4 * (len(UNALIGNED) - 1))
    assert [(h.address - RAM, h.size) for h in hooks.hits()] == \
        [(0x2009, 8), (0x23FE, 4), (0x2021, 2)]
    value = 0x33441122
    assert struct.unpack_from("<Q", ram, 0x2009) == (value,)
    assert struct.unpack_from("<I", ram, 0x23FE) == (value,)
    assert struct.unpack_from("<Q", ram, 0x1FFC) == (value,)
    assert struct.unpack_from("<H", ram, 0x2021) == (value & 0xFFFF,)


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.backend)
def test_the_block_hook_stops_before_a_block_past_the_budget(backend):
    uc, _, hooks = small_machine(backend, LOOP, budget=100)
    uc.emu_start(RAM, RAM + 4 * (len(LOOP) - 1))
    # The first block (7 instructions) and 15 of 6 were let run; the next
    # would have reached 103.
    assert (hooks.instructions, hooks.blocks, hooks.stop_reason) == (97, 16, "budget")
    assert uc.reg_read(A.UC_ARM64_REG_PC) == RAM + 4
    assert uc.reg_read(A.UC_ARM64_REG_X3) == 100 - 16


@pytest.mark.parametrize("backend", BACKENDS, ids=lambda b: b.backend)
def test_the_block_hook_stops_past_the_deadline(backend):
    spin = (0x14000000,)    # b .
    uc, _, hooks = small_machine(backend, spin, deadline_s=1e-9)   # long past
    uc.emu_start(RAM, RAM + 0x100)
    assert hooks.stop_reason == "deadline"
    assert hooks.blocks == native.CLOCK_EVERY_BLOCKS


# --------------------------------------------------------------------------
# Real runs, both ways

NEEDS_CLANG = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("clang", "ld.lld", "llvm-objcopy")),
    reason="no clang/ld.lld/llvm-objcopy; apt-get install clang lld llvm")
LINUX_6_12 = Path("/usr/src/linux-source-6.12.tar.xz")
NEEDS_6_12 = pytest.mark.skipif(not LINUX_6_12.is_file(), reason=f"{LINUX_6_12} is not "
                                "installed (apt-get install linux-source-6.12)")


def real_run(config, scenario, mode, cpu, kernel_src=None, marks=()):
    return pytest.param(config, scenario, mode, cpu, kernel_src, marks=marks,
                        id="-".join(map(str, (config, scenario, mode, cpu)))
                        + ("-linux-6.12" if kernel_src else ""))


RUNS = [
    real_run("pkvm", "hyp_panic", "protected", 1),
    real_run("pkvm", "stack_overflow", "nvhe", 0),
    real_run("pkvm", "bug", "protected", 0),
    real_run("pkvm", "buffer_overrun_probe", "protected", 1),
    real_run("pkvm", "isolation_probe", "protected", 0),
    real_run("pkvm", "unwind_selftest", "nvhe", 0),
    real_run("pkvm", "fault_overflow_hyp_overflow", "protected", 1),
    real_run("pkvm", "fault_longest_chain", "nvhe", 0),
    real_run("pkvm", "fault_fp_backwards", "protected", 0),
    real_run("nvhe", "invalid_host_exception", "nvhe", 1),
    real_run("pkvm_16k", "stack_overflow", "protected", 1),
    # Scenarios newer than the native hooks: a fault at EL2t, the stacks
    # packed with records (the buffer's last slot), an 8-mod-16 record.
    real_run("pkvm", "el2t_fault", "protected", 1),
    real_run("pkvm", "el2t_fault", "nvhe", 0),
    real_run("pkvm", "packed_stacks", "protected", 0),
    real_run("pkvm", "fault_packed_stacks", "protected", 1),
    real_run("pkvm_16k", "fault_packed_stacks", "nvhe", 0),
    real_run("pkvm", "fault_fp_8_mod_16", "protected", 0),
    real_run("pkvm_64k", "fault_fp_8_mod_16", "nvhe", 1),
    real_run("pkvm", "fault_hyp_stack_past_top", "protected", 1),
    real_run("pkvm", "fault_overflow_stack_past_top", "protected", 0),
    real_run("pkvm", "fault_fp_overlapping", "nvhe", 1),
    # Pointer authentication (keys, signed records) and Clang's code.
    real_run("pkvm_pac", "stack_overflow", "protected", 1),
    real_run("pkvm_clang", "fault_packed_stacks", "protected", 0, marks=NEEDS_CLANG),
    # A kernel tree's own unwinder.
    real_run("pkvm", "fault_overflow_hyp_overflow", "protected", 1, str(LINUX_6_12),
             marks=NEEDS_6_12),
]


def observe_with(monkeypatch, switch: str, request: RunRequest):
    monkeypatch.setenv(native.ENV_SWITCH, switch)
    backends = []
    obs = observe(request, setup=lambda machine, _image: backends.append(
        machine.hooks_backend))
    record = judge(obs).to_json()
    for key in ("elapsed_ms", "build_ms"):
        record.pop(key)
    result = dataclasses.replace(obs.result, elapsed_ms=0.0)
    return backends, (result, obs.expect, obs.violations, obs.foreign_changes, record)


@pytest.mark.parametrize("config, scenario, mode, cpu, kernel_src", RUNS)
def test_native_and_python_hooks_give_identical_runs(monkeypatch, config, scenario, mode, cpu,
                                                     kernel_src):
    request = RunRequest(config=config, scenario=scenario, mode=mode, cpu=cpu, kaslr_seed=7,
                         kernel_src=kernel_src)
    used_native, native_run = observe_with(monkeypatch, "1", request)
    used_python, python_run = observe_with(monkeypatch, "0", request)
    assert (used_native, used_python) == (["native"], ["python"])
    assert native_run == python_run
    assert native_run[-1]["verdict"] == "pass", native_run[-1]["reasons"]


@pytest.mark.parametrize("switch", ["1", "0"])
def test_a_budget_stop_is_exact(monkeypatch, switch):
    """Stopped at a block edge and finished with Unicorn's own count, a run
    ends where counting every instruction from the start ends it."""
    monkeypatch.setenv(native.ENV_SWITCH, switch)
    elf = build.build("pkvm").elf
    image = load_image(elf)
    scenario = find_scenario(elf, "hyp_panic").number
    for budget in (1, 1000, 12_345, 20_001):      # all below the run's ~27K
        def run(counted_all_along: bool):
            machine = Machine(image, RunOptions(cpu=1, protected=True, scenario_id=scenario,
                                                max_instructions=budget))
            if counted_all_along:
                machine.add_pre_run(lambda m: setattr(m._hooks, "exact", True))
            result = machine.run()
            return result.status, result.reason, result.instructions, result.registers

        assert run(False) == run(True)
        assert run(False)[2] == budget


def read_watch_hits(image: Image, scenario: Scenario, targets: list[tuple[int, int]],
                    deferred: bool) -> tuple[Machine, list[tuple[int, int, int, int]]]:
    """(watch, address, size, pc) of each read of the targets, through watches
    armed at the first mapping of their pages or (for comparison) Python
    memory hooks installed from the start."""
    machine = Machine(image, RunOptions(scenario_id=scenario))
    hits: list[tuple[int, int, int, int]] = []
    for n, (pa, size) in enumerate(targets):
        if deferred:
            machine.watch_reads(pa, size)
        else:
            def on_read(m: Machine, address: int, length: int, _w: bool, n=n) -> None:
                hits.append((n, address, length, m.register("pc")))
            machine.add_memory_watch(pa, size, on_read, reads=True, writes=False)
    result = machine.run()
    assert result.ok, result.reason
    if deferred:
        hits = [(h.watch, h.address, h.size, h.pc) for h in machine.watch_hits()]
    return machine, hits


def access_size_at(machine: Machine, pc: int) -> int | None:
    """The size of the load or store at ``pc`` (a hyp or kernel VA), None if
    the instruction there is none."""
    link = machine.link_address(pc, 2 if pc < machine.layout.page_offset else 1)
    assert link is not None
    image = machine.image
    word = struct.unpack_from("<I", image.memory_image(0), link - image.link_base)[0]
    span = a64.data_access(word, lambda _n: 0, pc)
    return None if span is None else span[1]


@pytest.mark.parametrize("switch", ["1", "0"])
def test_read_watches_armed_at_first_mapping_miss_nothing(monkeypatch, fixture_image, switch):
    monkeypatch.setenv(native.ENV_SWITCH, switch)
    image = load_image(fixture_image("4k"))
    secret = image.phys_address(image.address_of("__kvm_nvhe_hyp_secret"))
    stack = image.phys_address(image.address_of("kvm_arm_hyp_stack_pages"))
    page = image.layout.page_size
    for scenario, targets in ((Scenario.READ_HYP_SECRET, [(secret, 8)]),
                              (Scenario.READ_HYP_STACK, [(stack, page), (stack + page, page)])):
        _, eager = read_watch_hits(image, scenario, targets, deferred=False)
        machine, deferred = read_watch_hits(image, scenario, targets, deferred=True)
        assert eager, "the scenario should read a watched range"
        assert [hit[:3] for hit in deferred] == [hit[:3] for hit in eager]
        # Unicorn's pc in a memory hook installed before the first emu_start
        # can be the start of the block; installed later, it is the load's
        # (a pair is seen as two accesses of half its size).
        assert all(access_size_at(machine, pc) in (size, 2 * size)
                   for _, _, size, pc in deferred)


# --------------------------------------------------------------------------
# The MMIO page: the same accesses on both backends (native_mmio, mmio)

def _mov64(rd: int, value: int) -> list[int]:
    """movz/movk: ``value`` into x``rd``."""
    return [(0xD2800000 if hw == 0 else 0xF2800000) | hw << 21 | (value >> 16 * hw & 0xFFFF) << 5
            | rd for hw in range(4)]


def _str(size: int, rt: int, rn: int, offset: int) -> int:
    """str/strb of ``size`` bytes: xRt (or its low part) at [xRn, #offset]."""
    return {1: 0x39000000, 4: 0xB9000000, 8: 0xF9000000}[size] | offset // size << 10 \
        | rn << 5 | rt


def _ldr(size: int, rt: int, rn: int, offset: int) -> int:
    return {4: 0xB9400000, 8: 0xF9400000}[size] | offset // size << 10 | rn << 5 | rt


MMIO_PROGRAMS = {
    # bytes "ab\r\n", then "c" left partial; the counter read whole and by
    # halves; the scenario register; exit 0
    "console_bytes_and_counter": lambda buf, text: (
        [*_mov64(1, ord("a")), _str(1, 1, 9, 0x00), *_mov64(1, ord("b")), _str(1, 1, 9, 0x00),
         *_mov64(1, 0x0D), _str(1, 1, 9, 0x00), *_mov64(1, 0x0A), _str(1, 1, 9, 0x00),
         *_mov64(1, ord("c")), _str(1, 1, 9, 0x00), _ldr(8, 2, 9, 0x10), _ldr(4, 3, 9, 0x10),
         _ldr(4, 4, 9, 0x14), _ldr(8, 5, 9, 0x18), _str(8, 31, 9, 0x08)]),
    # the buffer named, two lines of it, exit 0
    "console_lines": lambda buf, text: (
        [*_mov64(1, buf), _str(8, 1, 9, 0x20), *_mov64(1, 5), _str(4, 1, 9, 0x28),
         *_mov64(1, len(text)), _str(4, 1, 9, 0x28), _str(8, 31, 9, 0x08)]),
    "line_without_buffer": lambda buf, text: [*_mov64(1, 3), _str(4, 1, 9, 0x28)],
    "line_past_the_buffer": lambda buf, text: (
        [*_mov64(1, buf), _str(8, 1, 9, 0x20), *_mov64(1, 2000), _str(4, 1, 9, 0x28)]),
    "buffer_not_ram": lambda buf, text: [*_mov64(1, 16), _str(8, 1, 9, 0x20)],
    "read_of_the_console": lambda buf, text: [_ldr(8, 2, 9, 0x00)],
    "write_past_the_registers": lambda buf, text: [_str(4, 31, 9, 0x30)],
}


def run_mmio_program(monkeypatch, fixture_image, switch: str, name: str):
    monkeypatch.setenv(native.ENV_SWITCH, switch)
    machine = Machine(load_image(fixture_image("4k")), RunOptions(scenario_id=0x1234))
    layout = machine.layout
    buffer_va = layout.page_offset + layout.phys_ram_size - 0x1000   # linear map, unused
    text = b"hello, console"
    words = [*_mov64(9, layout.mmio_va_el1), *MMIO_PROGRAMS[name](buffer_va, text),
             0x14000000]                                             # b .
    host_main = machine.runtime_address(machine.image.address_of("host_main"), "kernel")

    def patch(m: Machine) -> None:
        m.write_va(buffer_va, text, el=1)
        m.write_va(host_main, b"".join(w.to_bytes(4, "little") for w in words), el=1)
    machine.add_pre_run(patch)
    result = machine.run()
    registers = {r: result.registers[r] for r in ("x2", "x3", "x4", "x5")}
    return machine.hooks_backend, result.status, result.reason, result.console, registers


@pytest.mark.parametrize("name", sorted(MMIO_PROGRAMS))
def test_the_mmio_page_is_the_same_on_both_backends(monkeypatch, fixture_image, name):
    native_run = run_mmio_program(monkeypatch, fixture_image, "1", name)
    python_run = run_mmio_program(monkeypatch, fixture_image, "0", name)
    assert (native_run[0], python_run[0]) == ("native", "python")
    assert native_run[1:] == python_run[1:]
    status, reason, console, registers = native_run[1:]
    if name == "console_bytes_and_counter":
        assert status is RunStatus.EXITED and console == ["ab", "c"], reason
        assert registers == {"x2": 1000, "x3": 2000, "x4": 0, "x5": 0x1234}
    elif name == "console_lines":
        assert status is RunStatus.EXITED and console == ["hello", "hello, console"], reason
    else:
        assert status is RunStatus.ERROR, reason
        expected = {"line_without_buffer": "console line of 3 bytes, but no console buffer",
                    "line_past_the_buffer": "console line of 2000 bytes, but the console "
                                            "buffer holds 1024",
                    "buffer_not_ram": "console buffer at 0x10 is not RAM at EL1",
                    "read_of_the_console": "read of 4 bytes at MMIO offset 0x0, which is not",
                    "write_past_the_registers": "write of 4 bytes at MMIO offset 0x30, which"}
        assert reason.startswith(expected[name]), reason
