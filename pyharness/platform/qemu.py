"""A real kernel booted under QEMU (TCG) with EL2: the platform beside Unicorn.

``boot(options)`` starts ``qemu-system-aarch64`` on QEMU's ``virt`` board
with virtualization on (the kernel enters at EL2, so KVM runs its nVHE
hypervisor), no root filesystem and ``panic=-1 -no-reboot``: KVM
initialises in ``do_initcalls`` before the root mount, and any panic
makes QEMU exit by itself. The serial console is read until QEMU exits or
the run's wall budget runs out; then the whole process group is killed, so
no QEMU outlives its run, whatever happens to the harness.

Machine shape (measured, docs/real-kernel.md): ``-M virt,virtualization=on,
gic-version=3 -cpu max -smp N -m 1024``. Protected mode adds
``arm64_sw.hvhe=0 id_aa64mmfr1.vh=0`` so that 6.12+ run *nVHE* pKVM on a
CPU that has VHE, not hVHE. The KASLR seed goes into the device tree
(:mod:`pyharness.platform.fdt_seed`); seed 0 boots with ``nokaslr``.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import select
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pyharness.errors import HarnessError
from pyharness.files import write_atomically
from pyharness.platform import fdt_seed
from pyharness.platform.kernel_places import RunawayMonitor, kaslr_offset, where_cpus_were
from pyharness.platform.qemu_monitor import (StoppedCpus, monitor_args, read_stopped_cpus,
                                             socket_path)
from pyharness.platform.runaway import FRAME_MARK, is_frame_line

QEMU = "qemu-system-aarch64"
QEMU_PACKAGE = "qemu-system-arm"
MEMORY_MB = 1024
MACHINE = "virt,virtualization=on,gic-version=3"
PROTECTED_NVHE_ARGS = ("arm64_sw.hvhe=0", "id_aa64mmfr1.vh=0")
# The printk ring buffer a boot asks for (log_buf_len=): the least, and the
# bytes allowed per frame line the boot may print. Two CPUs dumping at once
# outrun the serial console, and a ring the writers lap loses lines ("** N
# printk messages dropped **": 1714 of them with 64K pages and the stock 128
# KiB ring). A line is about 90 bytes of text and a record's header, and
# the ring keeps one descriptor per 32 bytes of it on top.
LOG_BUF_MIN = 1 << 20
LOG_BUF_PER_FRAME_LINE = 256
_READ_CHUNK = 1 << 16
_FRAME_MARK = FRAME_MARK.encode()


class QemuError(HarnessError):
    """QEMU is missing or cannot start (bad input or environment: exit 2)."""


@dataclass(frozen=True)
class BootOptions:
    """One boot of a kernel Image."""

    image: Path
    mode: str                      # "nvhe" or "protected" (kvm-arm.mode)
    cpus: int = 1
    kaslr_seed: int = 0            # 0: nokaslr
    wall_budget_s: float = 30.0
    # End the boot as "silent" once ``silent_after`` has been printed and
    # nothing more came for ``silence_s``: a kernel known to hang there
    # (the hyp's livelock) need not wait out its whole budget.
    silent_after: str | None = None
    silence_s: float = 3.0
    dtb_dir: Path | None = None    # where the seeded device trees are kept
    # End the boot as "runaway" once the console holds more frame lines
    # (FRAME_MARK) than this (None: no bound); ``frame_bound_why`` says
    # where the bound comes from, for the reason.
    max_frame_lines: int | None = None
    frame_bound_why: str = ""
    # Before a runaway is killed, its CPUs are stopped and read through QEMU's
    # monitor (a QMP socket in ``monitor.scratch``), and the reason says where
    # each was (platform/qemu_monitor.py, platform/kernel_places.py).
    monitor: RunawayMonitor | None = None
    extra_args: tuple[str, ...] = ()


@dataclass
class BootResult:
    """What one boot printed and how it ended."""

    console: list[str]
    # "exited"; "timeout" (the wall budget ran out: the harness killed it);
    # "silent" (nothing for silence_s after silent_after: killed);
    # "killed" (a signal from elsewhere ended it); "error" (it failed before
    # printing anything: bad options, no KVM-capable machine...); "runaway"
    # (more frame lines than max_frame_lines: killed, ``runaway`` says so)
    status: str
    exit_code: int | None
    elapsed_ms: float
    command: list[str] = field(default_factory=list)
    stderr: str = ""
    runaway: str = ""
    # How long reading where a runaway's CPUs were took (the monitor, then
    # addr2line), inside elapsed_ms; 0 when not read.
    where_ms: float = 0.0
    # A runaway's KASLR offset, read from its stopped CPUs (None: not read)
    kaslr_offset: int | None = None

    @property
    def timed_out(self) -> bool:
        return self.status == "timeout"


def qemu_binary() -> str:
    path = shutil.which(QEMU)
    if path is None:
        raise QemuError(f"`{QEMU}` is not on PATH; install it with `apt-get install "
                        f"{QEMU_PACKAGE}` (scripts/setup.sh --tests does)")
    return path


def kernel_command_line(options: BootOptions) -> str:
    args = ["console=ttyAMA0", "panic=-1", f"kvm-arm.mode={options.mode}"]
    if options.mode == "protected":
        args += PROTECTED_NVHE_ARGS
    if options.kaslr_seed == 0:
        args.append("nokaslr")
    args.append(f"log_buf_len={log_buffer_bytes(options.max_frame_lines)}")
    return " ".join([*args, *options.extra_args])


def log_buffer_bytes(max_frame_lines: int | None) -> int:
    """A printk ring that holds every frame line a valid boot may print
    (``max_frame_lines``, for all its CPUs) with the boot's other lines, so
    that none is dropped while the console catches up: a power of two (the
    kernel rounds down to one), LOG_BUF_MIN at least."""
    wanted = max(LOG_BUF_MIN, (max_frame_lines or 0) * LOG_BUF_PER_FRAME_LINE)
    return 1 << (wanted - 1).bit_length()


def _machine_args(qemu: str, options: BootOptions) -> list[str]:
    return [qemu, "-M", MACHINE, "-cpu", "max", "-smp", str(options.cpus),
            "-m", str(MEMORY_MB), "-display", "none", "-monitor", "none",
            "-serial", "stdio", "-no-reboot", "-kernel", str(options.image)]


def _seeded_dtb(qemu: str, options: BootOptions, cmdline: str) -> Path:
    """QEMU's own device tree for this machine shape with the run's seed,
    dumped once per shape and kept under ``dtb_dir``."""
    directory = options.dtb_dir or options.image.parent
    shape = hashlib.sha256("\0".join([qemu, MACHINE, str(options.cpus), str(MEMORY_MB),
                                      cmdline]).encode()).hexdigest()[:16]
    target = directory / f"virt-{shape}-{fdt_seed.device_tree_seed(options.kaslr_seed):016x}.dtb"
    if target.is_file():
        return target
    dumped = directory / f".virt-{shape}.{os.getpid()}.dtb"
    argv = _machine_args(qemu, options) + ["-append", cmdline,
                                           "-machine", f"dumpdtb={dumped}"]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
        if proc.returncode != 0 or not dumped.is_file():
            raise QemuError(f"QEMU could not dump its device tree (exit {proc.returncode}): "
                            f"{proc.stderr.strip()[-300:]}")
        blob = fdt_seed.seeded(fdt_seed.compacted(dumped.read_bytes()), options.kaslr_seed)
    except subprocess.TimeoutExpired:
        raise QemuError("QEMU took over 30 s to dump its device tree") from None
    finally:
        dumped.unlink(missing_ok=True)
    write_atomically(target, blob)
    return target


def boot_command(options: BootOptions) -> list[str]:
    """The QEMU command line of a boot (the device tree made if needed)."""
    qemu = qemu_binary()
    cmdline = kernel_command_line(options)
    argv = _machine_args(qemu, options) + ["-append", cmdline]
    if options.kaslr_seed:
        argv += ["-dtb", str(_seeded_dtb(qemu, options, cmdline))]
    socket = _monitor_socket(options)
    if socket is not None:
        argv += monitor_args(socket)
    return argv


def _monitor_socket(options: BootOptions) -> Path | None:
    if options.monitor is None or options.max_frame_lines is None:
        return None
    return socket_path(options.monitor.scratch)


PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child, before exec: SIGKILL when the harness process that
    started it dies (a matrix worker killed as hung), since QEMU runs in a
    process group of its own that no group kill of the worker reaches."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def boot(options: BootOptions) -> BootResult:
    """Boot once and return the console; never leaves a QEMU behind."""
    argv = boot_command(options)
    started = time.monotonic()
    deadline = started + options.wall_budget_s
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                preexec_fn=_die_with_parent)
    except OSError as err:
        raise QemuError(f"cannot start {argv[0]}: {err.strerror}") from None
    chunks: list[bytes] = []
    errors: list[bytes] = []
    status = "exited"
    stopped: StoppedCpus | None = None
    try:
        status = _read_until_exit(proc, deadline, chunks, errors, options)
        if status == "runaway":
            stopped = _stopped_cpus(options)
    finally:
        if proc.poll() is None:
            _kill_group(proc)
    where, where_ms = _where(stopped, options)
    elapsed = (time.monotonic() - started) * 1000
    text = b"".join(chunks).decode("utf-8", errors="replace")
    console = [line.rstrip("\r") for line in text.split("\n")]
    if console and console[-1] == "":
        console.pop()
    stderr = b"".join(errors).decode("utf-8", errors="replace")
    code = proc.returncode if status == "exited" else None
    if status == "exited" and code is not None and code < 0:
        status = "killed"
    elif status == "exited" and code not in (0, None) and not console:
        status = "error"
    runaway = ""
    if status == "runaway":
        frames = sum(1 for line in console if is_frame_line(line))
        runaway = (f"the console holds {frames} frame lines, more than the "
                   f"{options.max_frame_lines} a valid dump can print ({options.frame_bound_why})"
                   + (f"; {where}" if where else ""))
    offset = (kaslr_offset(stopped, options.monitor.names.system_map)
              if stopped is not None and options.monitor is not None else None)
    return BootResult(console=console, status=status, exit_code=code, elapsed_ms=elapsed,
                      command=argv, stderr=stderr, runaway=runaway, where_ms=where_ms,
                      kaslr_offset=offset)


def _stopped_cpus(options: BootOptions) -> StoppedCpus | None:
    """The runaway's CPUs, stopped and read through QEMU's monitor before it
    is killed (None without a monitor)."""
    if options.monitor is None:
        return None
    socket = _monitor_socket(options)
    if socket is None:
        return StoppedCpus((), f"the monitor's socket path in {options.monitor.scratch} "
                               "is too long for a unix socket", 0.0)
    return read_stopped_cpus(socket, options.cpus, options.image,
                             options.monitor.names.va_bits, options.monitor.timeout_s)


def _where(stopped: StoppedCpus | None, options: BootOptions) -> tuple[str, float]:
    """Where the CPUs were, in words, and how long the read and the naming took."""
    if stopped is None or options.monitor is None:
        return "", 0.0
    named = time.monotonic()
    where = where_cpus_were(stopped, options.monitor.names)
    return where, stopped.elapsed_ms + (time.monotonic() - named) * 1000


class _FrameCounter:
    """Frame lines in a stream read in chunks (a mark may straddle two)."""

    def __init__(self) -> None:
        self.count = 0
        self._tail = b""

    def passes(self, data: bytes, bound: int | None) -> bool:
        """Count ``data``'s marks; True once there are more than ``bound``."""
        if bound is None:
            return False
        joined = self._tail + data
        self.count += joined.count(_FRAME_MARK)
        self._tail = data[-(len(_FRAME_MARK) - 1):]
        return self.count > bound


