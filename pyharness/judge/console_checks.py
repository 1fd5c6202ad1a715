"""One hyp panic's console, line by line, against the oracle's expectation.

The panic line, the dump (header, every frame aligned with the expected
ones, stray lines, a footer of the header's own kind), the ``Hyp Offset``
line, the host's panic registers and its own call trace. Each difference
is one reason; :mod:`pyharness.judge.checker` turns them into a verdict.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable, Hashable, Sequence

from pyharness.judge.align import align
from pyharness.judge.code_lines import code_line
from pyharness.judge.expectation import (ExpectedFrame, ExpectedHostFrame, ExpectedPanic,
                                         Expectation)
from pyharness.judge.frame_patterns import PrintedPc, trace_pattern
from pyharness.judge.kernel_format import format_problems
from pyharness.judge.logrecords import (TRACE_FOOTERS, TRACE_HEADERS, Frame, HostPanic, HypPanic,
                                        ParsedPanic)
from pyharness.judge.tracelog import parse_log
from pyharness.judge.verdict import FrameLine


#: The first line of nvhe_hyp_panic_handler()'s panic() message.
HOST_PANIC_MESSAGE = "HYP panic:"


def printed_symbol(frame: Frame) -> str:
    """What the line says after the address: ``sym+off/size``, or for an
    address in no function the raw pointer the kernel printed."""
    if frame.symbol is not None:
        return frame.symbolic
    return frame.raw.split()[-1]


def frame_line(frame: Frame) -> FrameLine:
    """A printed frame as the records keep it."""
    address = f"{frame.address:016x}" if frame.address is not None else ""
    return FrameLine(address=address, symbol=printed_symbol(frame))


def _describe(frame: ExpectedFrame, elf: str = "") -> str:
    return f"{frame.symbol} at {frame.address:016x}{code_line(elf, frame.address)}"


def _describe_actual(frame: Frame, elf: str = "") -> str:
    if frame.address is None:
        return f"{printed_symbol(frame)} at ?"
    return f"{printed_symbol(frame)} at {frame.address:016x}{code_line(elf, frame.address)}"


def _check_panic_line(expected: ExpectedPanic, actual: HypPanic | None,
                      elf: str = "") -> list[str]:
    where = code_line(elf, expected.address or 0, return_address=False)
    if actual is None:
        return [f"panic line missing: expected '{expected.describe()}'{where}"]
    wrong = actual.kind != expected.kind
    if not wrong and expected.kind in ("panic", "bug-addr"):
        wrong = (actual.address != expected.address or actual.location is None
                 or printed_symbol(actual.location).rstrip("!") != expected.symbol)
    if not wrong and expected.kind == "bug-file":
        wrong = (actual.file, actual.file_line) != (expected.file, expected.line)
    if wrong:
        return [f"panic line: expected '{expected.describe()}'{where}, "
                f"got '{actual.raw.strip()}'"]
    return []


def _aligned_reasons(what: str, want: Callable[[int], str], got: Callable[[int], str],
                     want_keys: Sequence[Hashable], got_keys: Sequence[Hashable]) -> list[str]:
    """Every difference between two frame lists, aligned on their keys: a
    dropped frame is one reason, not a cascade. ``want(i)`` and ``got(j)``
    describe a frame (only those a reason names)."""
    reasons = []
    for row in align(want_keys, got_keys):
        i, j = row.expected, row.actual
        if row.kind == "missing":
            reasons.append(f"{what} {i}: missing, expected {want(i)}")
        elif row.kind == "extra":
            reasons.append(f"{what} {j}: unexpected {got(j)}")
        elif row.kind == "differ":
            reasons.append(f"{what} {j}: expected {want(i)}, got {got(j)}")
    return reasons


def _check_frames(expected: tuple[ExpectedFrame, ...], actual: tuple[Frame, ...],
                  elf: str = "") -> list[str]:
    """One reason naming the pattern when the whole trace is wrong in one
    way (:mod:`pyharness.judge.frame_patterns`), else one per difference."""
    def want(i: int) -> str:
        return _describe(expected[i], elf)

    def got(j: int) -> str:
        return _describe_actual(actual[j], elf)

    want_keys = [PrintedPc(f.address, f.symbol) for f in expected]
    got_keys = [PrintedPc(f.address, printed_symbol(f)) for f in actual]
    pattern = trace_pattern(want_keys, got_keys, want, got)
    if pattern is not None:
        return [pattern]
    return _aligned_reasons("frame", want, got, want_keys, got_keys)


def _header_missing(expect: Expectation, panic: ParsedPanic, console: Sequence[str]) -> str:
    """Which header was expected, and the line that stood where it belongs
    (the first after the panic line)."""
    header = TRACE_HEADERS.get(expect.dump or "", expect.dump or "")
    where = panic.panic.line_number if panic.panic is not None else None
    if where is not None:
        following = [(n, line.strip()) for n, line in enumerate(console[where:], where + 1)
                     if line.strip()]
        if following:
            number, text = following[0]
            return (f"{expect.dump} trace header missing: expected '{header}' after the "
                    f"panic line, console line {number} is '{text}'")
    return f"{expect.dump} trace header missing: expected '{header}', no line after the panic line"


def _check_dump(expect: Expectation, panic: ParsedPanic, console: Sequence[str]) -> list[str]:
    if expect.dump == "cannot-dump":
        reasons = []
        want = expect.cannot_dump_reason
        if panic.cannot_dump is None:
            reasons.append(f"'Cannot dump pKVM nVHE stacktrace: {want}' line missing")
        elif panic.cannot_dump.reason.strip() != want:
            reasons.append(f"Cannot dump line: expected '{want}', got "
                           f"'{panic.cannot_dump.reason.strip()}'")
        if panic.trace is not None:
            reasons.append(f"unexpected trace '{panic.trace.header.strip()}' without "
                           f"CONFIG_{want.removeprefix('!CONFIG_')}")
        return reasons
    trace = panic.trace
    if trace is None:
        return [_header_missing(expect, panic, console)]
    reasons = []
    if trace.kind != expect.dump:
        reasons.append(f"header: expected the {expect.dump} header, got '{trace.header.strip()}'")
    reasons += _check_frames(expect.frames, trace.frames, expect.elf)
    reasons += [f"unexpected line inside the trace: '{s.raw.strip()}'" for s in trace.strays]
    if not trace.footer:
        reasons.append("footer missing")
    elif trace.footer_kind != trace.kind:
        footer = TRACE_FOOTERS[trace.footer_kind] if trace.footer_kind else trace.footer_raw
        reasons.append(f"footer: '{footer}' does not close the {trace.kind} header")
    return reasons


def check_hyp_panic(expect: Expectation, console: list[str], *, stopped: bool = False
                    ) -> tuple[list[str], tuple[FrameLine, ...] | None]:
    """Every line of one hyp panic against the expectation: panic line, dump,
    Hyp Offset, the host's panic registers and its own call trace; and the
    frames printed (None when no trace was found, () for one without frames).
    ``stopped``: the harness stopped the run (a budget), so the parts after
    where its console ends were not reached, not left out."""
    parsed = _rejoined(tuple(parse_log("\n".join(console))))
    if len(parsed) == 0:
        return ["no hyp panic in the console"], None
    if len(parsed) > 1:
        return [f"{len(parsed)} hyp panics in the console, expected one"], None
    panic = parsed[0]
    reasons = _check_panic_line(expect.panic, panic.panic, expect.elf) if expect.panic else []
    reasons += _check_dump(expect, panic, console)
    reasons += _check_hyp_offset(expect, panic.hyp_offset)
    if panic.host is None:
        reasons.append(f"host panic ('Kernel panic - not syncing: {HOST_PANIC_MESSAGE}') missing")
    else:
        reasons += _check_host_identity(expect, panic.host)
        panic_pc = expect.panic.address if expect.panic else None
        reasons += _check_registers(expect.registers, panic.host,
                                    code_line(expect.elf, panic_pc or 0, return_address=False))
        reasons += _check_host_frames(expect.host_frames, panic.host.frames)
        if not panic.host.footer:
            reasons.append(HOST_END_MISSING)
    if stopped:
        reasons = _not_reached(reasons)
    reasons += format_problems(console)
    return reasons, _frame_lines(panic.trace.frames) if panic.trace else None


HOST_END_MISSING = "host panic end marker missing"
# What a console stopped early lacks at its end: reason -> the part named.
_TAIL_PARTS = (("footer missing", "the trace's footer"), ("'Hyp Offset: ", "the Hyp Offset line"),
               ("host panic ('Kernel panic", "the host panic"),
               (HOST_END_MISSING, "the host panic's end marker"))


def _not_reached(reasons: list[str]) -> list[str]:
    """The parts missing at the end of a console the harness stopped, as
    one reason: they were never reached, which is not the same failure as
    a firmware that left them out."""
    tail = [part for prefix, part in _TAIL_PARTS if any(r.startswith(prefix) for r in reasons)]
    if not tail:
        return reasons
    kept = [r for r in reasons if not any(r.startswith(prefix) for prefix, _ in _TAIL_PARTS)]
    return kept + [f"not reached before the run was stopped: {', '.join(tail)}"]


def _rejoined(parsed: tuple[ParsedPanic, ...]) -> tuple[ParsedPanic, ...]:
    """One panic whose parts the parser kept apart: a trace it did not
    recognise (a misspelt header) leaves its frames as unknown lines, and
    a ``Hyp Offset`` or host panic too far below the panic line starts a
    record of its own. Parts with no panic line of their own after one
    panic line are that panic's."""
    if len(parsed) < 2 or parsed[0].panic is None or parsed[0].trace is not None \
            or any(p.panic is not None or p.trace is not None for p in parsed[1:]):
        return parsed
    first = parsed[0]
    offset = next((p.hyp_offset for p in parsed if p.hyp_offset is not None), None)
    host = next((p.host for p in parsed if p.host is not None), None)
    if sum(p.hyp_offset is not None for p in parsed) > 1 or sum(p.host is not None
                                                                for p in parsed) > 1:
        return parsed
    return (replace(first, hyp_offset=offset, host=host),)


