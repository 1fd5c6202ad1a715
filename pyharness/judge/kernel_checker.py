"""The verdict on a real kernel's boot: its console against what the
scenario must make the kernel print.

The console is split by printk caller id (``[T1]``, ``[C1]``: the base
fragment enables PRINTK_CALLER), so two CPUs' interleaved panics are two
streams; each is parsed by the decoder's parser
(:mod:`pyharness.judge.tracelog`) and judged on its own:

- the panic line: its kind (``panic at`` / ``BUG at``), the address of the
  injected instruction and its ``%pB``, exactly as the kernel prints it;
- the trace's header and footer in the generation's wording, or the
  ``Cannot dump`` line when protected mode has no stacktrace option;
- every frame against :mod:`pyharness.judge.kernel_path`'s expectation,
  text for text; every return address just after a ``bl``/``blr`` in the
  kernel's code and inside hyp text; in protected mode no more frames than
  the buffer holds;
- ``Hyp Offset: 0x%llx``, and the panic's hyp PC plus that offset is the
  printed panic address (KASLR moves both, the sum stays put);
- the host's ``HYP panic`` message: the exception class the fault raises;
- how the run ended: QEMU exited after the panic's end marker; a run out of
  its wall budget fails (naming the last line), except the scenario whose
  known end that is.

A run where two CPUs panic together may see one trace cut short by the
other CPU's stop: that trace must be a prefix of the expected one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pyharness.elf import a64_code as a64
from pyharness.judge.console_checks import frame_line
from pyharness.judge.kernel_path import ExpectedFrame, KernelCode
from pyharness.judge.logprefix import printk_dropped, split_by_caller
from pyharness.judge.logrecords import Frame, ParsedPanic
from pyharness.judge.printk_loss import frame_matches, frame_runs, frames_left_out
from pyharness.judge.tracelog import parse_log
from pyharness.judge.verdict import FrameLine, Judgement, Verdict
from pyharness.platform.qemu import BootResult

HEADER = "nVHE call trace:"
FOOTER = "---[ end nVHE call trace ]---"
_MAX_REASONS = 20
# What the kernel prints in kvm_arm_init() before the HVCs every fault rides
# on: a boot that printed it and then nothing is hung in the hyp.
KVM_INIT_MARKER = "IPA Size Limit"
_HYP_OFFSET_FORMAT = re.compile(r"Hyp Offset: 0x(?:0|[1-9a-f][0-9a-f]*)")
# panic=-1 reboots at once (QEMU exits with -no-reboot), so the kernel
# never prints its end marker: the host's panic message is the run's end.
_HOST_PANIC = "Kernel panic - not syncing: HYP panic:"
MASK64 = (1 << 64) - 1


@dataclass(frozen=True)
class KernelExpectation:
    """What one real-kernel run must print."""

    scenario: str
    mode: str
    panic_kind: str                   # "panic", "bug-addr" or "none" (the livelock)
    fault_address: int
    panic_text: str                   # %pB of the fault address
    frames: tuple[ExpectedFrame, ...]
    cannot_dump: str | None           # the `Cannot dump` line, when protected lacks the option
    capacity: int | None              # protected: entries the buffer holds
    esr_class: int | None
    # How many CPUs may print a hyp panic: one, or with every CPU faulting
    # each of them (whichever panics first may reboot the machine before
    # another has printed: at least one is judged, every one printed is).
    panicking_cpus: int = 1
    code: KernelCode | None = field(default=None, compare=False)
    # The kernel is known to hang silently here (why): nothing printed by
    # the hyp, the console silent after KVM's init began.
    hang: str | None = None

    @property
    def hangs(self) -> bool:
        return self.hang is not None


def _check_frames(expect: KernelExpectation, frames: tuple[Frame, ...], complete: bool,
                  reasons: list[str]) -> None:
    runs = frame_runs(frames)
    i = 0
    for exp in expect.frames:
        if i >= len(runs):
            if complete:
                reasons.append(f"frame {_index(runs, i)}: missing, expected {exp.line()} "
                               f"({exp.reason})")
            return
        if exp.kind == "chain":
            i = _check_chain(expect, exp, runs, i, reasons)
            if i < 0:
                return
            continue
        frame, count = runs[i]
        if not frame_matches(exp, frame):
            reasons.append(f"frame {_index(runs, i)}: expected {exp.line()} ({exp.reason}), "
                           f"got {frame.raw.strip()}")
            return
        least, most = exp.repeat
        last_printed = i == len(runs) - 1 and not complete
        if not least <= count <= most and not (last_printed and count < least):
            reasons.append(f"frame {_index(runs, i)}: {exp.line()} ({exp.reason}) printed "
                           f"{count} times, expected {_range(least, most)}")
        i += 1
    for frame, count in runs[i:]:
        reasons.append(f"frame {_index(runs, i)}: extra frame {frame.raw.strip()}"
                       + (f" (x{count})" if count > 1 else ""))
        i += 1


def _check_chain(expect: KernelExpectation, exp: ExpectedFrame,
                 runs: list[tuple[Frame, int]], i: int, reasons: list[str]) -> int:
    """Frames of a chain from run ``i`` on: each the return of a call that
    can have entered the newer frame's function (the first: the faulting
    function, which never set up a frame); the last in ``exp.function``.
    The index of the run after the chain, or -1 after a reason."""
    code = expect.code
    newer = expect.fault_address
    taken = 0
    while i < len(runs) and taken < exp.repeat[1]:
        frame, count = runs[i]
        if frame.address is None or code is None or not code.calls_into(frame.address, newer):
            reasons.append(f"frame {_index(runs, i)}: {frame.raw.strip()} is not the return of "
                           f"a call into the newer frame's function ({exp.reason})")
            return -1
        taken += count
        i += 1
        if frame.symbol == exp.function:
            return i
        newer = frame.address - 4
    reasons.append(f"frame {_index(runs, i)}: the calls never reached {exp.function} "
                   f"({exp.reason})")
    return -1


def _range(least: int, most: int) -> str:
    return str(most) if least == most else f"{least}..{most}"


def _index(runs: list[tuple[Frame, int]], run: int) -> int:
    return sum(count for _, count in runs[:run])


def _check_calls(expect: KernelExpectation, frames: tuple[Frame, ...],
                 reasons: list[str]) -> None:
    """Every frame after the panic's own is a return address: just after a
    call, inside hyp text."""
    code = expect.code
    if code is None:
        return
    start, end = code.hyp_text()
    seen: set[int] = set()
    for number, frame in enumerate(frames[1:], 1):
        if frame.address is None or frame.address in seen:
            continue
        seen.add(frame.address)
        if not start <= frame.address < end:
            reasons.append(f"frame {number}: {frame.address:#x} is outside hyp text "
                           f"[{start:#x}, {end:#x})")
            continue
        word = code.word(frame.address - 4)
        if word is None or not a64.is_call(word):
            reasons.append(f"frame {number}: {frame.address:#x} does not follow a bl/blr "
                           "(not a return address)")


def _check_panic_line(expect: KernelExpectation, panic: ParsedPanic,
                      reasons: list[str]) -> None:
    what = "BUG" if expect.panic_kind == "bug-addr" else "panic"
    want = f"nVHE hyp {what} at: [<{expect.fault_address:016x}>] {expect.panic_text}!"
    line = panic.panic
    if line is None:
        reasons.append(f"panic line missing: expected '{want}'")
        return
    text = line.raw[line.raw.find("nVHE hyp"):] if "nVHE hyp" in line.raw else line.raw
    if text != want:
        reasons.append(f"panic line: expected '{want}', got '{text}'")


def _check_offsets(expect: KernelExpectation, panic: ParsedPanic, reasons: list[str]) -> None:
    if panic.hyp_offset is None:
        reasons.append("Hyp Offset line missing")
        return
    host = panic.host
    if host is None:
        reasons.append("the host's 'Kernel panic - not syncing: HYP panic:' message missing")
        return
    pc, esr = host.register("PC"), host.register("ESR")
    if pc is not None and (pc + panic.hyp_offset) & MASK64 != expect.fault_address:
        reasons.append(f"Hyp Offset: PC {pc:#x} + Hyp Offset {panic.hyp_offset:#x} is "
                       f"{(pc + panic.hyp_offset) & MASK64:#x}, not the panic address "
                       f"{expect.fault_address:#x}")
    if esr is not None and expect.esr_class is not None and esr >> 26 != expect.esr_class:
        reasons.append(f"panic registers: ESR {esr:#x} has class {esr >> 26:#x}, the fault "
                       f"raises {expect.esr_class:#x}")


def _hyp_offset_line(console: list[str], reasons: list[str]) -> None:
    """``Hyp Offset: 0x%llx``: lower-case hex, no leading zeros."""
    for line in console:
        at = line.find("Hyp Offset:")
        if at >= 0 and not _HYP_OFFSET_FORMAT.fullmatch(line[at:]):
            reasons.append(f"format: '{line[at:]}' is not 'Hyp Offset: 0x%llx'")


def _judge_panic(expect: KernelExpectation, panic: ParsedPanic, stream: list[str],
                 complete_run: bool, reasons: list[str],
                 lossy: bool = False) -> tuple[FrameLine, ...]:
    """One CPU's dump. ``lossy``: the console lost lines, so the frames are
    left to the caller (printk_loss) and the trace's end, which may be lost,
    is not asked for."""
    _check_panic_line(expect, panic, reasons)
    if expect.cannot_dump is not None:
        got = panic.cannot_dump.raw if panic.cannot_dump else None
        if got is None or not got.endswith(expect.cannot_dump):
            reasons.append(f"expected '{expect.cannot_dump}', got "
                           f"{repr(got) if got else 'no such line'}")
        if panic.trace is not None:
            reasons.append("a call trace printed without the protected stacktrace option")
        return ()
    trace = panic.trace
    if trace is None:
        if complete_run:
            reasons.append(f"header missing: expected '{HEADER}'")
        return ()
    if not trace.header.endswith(HEADER):
        reasons.append(f"header: expected '{HEADER}', got '{trace.header}'")
    complete = trace.footer
    if not complete and complete_run:
        reasons.append(f"footer missing: expected '{FOOTER}'")
    elif trace.footer and trace.footer_raw and not trace.footer_raw.endswith(FOOTER):
        reasons.append(f"footer: expected '{FOOTER}', got '{trace.footer_raw}'")
    frames = trace.frames
    if not lossy:
        _check_frames(expect, frames, complete, reasons)
    _check_calls(expect, frames, reasons)
    if expect.capacity is not None and len(frames) > expect.capacity:
        reasons.append(f"protected trace: {len(frames)} frames printed, the buffer holds "
                       f"{expect.capacity}")
    if complete_run:
        _check_offsets(expect, panic, reasons)
    _hyp_offset_line(stream, reasons)
    return tuple(frame_line(f) for f in frames)


def _last_line(console: list[str]) -> str:
    return next((line for line in reversed(console) if line.strip()), "(nothing)")


def judge_kernel_run(boot: BootResult, expect: KernelExpectation) -> Judgement:
    """The verdict on one boot."""
    reasons: list[str] = []
    if boot.status == "error":
        return Judgement(Verdict.ERROR, (f"QEMU failed (exit {boot.exit_code}): "
                                         f"{boot.stderr.strip()[-300:] or 'no message'}",))
    if boot.status == "killed":
        return Judgement(Verdict.ERROR, (f"QEMU was killed (signal {-(boot.exit_code or 0)}) "
                                         f"after '{_last_line(boot.console)}'",))
    if boot.timed_out and not boot.console:
        return Judgement(Verdict.ERROR, (f"QEMU printed nothing in "
                                         f"{boot.elapsed_ms / 1000:.1f} s: wedged",))
    if expect.hangs:
        return _judge_livelock(boot, expect)
    stopped = boot.status == "runaway"
    if stopped:
        reasons.append(f"stopped early, a runaway: {boot.runaway}; the kernel's last line: "
                       f"'{_last_line(boot.console)}'")
        reasons.append("not reached before the run was stopped: the trace's footer, the Hyp "
                       "Offset line, the host panic")
    streams = split_by_caller(boot.console)
    panics = [(caller, parsed[0], lines) for caller, lines in streams.items()
              if len(parsed := parse_log(lines)) and (parsed[0].panic or parsed[0].trace)]
    ended = any(_HOST_PANIC in line for line in boot.console)
    if not panics:
        if not any("kvm [" in line for line in boot.console):
            reasons.append(f"the kernel never reached KVM's init; its last line: "
                           f"'{_last_line(boot.console)}'")
        else:
            reasons.append(f"no hyp panic: the fault was not reached; the last line: "
                           f"'{_last_line(boot.console)}'")
        return Judgement(Verdict.FAIL, tuple(reasons))
    if len(panics) > expect.panicking_cpus:
        reasons.append(f"{len(panics)} CPUs printed a hyp panic "
                       f"({', '.join(c for c, _, _ in panics)}), expected "
                       f"{'one' if expect.panicking_cpus == 1 else expect.panicking_cpus}")
    actual: tuple[FrameLine, ...] = ()
    failing: list[tuple[ParsedPanic, list[str]]] = []
    before_dumps = len(reasons)      # a runaway, too many CPUs: never lost lines' doing
    for caller, panic, lines in panics:
        # The CPU whose panic stopped the others printed everything; another
        # may have been stopped part way: what it printed must be a prefix.
        # A runaway stopped by the harness printed a prefix too.
        complete = (len(panics) == 1 or panic.host is not None) and not stopped
        own: list[str] = []
        frames = _judge_panic(expect, panic, lines, complete, own)
        prefix = f"CPU stream [{caller}]: " if len(panics) > 1 else ""
        reasons += [prefix + r for r in own]
        actual = actual or frames
        if own:
            failing.append((panic, lines))
    after_dumps = len(reasons)
    if stopped:
        pass                    # said first; the host's panic was never reached
    elif boot.timed_out:
        reasons.append(f"QEMU did not exit within its {boot.elapsed_ms / 1000:.1f} s: the "
                       f"kernel's last line: '{_last_line(boot.console)}'")
    elif not ended:
        reasons.append(f"the host never panicked ('{_HOST_PANIC}' missing): QEMU exited "
                       f"after '{_last_line(boot.console)}'")
    verdict = Verdict.PASS if not reasons else Verdict.FAIL
    dropped = printk_dropped(boot.console)
    if reasons and dropped:
        # Only the dumps' own reasons may be lost lines' doing.
        explicable = before_dumps == 0 and len(reasons) == after_dumps
        verdict = _judged_with_lost_lines(expect, failing, dropped, reasons, explicable)
    return Judgement(verdict, tuple(reasons[:_MAX_REASONS]), actual)


def _judged_with_lost_lines(expect: KernelExpectation,
                            failing: list[tuple[ParsedPanic, list[str]]], dropped: int,
                            reasons: list[str], explicable: bool) -> Verdict:
    """A console the kernel dropped messages from (printk_loss): an error,
    no verdict on the unwinder, when each failing dump is the expected one
    with at most that many frames left out and nothing else differs; else a
    failure that also says how many were dropped. (A runaway printed more
    than any valid dump, lost lines or not: never explicable.)"""
    left_out = 0
    for panic, lines in failing if explicable else ():
        own: list[str] = []
        _judge_panic(expect, panic, lines, False, own, lossy=True)
        lacking = frames_left_out(expect.frames, panic.trace.frames if panic.trace else ())
        if own or lacking is None:
            explicable = False
            break
        left_out += lacking
    if explicable and left_out <= dropped:
        reasons.insert(0, f"the kernel dropped {dropped} printk messages (its console skipped "
                          "them: the printk ring lapped, or a record a stopped CPU never "
                          f"finished), and the dump differs only by {left_out} frames left "
                          "out: no verdict on the unwinder; what follows is what was lost")
        return Verdict.ERROR
    reasons.append(f"the kernel also dropped {dropped} printk messages; lost lines only leave "
                   "frames out, which does not account for the above")
    return Verdict.FAIL


def _judge_livelock(boot: BootResult, expect: KernelExpectation) -> Judgement:
    """A known silent hang (``expect.hang`` says why): KVM's init began
    (its marker line), then the console stayed silent, the hyp printing
    nothing, until the harness stopped the boot."""
    reasons = []
    began = any(KVM_INIT_MARKER in line for line in boot.console)
    if not began:
        reasons.append(f"the kernel never reached KVM's init ('{KVM_INIT_MARKER}' not "
                       f"printed); its last line: '{_last_line(boot.console)}'")
    elif boot.status != "silent":
        reasons.append(f"the run did not hang as this kernel is known to ({expect.hang}): "
                       f"it ended {boot.status} after '{_last_line(boot.console)}'")
    printed = [line for line in boot.console
               if "nVHE hyp" in line or "nVHE call trace" in line or _HOST_PANIC in line]
    if printed:
        reasons.append(f"the hyp printed '{printed[0].strip()}' where this kernel is known "
                       f"to hang silently ({expect.hang})")
    return Judgement(Verdict.PASS if not reasons else Verdict.FAIL, tuple(reasons))
