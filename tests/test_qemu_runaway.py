"""A real kernel whose host dump never ends is stopped once its console
holds more frame lines than the deepest valid chain allows, its record is
capped like the lab's, and its reason says where the CPU was, read from
QEMU's monitor before the kill (symbol and file:line of the pc and of the
calls its frame records name).

The broken kernel is 6.12 with ``if (ret < 0)`` made ``if (ret > 0)`` in
unwind() of arch/arm64/kvm/stacktrace.c: the host's nVHE unwinder prints
the chain's last frame forever. It is built from a hard-linked copy of
the tree in the kernel cache (``test-trees/``), so its build survives
between sessions: cold, a whole kernel (minutes); warm, found without make.
"""

from __future__ import annotations

import re
import socket
import tempfile
import threading
import time
from pathlib import Path

import pytest

from real_kernels import linked_tree_copy

from pyharness.builder.kbuild import build_kernel
from pyharness.judge.verdict import Verdict
from pyharness.platform.kernel_places import RunawayMonitor, kernel_names, where_cpus_were
from pyharness.platform.qemu import BootOptions, boot
from pyharness.platform.qemu_monitor import QMP_SOCKET, CodeAddress, CpuState, StoppedCpus
from pyharness.platform.runaway import is_frame_line
from pyharness.reports.causes import cause_key
from pyharness.run import caps, kernel_faults
from pyharness.run.kernel_scenarios import kernel_scenario, resolve
from pyharness.run.qemu_runner import QemuRequest, frame_line_bound, kernel_files, run_qemu

LOOPING = "arch/arm64/kvm/stacktrace.c"
END_TEST = ("\t\tif (ret < 0)\n", "\t\tif (ret > 0)\n")
# "0xADDR (symbol+0xoff/0xsize) at FILE:LINE", the pc's and each call's.
# Init text (the boot's callers far down the chain) is not in kallsyms' view
# of System.map: its symbol is the raw address, as %pS prints it.
PLACE = re.compile(r"(0x[0-9a-f]+) \(([\w.]+)\+0x([0-9a-f]+)/0x[0-9a-f]+\) at (\S+):(\d+)"
                   r"|(0x[0-9a-f]+) \((0x[0-9a-f]+)\) at (\S+):(\d+)")
DUMP_LOOP = "kvm_nvhe_dump_backtrace"


@pytest.fixture(scope="module")
def looping_tree() -> Path:
    """A hard-linked copy of the 6.12 tree whose host dump loop never ends."""
    return linked_tree_copy("dump-loop", {LOOPING: END_TEST})


@pytest.fixture(scope="module")
def looping_kernel(looping_tree):
    return build_kernel("pkvm", str(looping_tree))


@pytest.fixture(scope="module")
def runaways(looping_tree, looping_kernel):
    """The runaway twice: without KASLR and with it (another pc)."""
    return [run_qemu(QemuRequest(config="pkvm", kernel_src=str(looping_tree),
                                 scenario="hyp_panic", mode="nvhe", kernel=looping_kernel,
                                 kaslr_seed=seed)) for seed in (0, 7)]


def test_a_real_dump_that_never_ends_is_stopped_and_capped(looping_kernel, runaways):
    record = runaways[0]
    most, _ = frame_line_bound(looping_kernel, 1)
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


def _places(reason: str) -> list[tuple[int, str, int, str, int]]:
    """(address, symbol, offset, file, line) of each place the reason names."""
    where = reason.split("; the CPU was at ", 1)[1].split("; the kernel's last line: ", 1)[0]
    places = [(int(a, 16), sym, int(off, 16), path, int(line))
              for a, sym, off, path, line, *_ in PLACE.findall(where) if a]
    named = [m for m in PLACE.finditer(where)]
    assert len(named) == 1 + where.count("called from "), where
    assert all(m.group(6) == m.group(7) for m in named if m.group(6)), where
    return places


