"""The firmware on the emulated platform, checked with external tools.

Every scenario x mode x shipped config runs; besides the harness's own
verdict, each printed address and symbol is checked against the kernel's
kallsyms rule computed from aarch64-linux-gnu-nm -n (a symbol's size is the
distance to the next code symbol) and against addr2line -f on the ELF,
tools which know nothing of our code.
"""

from __future__ import annotations

import subprocess

import pytest

from pyharness.builder import cache as builder
from pyharness.kconfig import resolve as kconfig
from pyharness.run.runner import RunRequest, run_one
from pyharness.judge.tracelog import Frame, parse_log

from binutils import addr2line_function, nm_functions, nm_kallsyms

SHIPPED = [kconfig.config_name(p) for p in kconfig.named_configs()]
PANIC_SCENARIOS = ("hyp_panic", "stack_overflow", "bug", "invalid_host_exception")
OVERFLOW_STACK_SIZE = 4096


def assert_frame_matches_elf(elf: str, frame: Frame) -> None:
    """The printed sym+off/size agrees with the kallsyms rule and addr2line
    at the address. Every address, the panic line's too, is printed by the
    %pB rule (kernels since 5.19): looked up at addr - 1.
    """
    assert frame.symbol is not None, frame.raw
    address, size = nm_kallsyms(elf)[frame.symbol]
    looked_up = frame.address - 1
    assert address <= looked_up < address + size, frame.raw
    assert frame.offset == frame.address - address, frame.raw
    assert frame.size == size, frame.raw
    # addr2line names the function by DWARF, without the hyp prefix that
    # objcopy added to the symbol table.
    name = addr2line_function(elf, looked_up)
    assert frame.symbol in (name, "__kvm_nvhe_" + name), (frame.raw, name)


def run(config: str, scenario: str, mode: str, cpu: int = 0, seed: int = 7):
    return run_one(RunRequest(config=config, scenario=scenario, mode=mode, cpu=cpu,
                              kaslr_seed=seed))


@pytest.mark.parametrize("scenario", PANIC_SCENARIOS)
@pytest.mark.parametrize("mode", ["nvhe", "protected"])
@pytest.mark.parametrize("config", SHIPPED)
def test_dump_agrees_with_nm_and_addr2line(config, mode, scenario):
    nr_cpus = kconfig.resolve(kconfig.find_config(config)).summary.nr_cpus
    record = run(config, scenario, mode, cpu=nr_cpus - 1)
    assert record.verdict == "pass", "\n".join(record.reasons)
    panic = parse_log("\n".join(record.console)).sole_panic()
    assert panic is not None and panic.host is not None
    if panic.panic.location is not None:
        assert_frame_matches_elf(record.elf, panic.panic.location)
    if panic.trace is None:
        assert panic.cannot_dump is not None
        return
    assert panic.trace.frames, "an empty trace"
    for frame in panic.trace.frames:
        assert_frame_matches_elf(record.elf, frame)
    assert panic.trace.frames[-1].symbol == "__kvm_nvhe___host_exit"
    assert panic.trace.frames[0].symbol == "__kvm_nvhe_hyp_panic"


@pytest.mark.parametrize("config", ["pkvm", "pkvm_16k", "pkvm_64k"])
@pytest.mark.parametrize("mode", ["nvhe", "protected"])
def test_stack_overflow_trace_is_shaped_like_the_seed(config, mode):
    record = run(config, "stack_overflow", mode)
    panic = parse_log("\n".join(record.console)).sole_panic()
    assert panic.panic.kind == "panic"
    assert panic.panic.symbol == "__kvm_nvhe_recursive_death"
    header = {"nvhe": "non-protected", "protected": "protected"}[mode]
    assert panic.trace.kind == header and panic.trace.footer
    names = [f.symbol for f in panic.trace.frames]
    assert names[:2] == ["__kvm_nvhe_hyp_panic", "__kvm_nvhe_hyp_panic_bad_stack"]
    bad_stack = panic.trace.frames[1]
    # The noreturn call ends the function: %pB prints its st_size as the
    # offset, and the kallsyms size runs on to the next symbol.
    assert bad_stack.offset == nm_functions(record.elf)[bad_stack.symbol][1]
    assert bad_stack.size == nm_kallsyms(record.elf)[bad_stack.symbol][1]
    recursion = [n for n in names if n == "__kvm_nvhe_recursive_death"]
    page = kconfig.resolve(kconfig.find_config(config)).summary.page_size_kb * 1024
    # Every 32-byte recursion frame of the hyp stack page is in the trace,
    # give or take the frames below the recursion.
    assert page // 32 - 8 <= len(recursion) <= page // 32
    assert names[-4:] == ["__kvm_nvhe___kvm_recursive_death",
                          "__kvm_nvhe_handle___kvm_recursive_death",
                          "__kvm_nvhe_handle_trap", "__kvm_nvhe___host_exit"]
    host_exit = panic.trace.frames[-1]
    assert host_exit.offset == nm_functions(record.elf)[host_exit.symbol][1]


