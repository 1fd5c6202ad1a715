"""The judge: compare a run with the oracle's expectation, name every difference.

This is the one place a verdict is decided (:func:`judge_run`): the
console against the expectation, the run's end, the bounds watches'
findings and other CPUs' per-CPU data. The verdict is a
:class:`~pyharness.judge.verdict.Verdict`; each reason is one line a
reviewer can act on, e.g. ``frame 7: expected
__kvm_nvhe_recursive_death+0x24/0x34 at ffff8000090a51e4, got ...``.
"""

from __future__ import annotations

import re
from typing import Sequence

from pyharness.judge.expectation import ExpectedFrame, ExpectedPanic, Expectation
from pyharness.judge.logrecords import Frame, HypPanic, ParsedPanic
from pyharness.judge.tracelog import parse_log
from pyharness.judge.verdict import FrameLine, Judgement, Verdict
from pyharness.platform.results import PerCpuChange, RunResult, RunStatus

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")

PASS, FAIL, ERROR = Verdict.PASS, Verdict.FAIL, Verdict.ERROR


def strip_timestamp(line: str) -> str:
    return _TIMESTAMP.sub("", line, count=1)


def printed_symbol(frame: Frame) -> str:
    """What the line says after the address: ``sym+off/size``, or for an
    address in no function the raw pointer the kernel printed."""
    if frame.symbol is not None:
        return frame.symbolic
    return frame.raw.split()[-1]


def _frame_line(frame: Frame) -> FrameLine:
    address = f"{frame.address:016x}" if frame.address is not None else ""
    return FrameLine(address=address, symbol=printed_symbol(frame))


def _describe(frame: ExpectedFrame) -> str:
    return f"{frame.symbol} at {frame.address:016x}"


def _describe_actual(frame: Frame) -> str:
    address = f"{frame.address:016x}" if frame.address is not None else "?"
    return f"{printed_symbol(frame)} at {address}"


def _check_panic_line(expected: ExpectedPanic, actual: HypPanic | None) -> list[str]:
    if actual is None:
        return [f"panic line missing: expected '{expected.describe()}'"]
    wrong = actual.kind != expected.kind
    if not wrong and expected.kind in ("panic", "bug-addr"):
        wrong = (actual.address != expected.address
                 or actual.location is None or actual.location.symbolic != expected.symbol)
    if not wrong and expected.kind == "bug-file":
        wrong = (actual.file, actual.file_line) != (expected.file, expected.line)
    if wrong:
        return [f"panic line: expected '{expected.describe()}', got '{actual.raw.strip()}'"]
    return []


def _check_frames(expected: tuple[ExpectedFrame, ...], actual: tuple[Frame, ...]) -> list[str]:
    reasons = []
    for i in range(max(len(expected), len(actual))):
        if i >= len(actual):
            reasons.append(f"frame {i}: missing, expected {_describe(expected[i])}")
        elif i >= len(expected):
            reasons.append(f"frame {i}: unexpected {_describe_actual(actual[i])}")
        elif (actual[i].address != expected[i].address
              or printed_symbol(actual[i]) != expected[i].symbol):
            reasons.append(f"frame {i}: expected {_describe(expected[i])}, "
                           f"got {_describe_actual(actual[i])}")
    return reasons


def _check_dump(expect: Expectation, panic: ParsedPanic) -> list[str]:
    if expect.dump == "cannot-dump":
        reasons = []
        if panic.cannot_dump is None:
            reasons.append("'Cannot dump pKVM nVHE stacktrace: "
                           "!CONFIG_PROTECTED_NVHE_STACKTRACE' line missing")
        if panic.trace is not None:
            reasons.append(f"unexpected trace '{panic.trace.header.strip()}' without "
                           "CONFIG_PROTECTED_NVHE_STACKTRACE")
        return reasons
    trace = panic.trace
    if trace is None:
        return [f"{expect.dump} trace header missing"]
    reasons = []
    if trace.kind != expect.dump:
        reasons.append(f"header: expected the {expect.dump} header, got '{trace.header.strip()}'")
    reasons += _check_frames(expect.frames, trace.frames)
    reasons += [f"unexpected line inside the trace: '{s.raw.strip()}'" for s in trace.strays]
    if not trace.footer:
        reasons.append("footer missing")
    return reasons