def _system_map(path: Path) -> dict[str, set[int]]:
    """Each name's addresses (a static function's name may recur), read from
    System.map here, not through the harness's reader."""
    found: dict[str, set[int]] = {}
    for line in path.read_text().splitlines():
        address, _, name = line.split()
        found.setdefault(name, set()).add(int(address, 16))
    return found


def test_a_runaway_says_where_the_cpu_was(looping_tree, looping_kernel, runaways):
    symbols = _system_map(looping_kernel.system_map)
    for record in runaways:
        places = _places(record.reasons[0])
        names = [sym for _, sym, _, _, _ in places]
        assert DUMP_LOOP in names, record.reasons[0]
        # The pc is in the dump loop itself, or in the printk it called:
        # then the call just above the loop's frame is its _printk call.
        loop = names.index(DUMP_LOOP)
        assert loop == 0 or names[loop - 1] == "_printk", names
        # The loop's frame is the kvm_err() that prints each entry, in the
        # file the broken unwind() is in.
        _, _, _, path, line = places[loop]
        assert path == str(looping_tree / LOOPING)
        assert "kvm_err(" in Path(path).read_text().splitlines()[line - 1]
        (kaslr_base,) = symbols[DUMP_LOOP]
        kaslr = places[loop][0] - (kaslr_base + places[loop][2])
        for address, sym, offset, path, line in places:
            # Each symbol+offset is where System.map puts it, one KASLR offset
            # away from the address the CPU had; each file:line is in the tree.
            assert address - kaslr - offset in symbols[sym], (sym, record.reasons[0])
            assert path.startswith(f"{looping_tree}/") and Path(path).is_file(), path
            assert line <= len(Path(path).read_text(errors="replace").splitlines())
        assert (kaslr == 0) == (record.spec.kaslr_seed == 0), record.reasons[0]
        # The record keeps that offset, read from the stopped CPU (a runaway
        # never prints the panic's "Kernel Offset" line).
        assert record.kaslr_offset == kaslr
        assert not any("Kernel Offset" in line for line in record.console)


def test_runaways_stopped_at_other_pcs_are_one_cause(runaways):
    pcs = [_places(record.reasons[0])[0][0] for record in runaways]
    assert pcs[0] != pcs[1]
    assert cause_key(runaways[0]) == cause_key(runaways[1])


def test_each_cpu_of_a_two_cpu_runaway_is_read(looping_tree, looping_kernel):
    record = run_qemu(QemuRequest(config="pkvm", kernel_src=str(looping_tree),
                                  scenario="two_cpus", mode="nvhe", kernel=looping_kernel))
    assert record.run_status == "runaway"
    where = record.reasons[0].split("; the kernel's last line: ", 1)[0]
    assert "; CPU 0 was at " in where and "; CPU 1 was at " in where, where
    cpu0, cpu1 = where.split("; CPU 0 was at ", 1)[1].split("; CPU 1 was at ")
    # Each vCPU's own registers (one printing, the other waiting for the
    # console, or both in their dump): both in the dump loop's printk.
    assert cpu0 != cpu1
    assert f"({DUMP_LOOP}+0x" in cpu0 and f"({DUMP_LOOP}+0x" in cpu1, where


def test_a_read_cut_short_names_what_it_read(looping_tree, looping_kernel):
    smap, _ = kernel_files(looping_kernel)
    loop = smap.address(DUMP_LOOP)
    call = CodeAddress(loop + 0x20 + 4 + 0x200000, loop + 0x20 + 4 - smap.text)
    cpu = CpuState(index=0, el=1, pc=CodeAddress(0x1000, None), returns=(call,))
    said = where_cpus_were(StoppedCpus((cpu,), "QEMU's monitor did not answer in time", 3.0),
                           kernel_names(looping_kernel, smap))
    # The pc outside the Image is said so; the call is named by the
    # instruction before the return address, and the cut after it all.
    assert said.startswith("CPU 0 was at 0x1000 (not in the kernel's Image), called from "
                           f"{loop + 0x20 + 0x200000:#x} ({DUMP_LOOP}+0x20/0x"), said
    assert said.endswith("; then QEMU's monitor did not answer in time"), said
    path, line = said.rsplit(" at ", 1)[1].split(";")[0].split(":")
    assert path.startswith(f"{looping_tree}/") and int(line) > 0, said
    assert where_cpus_were(StoppedCpus((), "cannot connect", 1.0), kernel_names(
        looping_kernel, smap)) == "where the CPU was is unknown: cannot connect"


