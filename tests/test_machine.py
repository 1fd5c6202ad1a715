"""pyharness.platform.machine: real fixture firmware (tests/fixtures/) in real Unicorn.

Each test boots the fixture per docs/platform.md and checks what the
platform did: exception entry (HVC, guard-page aborts, BRK), per-EL
address spaces, isolation in protected mode, budgets, KASLR, determinism
and per-CPU data.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import CROSS, ExitCode, Scenario
from pyharness.platform import a64, registers
from pyharness.errors import EXIT_BAD_INPUT
from pyharness.elf.image import ImageError, load_image
from pyharness.platform.machine import Machine
from pyharness.platform.mmio import COUNTER_STEP_NS
from pyharness.platform.results import MachineError, RunOptions, RunResult, RunStatus

ESR_HVC_IMM_0x17 = 0x5A000017
ESR_BRK_0x800 = 0xF2000800
ESR_DABT_WRITE_TRANSLATION_L3 = 0x96000047


def run(image_path: Path, scenario: Scenario, **options) -> tuple[Machine, RunResult]:
    machine = Machine(load_image(image_path), RunOptions(scenario_id=scenario, **options))
    return machine, machine.run()


def report(console: list[str], prefix: str) -> dict[str, int]:
    """key=hex pairs of the first console line starting with ``prefix``."""
    line = next(line for line in console if line.startswith(prefix))
    return {key: int(value, 16) for key, value in re.findall(r"(\w+)=([0-9a-f]+)", line)}


def hyp_va(machine: Machine, name: str) -> int:
    return machine.runtime_address(machine.image.address_of(name), "hyp")


def kernel_va(machine: Machine, name: str) -> int:
    return machine.runtime_address(machine.image.address_of(name), "kernel")


# --------------------------------------------------------------------------
# Boot and exception entry


@pytest.mark.parametrize("cpu", [0, 1])
@pytest.mark.parametrize("protected", [False, True])
def test_hvc_round_trip(fixture_image, cpu, protected):
    machine, result = run(fixture_image("4k"), Scenario.HVC, cpu=cpu, protected=protected)
    assert result.ok, result.reason
    assert result.console == [
        f"host: cpu {cpu} flags {int(protected)} scenario {int(Scenario.HVC)}",
        "hyp: hvc esr=5a000017 spsr=800003c5",
        "hyp: elr is host_hvc_return",
        "hyp: sp is on this cpu's stack page",
        "host: back at EL1, sp preserved",
    ]
    # What EL2 saw, read back through the hyp VA of its record.
    record = hyp_va(machine, "__kvm_nvhe_hyp_last_hvc")
    esr, elr, spsr, sp = (machine.read_u64(record + 8 * i, el=2) for i in range(4))
    assert esr == ESR_HVC_IMM_0x17
    assert elr == kernel_va(machine, "host_hvc_return")
    assert spsr & 0x3FF == 0x3C5  # EL1h, DAIF masked
    stack = machine.layout.hyp_stack_va(cpu)
    assert stack <= sp < stack + machine.layout.page_size
    assert result.registers["el"] == 1


def test_brk_at_el2(fixture_image):
    machine, result = run(fixture_image("4k"), Scenario.BRK)
    assert result.status is RunStatus.EXITED and result.exit_code == ExitCode.HYP_SYNC
    seen = report(result.console, "hyp: sync")
    assert seen["esr"] == ESR_BRK_0x800
    assert seen["elr"] == hyp_va(machine, "__kvm_nvhe_hyp_brk")
    assert result.registers["esr_el2"] == ESR_BRK_0x800


@pytest.mark.parametrize("config", ["4k", "16k", "64k"])
def test_guard_page_abort(fixture_image, config):
    cpu = 1
    machine, result = run(fixture_image(config), Scenario.OVERFLOW, cpu=cpu)
    assert result.exit_code == ExitCode.HYP_SYNC, result.reason
    seen = report(result.console, "hyp: sync")
    layout = machine.layout
    guard = layout.hyp_stack_va(cpu) - layout.page_size
    assert seen["esr"] == ESR_DABT_WRITE_TRANSLATION_L3
    assert seen["elr"] == hyp_va(machine, "__kvm_nvhe_hyp_overflow") + 4  # the stp
    assert seen["far"] == seen["sp"] + 48  # stp x29, x30, [sp, #48], exact
    assert guard <= seen["sp"] < seen["far"] < guard + layout.page_size
    assert (seen["sp"] >> layout.page_shift) & 1 == 0
    assert "hyp: sp bit PAGE_SHIFT=0" in result.console
    assert result.registers["far_el2"] == seen["far"]


def test_guard_page_abort_from_a_pre_indexed_store(fixture_image):
    machine, result = run(fixture_image("4k"), Scenario.OVERFLOW_PREINDEX)
    seen = report(result.console, "hyp: sync")
    stack = machine.layout.hyp_stack_va(0)
    # No write-back on the faulting stp: SP stays on the stack page.
    assert seen["far"] == seen["sp"] - 32 == stack - 16
    assert stack <= seen["sp"] and (seen["sp"] >> machine.layout.page_shift) & 1 == 1


# --------------------------------------------------------------------------
# Address spaces and isolation


def test_el1_and_el2_see_the_same_ram_through_their_own_mappings(fixture_image):
    machine, result = run(fixture_image("4k"), Scenario.ALIAS)
    assert result.ok, result.reason
    assert result.console[-1] == "host: shared word via kernel VA a11a5, via linear map a11a5"
    secret_kva = kernel_va(machine, "__kvm_nvhe_hyp_secret")
    secret_hva = hyp_va(machine, "__kvm_nvhe_hyp_secret")
    assert machine.read_u64(secret_kva, el=1) == machine.read_u64(secret_hva, el=2) == 0x5EC7E7
    assert machine.spaces.translate(secret_hva, 1) is None
    assert machine.spaces.translate(secret_kva, 2) is None
    with pytest.raises(MachineError, match="not mapped at EL1"):
        machine.read_va(secret_hva, 8, el=1)


def test_el1_does_not_see_a_hyp_va_that_el2_just_used(fixture_image):
    machine, result = run(fixture_image("4k"), Scenario.EL1_READS_HYP_VA)
    record = hyp_va(machine, "__kvm_nvhe_hyp_last_hvc")
    assert f"host: reading hyp VA {record:x}" in result.console
    assert result.status is RunStatus.ERROR
    assert f"EL1 data abort: read of unmapped VA {record:#x}" in result.reason
    assert "host_main+" in result.reason
    assert "x30" in result.register_dump() and "pc" in result.register_dump()


@pytest.mark.parametrize("scenario, access", [(Scenario.READ_HYP_SECRET, "read"),
                                              (Scenario.WRITE_HYP_SECRET, "write")])
def test_isolation_breach_in_protected_mode(fixture_image, scenario, access):
    machine, result = run(fixture_image("4k"), scenario, protected=True)
    assert result.status is RunStatus.ISOLATION_BREACH, result.reason
    breach = result.breach
    secret = machine.image.address_of("__kvm_nvhe_hyp_secret")
    assert breach.va == kernel_va(machine, "__kvm_nvhe_hyp_secret")
    assert breach.pa == machine.image.phys_address(secret)
    assert breach.access == access
    assert breach.target == "__kvm_nvhe_hyp_secret+0x0"
    assert breach.pc_symbol.startswith("host_main+")
    assert result.reason == str(breach) and result.exit_code is None


@pytest.mark.parametrize("scenario, last_line", [
    (Scenario.READ_HYP_SECRET, "host: hyp secret 5ec7e7"),
    (Scenario.WRITE_HYP_SECRET, "host: wrote the hyp secret"),
    (Scenario.READ_HYP_STACK, "host: read the hyp stack page"),
])
def test_no_breach_in_non_protected_mode(fixture_image, scenario, last_line):
    _, result = run(fixture_image("4k"), scenario, protected=False)
    assert result.ok and result.breach is None, result.reason
    assert result.console[-1] == last_line


def test_hyp_stack_pages_are_private_through_the_linear_map(fixture_image):
    machine, result = run(fixture_image("4k"), Scenario.READ_HYP_STACK, protected=True, cpu=1)
    assert result.status is RunStatus.ISOLATION_BREACH
    assert result.breach.target == "hyp stack page of CPU 1"
    assert machine.spaces.region_of(result.breach.va, 1).name == "linear map"


def test_shared_pages_stay_readable_in_protected_mode(fixture_image):
    _, result = run(fixture_image("4k"), Scenario.READ_SHARED, protected=True)
    assert result.ok, result.reason


# --------------------------------------------------------------------------
# Budgets and unexpected events


@pytest.mark.parametrize("scenario, where", [(Scenario.SPIN_EL1, "spin_forever+0x0"),
                                             (Scenario.SPIN_EL2, "__kvm_nvhe_hyp_spin+0x0")])
def test_instruction_budget_stops_an_endless_loop(fixture_image, scenario, where):
    _, result = run(fixture_image("4k"), scenario, max_instructions=50_000)
    assert result.status is RunStatus.DID_NOT_FINISH
    assert result.instructions == 50_000
    assert re.fullmatch(rf"did not finish after 50000 instructions at PC 0x[0-9a-f]+ "
                        rf"\({re.escape(where)}\) \(instruction budget of 50000 used up\)",
                        result.reason), result.reason


def test_wall_timeout_stops_an_endless_loop(fixture_image):
    _, result = run(fixture_image("4k"), Scenario.SPIN_EL1, max_instructions=10**12,
                    timeout_s=0.2)
    assert result.status is RunStatus.DID_NOT_FINISH
    assert "(wall timeout of 0.2 s)" in result.reason and "(spin_forever+0x0)" in result.reason
    assert 0 < result.instructions < 10**12
    assert result.elapsed_ms < 5000


def test_undefined_instruction_is_an_error_with_registers(fixture_image):
    machine, result = run(fixture_image("4k"), Scenario.UDF)
    assert result.status is RunStatus.ERROR
    assert result.reason.startswith("unexpected exception at EL1: UNDEFINED instruction")
    assert "(host_udf+0x0)" in result.reason
    assert result.registers["pc"] == kernel_va(machine, "host_udf")
    assert re.search(r"pc [0-9a-f]{16}", result.register_dump())


@pytest.mark.parametrize("scenario", [Scenario.UDF, Scenario.HVC])
def test_the_one_call_register_read_agrees_with_the_bindings(fixture_image, scenario):
    machine, _ = run(fixture_image("4k"), scenario, protected=True)
    fast = registers.read_registers(machine.uc)
    slow = registers.registers_through_binding(machine.uc)
    live_bank = f"sp_el{fast['el']}" if fast["pstate"] & 1 else "sp_el0"  # shown as sp
    assert fast[live_bank] == fast["sp"]
    assert {name: fast[name] for name in slow if name != live_bank} == \
        {name: value for name, value in slow.items() if name != live_bank}
    assert len(slow) == 51 and slow["hcr_el2"] and slow["vbar_el2"]


@pytest.mark.parametrize("word, expected", [
    (0xD503207F, "the CPU halted in WFI at EL1, pc {pc:#x} (host_main+0x0)"),
    (0xD4000001, "unexpected exception at EL1: SVC at pc {pc:#x} (host_main+0x0)"),
    (0xD4200000, "unexpected exception at EL1: BRK at pc {pc:#x} (host_main+0x0)"),
    # ldxr x0, [x1] with x1 = boot flags = 1: a misaligned exclusive.
    (0xC85F7C20, "unexpected exception at EL1: data abort (alignment or permission) at "
                 "pc {pc:#x} (host_main+0x0)"),
])
def test_unexpected_instructions_at_el1_end_the_run(fixture_image, word, expected):
    machine = Machine(load_image(fixture_image("4k")), RunOptions(protected=True))
    host_main = kernel_va(machine, "host_main")
    machine.add_pre_run(lambda m: m.write_va(host_main, word.to_bytes(4, "little"), el=1))
    result = machine.run()
    assert result.status is RunStatus.ERROR
    assert result.reason.startswith(expected.format(pc=host_main)), result.reason


def test_exit_status_is_reported(fixture_image):
    _, result = run(fixture_image("4k"), Scenario.EXIT_CODE)
    assert result.status is RunStatus.EXITED and result.exit_code == ExitCode.CODE_SCENARIO
    assert not result.ok and result.reason == "exited with status 7"


# --------------------------------------------------------------------------
# KASLR, determinism, per-CPU data


def test_kaslr_relocates_pointers_and_keeps_the_console(fixture_image):
    runs = [run(fixture_image("4k"), Scenario.RELOCS, kaslr_seed=seed) for seed in (1, 2)]
    (m1, r1), (m2, r2) = runs
    assert r1.kaslr_offset != r2.kaslr_offset
    assert r1.ok and r2.ok and r1.console == r2.console
    assert r1.console[-1] == "host: relocs ok"
    for machine, result in runs:
        table = kernel_va(machine, "host_reloc_table")
        assert table == machine.image.address_of("host_reloc_table") + result.kaslr_offset
        for i, rel in enumerate(sorted(machine.image.relocations, key=lambda r: r.offset)):
            assert machine.read_u64(table + 8 * i, el=1) == rel.value + result.kaslr_offset


def test_kaslr_seed_does_not_change_hyp_output(fixture_image):
    consoles = [run(fixture_image("4k"), Scenario.HVC, kaslr_seed=seed)[1].console
                for seed in (3, 4)]
    assert consoles[0] == consoles[1]


def test_image_without_randomize_base_runs_at_its_link_address(fixture_image):
    machine, result = run(fixture_image("64k"), Scenario.RELOCS, kaslr_seed=99)
    assert result.kaslr_offset == 0 and result.ok, result.reason
    assert kernel_va(machine, "host_main") == machine.image.address_of("host_main")


def test_runs_are_deterministic(fixture_image):
    first = run(fixture_image("4k"), Scenario.COUNTER, kaslr_seed=5)[1]
    second = run(fixture_image("4k"), Scenario.COUNTER, kaslr_seed=5)[1]
    assert first.ok
    assert first.console == second.console
    assert first.instructions == second.instructions
    assert first.registers == second.registers
    step = COUNTER_STEP_NS
    assert f"host: counter {step} {2 * step} {3 * step}" in first.console


@pytest.mark.parametrize("config, cpu", [("4k", 0), ("4k", 1), ("16k", 2)])
def test_other_cpus_per_cpu_data_is_untouched(fixture_image, config, cpu):
    machine, result = run(fixture_image(config), Scenario.PERCPU, cpu=cpu)
    assert result.ok, result.reason
    assert machine.foreign_percpu_changes() == []
    # The running CPU's own copies did change.
    stride = (machine.image.address_of("__hyp_percpu_end")
              - machine.image.address_of("__hyp_percpu_start")) // machine.layout.nr_cpus
    count = hyp_va(machine, "__kvm_nvhe_hyp_hvc_count") + cpu * stride
    assert machine.read_u64(count, el=2) == 1


def test_a_write_to_another_cpus_per_cpu_data_is_reported(fixture_image):
    machine, result = run(fixture_image("16k"), Scenario.PERCPU_OTHER, cpu=2)
    assert result.ok, result.reason
    changes = machine.foreign_percpu_changes()
    assert [(c.side, c.cpu, c.offset, c.symbol) for c in changes] == [
        ("hyp", 0, 0, "__kvm_nvhe_hyp_hvc_count+0x0")]
    assert "hyp per-CPU data of CPU 0 changed" in str(changes[0])


# --------------------------------------------------------------------------
# Hooks and API


def test_code_hooks_fire_at_hyp_and_kernel_addresses(fixture_image):
    machine = Machine(load_image(fixture_image("4k")), RunOptions(scenario_id=Scenario.HVC))
    calls: list[tuple[str, int]] = []
    for name in ("__kvm_nvhe_hyp_handle_hvc", "host_main", "__kvm_nvhe_con_printf"):
        link = machine.image.address_of(name)
        va = machine.add_code_hook(link, lambda m, addr: calls.append(
            (m.image.describe(addr), m.register("pstate") >> 2 & 3)))
        assert va == machine.runtime_address(link)
    assert machine.runtime_address(machine.image.address_of("host_main")) == \
        kernel_va(machine, "host_main")
    seen_before: list[int] = []
    machine.add_pre_run(lambda m: seen_before.append(m.registers()["el"]))
    result = machine.run()
    assert result.ok, result.reason
    assert seen_before == [2]
    assert calls.count(("host_main+0x0", 1)) == 1
    assert calls.count(("__kvm_nvhe_hyp_handle_hvc+0x0", 2)) == 1
    assert calls.count(("__kvm_nvhe_con_printf+0x0", 2)) == 3


def test_a_failing_hook_ends_the_run_not_the_process(fixture_image):
    machine = Machine(load_image(fixture_image("4k")), RunOptions(scenario_id=Scenario.HVC))

    def broken(_machine: Machine, _address: int) -> None:
        raise ValueError("oracle bug")

    machine.add_code_hook(machine.image.address_of("__kvm_nvhe_hyp_handle_hvc"), broken)
    result = machine.run()
    assert result.status is RunStatus.ERROR
    assert "code hook at __kvm_nvhe_hyp_handle_hvc+0x0 raised ValueError: oracle bug" \
        in result.reason


def test_machine_misuse_and_bad_options(fixture_image):
    image = load_image(fixture_image("4k"))
    with pytest.raises(MachineError, match=r"CPU 2 does not exist.*NR_CPUS=2") as info:
        Machine(image, RunOptions(cpu=2))
    assert info.value.exit_code == EXIT_BAD_INPUT
    with pytest.raises(MachineError, match="--timeout 0: the wall-clock budget"):
        Machine(image, RunOptions(timeout_s=0))
    machine = Machine(image, RunOptions(scenario_id=Scenario.HELLO))
    with pytest.raises(MachineError, match="before run"):
        machine.foreign_percpu_changes()
    assert machine.run().ok
    with pytest.raises(MachineError, match="create a new Machine"):
        machine.run()
    with pytest.raises(MachineError, match="not inside the image"):
        machine.runtime_address(0x1000)


def test_image_missing_contract_symbols_is_rejected(fixture_image, tmp_path):
    stripped = tmp_path / "vmlinux"
    subprocess.run([CROSS + "objcopy", "--strip-symbol=kvm_arm_hyp_stack_pages",
                    str(fixture_image("4k")), str(stripped)], check=True)
    with pytest.raises(ImageError, match="missing symbols.*kvm_arm_hyp_stack_pages"):
        Machine(load_image(stripped))


# --------------------------------------------------------------------------
# The load/store decoder behind exact FAR values


DECODE_CASES = [
    # (instruction, x1, x2, expected (address, size)); SP is 0x1000
    ("stp x29, x30, [sp, #48]", None, None, (0x1000 + 48, 16)),
    ("stp x29, x30, [sp, #-32]!", None, None, (0x1000 - 32, 16)),
    ("ldp x0, x1, [x1], #16", 0x2000, None, (0x2000, 16)),
    ("stp w3, w4, [x1, #-8]", 0x2000, None, (0x2000 - 8, 8)),
    ("stp q0, q1, [x1, #32]", 0x2000, None, (0x2000 + 32, 32)),
    ("str x0, [x1, #24]", 0x2000, None, (0x2018, 8)),
    ("ldrb w0, [x1, #4095]", 0x2000, None, (0x2000 + 4095, 1)),
    ("ldr q0, [x1, #16]", 0x2000, None, (0x2010, 16)),
    ("str x0, [sp, #-16]!", None, None, (0x1000 - 16, 8)),
    ("ldr x0, [x1], #-8", 0x2000, None, (0x2000, 8)),
    ("stur w0, [x1, #-3]", 0x2000, None, (0x2000 - 3, 4)),
    ("ldr x0, [x1, x2, lsl #3]", 0x2000, 5, (0x2000 + 40, 8)),
    ("ldr w0, [x1, w2, sxtw #2]", 0x2000, 0xFFFFFFFF, (0x2000 - 4, 4)),
    ("ldrh w0, [x1, x2]", 0x2000, 6, (0x2006, 2)),
    ("ldxr x0, [x1]", 0x2000, None, (0x2000, 8)),
    ("ldadd w0, w3, [x1]", 0x2000, None, (0x2000, 4)),
    ("ldar x0, [x1]", 0x2000, None, (0x2000, 8)),
]


def test_data_access_decoder(tmp_path):
    source = tmp_path / "decode.S"
    source.write_text(".arch armv8.1-a\n" + "".join(f"\t{insn}\n" for insn, *_ in DECODE_CASES)
                      + "1:\tldr x0, 1b\n")
    obj = tmp_path / "decode.o"
    binary = tmp_path / "decode.bin"
    subprocess.run([CROSS + "as", str(source), "-o", str(obj)], check=True)
    subprocess.run([CROSS + "objcopy", "-O", "binary", "-j", ".text", str(obj), str(binary)],
                   check=True)
    words = [int.from_bytes(binary.read_bytes()[i:i + 4], "little")
             for i in range(0, len(DECODE_CASES) * 4 + 4, 4)]
    for word, (insn, base, index, expected) in zip(words, DECODE_CASES):
        regs = {1: base or 0, 2: index or 0, 31: 0x1000}
        assert a64.data_access(word, lambda n: regs.get(n, 0), pc=0x8000) == expected, insn
    literal_pc = 0x8000
    assert a64.data_access(words[-1], lambda n: 0, pc=literal_pc) == (literal_pc, 8)
    assert a64.data_access(0xD503201F, lambda n: 0, pc=0) is None  # nop
