"""Where a real kernel's CPUs were, read through QEMU's monitor before the
harness kills a boot (a runaway: platform/qemu.py).

QEMU listens for QMP on a unix socket in the boot's scratch directory
(``-qmp unix:PATH,server=on,wait=off``: nothing waits for a client, the
boot runs as without it). To read the CPUs the harness connects, sends
``qmp_capabilities`` and ``stop`` (every vCPU paused, so the registers are
one moment's), then HMP commands through ``human-monitor-command``, each
for one vCPU (``cpu-index``):

- ``info registers``: ``PC=``, ``X29=`` (the frame record), ``X30=`` (the
  caller of a leaf function, which makes no frame record), ``PSTATE=...
  EL1h`` (whose address space: an EL1 kernel's upper half, or the nVHE
  hypervisor's lower half at EL2);
- ``gva2gpa ADDR``: the physical address of a pc or return address, in
  that CPU's current translation regime. ``info roms`` says where QEMU
  loaded the Image, so ``PA - load address`` is the address's offset in
  the Image and ``_text + offset`` its link-time address in vmlinux: no
  KASLR offset or hyp VA offset needs to be known (the ``Kernel Offset``
  line is printed only by a panic a runaway never reaches);
- ``x /2gx FP``: a frame record (the caller's fp and the return address),
  followed up to :data:`CALLERS_SHOWN` callers, as the lab's reason does
  (more than the lab's 8: a real kernel's printk is deeper).

QEMU 7.2 answers each in well under a millisecond. Every wait is bounded
by one deadline (``timeout_s``): a monitor that does not answer (QEMU
wedged, the socket missing, a reply that does not parse) gives a
:class:`StoppedCpus` with ``problem`` saying why and whatever was read
before, and the boot is killed as it would have been.
"""

from __future__ import annotations

import json
import re
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from pyharness.elf.layout import strip_pac

QMP_SOCKET = "qmp.sock"
MONITOR_TIMEOUT_S = 2.0
# Frame records followed from a stopped CPU. The lab names 8 callers; a real
# kernel's printk alone is up to 12 calls deep (kallsyms under vsnprintf
# under vprintk_emit, measured on 6.12), and the code that called printk is
# what a runaway's reason must reach.
CALLERS_SHOWN = 16
# sun_path holds 108 bytes with its terminating NUL.
_SOCKET_PATH_MAX = 107
_REGISTER = re.compile(r"\b(PC|X29|X30)=([0-9a-fA-F]{16})\b")
_EL = re.compile(r"\bPSTATE=[0-9a-fA-F]+ .*?\bEL([0-3])[th]\b")
_GPA = re.compile(r"^gpa: (0x[0-9a-fA-F]+)\s*$")
_WORDS = re.compile(r"^[0-9a-fA-F]+: (0x[0-9a-fA-F]+) (0x[0-9a-fA-F]+)\s*$")
_ROM = re.compile(r'^addr=([0-9a-fA-F]+) size=(0x[0-9a-fA-F]+) mem=ram name="(.*)"\s*$')


class MonitorError(Exception):
    """The monitor did not answer in time, or not as expected."""


@dataclass(frozen=True)
class CodeAddress:
    """An address a CPU held, and its offset in the Image (None: not in the
    Image, or not mapped); ``_text`` plus the offset is its vmlinux address."""

    runtime: int
    image_offset: int | None


@dataclass(frozen=True)
class CpuState:
    """One vCPU, stopped: its pc and the return addresses of its frame
    records, newest first."""

    index: int
    el: int
    pc: CodeAddress
    returns: tuple[CodeAddress, ...]
    # x30, PAC stripped: the return address of a leaf function's (or one in
    # its prologue's) caller, or a stale one (kernel_places.py tells which).
    link_register: CodeAddress | None = None


@dataclass(frozen=True)
class StoppedCpus:
    """What the monitor told of the CPUs; ``problem`` says what it did not."""

    cpus: tuple[CpuState, ...]
    problem: str
    elapsed_ms: float


def socket_path(directory: Path) -> Path | None:
    """The QMP socket of a boot whose scratch directory is ``directory``
    (None when the path is too long for a unix socket)."""
    path = directory / QMP_SOCKET
    return path if len(str(path).encode()) <= _SOCKET_PATH_MAX else None


def monitor_args(path: Path) -> list[str]:
    """QEMU's arguments for a QMP socket nothing waits on."""
    return ["-qmp", f"unix:{path},server=on,wait=off"]


