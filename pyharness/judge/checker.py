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

from pyharness.judge.console_checks import check_hyp_panic
from pyharness.judge.diagnosis import diagnose
from pyharness.judge.expectation import Expectation
from pyharness.judge.verdict import FrameLine, Judgement, Verdict
from pyharness.platform.results import PerCpuChange, RunResult, RunStatus

_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")

PASS, FAIL, ERROR = Verdict.PASS, Verdict.FAIL, Verdict.ERROR


def strip_timestamp(line: str) -> str:
    return _TIMESTAMP.sub("", line, count=1)


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
    return Judgement(verdict, (*judgement.reasons, *changes), judgement.actual_frames,
                     judgement.diagnosis)


def check(result: RunResult, expect: Expectation,
          violations: list[str] | None = None) -> Judgement:
    """The console and the run's end against the expectation: pass, or every
    difference with its reason. ``violations`` are the bounds watch's findings."""
    violations = list(violations or []) + list(expect.footprint) + list(expect.findings)
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
    actual: tuple[FrameLine, ...] | None = None      # None: no trace found
    if result.status is RunStatus.EXITED and result.exit_code != expect.exit_status:
        reasons.append(f"firmware exited with status {result.exit_code}, "
                       f"expected {expect.exit_status}")
    if expect.kind == "lines":
        reasons += _check_lines(expect.lines, result.console)
    else:
        more, actual = check_hyp_panic(expect, result.console,
                                       stopped=result.status is not RunStatus.EXITED)
        reasons += more
    reasons += violations
    verdict = forced or (FAIL if reasons else PASS)
    # Without a trace (its header unrecognised, no panic) there is nothing
    # to set beside the oracle's frames: the reasons say what is missing.
    diagnosis = diagnose(expect, actual) if verdict is not PASS and actual is not None else None
    return Judgement(verdict, tuple(reasons), actual or (), diagnosis)