def _check_hyp_panic(expect: Expectation, console: list[str]) -> tuple[list[str], tuple]:
    parsed = parse_log("\n".join(console))
    if len(parsed) == 0:
        return ["no hyp panic in the console"], ()
    if len(parsed) > 1:
        return [f"{len(parsed)} hyp panics in the console, expected one"], ()
    panic = parsed[0]
    reasons = _check_panic_line(expect.panic, panic.panic) if expect.panic else []
    reasons += _check_dump(expect, panic)
    if panic.host is None:
        reasons.append("host panic ('Kernel panic - not syncing: HYP panic:') missing")
    elif not panic.host.footer:
        reasons.append("host panic end marker missing")
    actual = tuple(_frame_line(f) for f in panic.trace.frames) if panic.trace else ()
    return reasons, actual


def _check_lines(expected: tuple[str, ...], console: list[str]) -> list[str]:
    text = [strip_timestamp(line) for line in console]
    reasons, at = [], 0
    for want in expected:
        try:
            at = text.index(want, at) + 1
        except ValueError:
            reasons.append(f"line missing (or out of order): '{want}'")
    return reasons


def _run_status_reasons(result: RunResult) -> tuple[Verdict | None, list[str]]:
    if result.status is RunStatus.EXITED:
        return None, []
    if result.status is RunStatus.ERROR:
        return ERROR, [f"emulation error: {result.reason}"]
    return FAIL, [result.reason]


def _check_expected_stop(result: RunResult, expect: Expectation,
                         violations: list[str]) -> tuple[list[str], list[str]]:
    """For the probes, the harness stopping the firmware is the pass."""
    if expect.kind == "breach":
        if result.status is RunStatus.ISOLATION_BREACH:
            return [], violations
        return ["expected an isolation breach: the host read hyp memory unhindered"], \
            violations
    caught = [v for v in violations if v.startswith(expect.violation or "")]
    if not caught:
        return [f"expected the bounds watch to report '{expect.violation}'"], violations
    return [], [v for v in violations if v not in caught]


def judge_run(result: RunResult, expect: Expectation, violations: Sequence[str] = (),
              foreign_changes: Sequence[PerCpuChange] = ()) -> Judgement:
    """The verdict on one run, with every reason: the console and the run's
    end against the expectation, the bounds watches' findings
    (:mod:`pyharness.judge.watch`), and changes to other CPUs' per-CPU data
    (:mod:`pyharness.platform.percpu`), which fail a run that otherwise
    passed."""
    judgement = check(result, expect, list(violations))
    changes = [f"per-CPU data of another CPU changed: {change}" for change in foreign_changes]
    if not changes:
        return judgement
    verdict = FAIL if judgement.passed else judgement.verdict
    return Judgement(verdict, (*judgement.reasons, *changes), judgement.actual_frames)


def check(result: RunResult, expect: Expectation,
          violations: list[str] | None = None) -> Judgement:
    """The console and the run's end against the expectation: pass, or every
    difference with its reason. ``violations`` are the bounds watch's findings."""
    violations = list(violations or [])
    if expect.kind in ("breach", "violation"):
        reasons, violations = _check_expected_stop(result, expect, violations)
        if expect.kind == "breach":
            return Judgement(FAIL if reasons else PASS, tuple(reasons + violations))
        reasons += _check_lines(expect.lines, result.console)
        return Judgement(FAIL if reasons or violations else PASS, tuple(reasons + violations))
    forced, reasons = _run_status_reasons(result)
    if expect.notes:
        forced = forced or ERROR
        reasons += list(expect.notes)
    actual: tuple = ()
    if result.status is RunStatus.EXITED and result.exit_code != expect.exit_status:
        reasons.append(f"firmware exited with status {result.exit_code}, "
                       f"expected {expect.exit_status}")
    if expect.kind == "lines":
        reasons += _check_lines(expect.lines, result.console)
    else:
        more, actual = _check_hyp_panic(expect, result.console)
        reasons += more
    reasons += violations
    verdict = forced or (FAIL if reasons else PASS)
    return Judgement(verdict, tuple(reasons), actual)