def _frame_lines(frames: tuple[Frame, ...]) -> tuple[FrameLine, ...]:
    """Each printed frame as a line; frames that print the same share one."""
    lines: dict[tuple[int | None, str], FrameLine] = {}
    out = []
    for frame in frames:
        key = (frame.address, printed_symbol(frame))
        line = lines.get(key)
        if line is None:
            line = lines[key] = frame_line(frame)
        out.append(line)
    return tuple(out)


def _check_host_identity(expect: Expectation, host: HostPanic) -> list[str]:
    """The host panic's message and the line naming the CPU and task."""
    reasons = []
    if host.message != HOST_PANIC_MESSAGE:
        reasons.append(f"host panic message: expected '{HOST_PANIC_MESSAGE}', "
                       f"got '{host.message}'")
    if expect.cpu is None:
        return reasons
    want = f"CPU: {expect.cpu} PID: 1 Comm: swapper/{expect.cpu}"
    if host.cpu is None:
        reasons.append(f"host panic: '{want}' line missing")
    elif (host.cpu, host.pid, host.comm) != (expect.cpu, 1, f"swapper/{expect.cpu}"):
        reasons.append(f"host panic: expected '{want}', got "
                       f"'CPU: {host.cpu} PID: {host.pid} Comm: {host.comm}'")
    return reasons


