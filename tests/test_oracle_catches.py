"""Each rule the new scenarios exercise, broken in a copy of the firmware
(or of a kernel tree), fails the run with a reason that names it: the bugs
a reviewer would expect the bench to catch (alignment 8 vs 16, the
overflow stack's bound on 16K pages, the protected buffer's last slot; in
a 6.1, 6.12 or 7.x tree, an on-stack check that ignores the record's size
and a save that drops the buffer's terminator)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from test_kernel_src_runs import copy_tree
from test_kernelsrc import _debian

from pyharness.builder import kernelsrc
from pyharness.paths import build_base, source_root
from pyharness.run.runner import RunRequest, run_one

# What the firmware build reads (CMake runs the kallsyms generator by path).
TREE = ("Kconfig", "CMakeLists.txt", "cmake", "configs", "csrc",
        "pyharness/builder/kallsyms_gen.py")


@pytest.fixture
def firmware_copy(tmp_path, monkeypatch):
    """A copy of the firmware tree the harness builds instead of the real one."""
    root = tmp_path / "lab"
    root.mkdir()
    for name in TREE:
        src = source_root() / name
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / name)
    monkeypatch.setenv("NVHE_LAB_ROOT", str(root))
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) >= 1, (path, old)
    path.write_text(text.replace(old, new))


def run(tmp_path: Path, config: str, scenario: str, mode: str, kernel_src: Path | None = None):
    return run_one(RunRequest(config=config, scenario=scenario, mode=mode, kaslr_seed=2,
                              out_dir=tmp_path / "out",
                              kernel_src=str(kernel_src) if kernel_src else None))


@pytest.fixture
def tree_copy(tmp_path):
    """generation -> a copy of the files the build reads from Debian's tree."""
    def copy(generation: str) -> Path:
        source = kernelsrc.open_source(kernelsrc.debian_tarball(generation), build_base(None))
        assert source is not None
        return copy_tree(source, tmp_path / f"linux-{generation}")
    return copy


def unexpected_frames(record) -> list[str]:
    return [r for r in record.reasons if re.match(r"frame \d+: unexpected ", r)]


def test_alignment_16_instead_of_8(firmware_copy, tmp_path):
    edit(firmware_copy / "csrc/include/stacktrace/common.h", "if (fp & 0x7)", "if (fp & 0xf)")
    record = run(tmp_path, "pkvm", "fault_fp_8_mod_16", "protected")
    assert record.verdict == "fail"
    assert any(r.startswith("frame ") and ": missing, expected" in r for r in record.reasons)
    assert run(tmp_path, "pkvm", "hyp_panic", "protected").passed   # aligned frames only


@pytest.mark.parametrize("side, mode", [("csrc/hyp/stacktrace.c", "protected"),
                                        ("csrc/host/handle_exit.c", "nvhe")])
def test_overflow_stack_bounded_by_the_page_size(firmware_copy, tmp_path, side, mode):
    edit(firmware_copy / side, "overflow + OVERFLOW_STACK_SIZE", "overflow + PAGE_SIZE")
    record = run(tmp_path, "pkvm_16k", "fault_overflow_stack_past_top", mode)
    assert record.verdict != "pass", record.reasons
    assert any("frame" in r or "watch" in r or "below" in r or "read of" in r
               for r in record.reasons), record.reasons


def test_protected_buffer_one_slot_short(firmware_copy, tmp_path):
    edit(firmware_copy / "csrc/hyp/stacktrace.c", "NVHE_STACKTRACE_ENTRIES - 1",
         "NVHE_STACKTRACE_ENTRIES - 2")
    record = run(tmp_path, "pkvm", "fault_packed_stacks", "protected")
    assert record.verdict == "fail"
    [reason] = record.reasons         # the last slot's frame, and nothing else
    assert re.match(r"frame \d+: missing, expected ", reason), reason


def test_the_vector_testing_the_wrong_bit(firmware_copy, tmp_path):
    edit(firmware_copy / "csrc/hyp/host.S", "tbz	x0, #NVHE_STACK_SHIFT,",
         "tbz	x0, #(NVHE_STACK_SHIFT + 1),")
    failed = [run(tmp_path, "pkvm", scenario, "nvhe")
              for scenario in ("hyp_panic", "fault_at_stack_top", "fault_on_overflow_stack")]
    assert any(not r.passed for r in failed)
    assert all(any(reason.startswith("vector: ") for reason in r.reasons)
               for r in failed if not r.passed), [r.reasons for r in failed]


# -- bugs written into a kernel tree's unwinder ---------------------------------

TREES = [_debian("6.1"), _debian("6.12"), _debian("7.x")]


@pytest.mark.parametrize("generation", TREES)
def test_a_trees_on_stack_check_ignoring_the_records_size(tree_copy, tmp_path, generation):
    tree = tree_copy(generation)
    edit(tree / kernelsrc.COMMON_H, "sp + size > info->high", "sp >= info->high")
    for mode in ("nvhe", "protected"):
        # The straddlers placed last, right below handle_trap's record (or
        # hyp_panic_bad_stack's): the walk only moves upward, so the size
        # never matters there.
        for old in ("fault_hyp_stack_past_top", "fault_overflow_stack_past_top"):
            assert run(tmp_path, "pkvm", old, mode, tree).passed, (old, mode)
        # Reached from a lower record, the straddler is taken: one frame
        # more (the word past the top as a pc), or at EL2 a read of the
        # next CPU's guard page, which aborts inside the panic path.
        overflow = run(tmp_path, "pkvm", "fault_overflow_straddles_top", mode, tree)
        assert overflow.verdict == "fail", overflow.reasons
        assert len(overflow.reasons) == 1 and unexpected_frames(overflow), overflow.reasons
        hyp = run(tmp_path, "pkvm", "fault_hyp_straddles_top", mode, tree)
        assert hyp.verdict == "fail", hyp.reasons
        if mode == "nvhe":
            assert len(unexpected_frames(hyp)) == 1, hyp.reasons
        else:
            assert hyp.run_status == "did-not-finish", hyp.reasons
            assert "exception loop" in hyp.reasons[0], hyp.reasons


@pytest.mark.parametrize("generation", TREES)
def test_a_trees_save_dropping_the_terminator(tree_copy, tmp_path, generation):
    tree = tree_copy(generation)
    edit(tree / kernelsrc.HYP_STACKTRACE_C, "stacktrace[++*idx] = 0UL;", "++*idx;")
    # The buffer is all zeros before each save: the missing terminator is
    # invisible, even with every slot used.
    for old in ("hyp_panic", "fault_packed_stacks", "fault_longest_chain"):
        assert run(tmp_path, "pkvm", old, "protected", tree).passed, old
    stale = run(tmp_path, "pkvm", "fault_stale_trace_buffer", "protected", tree)
    assert stale.verdict == "fail"
    # The stale pcs after the last entry are printed: the frames expected
    # are all there, then frames that should not be.
    expected = len(stale.expected)
    assert stale.reasons[0].startswith(f"frame {expected}: unexpected "), stale.reasons
    assert unexpected_frames(stale) and not any("missing" in r for r in stale.reasons)
    # Non-protected mode never uses the buffer.
    assert run(tmp_path, "pkvm", "fault_stale_trace_buffer", "nvhe", tree).passed