class _Qmp:
    """One QMP connection, every read and write within ``deadline``."""

    def __init__(self, path: Path, deadline: float) -> None:
        self._deadline = deadline
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._buffer = b""
        try:
            self._sock.settimeout(self._left())
            self._sock.connect(str(path))
        except OSError as err:
            self.close()
            raise MonitorError(f"cannot connect to QEMU's monitor ({err.strerror or err})") \
                from None
        greeting = self._message()
        if "QMP" not in greeting:
            raise MonitorError("QEMU's monitor did not greet as QMP")
        self.execute("qmp_capabilities")

    def _left(self) -> float:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise MonitorError("QEMU's monitor did not answer in time")
        return left

    def _message(self) -> dict[str, object]:
        while b"\n" not in self._buffer:
            try:
                self._sock.settimeout(self._left())
                data = self._sock.recv(1 << 16)
            except socket.timeout:
                raise MonitorError("QEMU's monitor did not answer in time") from None
            except OSError as err:
                raise MonitorError(f"QEMU's monitor failed ({err.strerror or err})") from None
            if not data:
                raise MonitorError("QEMU's monitor closed its socket")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        try:
            message = json.loads(line)
        except ValueError:
            raise MonitorError("QEMU's monitor sent what is not JSON") from None
        if not isinstance(message, dict):
            raise MonitorError("QEMU's monitor sent what is not a QMP message")
        return message

    def execute(self, command: str, **arguments: object) -> object:
        """A command's ``return`` (events before it are skipped)."""
        request = {"execute": command, **({"arguments": arguments} if arguments else {})}
        try:
            self._sock.settimeout(self._left())
            self._sock.sendall(json.dumps(request).encode() + b"\n")
        except (socket.timeout, OSError):
            raise MonitorError("QEMU's monitor did not take a command") from None
        while True:
            message = self._message()
            if "error" in message:
                raise MonitorError(f"QEMU's monitor refused {command}: {message['error']}")
            if "return" in message:
                return message["return"]

    def hmp(self, command: str, cpu: int) -> str:
        answer = self.execute("human-monitor-command", **{"command-line": command,
                                                           "cpu-index": cpu})
        return answer if isinstance(answer, str) else ""

    def close(self) -> None:
        self._sock.close()


def read_stopped_cpus(path: Path, cpus: int, image: Path, va_bits: int,
                      timeout_s: float = MONITOR_TIMEOUT_S) -> StoppedCpus:
    """Stop every vCPU of the QEMU listening on ``path`` and read where each
    was; never waits past ``timeout_s`` in all."""
    started = time.monotonic()
    found: list[CpuState] = []
    problem = ""
    loaded: tuple[int, int] | None = None
    try:
        qmp = _Qmp(path, started + timeout_s)
        try:
            qmp.execute("stop")
            loaded = _image_place(qmp.hmp("info roms", 0), image)
            for index in range(cpus):
                found.append(_read_cpu(qmp, index, loaded, va_bits))
        finally:
            qmp.close()
    except MonitorError as err:
        problem = str(err)
    if not problem and loaded is None:
        problem = "QEMU's monitor did not list the Image among its ROMs"
    return StoppedCpus(tuple(found), problem, (time.monotonic() - started) * 1000)


def _image_place(roms: str, image: Path) -> tuple[int, int] | None:
    """Where QEMU loaded ``image`` (address, size), from ``info roms``."""
    for line in roms.splitlines():
        match = _ROM.match(line.strip())
        if match and match.group(3) == str(image):
            return int(match.group(1), 16), int(match.group(2), 16)
    return None


def _read_cpu(qmp: _Qmp, index: int, loaded: tuple[int, int] | None,
              va_bits: int) -> CpuState:
    text = qmp.hmp("info registers", index)
    registers = {name: int(value, 16) for name, value in _REGISTER.findall(text)}
    el_match = _EL.search(text)
    if "PC" not in registers or el_match is None:
        raise MonitorError(f"QEMU's monitor printed no PC and PSTATE for CPU {index}")
    el = int(el_match.group(1))

    def placed(address: int) -> CodeAddress:
        return CodeAddress(address, _image_offset(qmp, index, address, loaded))

    returns: list[CodeAddress] = []
    fp, seen = registers.get("X29", 0), set()
    while fp and fp not in seen and len(returns) < CALLERS_SHOWN:
        seen.add(fp)
        words = _WORDS.match(qmp.hmp(f"x /2gx {fp:#x}", index).strip())
        if words is None:
            break               # off the CPU's map: the walk ends there
        fp, lr = int(words.group(1), 16), int(words.group(2), 16)
        if not lr:
            break
        # A pac-ret caller signed its return address: the code's is below the PAC.
        returns.append(placed(strip_pac(lr, va_bits, upper=el == 1)))
    x30 = registers.get("X30", 0)
    link_register = placed(strip_pac(x30, va_bits, upper=el == 1)) if x30 else None
    return CpuState(index, el, placed(registers["PC"]), tuple(returns), link_register)


def _image_offset(qmp: _Qmp, index: int, address: int,
                  loaded: tuple[int, int] | None) -> int | None:
    """``address``'s offset in the Image (its PA less the load address), or
    None when it is not mapped or not in the Image."""
    if loaded is None:
        return None
    match = _GPA.match(qmp.hmp(f"gva2gpa {address:#x}", index).strip())
    if match is None:
        return None
    offset = int(match.group(1), 16) - loaded[0]
    return offset if 0 <= offset < loaded[1] else None
