"""A real kernel is judged by its tree's own numbers: the overflow stack,
the hyp stack and the protected trace buffer its kbuild build was made
with, evaluated by the probe the lab's build runs (builder/tree_numbers.py).

The tree is a hard-linked copy of 6.12 in the kernel cache (``test-trees/``,
as tests/test_qemu_runaway.py's) whose ``asm/memory.h`` has a 2 KiB
overflow stack and a protected buffer a quarter of the stock formula: 97
longs, 96 pcs and the terminator, fewer than a stack overflow's trace. Its
kernel is built once (minutes, cold), then found without make.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from real_kernels import REFERENCE, kernel, linked_tree_copy

from pyharness.builder import real_kernel
from pyharness.builder.kbuild import build_kernel
from pyharness.builder.kernel_image import KernelImage
from pyharness.builder.kernelsrc import KernelSourceError, KernelTree
from pyharness.builder.tree_numbers import (OVERFLOW_STACK_SYMBOL, TRACE_BUFFER_SYMBOL,
                                            check_bootable, real_kernel_numbers, symbol_sizes)
from pyharness.cli.main import main
from pyharness.judge.kernel_checker import judge_kernel_run
from pyharness.judge.kernel_path import KernelCode
from pyharness.judge.verdict import Verdict
from pyharness.platform.qemu import BootOptions, boot
from pyharness.run import kernel_faults
from pyharness.run.kernel_scenarios import kernel_scenario, resolve
from pyharness.run.qemu_runner import (QemuRequest, expectation, frame_line_bound,
                                       kernel_files, run_qemu, stack_sizes, with_sources)

MEMORY_H = "arch/arm64/include/asm/memory.h"
SUFFIX = "small-numbers"
# 6.12's definitions, and the copy's: a 2 KiB overflow stack, and a protected
# trace buffer of a quarter of the stacks' records (97 longs: 96 pcs and the
# terminator), too small for a stack overflow's trace.
_STOCK_BLOCK = """#define OVERFLOW_STACK_SIZE\tSZ_4K

/*
 * With the minimum frame size of [x29, x30], exactly half the combined
 * sizes of the hyp and overflow stacks is the maximum size needed to
 * save the unwinded stacktrace; plus an additional entry to delimit the
 * end.
 */
#define NVHE_STACKTRACE_SIZE\t((OVERFLOW_STACK_SIZE + PAGE_SIZE) / 2 + sizeof(long))
"""
_SMALL_BLOCK = (_STOCK_BLOCK.replace("SZ_4K", "SZ_2K")
                .replace("PAGE_SIZE) / 2 +", "PAGE_SIZE) / 8 +"))
SMALL_NUMBERS = {MEMORY_H: (_STOCK_BLOCK, _SMALL_BLOCK)}


@pytest.fixture(scope="module")
def small() -> KernelImage:
    """The copy's kernel, built by kbuild (once; then cached)."""
    return build_kernel("pkvm", str(linked_tree_copy(SUFFIX, SMALL_NUMBERS)))


@pytest.fixture(scope="module")
def stock() -> KernelImage:
    return kernel(REFERENCE)


def test_the_kernel_is_judged_by_the_numbers_it_was_built_with(small, stock):
    """The probe's numbers are the ones kbuild built the hyp with: its
    symbols' sizes say so, read from the vmlinux apart from the probe."""
    built = symbol_sizes(small.vmlinux, (OVERFLOW_STACK_SYMBOL, TRACE_BUFFER_SYMBOL))
    assert built == {OVERFLOW_STACK_SYMBOL: 2048, TRACE_BUFFER_SYMBOL: 776}
    sizes = stack_sizes(small)
    assert (sizes.overflow_stack, sizes.hyp_stack, sizes.trace_buffer) == (2048, 4096, 776)
    assert sizes.trace_capacity == 96
    assert "small-numbers" in sizes.source
    # The stock tree's kernel keeps the stock numbers.
    reference = stack_sizes(stock)
    assert (reference.overflow_stack, reference.trace_buffer) == (4096, 4104)
    assert symbol_sizes(stock.vmlinux, (OVERFLOW_STACK_SYMBOL,)) == {OVERFLOW_STACK_SYMBOL: 4096}
    # The runaway bound follows: (2048 + 4096) / 16 records and the first pc,
    # a sixteenth more and 16.
    most, why = frame_line_bound(small, 1)
    assert most == 385 + 385 // 16 + 16 and "a 2048 B overflow stack" in why
    assert frame_line_bound(stock, 1)[0] == 513 + 513 // 16 + 16


def _boot(built: KernelImage, scenario_name: str, mode: str, tmp_path: Path):
    """One boot of the scenario; its expectation from the kernel's numbers
    and, for comparison, from the stock tree's."""
    smap, image = kernel_files(built)
    scenario = resolve(kernel_scenario(scenario_name), mode,
                       lambda name: smap.hyp(name) is not None)
    injection = kernel_faults.inject(scenario, smap, image, 0)
    patched = kernel_faults.apply(image, smap, injection)
    code = KernelCode(smap, patched)
    path = tmp_path / "Image"
    path.write_bytes(patched)
    result = boot(BootOptions(image=path, mode=mode, cpus=injection.cpus))

    def judged(sizes):
        return judge_kernel_run(result, with_sources(
            expectation(built, scenario, mode, injection, code, sizes), built))
    return result, judged


