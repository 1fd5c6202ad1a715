"""The platform's MMIO page (docs/platform.md, "Platform MMIO page"): the
console (a byte per write, or a whole line of a buffer the host named),
the exit register, the counter and the scenario register. The console is
bounded (platform/runaway.py): the write that passes a bound is the last
it keeps, and the host is told (``console_runaway``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Protocol

from unicorn import Uc

from pyharness.errors import HarnessError
from pyharness.platform.results import RunStatus
from pyharness.platform.runaway import ChainMemory, ConsoleBounds, chain_bound, is_frame_line

if TYPE_CHECKING:
    from pyharness.platform.native_mmio import NativeConsole, NativeMmio

# MMIO page register offsets (docs/platform.md, "Platform MMIO page").
MMIO_CONSOLE = 0x00
MMIO_EXIT = 0x08
MMIO_COUNTER = 0x10
MMIO_SCENARIO = 0x18
MMIO_CONSOLE_BUFFER = 0x20   # write u64: EL1 VA of the host's console line buffer
MMIO_CONSOLE_LINE = 0x28     # write u32 N: the buffer's first N bytes are a line
CONSOLE_LINE_MAX = 1024

COUNTER_STEP_NS = 1000  # the counter reads 1000, 2000, ... : 1 us per read


class MmioHost(Protocol):
    """What the devices need from the machine they sit in."""

    @property
    def finished(self) -> bool: ...

    def finish(self, status: RunStatus, reason: str, *, exit_code: int | None = None) -> None: ...

    def complete_exit(self, high_bits: int) -> None: ...

    def ram_span(self, va: int, size: int, el: int) -> tuple[int, int]: ...

    def read_ram(self, pa: int, size: int) -> bytes: ...

    def pc_text(self) -> str: ...

    def console_runaway(self) -> None: ...


@dataclass
class Console:
    """The console in Python (the native one: native_mmio.NativeConsole),
    with the same bounds: past one it keeps nothing more."""

    lines: list[str] = field(default_factory=list)
    partial: bytearray = field(default_factory=bytearray)
    bounds: ConsoleBounds | None = None
    # The bound from memory (runaway.chain_bound), worked out again by
    # ``recount`` whenever the frame lines pass it; 0: none yet.
    recount: Callable[[], int] | None = None
    chain_bound: int = 0
    frame_lines: int = 0
    size: int = 0               # bytes of the whole lines
    over_limit: bool = False

    def put(self, byte: int) -> None:
        if self.over_limit:
            return
        if byte == 0x0A:
            self.add_line(bytes(self.partial))
            self.partial.clear()
        elif byte != 0x0D:
            self.partial.append(byte)

    def add_line(self, text: bytes) -> None:
        if self.over_limit:
            return
        self.lines.append(text.decode("utf-8", "backslashreplace"))
        self.size += len(text)
        self.frame_lines += is_frame_line(text)

    def passed_bounds(self) -> bool:
        """True once, when the console first holds more than a bound allows."""
        bounds = self.bounds
        if bounds is None or self.over_limit:
            return False
        if self.recount is not None and self.frame_lines > self.chain_bound:
            self.chain_bound = self.recount()
            self.over_limit = 0 < self.chain_bound < self.frame_lines
        self.over_limit = self.over_limit or (
            len(self.lines) > bounds.lines or self.frame_lines > bounds.frames
            or self.size + len(self.partial) > bounds.bytes)
        return self.over_limit

    def text(self) -> list[str]:
        if self.partial:
            return [*self.lines, self.partial.decode("utf-8", "backslashreplace")]
        return list(self.lines)


class MmioDevices:
    """The registers of the MMIO page, for Unicorn's mmio_map callbacks.
    With ``fast`` (the native hooks' registers, native_mmio), the counter,
    the scenario register and the console are served in C and only the
    other accesses come here: the console is then the C side's."""

    def __init__(self, host: MmioHost, scenario_id: int, fast: NativeMmio | None = None,
                 bounds: ConsoleBounds | None = None, chain: ChainMemory | None = None) -> None:
        self._host = host
        self._scenario_id = scenario_id
        self._fast = fast
        self._console = Console(bounds=bounds) if fast is None else None
        self.console: Console | NativeConsole = self._console or fast.console
        if self._console is not None and chain is not None:
            self._console.recount = lambda: chain_bound(chain, host.read_ram)
        if fast is not None:
            fast.start(scenario_id, COUNTER_STEP_NS)
            if bounds is not None:
                fast.set_console_bounds(bounds.lines, bounds.frames, bounds.bytes)
            if chain is not None:
                fast.set_chain_memory(list(chain.stacks), chain.buffer_pa,
                                      chain.buffer_entries)
        self._counter_reads = 0
        self._read_latch: dict[int, int] = {}
        self._exit_high_pending = False
        self._buffer_latch = 0
        self._line_buffer: tuple[int, int] | None = None   # (PA, size)

    def on_read(self, uc: Uc, offset: int, size: int, _data: object) -> int:
        if self._host.finished:
            return 0
        reg, half = offset & ~7, offset & 7
        if half == 0 and reg in (MMIO_COUNTER, MMIO_SCENARIO):
            if reg == MMIO_COUNTER:
                self._counter_reads += 1
                value = self._counter_reads * COUNTER_STEP_NS
            else:
                value = self._scenario_id
            self._read_latch[reg] = value
            return value & ((1 << 8 * size) - 1)
        if half == 4 and size == 4 and reg in self._read_latch:
            return self._read_latch[reg] >> 32
        self._host.finish(RunStatus.ERROR, f"read of {size} bytes at MMIO offset {offset:#x}, "
                                      "which is not a readable register, at pc "
                                      f"{self._host.pc_text()}")
        return 0

    def on_write(self, uc: Uc, offset: int, size: int, value: int,
                       _data: object) -> None:
        reg, half = offset & ~7, offset & 7
        if reg == MMIO_EXIT and half == 4 and size == 4 and self._exit_high_pending:
            self._host.complete_exit(value << 32)
            self._exit_high_pending = False
            return
        if self._host.finished:
            return
        if reg == MMIO_CONSOLE and half in (0, 4):
            if half == 0:
                self.console.put(value & 0xFF)
                self._check_bounds()
        elif reg == MMIO_CONSOLE_LINE and half == 0 and size == 4:
            self._console_line(value)
            self._check_bounds()
        elif reg == MMIO_CONSOLE_BUFFER and half == 0:
            if size == 8:
                self._console_buffer(value)
            else:
                self._buffer_latch = value
        elif reg == MMIO_CONSOLE_BUFFER and half == 4 and size == 4:
            self._console_buffer(self._buffer_latch | value << 32)
        elif reg == MMIO_EXIT and half == 0:
            self._host.finish(RunStatus.EXITED, f"exited with status {value}", exit_code=value)
            self._exit_high_pending = size == 4
        else:
            self._host.finish(RunStatus.ERROR, f"write of {size} bytes at MMIO offset {offset:#x}, "
                                          "which is not a writable register, at pc "
                                          f"{self._host.pc_text()}")

    @property
    def chain_bound(self) -> int:
        """The console's bound from memory, as last worked out (0: none)."""
        return self._console.chain_bound if self._console is not None else \
            self._fast.chain_bound if self._fast is not None else 0

    def _check_bounds(self) -> None:
        """The Python console past a bound: the run stops (the native one
        stops the emulation itself, and the machine sees why)."""
        if self._console is not None and self._console.passed_bounds():
            self._host.console_runaway()

    def _console_buffer(self, va: int) -> None:
        """The host names its line buffer: translated once, here (the
        first CONSOLE_LINE_MAX bytes, or up to the end of its region)."""
        try:
            self._line_buffer = pa, size = self._host.ram_span(va, CONSOLE_LINE_MAX, 1)
        except HarnessError as err:
            self._host.finish(RunStatus.ERROR, f"console buffer at {va:#x} is not RAM at EL1 "
                                               f"({err})")
            return
        if self._fast is not None and not self._fast.set_line_buffer(pa, size):
            self._host.finish(RunStatus.ERROR, f"console buffer at {va:#x} (PA {pa:#x}) is "
                                               "not in RAM")

    def _console_line(self, length: int) -> None:
        """One whole console line: the first ``length`` bytes of the buffer,
        one MMIO exit per line rather than one per character."""
        if self._line_buffer is None or length > self._line_buffer[1]:
            where = ("no console buffer was named (offset 0x20)" if self._line_buffer is None
                     else f"the console buffer holds {self._line_buffer[1]}")
            self._host.finish(RunStatus.ERROR, f"console line of {length} bytes, but {where}, "
                                               f"at pc {self._host.pc_text()}")
            return
        self.console.add_line(self._host.read_ram(self._line_buffer[0], length))
