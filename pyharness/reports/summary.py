"""The terminal summary: a configurations x scenarios table, then each failure.

A cell reads ``pass 4`` (all four runs passed), ``FAIL 1/4`` (one of four
did not pass, and at least one of those failed a check), ``ERROR 1/4``
(none failed a check, but one could not be judged) or ``-`` (not run).
A table too wide for the terminal numbers its columns and shortens cells
to ``ok``, ``F1/4``, ``E1/4``.
Every failure follows with its reasons and the one-line command that
reproduces it.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

from pyharness.judge.verdict import Verdict
from pyharness.run.record import RunRecord
from pyharness.reports.grid import Cell, Grid, make_grid
from pyharness.terminal import visible

_COLOURS = {Verdict.PASS: "\033[32m", Verdict.FAIL: "\033[1;31m", Verdict.ERROR: "\033[33m"}
_RESET = "\033[0m"


def cell_text(cell: Cell) -> str:
    total = len(cell.records)
    if cell.status == "none":
        return "-"
    if cell.status is Verdict.PASS:
        return f"pass {total}"
    return f"{cell.status.upper()} {total - cell.passed}/{total}"


def compact_cell_text(cell: Cell) -> str:
    """``ok``, ``F1/4`` or ``E1/4``: for tables too wide for full words."""
    if cell.status == "none":
        return "-"
    if cell.status is Verdict.PASS:
        return "ok"
    return f"{cell.status[0].upper()}{len(cell.records) - cell.passed}/{len(cell.records)}"


def _render(grid: Grid, headers: list[str], cell_texts: Callable[[Cell], str],
            colour: bool) -> list[str]:
    texts = {(c, s): cell_texts(grid.cell(c, s)) for c in grid.rows for s in grid.scenarios}
    names = {c: visible(c) for c in grid.rows}
    headers = [visible(h) for h in headers]
    first = max(len("configuration"), *(len(n) for n in names.values()))
    widths = [max(len(h), *(len(texts[(c, s)]) for c in grid.rows))
              for s, h in zip(grid.scenarios, headers)]
    lines = ["  ".join([f"{'configuration':<{first}}",
                        *(f"{h:<{w}}" for h, w in zip(headers, widths))]).rstrip()]
    for config in grid.rows:
        row = [f"{names[config]:<{first}}"]
        for scenario, width in zip(grid.scenarios, widths):
            text = f"{texts[(config, scenario)]:<{width}}"
            status = grid.cell(config, scenario).status
            if colour and status in _COLOURS:
                text = f"{_COLOURS[status]}{text}{_RESET}"
            row.append(text)
        lines.append("  ".join(row).rstrip())
    return lines


def summary_table(records: Sequence[RunRecord], colour: bool = False,
                  width: int = 120) -> str:
    """The table, one row per configuration (and unwinder), one column per scenario.

    When full scenario names and words do not fit in ``width`` columns,
    the columns are numbered (a key follows) and cells are compact.
    """
    grid = make_grid(records)
    if not grid.rows:
        return "(no runs)"
    full = _render(grid, list(grid.scenarios), cell_text, colour)
    if max(len(_strip_colour(line)) for line in full) <= width:
        return "\n".join(full)
    numbers = [str(i) for i in range(1, len(grid.scenarios) + 1)]
    lines = _render(grid, numbers, compact_cell_text, colour)
    key = _wrap_items("scenarios:", [visible(f"{n} {s}")
                                     for n, s in zip(numbers, grid.scenarios)], width)
    return "\n".join(lines + ["", *key,
                              "cells: ok = all passed, F = failed/runs, E = errors/runs"])


def _wrap_items(lead: str, items: list[str], width: int) -> list[str]:
    """``lead item, item, ...`` wrapped between items, never inside one."""
    lines, line = [], lead
    for i, item in enumerate(items):
        piece = item + ("," if i < len(items) - 1 else "")
        if len(line) + 1 + len(piece) > width and line.strip():
            lines.append(line)
            line = " " * len(lead) + " " + piece
        else:
            line = f"{line} {piece}"
    return lines + [line]


def _strip_colour(text: str) -> str:
    return re.sub(r"\033\[[0-9;]*m", "", text)


def failure_report(records: Sequence[RunRecord]) -> str:
    """Each run that did not pass: id, verdict, reasons, repro command."""
    blocks = []
    for record in records:
        if record.passed:
            continue
        lines = [visible(f"{record.verdict.upper()} {record.id}")]
        lines += [visible(f"    {reason}") for reason in record.reasons or ["no reason given"]]
        lines.append(visible(f"    reproduce: {record.command}"))
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def verdict_counts(records: Sequence[RunRecord]) -> str:
    passed = sum(1 for r in records if r.passed)
    failed = sum(1 for r in records if r.verdict is Verdict.FAIL)
    errors = len(records) - passed - failed
    return f"{len(records)} runs: {passed} passed, {failed} failed, {errors} errors"