def _check_hyp_offset(expect: Expectation, printed: int | None) -> list[str]:
    if expect.hyp_offset is None:
        return []
    if printed is None:
        return [f"'Hyp Offset: 0x{expect.hyp_offset:016x}' line missing"]
    if printed != expect.hyp_offset:
        return [f"Hyp Offset: expected 0x{expect.hyp_offset:016x}, got 0x{printed:016x}"]
    return []


def _check_registers(expected: dict[str, int], host: HostPanic,
                     pc_source: str = "") -> list[str]:
    """The host's panic message against the registers the emulator held
    (``pc_source``: `` (file:line)`` of the PC the hypervisor held)."""
    reasons = []
    for name, value in expected.items():
        printed = host.register(name)
        if printed is None:
            reasons.append(f"panic registers: {name} missing (expected {value:#x})")
        elif printed != value:
            where = pc_source if name == "PC" else ""
            reasons.append(f"panic registers: {name} is {printed:#x}, the hypervisor's was "
                           f"{value:#x}{where}")
    return reasons


def _check_host_frames(expected: tuple[ExpectedHostFrame, ...],
                       actual: tuple[Frame, ...]) -> list[str]:
    """The host's own call trace against the records on its task stack."""
    if not expected:
        return []

    printed = [printed_symbol(f) for f in actual]
    # The first line's offset is any inside dump_stack: compare without it.
    loose = {f.name for f in expected if f.offset is None and f.raw is None}
    return _aligned_reasons("host frame", lambda i: expected[i].describe(),
                            printed.__getitem__,
                            [f.key() for f in expected],
                            [ExpectedHostFrame.key_of(p, loose) for p in printed])
