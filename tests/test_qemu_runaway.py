"""A real kernel whose host dump never ends is stopped once its console
holds more frame lines than the deepest valid chain allows, and its
record is capped like the lab's.

The broken kernel is 6.12 with ``if (ret < 0)`` made ``if (ret > 0)`` in
unwind() of arch/arm64/kvm/stacktrace.c: the host's nVHE unwinder prints
the chain's last frame forever. It is built from a hard-linked copy of
the tree in the kernel cache (``test-trees/``), so its build survives
between sessions: cold, a whole kernel (minutes); warm, found without make.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from real_kernels import linked_tree_copy

from pyharness.builder.kbuild import build_kernel
from pyharness.judge.verdict import Verdict
from pyharness.platform.runaway import is_frame_line
from pyharness.run import caps
from pyharness.run.qemu_runner import QemuRequest, frame_line_bound, run_qemu

LOOPING = "arch/arm64/kvm/stacktrace.c"
END_TEST = ("\t\tif (ret < 0)\n", "\t\tif (ret > 0)\n")


@pytest.fixture(scope="module")
def looping_tree() -> Path:
    """A hard-linked copy of the 6.12 tree whose host dump loop never ends."""
    return linked_tree_copy("dump-loop", {LOOPING: END_TEST})


def test_a_real_dump_that_never_ends_is_stopped_and_capped(looping_tree):
    built = build_kernel("pkvm", str(looping_tree))
    record = run_qemu(QemuRequest(config="pkvm", kernel_src=str(looping_tree),
                                  scenario="hyp_panic", mode="nvhe", kernel=built))
    most, _ = frame_line_bound(built, 1)
    assert record.verdict is Verdict.FAIL
    assert record.run_status == "runaway"
    first = record.reasons[0]
    assert first.startswith("stopped early, a runaway: the console holds ") and \
        f"more than the {most} a valid dump can print (the deepest valid chain is " in first
    # What a stopped run could not print is said once, not as missing lines.
    assert record.reasons[1] == ("not reached before the run was stopped: the trace's footer, "
                                 "the Hyp Offset line, the host panic")
    assert not any("missing" in reason for reason in record.reasons), record.reasons
    # Stopped a little past the bound (the rest of one read), far below the
    # 30 s budget's worth of console, and the record kept only what reports need.
    printed = int(first.split("the console holds ")[1].split()[0])
    assert most < printed < most + 2000, first
    assert record.elapsed_ms < 20_000
    kept = sum(1 for line in record.console if is_frame_line(line))
    assert kept <= caps.CONSOLE_HEAD + caps.CONSOLE_TAIL
    assert len(record.reasons) <= caps.MAX_REASONS + 10