def _read_until_exit(proc: subprocess.Popen[bytes], deadline: float, chunks: list[bytes],
                     errors: list[bytes], options: BootOptions) -> str:
    assert proc.stdout is not None and proc.stderr is not None
    streams = {proc.stdout.fileno(): chunks, proc.stderr.fileno(): errors}
    marker = options.silent_after.encode() if options.silent_after else None
    seen_marker_at: int | None = None          # chunks up to this one were searched
    last_output = time.monotonic()
    frames = _FrameCounter()
    while streams:
        now = time.monotonic()
        left = deadline - now
        if left <= 0:
            return "timeout"
        if seen_marker_at is not None and now - last_output >= options.silence_s:
            return "silent"
        ready, _, _ = select.select(list(streams), [], [], min(left, 0.25))
        for fd in ready:
            data = os.read(fd, _READ_CHUNK)
            if data:
                streams[fd].append(data)
                last_output = time.monotonic()
                if streams[fd] is chunks and frames.passes(data, options.max_frame_lines):
                    return "runaway"
            else:
                del streams[fd]
        if marker is not None and seen_marker_at is None and marker in b"".join(chunks):
            seen_marker_at = len(chunks)
    left = max(0.0, deadline - time.monotonic())
    try:
        proc.wait(timeout=left)
    except subprocess.TimeoutExpired:
        return "timeout"
    return "exited"
