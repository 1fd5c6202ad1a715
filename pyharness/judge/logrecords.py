"""The records a kernel log's hyp panic is parsed into (:mod:`pyharness.judge.tracelog`
makes them; the checker and the decoder read them)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Iterator, Literal

TraceKind = Literal["protected", "non-protected", "mainline", "rfc"]
PanicKind = Literal["panic", "bug-file", "bug-addr", "invalid", "cfi"]

#: The header and footer lines of each trace wording (prefixes removed):
#: the v5 series' two, mainline's, and the RFC's (before v1).
TRACE_HEADERS: dict[TraceKind, str] = {
    "protected": "Protected nVHE HYP call trace:",
    "non-protected": "Non-protected nVHE HYP call trace:",
    "mainline": "nVHE call trace:",
    "rfc": "nVHE HYP call trace:",
}
TRACE_FOOTERS: dict[TraceKind, str] = {
    "protected": "---- End of Protected nVHE HYP call trace ----",
    "non-protected": "---- End of Non-protected nVHE HYP call trace ----",
    "mainline": "---[ end nVHE call trace ]---",
    "rfc": "---- end of nVHE HYP call trace ----",
}
#: Other spellings the RFC's revisions printed, and what they are.
OTHER_TRACE_HEADERS: dict[str, TraceKind] = {
    "nVHE HYP call trace (vmlinux addresses):": "rfc"}
OTHER_TRACE_FOOTERS: dict[str, TraceKind] = {
    "---- End of nVHE HYP call trace ----": "rfc"}


@dataclass(frozen=True)
class LogLine:
    """One line of the log, with and without its prefixes."""

    number: int        # 1-based, as `grep -n` and editors count
    raw: str           # as in the log, without the line terminator
    text: str          # quoting, timestamps, caller ids, `kvm [PID]: ` removed
    quote_depth: int   # how many mail-quoting levels were removed
    caller: str | None = None     # the printk caller id (``T1``, ``C0``), if any
    kvm_pid: int | None = None    # the PID of a ``kvm [PID]: `` prefix, if any
    forms: tuple[str, ...] = ()   # what was removed or mended (see logprefix.FORMS)


@dataclass(frozen=True)
class Frame:
    """One printed frame: `` [<ADDR>] SYM+0xOFF/0xSIZE`` (or a bare address).

    Host call-trace frames may carry no address; hyp frames always do.
    ``symbol``/``offset``/``size`` are None when the kernel printed no
    symbol (`` [<ffff...>] 0xffff...``).
    """

    address: int | None
    symbol: str | None
    offset: int | None
    size: int | None
    raw: str
    line_number: int
    module: str | None = None   # `` [kvm]`` after the symbol, if any
    note: str | None = None     # what a human wrote after the frame (pasted logs only)

    @functools.cached_property
    def symbolic(self) -> str:
        """The printed location: ``sym+0xoff/0xsize`` or ``0xaddr``."""
        if self.symbol is None:
            return f"{self.address:#x}" if self.address is not None else "?"
        text = f"{self.symbol}+{self.offset:#x}/{self.size:#x}"
        return f"{text} [{self.module}]" if self.module else text


@dataclass(frozen=True)
class Elision:
    """A ``. . .`` / ``...`` line inside a trace: frames left out by a human."""

    line_number: int
    raw: str
    after_frames: int   # how many frames of the trace come before it


@dataclass(frozen=True)
class HypPanic:
    """The line saying why the hypervisor panicked."""

    kind: PanicKind
    raw: str
    line_number: int
    location: Frame | None = None   # "panic" and "bug-addr": address and symbol
    file: str | None = None         # "bug-file"
    file_line: int | None = None    # "bug-file"

    @property
    def address(self) -> int | None:
        return self.location.address if self.location else None

    @property
    def symbol(self) -> str | None:
        return self.location.symbol if self.location else None


@dataclass(frozen=True)
class CannotDump:
    """``Cannot dump pKVM nVHE stacktrace: !CONFIG_PROTECTED_NVHE_STACKTRACE``."""

    raw: str
    line_number: int
    reason: str


@dataclass(frozen=True)
class HypTrace:
    """One hyp call trace, header to footer (or to where the log stops)."""

    kind: TraceKind
    header: str                       # the header line as in the log
    line_number: int                  # of the header
    frames: tuple[Frame, ...]
    elisions: tuple[Elision, ...] = ()
    strays: tuple[LogLine, ...] = ()  # unknown lines between its frames
    footer_line: int | None = None
    footer_raw: str | None = None
    footer_kind: TraceKind | None = None   # the wording the footer belongs to
    hyp_offset: int | None = None     # from a `Hyp Offset: 0x...` line of the same panic
    panic: HypPanic | None = None     # the panic line before it, if any
    quote_depth: int = 0
    stream: str | None = None         # whose printk (pasted logs): ``T1``, ``kvm [0]``
    forms: tuple[str, ...] = ()       # how its lines were written (prefixes, mending)

    @property
    def footer(self) -> bool:
        """Whether the trace's footer line was seen (False: cut off)."""
        return self.footer_line is not None

    @property
    def last_line(self) -> int:
        numbers = [self.line_number, self.footer_line or 0]
        numbers += [f.line_number for f in self.frames]
        numbers += [e.line_number for e in self.elisions]
        return max(numbers)


