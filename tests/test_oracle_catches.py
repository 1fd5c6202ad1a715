"""Each rule the new scenarios exercise, broken in a copy of the firmware,
fails the run with a reason that names it: the bugs a reviewer would
expect the bench to catch (alignment 8 vs 16, the overflow stack's bound
on 16K pages, the protected buffer's last slot)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pyharness.paths import source_root
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


def run(tmp_path: Path, config: str, scenario: str, mode: str):
    return run_one(RunRequest(config=config, scenario=scenario, mode=mode, kaslr_seed=2,
                              out_dir=tmp_path / "out"))


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
    assert [r.split(":")[1].strip() for r in record.reasons] == ["missing, expected "
                                                                  + r.split("expected ")[1]
                                                                  for r in record.reasons]
    assert len(record.reasons) == 1    # the last slot's frame, and nothing else


def test_the_vector_testing_the_wrong_bit(firmware_copy, tmp_path):
    edit(firmware_copy / "csrc/hyp/host.S", "tbz	x0, #NVHE_STACK_SHIFT,",
         "tbz	x0, #(NVHE_STACK_SHIFT + 1),")
    failed = [run(tmp_path, "pkvm", scenario, "nvhe")
              for scenario in ("hyp_panic", "fault_at_stack_top", "fault_on_overflow_stack")]
    assert any(not r.passed for r in failed)
    assert all(any(reason.startswith("vector: ") for reason in r.reasons)
               for r in failed if not r.passed), [r.reasons for r in failed]
