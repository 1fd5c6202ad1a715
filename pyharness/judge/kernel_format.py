"""Every line of a hyp panic, exactly as the kernel's format strings print it.

The console checks compare values (addresses, symbols, registers) through
the decoder's parser, which accepts any width and spacing because it reads
pasted logs of every kernel vintage. A run of this firmware must print what
the kernel's own format strings print. This module renders each line it
recognises again, from the values printed in that line, by those formats:

    nVHE hyp panic at: [<%016lx>] %pB!     nVHE hyp BUG at: [<%016lx>] %pB!
     [<%016lx>] %pB                        (a hyp frame)
    Hyp Offset: 0x%016lx
    PS:%08lx PC:%016lx ESR:%016lx          FAR:%016lx HPFAR:%016lx PAR:%016lx
    VCPU:%016lx                            CPU: %d PID: %d Comm: %s
     %pB                                   (a host call-trace frame)
    ---[ end Kernel panic - not syncing: <first line of the message> ]---

``%pB`` is ``sym+0x%lx/0x%lx``, or ``0x%lx`` for an address in no symbol.
Any line whose text differs from its rendering is a reason. The values
themselves are :mod:`pyharness.judge.console_checks`' business.
"""

from __future__ import annotations

import functools
import re
from typing import Callable

from pyharness.judge.expectation import KVM_PREFIX

_PRINTK_TIME = re.compile(r"\[ *\d+\.\d{6}\] ")
_HEX = r"[0-9a-fA-F]+"

_PANIC_LINE = re.compile(rf"nVHE hyp (?P<what>panic|BUG) at: \s*\[<(?P<address>{_HEX})>\]"
                         r"\s*(?P<symbol>.*?)\s*!")
_HYP_FRAME = re.compile(rf"\s*\[<(?P<address>{_HEX})>\]\s*(?P<symbol>.*?)\s*")
_HYP_OFFSET = re.compile(rf"Hyp Offset:\s*(?:0x)?(?P<value>{_HEX})\s*")
_REGISTERS = re.compile(rf"\s*(?:[A-Z][A-Z0-9_]*:\s*{_HEX}\s*)+")
_REGISTER = re.compile(rf"(?P<name>[A-Z][A-Z0-9_]*):\s*(?P<value>{_HEX})")
_CPU_LINE = re.compile(r"\s*CPU:\s*(?P<cpu>\d+)\s+PID:\s*(?P<pid>\d+)\s+Comm:\s*(?P<comm>\S+)\s*")
_PANIC_MESSAGE = re.compile(r"Kernel panic - not syncing: (?P<message>.*)")
_END_MARKER = re.compile(r"\s*---\[ ?end Kernel panic - not syncing:.*")
_CALL_TRACE = "Call trace:"
_SYMBOL = re.compile(rf"(?P<name>[^\s+/]+)\+0x(?P<offset>{_HEX})/0x(?P<size>{_HEX})")
_BARE = re.compile(rf"0x(?P<value>{_HEX})")

#: %08lx for PSTATE, %016lx for every other register of the panic message.
_REGISTER_WIDTH = {"PS": 8}


def render_symbol(printed: str) -> str:
    """``%pB`` of what ``printed`` names: ``sym+0xoff/0xsize`` or ``0xaddr``."""
    match = _SYMBOL.fullmatch(printed)
    if match:
        return (f"{match['name']}+0x{int(match['offset'], 16):x}"
                f"/0x{int(match['size'], 16):x}")
    bare = _BARE.fullmatch(printed)
    if bare:
        return f"0x{int(bare['value'], 16):x}"
    return printed


def _panic_line(match: re.Match[str]) -> str:
    return (f"nVHE hyp {match['what']} at: [<{int(match['address'], 16):016x}>] "
            f"{render_symbol(match['symbol'])}!")


def _hyp_frame(match: re.Match[str]) -> str:
    return f" [<{int(match['address'], 16):016x}>] {render_symbol(match['symbol'])}"


def _hyp_offset(match: re.Match[str]) -> str:
    return f"Hyp Offset: 0x{int(match['value'], 16):016x}"


def _registers(match: re.Match[str]) -> str:
    return " ".join(f"{m['name']}:{int(m['value'], 16):0{_REGISTER_WIDTH.get(m['name'], 16)}x}"
                    for m in _REGISTER.finditer(match.group(0)))


def _cpu_line(match: re.Match[str]) -> str:
    return f"CPU: {int(match['cpu'])} PID: {int(match['pid'])} Comm: {match['comm']}"


Render = Callable[[re.Match[str]], str]
#: Lines printed through kvm_err() ("kvm [1]: " prefix), then the host's own.
_KVM_LINES: tuple[tuple[re.Pattern[str], Render], ...] = (
    (_PANIC_LINE, _panic_line), (_HYP_FRAME, _hyp_frame), (_HYP_OFFSET, _hyp_offset))
_HOST_LINES: tuple[tuple[re.Pattern[str], Render], ...] = (
    (_REGISTERS, _registers), (_CPU_LINE, _cpu_line))


def _body(line: str) -> str | None:
    """The text after the printk timestamp, or None for a line without one
    (a continuation of a multi-line message)."""
    match = _PRINTK_TIME.match(line)
    return line[match.end():] if match else None


@functools.lru_cache(maxsize=4096)
def _rendered(body: str, in_call_trace: bool) -> str:
    """What the kernel would print for the values in ``body`` (kept: a long
    trace repeats a few frame lines thousands of times)."""
    if body.startswith(KVM_PREFIX):
        text = body[len(KVM_PREFIX):]
        for pattern, render in _KVM_LINES:
            match = pattern.fullmatch(text)
            if match:
                return KVM_PREFIX + render(match)
        return body
    for pattern, render in _HOST_LINES:
        match = pattern.fullmatch(body)
        if match:
            return render(match)
    if in_call_trace and not _END_MARKER.fullmatch(body):
        return " " + render_symbol(body.strip())
    return body


def format_problems(console: list[str]) -> list[str]:
    """Each line of the console the kernel would have printed differently."""
    problems: list[str] = []
    message: str | None = None
    in_call_trace = False
    for number, line in enumerate(console, 1):
        body = _body(line)
        if body is None:
            continue
        panic = _PANIC_MESSAGE.fullmatch(body)
        if panic:
            message = panic["message"]
        if _END_MARKER.fullmatch(body):
            in_call_trace = False
            want = f"---[ end Kernel panic - not syncing: {message or ''} ]---"
        else:
            want = _rendered(body, in_call_trace)
        if body == _CALL_TRACE:
            in_call_trace = True
        if body != want:
            problems.append(f"format: console line {number} is '{body}', the kernel's "
                            f"format prints '{want}'")
    return problems
