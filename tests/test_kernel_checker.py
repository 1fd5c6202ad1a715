"""The real-kernel judge catches what it must: a real kernel's console,
changed one thing at a time, against the expectation built from that
kernel's own code. Also the per-CPU split of two interleaved panics, and
the differential's shapes."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from real_kernels import REFERENCE, kernel, tarball

from pyharness.judge import differential
from pyharness.judge.kernel_checker import judge_kernel_run, split_by_caller
from pyharness.judge.kernel_path import KernelCode
from pyharness.platform.qemu import BootOptions, BootResult, boot
from pyharness.run import kernel_faults
from pyharness.run.kernel_scenarios import kernel_scenario, resolve
from pyharness.run.qemu_runner import expectation, kernel_files, with_sources


def _boot(scenario_name: str, mode: str, tmp_path_factory):
    built = kernel(REFERENCE)
    smap, image = kernel_files(built)
    scenario = resolve(kernel_scenario(scenario_name), mode,
                       lambda name: smap.hyp(name) is not None)
    injection = kernel_faults.inject(scenario, smap, image, 0)
    patched = kernel_faults.apply(image, smap, injection)
    expect = with_sources(expectation(built, scenario, mode, injection,
                                      KernelCode(smap, patched)), built)
    path = tmp_path_factory.mktemp("image") / "Image"
    path.write_bytes(patched)
    result = boot(BootOptions(image=path, mode=mode, cpus=injection.cpus))
    assert judge_kernel_run(result, expect).passed
    return result, expect


@pytest.fixture(scope="module")
def panic(tmp_path_factory):
    tarball(REFERENCE)
    return _boot("hyp_panic", "nvhe", tmp_path_factory)


@pytest.fixture(scope="module")
def overflow(tmp_path_factory):
    tarball(REFERENCE)
    return _boot("stack_overflow", "protected", tmp_path_factory)


def reasons(result: BootResult, expect, console: list[str] | None = None, **changes):
    changed = replace(result, console=console if console is not None else result.console,
                      **changes)
    return list(judge_kernel_run(changed, expect).reasons)


def _frame_lines(console: list[str]) -> list[int]:
    return [i for i, line in enumerate(console) if re.search(r"kvm \[\d+\]:  \[<", line)]


def test_a_dropped_frame(panic):
    result, expect = panic
    console = list(result.console)
    del console[_frame_lines(console)[1]]
    found = reasons(result, expect, console)
    assert any("frame 1: expected" in r and "handle___" in r for r in found), found
    # The reason points at the call in the tree, from the kernel's DWARF.
    assert any("arch/arm64/kvm/hyp/nvhe/hyp-main.c:" in r for r in found), found


def test_a_wrong_symbol_or_offset(panic):
    result, expect = panic
    console = list(result.console)
    i = _frame_lines(console)[2]
    console[i] = re.sub(r"\+0x([0-9a-f]+)/", lambda m: f"+0x{int(m[1], 16) + 4:x}/",
                        console[i])
    assert any(r.startswith("frame 2: expected") for r in reasons(result, expect, console))


def test_an_extra_frame(panic):
    result, expect = panic
    console = list(result.console)
    frames = _frame_lines(console)
    console.insert(frames[-1] + 1, console[frames[1]])
    assert any("extra frame" in r for r in reasons(result, expect, console))
    console = list(result.console)
    console.insert(frames[-1] + 1, console[frames[-1]])
    assert any("printed 2 times, expected 1" in r for r in reasons(result, expect, console))


def test_missing_footer_and_header(panic):
    result, expect = panic
    no_footer = [line for line in result.console if "end nVHE call trace" not in line]
    assert any("footer missing" in r for r in reasons(result, expect, no_footer))
    renamed = [line.replace("nVHE call trace:", "Non-protected nVHE HYP call trace:")
               for line in result.console]
    assert any(r.startswith("header") for r in reasons(result, expect, renamed))


def test_wrong_hyp_offset_and_its_format(panic):
    result, expect = panic
    console = [re.sub(r"Hyp Offset: 0x([0-9a-f]+)",
                      lambda m: f"Hyp Offset: 0x{int(m[1], 16) + 0x1000:x}", line)
               for line in result.console]
    assert any("not the panic address" in r for r in reasons(result, expect, console))
    padded = [re.sub(r"Hyp Offset: 0x([0-9a-f]+)",
                     lambda m: f"Hyp Offset: 0x{int(m[1], 16):020x}", line)
              for line in result.console]
    assert any("Hyp Offset: 0x%llx" in r for r in reasons(result, expect, padded))


def test_wrong_panic_address(panic):
    result, expect = panic
    console = [line.replace(f"[<{expect.fault_address:016x}>]",
                            f"[<{expect.fault_address + 4:016x}>]")
               for line in result.console]
    assert any(r.startswith("panic line: expected") for r in reasons(result, expect, console))


def test_how_the_run_ends(panic):
    result, expect = panic
    hung = reasons(result, expect, status="timeout", exit_code=None)
    assert any("did not exit" in r and "last line" in r for r in hung)
    killed = judge_kernel_run(replace(result, status="killed", exit_code=-9), expect)
    assert killed.verdict == "error" and "killed (signal 9)" in killed.reasons[0]
    wedged = judge_kernel_run(replace(result, status="timeout", console=[]), expect)
    assert wedged.verdict == "error" and "wedged" in wedged.reasons[0]
    early = [line for line in result.console if "kvm [" not in line][:40]
    never = reasons(result, expect, early)
    assert any("never reached KVM's init" in r and early[-1].strip() in r for r in never)


def test_the_recursion_count(overflow):
    result, expect = overflow
    console = list(result.console)
    text = lambda i: console[i].split("]: ", 1)[1]     # noqa: E731 (without the stamp)
    recursion = [i for i in _frame_lines(console) if text(i) == text(_frame_lines(console)[3])]
    assert len(recursion) > 100
    shorter = [line for i, line in enumerate(console) if i not in recursion[:40]]
    assert any("printed" in r and "times, expected" in r
               for r in reasons(result, expect, shorter))


def test_two_interleaved_cpus_are_judged_apart(panic):
    """Two copies of the real dump, one as CPU 1 ([C1]) interleaved line by
    line and cut off as the other CPU's stop would: each stream judged."""
    result, expect = panic
    two = replace(expect, panicking_cpus=2)
    first = next(i for i, line in enumerate(result.console) if "nVHE hyp panic" in line)
    dump = result.console[first:first + 8]
    other = [re.sub(r"\]\[\s*T1\]", "][    C1]", line) for line in dump[:5]]
    mixed = result.console[:first]
    for a, b in zip(dump, other + [None] * 3):
        mixed += [a] + ([b] if b else [])
    mixed += result.console[first + 8:]
    streams = split_by_caller(mixed)
    assert {"T1", "C1"} <= set(streams)
    assert judge_kernel_run(replace(result, console=mixed), two).passed
    broken = [line.replace("+0x", "+0x1", 1) if "[    C1]" in line and " [<" in line
              and "hyp_panic+" not in line else line for line in mixed]
    found = list(judge_kernel_run(replace(result, console=broken), two).reasons)
    assert found and all(r.startswith("CPU stream [C1]:") for r in found), found