def test_x30_names_a_leaf_functions_caller_and_only_then(looping_kernel):
    smap, _ = kernel_files(looping_kernel)
    names = kernel_names(looping_kernel, smap)

    def at(symbol: str, offset: int) -> CodeAddress:
        address = smap.address(symbol) + offset
        return CodeAddress(address, address - smap.text)

    record = at("uart_console_write", 0x4c)        # the leaf's caller's own frame record

    def callers(lr: CodeAddress) -> list[str]:
        cpu = CpuState(0, 1, at("pl011_read", 0x1c), (record,), lr)
        said = where_cpus_were(StoppedCpus((cpu,), "", 1.0), names)
        return re.findall(r"called from 0x[0-9a-f]+ \((\w+)\+", said)

    # In a leaf, x30 returns into its caller, which made the record: named first.
    assert callers(at("pl011_console_putchar", 0x18)) == ["pl011_console_putchar",
                                                          "uart_console_write"]
    # x30 into the pc's own function (a call it made returned), or the record's
    # own return address: nothing more.
    assert callers(at("pl011_read", 0x10)) == ["uart_console_write"]
    assert callers(record) == ["uart_console_write"]


def _patched_image(kernel, directory: Path) -> Path:
    """The looping kernel's Image with the hyp_panic fault on CPU 0."""
    smap, image = kernel_files(kernel)
    scenario = resolve(kernel_scenario("hyp_panic"), "nvhe",
                       lambda name: smap.hyp(name) is not None)
    injection = kernel_faults.inject(scenario, smap, image, 0)
    path = directory / "Image"
    path.write_bytes(kernel_faults.apply(image, smap, injection))
    return path


class _MonitorHolder(threading.Thread):
    """Holds QEMU's one QMP connection from the boot's start, so the harness's
    own connection is never greeted: a monitor that does not answer."""

    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.greeted, self.done = path, False, threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + 20
        while not self.path.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as held:
            held.settimeout(5)
            held.connect(str(self.path))
            self.greeted = b'"QMP"' in held.recv(4096)
            self.done.wait(30)


def test_a_monitor_that_does_not_answer_still_ends_the_run(looping_kernel):
    smap, _ = kernel_files(looping_kernel)
    most, why = frame_line_bound(looping_kernel, 1)
    with tempfile.TemporaryDirectory(prefix="pyharness-test-") as scratch:
        holder = _MonitorHolder(Path(scratch) / QMP_SOCKET)
        holder.start()
        try:
            result = boot(BootOptions(
                image=_patched_image(looping_kernel, Path(scratch)), mode="nvhe",
                max_frame_lines=most, frame_bound_why=why,
                monitor=RunawayMonitor(Path(scratch), kernel_names(looping_kernel, smap),
                                       timeout_s=1.0)))
        finally:
            holder.done.set()
            holder.join()
    assert holder.greeted
    assert result.status == "runaway"
    assert result.runaway.endswith("; where the CPU was is unknown: QEMU's monitor did not "
                                   "answer in time"), result.runaway
    # The read waited out its bound, no more, and QEMU was killed after it.
    assert 1000 <= result.where_ms < 4000, result.where_ms    # slack: a loaded machine
    assert result.elapsed_ms < 20_000
