"""The real-kernel judge on a real console of two CPUs overflowing at once
without printk caller ids (Debian's own 6.12, the `two_cpus_overflow`
scenario; tests/data/real/two_cpus_overflow_debian_6.12_seed1.log says
how it was made): kvm [1] finished its 131 frames and panicked while
kvm [0]'s frames still came, and its stop cut kvm [0] at 74.

The expectation is built as ``pyharness qemu`` builds it, from that
image's own code; the console is the one the kernel printed (the
fixture's header comment left out). Skipped when the image is not in the
kernel cache and Debian's mirror cannot be reached.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from pyharness.builder.debian_apt import MirrorUnreachable
from pyharness.builder.debian_kernel import obtain_debian_kernel
from pyharness.judge.kernel_checker import judge_kernel_run
from pyharness.judge.kernel_path import KernelCode
from pyharness.platform.qemu import BootResult
from pyharness.run import kernel_faults
from pyharness.run.kernel_scenarios import kernel_scenario, resolve
from pyharness.run.qemu_runner import expectation, kernel_files

CONSOLE = Path(__file__).resolve().parent / "data" / "real" / \
    "two_cpus_overflow_debian_6.12_seed1.log"
IMAGE = "debian:6.12.118+deb13@trixie"


@pytest.fixture(scope="module")
def judged():
    try:
        kernel = obtain_debian_kernel(IMAGE)
    except MirrorUnreachable as err:
        pytest.skip(f"{IMAGE} is not cached and Debian's mirror cannot be reached: {err}")
    smap, image = kernel_files(kernel)
    scenario = resolve(kernel_scenario("two_cpus_overflow"), "nvhe",
                       lambda name: smap.hyp(name) is not None)
    injection = kernel_faults.inject(scenario, smap, image, 0)
    patched = kernel_faults.apply(image, smap, injection)
    expect = expectation(kernel, scenario, "nvhe", injection, KernelCode(smap, patched))
    console = [line for line in CONSOLE.read_text().split("\n")
               if line and not line.startswith("#")]
    boot = BootResult(console=console, status="exited", exit_code=0, elapsed_ms=4500.0,
                      command=[], stderr="", runaway="")
    return boot, expect


def test_both_cpus_are_judged_on_their_own_and_pass(judged):
    boot, expect = judged
    assert expect.panicking_cpus == 2
    judgement = judge_kernel_run(boot, expect)
    assert judgement.passed, judgement.reasons
    assert len(judgement.actual_frames) == 131


def _changed(boot: BootResult, pid: int, nth: int) -> BootResult:
    """The console with the ``nth`` recursion frame of kvm [PID] one word off."""
    frames = [i for i, line in enumerate(boot.console)
              if f"kvm [{pid}]:  [<" in line and "get_mdcr_el2+0x18/" in line]
    console = list(boot.console)
    console[frames[nth]] = re.sub(r"\+0x18/", "+0x1c/", console[frames[nth]])
    return replace(boot, console=console)


@pytest.mark.parametrize("pid", (1, 0))
def test_a_wrong_frame_in_either_cpus_trace_fails_that_stream(judged, pid):
    boot, expect = judged
    reasons = judge_kernel_run(_changed(boot, pid, 5), expect).reasons
    assert reasons and all(r.startswith(f"CPU stream [kvm [{pid}]]: ") for r in reasons), reasons


def test_the_cpu_that_finished_must_print_every_recursion_frame(judged):
    boot, expect = judged
    console = list(boot.console)
    del console[next(i for i, line in enumerate(console) if "kvm [1]:  [<" in line
                     and "get_mdcr_el2+0x18/" in line)]
    reasons = judge_kernel_run(replace(boot, console=console), expect).reasons
    assert any(r.startswith("CPU stream [kvm [1]]: ") and "printed 126 times, expected 127" in r
               for r in reasons), reasons


def _with_drop(boot: BootResult, where: int, lost: int) -> BootResult:
    """The console with ``lost`` lines from index ``where`` on replaced by the
    kernel's line for messages it dropped."""
    console = list(boot.console)
    console[where:where + lost] = [f"** {lost} printk messages dropped **"]
    return replace(boot, console=console)


def _first_recursion_frame(boot: BootResult, pid: int) -> int:
    return next(i for i, line in enumerate(boot.console)
                if f"kvm [{pid}]:  [<" in line and "get_mdcr_el2+0x18/" in line)


def test_frames_the_kernel_dropped_make_an_error_not_a_failure(judged):
    boot, expect = judged
    where = _first_recursion_frame(boot, 1) + 10
    # the five lines hold both CPUs' frames; kvm [0]'s is cut short anyway
    lost = sum("kvm [1]:  [<" in line for line in boot.console[where:where + 5])
    assert 0 < lost < 5
    judgement = judge_kernel_run(_with_drop(boot, where, 5), expect)
    assert judgement.verdict == "error"
    assert judgement.reasons[0].startswith(
        "the kernel dropped 5 printk messages (its console skipped them: the printk ring "
        f"lapped, or a record a stopped CPU never finished), and the dump differs only by "
        f"{lost} frames left out"), judgement.reasons
    # What the drop cost is still said, after why it cannot be judged.
    assert any(f"printed {127 - lost} times, expected 127" in r for r in judgement.reasons[1:])


def test_a_wrong_frame_beside_a_drop_is_still_a_failure(judged):
    boot, expect = judged
    changed = _changed(boot, 1, 40)          # kvm [1]'s 41st recursion frame one word off
    judgement = judge_kernel_run(_with_drop(changed, _first_recursion_frame(boot, 1) + 10, 5),
                                 expect)
    assert judgement.verdict == "fail", judgement.reasons
    assert judgement.reasons[-1] == ("the kernel also dropped 5 printk messages; lost lines "
                                     "only leave frames out, which does not account for the "
                                     "above")


def test_more_frames_missing_than_messages_dropped_is_a_failure(judged):
    boot, expect = judged
    console = list(boot.console)
    first = _first_recursion_frame(boot, 1)
    del console[first + 20:first + 30]       # ten frames gone, one drop said
    judgement = judge_kernel_run(_with_drop(replace(boot, console=console), first + 10, 1),
                                 expect)
    assert judgement.verdict == "fail", judgement.reasons


def test_messages_dropped_outside_the_dump_leave_a_pass(judged):
    boot, expect = judged
    boot_line = next(i for i, line in enumerate(boot.console) if "Memory:" in line)
    assert judge_kernel_run(_with_drop(boot, boot_line, 1), expect).passed
