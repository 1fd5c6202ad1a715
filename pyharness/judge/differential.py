"""The lab against the real kernel: one scenario's two dumps, compared on
what both print.

A shared scenario (``hyp_panic``, ``bug``, ``stack_overflow``) runs on the
lab's fast path with a tree's own unwinder (``pyharness run --kernel-src``)
and on that tree's real kernel (``pyharness qemu``). Addresses, names and
frame counts differ by construction (the lab's faults sit in the lab's own
functions), so the dumps are compared on their *shape*
(:class:`DumpShape`): the wording of the panic line, header and footer;
whether a ``hyp_panic_bad_stack`` frame is printed and whether its return
address is its function's end; whether the recursion is one frame
repeated, and how often; the bottom frame and its form; the ``Hyp Offset``
line's format; how the run ends.

Every difference is a :class:`Difference`. The ones understood are in
:data:`EXPLAINED` with their explanation (docs/real-kernel.md has the
same table); any other is new, and ``--differential`` makes it a reason
the real run fails on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pyharness.judge.logrecords import Frame, ParsedPanic
from pyharness.judge.tracelog import parse_log

_HYP_PREFIX = "__kvm_nvhe_"
_HYP_OFFSET = re.compile(r"Hyp Offset: 0x([0-9a-fA-F]+)")


@dataclass(frozen=True)
class DumpShape:
    """What a hyp panic dump looks like, names and addresses aside."""

    panic: str            # "panic", "bug-addr", "bug-file", "invalid", "none"
    header: str
    footer: str
    bad_stack: str        # "absent", "at its function's end", "inside its function"
    recursion: str        # "none" or "one frame x N"
    bottom: str           # "NAME at its function's end" / "NAME+OFF inside ..."
    hyp_offset: str       # "absent", "0x%016lx" (zero-padded), "0x%llx", "16 digits"
    end: str              # how the console ends


@dataclass(frozen=True)
class Difference:
    aspect: str
    lab: str
    real: str
    explanation: str | None

    def describe(self) -> str:
        text = f"{self.aspect}: lab {self.lab!r}, real kernel {self.real!r}"
        return text + (" (explained in docs/real-kernel.md)" if self.explanation
                       else " (new: not explained in docs/real-kernel.md)")


# (aspect, lab, real) -> why; lab and real are regular expressions the
# whole value must match.
EXPLAINED: dict[tuple[str, str, str], str] = {
    ("end", "host panic, then its end marker", "host panic, then QEMU exits"):
        "the real kernel boots with panic=-1 and reboots right after the panic message "
        "(-no-reboot makes QEMU exit), before panic() prints its end marker; the lab's "
        "host halts after printing it",
    ("bad_stack", "inside its function", "at its function's end"):
        "hyp_panic_bad_stack() ends with its call to the noreturn hyp_panic() in both; "
        "the lab's GCC pads functions to 16 bytes (its default alignment), so the next "
        "symbol starts 4 bytes later and %pB prints +0xc/0x10; the kernel builds with "
        "-falign-functions=4 (CONFIG_FUNCTION_ALIGNMENT) and prints +0xc/0xc "
        "(+0x10/0x10 with pac-ret's paciasp)",
    ("recursion", r"one frame x \d+", r"one frame x \d+"):
        "how many recursing frames the hyp stack holds follows from the stack size and "
        "the frames below the recursion: the lab recurses in its own scenario function "
        "under its own handler, the real kernel in the HVC handler the fault replaced",
    ("bottom", r"\S+ at its function's end", r"\S+ at its function's end"):
        "both end at the host's entry, the return of its call to handle_trap; the lab's "
        "entry is csrc/hyp/host.S's __host_exit, the kernel's its own host.S, whose "
        "pointer-authentication save path puts a local label (__skip_pauth_save) right "
        "before that call when ARM64_PTR_AUTH is built in",
    ("panic", "bug-file", "bug-addr"):
        "the lab's faults are not the real kernel's: the lab's bug scenario is a real "
        "BUG() with a bug-table entry (printed as file:line), the real kernel's an "
        "injected brk #0x800 with none (printed as an address)",
}


def _explanation(aspect: str, lab: str, real: str) -> str | None:
    for (a, want_lab, want_real), why in EXPLAINED.items():
        if a == aspect and re.fullmatch(want_lab, lab) and re.fullmatch(want_real, real):
            return why
    return None


def _function_end(frame: Frame) -> bool:
    return frame.offset is not None and frame.offset == frame.size


def _bad_stack(frames: tuple[Frame, ...]) -> str:
    for frame in frames:
        if frame.symbol and frame.symbol.endswith("hyp_panic_bad_stack"):
            return "at its function's end" if _function_end(frame) else "inside its function"
    return "absent"


def _recursion(frames: tuple[Frame, ...]) -> str:
    best = 0
    run = 0
    for i, frame in enumerate(frames):
        run = run + 1 if i and frame.symbolic == frames[i - 1].symbolic else 1
        best = max(best, run)
    return f"one frame x {best}" if best > 2 else "none"


def _bottom(frames: tuple[Frame, ...]) -> str:
    if not frames or frames[-1].symbol is None:
        return "absent"
    last = frames[-1]
    if len(frames) > 2 and last.symbolic == frames[-2].symbolic:
        # A protected buffer smaller than the trace keeps its newest frames.
        return "the recursing frame: the trace cut short"
    name = last.symbol.removeprefix(_HYP_PREFIX)
    return f"{name} at its function's end" if _function_end(last) else \
        f"{name} inside its function"


def _hyp_offset_format(console: list[str]) -> str:
    for line in console:
        match = _HYP_OFFSET.search(line)
        if match:
            digits = match.group(1)
            if len(digits) < 16:
                return "0x%llx"
            return "0x%016lx" if digits.startswith("0") else "16 digits"
    return "absent"


def _end(console: list[str]) -> str:
    text = "\n".join(console)
    if "Kernel panic - not syncing: HYP panic" not in text:
        return "no host panic"
    if "---[ end Kernel panic - not syncing: HYP panic" in text:
        return "host panic, then its end marker"
    return "host panic, then QEMU exits"


def _first_panic(console: list[str]) -> ParsedPanic | None:
    parsed = parse_log(console)
    return next((p for p in parsed if p.panic or p.trace), None)


def shape(console: list[str]) -> DumpShape:
    """The shape of the first hyp panic in a console."""
    panic = _first_panic(console)
    trace = panic.trace if panic else None
    frames = trace.frames if trace else ()
    header = trace.header.split("kvm [")[-1].split("]: ", 1)[-1] if trace else "absent"
    footer = (trace.footer_raw or "").split("]: ", 1)[-1] if trace and trace.footer \
        else "absent"
    return DumpShape(panic=panic.panic.kind if panic and panic.panic else "none",
                     header=header, footer=footer, bad_stack=_bad_stack(frames),
                     recursion=_recursion(frames), bottom=_bottom(frames),
                     hyp_offset=_hyp_offset_format(console), end=_end(console))


def _same_offset_format(lab: str, real: str) -> bool:
    """A 16-digit offset without leading zero prints the same by both formats."""
    return lab == real or "16 digits" in (lab, real)


def compare(lab_console: list[str], real_console: list[str]) -> list[Difference]:
    """Every aspect in which the two dumps differ."""
    lab, real = shape(lab_console), shape(real_console)
    out = []
    for aspect in ("panic", "header", "footer", "bad_stack", "recursion", "bottom",
                   "hyp_offset", "end"):
        a, b = getattr(lab, aspect), getattr(real, aspect)
        if a == b or aspect == "hyp_offset" and _same_offset_format(a, b):
            continue
        out.append(Difference(aspect, a, b, _explanation(aspect, a, b)))
    return out
