"""QEMU's monitor read before a runaway is killed (platform/qemu_monitor.py):
every wait bounded, whatever the monitor does. The real reads of a real
kernel's CPUs are tests/test_qemu_runaway.py's."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pyharness.platform.qemu import QEMU
from pyharness.platform.qemu_monitor import (QMP_SOCKET, monitor_args, read_stopped_cpus,
                                             socket_path)

# How late past its bound a read may return: the scheduling of a loaded CI
# machine (2 cores, QEMU and pytest workers), far below what an unbounded
# wait would cost (QEMU's whole 30 s budget).
SLACK_S = 3.0


@pytest.fixture
def scratch():
    with tempfile.TemporaryDirectory(prefix="pyharness-test-") as directory:
        yield Path(directory)


@pytest.fixture
def bare_qemu(scratch):
    """A QEMU with no kernel (its CPU runs whatever is at 0) and a QMP socket."""
    if shutil.which(QEMU) is None:
        pytest.skip(f"{QEMU} is not installed (sh scripts/setup.sh --tests)")
    path = scratch / QMP_SOCKET
    proc = subprocess.Popen([QEMU, "-M", "virt", "-cpu", "max", "-display", "none",
                             "-monitor", "none", "-serial", "none", *monitor_args(path)],
                            stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield proc, path
    finally:
        proc.kill()
        proc.wait()


def test_no_monitor_is_said_at_once(scratch):
    stopped = read_stopped_cpus(scratch / QMP_SOCKET, 1, scratch / "Image", 48, timeout_s=5)
    assert stopped.cpus == ()
    assert stopped.problem.startswith("cannot connect to QEMU's monitor")
    assert stopped.elapsed_ms < 1000


def test_a_wedged_qemu_is_given_up_on_within_the_bound(bare_qemu, scratch):
    proc, path = bare_qemu
    os.kill(proc.pid, signal.SIGSTOP)       # the socket still accepts; nothing answers
    try:
        stopped = read_stopped_cpus(path, 1, scratch / "Image", 48, timeout_s=1.0)
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    assert stopped.cpus == ()
    assert stopped.problem == "QEMU's monitor did not answer in time"
    assert 1000 <= stopped.elapsed_ms < 1000 + SLACK_S * 1000


def test_a_cpu_outside_the_image_is_read_and_said_so(bare_qemu, scratch):
    _, path = bare_qemu
    stopped = read_stopped_cpus(path, 1, scratch / "Image", 48, timeout_s=5)
    (cpu,) = stopped.cpus
    assert cpu.index == 0 and cpu.el in (1, 2, 3) and cpu.pc.image_offset is None
    assert stopped.problem == "QEMU's monitor did not list the Image among its ROMs"


def test_a_socket_path_too_long_is_not_used():
    assert socket_path(Path("/" + "d" * 100)) is None
    assert socket_path(Path("/tmp/x")) == Path("/tmp/x") / QMP_SOCKET