@dataclass(frozen=True)
class HostPanic:
    """The host kernel's own panic: message, registers, call trace."""

    message: str                                   # after "not syncing: "
    raw: str
    line_number: int
    registers: tuple[tuple[str, int], ...] = ()    # PS, PC, ESR, FAR, ... in order
    cpu: int | None = None
    pid: int | None = None
    comm: str | None = None
    call_trace_line: int | None = None             # of `Call trace:`
    frames: tuple[Frame, ...] = ()
    kernel_offset: int | None = None               # `Kernel Offset: 0x...`
    end_line: int | None = None                    # of `---[ end Kernel panic ...`

    @property
    def footer(self) -> bool:
        return self.end_line is not None

    def register(self, name: str) -> int | None:
        """A register from the panic message (``"PC"``, ``"ESR"``...), or None."""
        return next((value for key, value in self.registers if key == name), None)


@dataclass(frozen=True)
class ParsedPanic:
    """Everything printed for one hyp panic, in the kernel's order."""

    panic: HypPanic | None = None
    trace: HypTrace | None = None
    cannot_dump: CannotDump | None = None
    hyp_offset: int | None = None
    host: HostPanic | None = None
    quote_depth: int = 0
    stream: str | None = None         # whose printk (pasted logs), as HypTrace.stream

    @property
    def first_line(self) -> int:
        return min(self._line_numbers())

    @property
    def last_line(self) -> int:
        return max(self._line_numbers())

    def _line_numbers(self) -> list[int]:
        numbers = []
        if self.panic:
            numbers.append(self.panic.line_number)
        if self.trace:
            numbers += [self.trace.line_number, self.trace.last_line]
        if self.cannot_dump:
            numbers.append(self.cannot_dump.line_number)
        if self.host:
            numbers += [self.host.line_number, self.host.end_line or 0]
            numbers += [f.line_number for f in self.host.frames]
        return [n for n in numbers if n] or [0]


@dataclass(frozen=True)
class ParsedLog:
    """Every hyp panic found in a log, in order. Iterates like a list."""

    panics: tuple[ParsedPanic, ...]

    @property
    def traces(self) -> tuple[HypTrace, ...]:
        """Every hyp call trace, quoted copies included, in log order."""
        return tuple(p.trace for p in self.panics if p.trace is not None)

    def sole_panic(self) -> ParsedPanic | None:
        """The one panic of a run; None if the log holds none or several."""
        return self.panics[0] if len(self.panics) == 1 else None

    def __iter__(self) -> Iterator[ParsedPanic]:
        return iter(self.panics)

    def __len__(self) -> int:
        return len(self.panics)

    def __getitem__(self, index: int) -> ParsedPanic:
        return self.panics[index]