def test_a_protected_overflow_is_cut_at_the_trees_buffer(small, stock, tmp_path):
    """The hyp saves 96 pcs of the overflow's ~130: judged by the tree's
    numbers the run passes; by the stock ones (a 512-entry buffer, which
    would hold the whole trace) it fails, missing the frames the kernel
    could not save."""
    result, judged = _boot(small, "stack_overflow", "protected", tmp_path)
    frames = [line for line in result.console if re.search(r"kvm \[\d+\]:  \[<", line)]
    assert len(frames) == 96, result.console[-20:]
    assert judged(None).passed, judged(None).reasons
    by_stock = judged(stack_sizes(stock))
    assert not by_stock.passed
    assert any("printed 94 times, expected" in reason for reason in by_stock.reasons), \
        by_stock.reasons
    assert any(reason.startswith("frame 96: missing, expected") for reason in by_stock.reasons)


@pytest.mark.parametrize("mode", ["nvhe", "protected"])
def test_stack_overflow_runs_pass_on_the_tree(small, mode):
    """The whole run (pyharness qemu's) judges the copy by its numbers, and
    the lab's fast path built with the same tree dumps the same shape (in
    protected mode both cut at 96 frames, the recursion at the bottom)."""
    record = run_qemu(QemuRequest(config="pkvm", kernel_src=str(small.given),
                                  scenario="stack_overflow", mode=mode, kernel=small,
                                  differential=True))
    assert record.verdict is Verdict.PASS, record.reasons
    assert not any("not explained" in d for d in record.differences), record.differences
    # nVHE prints the whole chain (the overflow stack's size does not change
    # it); protected mode the buffer's 96 pcs.
    assert (len(record.expected) == 96) == (mode == "protected"), len(record.expected)


# -- numbers a real kernel's run cannot work with --------------------------------

@pytest.mark.parametrize("generation, numbers, named", [
    ("6.12", (512, 4096, 0, 2312, 48, 4096), "OVERFLOW_STACK_SIZE is 512"),
    ("6.12", (2056, 4096, 0, 3084, 48, 4096), "OVERFLOW_STACK_SIZE is 2056"),
    ("6.12", (1 << 20, 4096, 0, 8192, 48, 4096), "OVERFLOW_STACK_SIZE is 1048576"),
    ("6.12", (4096, 4096, 0, 8, 48, 4096), "NVHE_STACKTRACE_SIZE is 8"),
    ("7.x", (4096, 4096, 12288, 8200, 48, 4096), "NVHE_STACK_SIZE is 12288")])
def test_what_a_real_run_cannot_host(generation, numbers, named):
    tree = KernelTree(root=Path("/src/linux"), version="6.12.118", generation=generation)
    with pytest.raises(KernelSourceError) as err:
        check_bootable(tree, *numbers)
    assert str(err.value).startswith(f"/src/linux: the tree's {named} (evaluated from ")
    assert "a real kernel's run cannot host it: " in str(err.value)


def test_what_a_real_run_hosts():
    tree = KernelTree(root=Path("/src/linux"), version="7.2.13", generation="7.x")
    assert check_bootable(tree, 2048, 4096, 4096, 776, 48, 4096) == 4096
    assert check_bootable(tree, 1024, 4096, 8192, 4616, 48, 4096) == 8192


def _tiny_overflow_stack(stock: KernelImage, tree: Path) -> KernelImage:
    """The stock kernel's build standing for a tree whose overflow stack is
    512 bytes: the files the probe reads, copied into ``tree``, memory.h
    edited. The probe evaluates them with the build's configuration; no
    build runs."""
    root = stock.source_root
    assert root is not None
    for path in real_kernel_numbers(stock).inputs:
        (tree / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, tree / path.relative_to(root))
    memory_h = tree / MEMORY_H
    memory_h.write_text(memory_h.read_text().replace("#define OVERFLOW_STACK_SIZE\tSZ_4K",
                                                     "#define OVERFLOW_STACK_SIZE\tSZ_512"))
    return replace(stock, source_root=tree)


def test_a_number_the_run_cannot_host_is_exit_2_before_the_boot(stock, tmp_path):
    with pytest.raises(KernelSourceError) as err:
        run_qemu(QemuRequest(config="pkvm", kernel_src=stock.given, scenario="stack_overflow",
                             kernel=_tiny_overflow_stack(stock, tmp_path)))
    message = str(err.value)
    assert err.value.exit_code == 2
    assert f"{tmp_path}: the tree's OVERFLOW_STACK_SIZE is 512" in message
    assert "a real kernel's run cannot host it" in message


def test_pyharness_qemu_refuses_it_in_one_line(stock, tmp_path, monkeypatch, capsys):
    """From the command line: exit 2 and the message, once the kernel is had."""
    tiny = _tiny_overflow_stack(stock, tmp_path)
    monkeypatch.setattr(real_kernel, "build_kernel", lambda *args, **kwargs: tiny)
    code = main(["qemu", "--config", "pkvm", "--kernel-src", str(tmp_path),
                 "--scenario", "stack_overflow"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"pyharness: error: {tmp_path}: the tree's OVERFLOW_STACK_SIZE "
                               "is 512 (evaluated from arch/arm64/include/asm/memory.h); a real "
                               "kernel's run cannot host it: it must be 1024 to 262144 bytes")
