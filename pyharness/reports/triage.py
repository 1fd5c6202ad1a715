"""The terminal's failure report: one block per cause, not one per run.

A matrix broken by one bug fails dozens or hundreds of runs for the same
reason. Each cause (:mod:`pyharness.reports.causes`) gets one block: its
verdict and count, the runs it covers as globs
(:mod:`pyharness.reports.runsets`), its first reason lines, the first
run's diagnosis (where its trace departs from the oracle's, the frame
records there, the rule that looks broken: :mod:`pyharness.judge.diagnosis`)
and one command that reproduces it. Past a line budget the remaining causes get a
line each, then only a count: every run's detail is in the JSON, JUnit
and HTML reports, and ``-v`` prints them all.
"""

from __future__ import annotations

import textwrap
from typing import Sequence

from pyharness.reports.causes import FailureGroup, group_failures
from pyharness.reports.runsets import describe_runs
from pyharness.reports.summary import failure_report, summary_table
from pyharness.reports.text import printable
from pyharness.reports.trees import tree_lines
from pyharness.terminal import visible
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec

REASON_LINES = 3          # reasons shown per cause
WRAPPED_LINES = 3         # lines one reason may take before it is clipped
DIAGNOSIS_LINES = 9       # lines of the first run's diagnosis per cause
PATTERN_LINES = 3         # run globs shown per cause
MAX_LINES = 80            # the whole failure report, about a screen and a half


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[:width - 3] + "..."


def wrap_clipped(text: str, width: int, indent: str = "    ",
             lines: int = WRAPPED_LINES) -> list[str]:
    """``text`` over at most ``lines`` lines, indented, the last clipped."""
    out = textwrap.wrap(text, width=max(width, 20), initial_indent=indent,
                        subsequent_indent=indent + "  ", break_on_hyphens=False) or [indent]
    if len(out) > lines:
        rest = " ".join(line.strip() for line in out[lines:])   # without their indents
        out = out[:lines - 1] + [_clip(f"{out[lines - 1]} {rest}", width)]
    return out


def _runs(group: FailureGroup, universe: Sequence[RunSpec]) -> list[str]:
    """The run's id for a cause of one run, else the globs of its runs."""
    if len(group.records) == 1:
        return [group.first.id]
    return describe_runs([r.spec for r in group.records], universe)


def _block(group: FailureGroup, universe: Sequence[RunSpec], width: int) -> list[str]:
    runs = _runs(group, universe)
    head = f"{group.verdict.upper()} x{len(group.records)}  "
    lines = [_clip(head + runs[0], width)]
    lines += [_clip(" " * len(head) + glob, width) for glob in runs[1:PATTERN_LINES]]
    if len(runs) > PATTERN_LINES:
        lines.append(" " * len(head) + f"(+{len(runs) - PATTERN_LINES} more globs; "
                     f"{_plural(len(group.records), 'run')} in all)")
    reasons = group.reasons()
    for reason in reasons[:REASON_LINES]:
        lines += wrap_clipped(printable(reason), width)
    if len(reasons) > REASON_LINES:
        lines.append(f"    (+{_plural(len(reasons) - REASON_LINES, 'more reason')})")
    if group.first.diagnosis is not None:
        shown: list[str] = []
        for line in group.first.diagnosis.lines():
            indent = "    " + line[:len(line) - len(line.lstrip())]
            shown += wrap_clipped(printable(line.lstrip()), width, indent, lines=2)
        lines += shown[:DIAGNOSIS_LINES]
    lines.append(visible(f"    reproduce: {group.first.command}"))
    return lines


def _one_line(group: FailureGroup, universe: Sequence[RunSpec], width: int) -> str:
    runs = _runs(group, universe)
    more = f" (+{len(runs) - 1})" if len(runs) > 1 else ""
    reason = printable(group.reasons()[0])
    return _clip(f"{group.verdict.upper()} x{len(group.records)}  {runs[0]}{more}: {reason}",
                 width)


def grouped_failures(records: Sequence[RunRecord], *, max_lines: int = MAX_LINES,
                     width: int = 120, universe: Sequence[RunSpec] | None = None) -> str:
    """The failures of ``records`` by cause, in at most about ``max_lines`` lines
    ('' when every run passed). Globs name runs among ``universe`` (default:
    the records' runs; pass every planned run when some did not run)."""
    groups = group_failures(records)
    if not groups:
        return ""
    specs = list(universe) if universe is not None else [r.spec for r in records]
    failed = sum(len(g.records) for g in groups)
    lines = [f"{_plural(failed, 'run')} did not pass, {_plural(len(groups), 'cause')} "
             "(runs whose reasons match, numbers and addresses aside; "
             "-v lists every run):"]
    shown = 0
    for group in groups:               # full blocks while they fit
        block = _block(group, specs, width)
        if len(lines) + 1 + len(block) > max_lines - 2:
            break
        lines += [""] + block
        shown += 1
    if shown < len(groups):
        lines.append("")
    for group in groups[shown:]:       # then a line each
        if len(lines) >= max_lines - 1:
            break
        lines.append(_one_line(group, specs, width))
        shown += 1
    if shown < len(groups):
        rest = groups[shown:]
        lines.append(f"... and {_plural(len(rest), 'more cause')} "
                     f"({_plural(sum(len(g.records) for g in rest), 'run')}): "
                     "see the --json/--junit/--html reports, or -v")
    return visible("\n".join(lines), multiline=True)


def terminal_report(records: Sequence[RunRecord], *, verbose: bool = False,
                    colour: bool = False, width: int = 120,
                    universe: Sequence[RunSpec] | None = None) -> str:
    """The table, the trees its rows ran (commit, dirty, diff hash), then
    the failures: by cause, or (``verbose``) every one."""
    if not records:
        return ""
    parts = [summary_table(records, colour=colour, width=width)]
    trees = tree_lines(records)
    if trees:
        parts.append("\n".join(trees))
    failures = (failure_report(records) if verbose
                else grouped_failures(records, width=width, universe=universe))
    if failures:
        parts.append(failures)
    return "\n\n".join(parts)