def test_kaslr_prints_link_time_addresses_at_any_seed():
    first, second = run("nvhe", "stack_overflow", "nvhe", seed=1), \
        run("nvhe", "stack_overflow", "nvhe", seed=2)
    assert first.kaslr_offset != second.kaslr_offset
    assert first.kaslr_offset and second.kaslr_offset
    assert first.console == second.console
    assert first.verdict == second.verdict == "pass"


def test_no_kaslr_means_offset_zero():
    assert run("tiny", "smoke", "nvhe", seed=99).kaslr_offset == 0


def test_bug_line_forms():
    """file:line where the host may read the bug table, else the address."""
    nvhe = parse_log("\n".join(run("nvhe", "bug", "nvhe").console)).sole_panic()
    assert nvhe.panic.kind == "bug-file" and nvhe.panic.file == "csrc/hyp/scenarios.c"
    hidden = parse_log("\n".join(run("nvhe", "bug", "protected").console)).sole_panic()
    assert hidden.panic.kind == "bug-addr"
    debug = parse_log("\n".join(run("pkvm", "bug", "protected").console)).sole_panic()
    assert debug.panic.kind == "bug-file"


def test_unwinder_rules_selftest():
    record = run("nvhe", "unwind_selftest", "nvhe")
    assert record.verdict == "pass", record.reasons
    assert any("self_loop pcs=a,b,c end=-22" in line for line in record.console)


@pytest.mark.parametrize("config", SHIPPED)
def test_stacktrace_footprint(config):
    """4 KiB overflow stack per CPU at every page size; the shared buffer is
    (PAGE_SIZE + 4 KiB) / 16 + 1 entries per CPU, and absent without the option."""
    built = builder.build(config)
    summary = built.config.summary
    out = subprocess.run(["aarch64-linux-gnu-nm", "-S", str(built.elf)],
                         capture_output=True, text=True, check=True).stdout
    sizes = {p[3]: int(p[1], 16) for p in (l.split() for l in out.splitlines()) if len(p) == 4}
    assert sizes["__kvm_nvhe_overflow_stack"] == OVERFLOW_STACK_SIZE
    page = summary.page_size_kb * 1024
    if summary.protected_stacktrace:
        per_cpu = ((page + OVERFLOW_STACK_SIZE) // 16 + 1) * 8
        assert sizes["__kvm_nvhe_pkvm_stacktrace"] == summary.nr_cpus * per_cpu
    else:
        assert not [name for name in sizes if "pkvm_stacktrace" in name]


@pytest.mark.parametrize("scenario", ["stack_overflow", "bug", "fault_lr_tagged"])
def test_decode_with_elf_agrees_with_the_firmware(scenario):
    """pyharness decode --elf finds nothing to flag in the firmware's own dump."""
    from pyharness.decode import decode_text

    record = run("pkvm", scenario, "nvhe")
    traces = decode_text("\n".join(record.console), record.elf)
    assert len(traces) == 1
    assert not traces[0].mismatches, [f.mismatch for f in traces[0].mismatches]
    assert len(traces[0].frames) == len(record.expected)
    # Every frame in a function has its source line (fault_lr_tagged also
    # prints an lr in no symbol at all: the decoder must not invent one).
    in_symbols = [f for f in traces[0].frames if f.frame.symbol is not None]
    assert len(in_symbols) >= len(traces[0].frames) - 1
    assert all(f.elf is not None and f.elf.file and f.elf.line for f in in_symbols)
    assert all(f.elf is None or not f.elf.line for f in traces[0].frames if f.frame.symbol is None)