def test_split_without_printk_caller_ids():
    """A distribution kernel prints no caller ids: its CPUs' KVM lines are
    told apart by their kvm [PID]."""
    console = ["[    0.3] kvm [1]: nVHE hyp panic at: [<ffff800080000004>] a+0x4/0x8!",
               "[    0.3] kvm [0]: nVHE hyp panic at: [<ffff800080000004>] a+0x4/0x8!",
               "[    0.3] kvm [1]: nVHE call trace:",
               "[    0.3] Kernel panic - not syncing: HYP panic:"]
    streams = split_by_caller(console)
    assert streams["kvm [1]"] == [console[0], console[2], console[3]]
    assert streams["kvm [0]"] == [console[1]]


def test_differential_shapes(panic, overflow):
    shape = differential.shape(overflow[0].console)
    assert shape.header == "nVHE call trace:" and shape.bad_stack == "at its function's end"
    assert shape.recursion.startswith("one frame x ") and shape.end.endswith("QEMU exits")
    same = differential.compare(panic[0].console, panic[0].console)
    assert same == []
    lab_like = [line.replace("nVHE call trace:", "Protected nVHE HYP call trace:")
                for line in panic[0].console]
    (difference,) = differential.compare(lab_like, panic[0].console)
    assert difference.aspect == "header" and difference.explanation is None
    assert "(new" in difference.describe()
