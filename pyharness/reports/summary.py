"""The terminal summary: a configurations x scenarios table, then each failure.

A cell reads ``pass 4`` (all four runs passed), ``FAIL 1/4`` (one of four
did not pass, and at least one of those failed a check), ``ERROR 1/4``
(none failed a check, but one could not be judged) or ``-`` (not run).
A table too wide for the terminal (120 columns unless it says) numbers its
columns and shortens cells to ``ok``, ``F1/4``, ``E1/4``, and when that is
still too wide, prints its columns in blocks one under the other.
Every failure follows with its reasons and the one-line command that
reproduces it.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True)
class _Layout:
    """A grid's texts and column widths, before it is cut into blocks."""

    grid: Grid
    headers: list[str]
    texts: dict[tuple[str, str], str]
    names: dict[str, str]
    first: int              # the row names' column
    widths: list[int]       # each scenario column's

    @classmethod
    def of(cls, grid: Grid, headers: list[str], cell_texts: Callable[[Cell], str]) -> _Layout:
        texts = {(c, s): cell_texts(grid.cell(c, s)) for c in grid.rows for s in grid.scenarios}
        names = {c: visible(c) for c in grid.rows}
        headers = [visible(h) for h in headers]
        first = max(len("configuration"), *(len(n) for n in names.values()))
        widths = [max(len(h), *(len(texts[(c, s)]) for c in grid.rows))
                  for s, h in zip(grid.scenarios, headers)]
        return cls(grid, headers, texts, names, first, widths)

    def span(self, columns: Sequence[int]) -> int:
        """The width of a block of these columns (its lines' longest)."""
        return self.first + sum(2 + self.widths[i] for i in columns)

    def render(self, columns: Sequence[int], colour: bool) -> list[str]:
        lines = ["  ".join([f"{'configuration':<{self.first}}",
                            *(f"{self.headers[i]:<{self.widths[i]}}" for i in columns)]).rstrip()]
        for config in self.grid.rows:
            row = [f"{self.names[config]:<{self.first}}"]
            for i in columns:
                scenario = self.grid.scenarios[i]
                text = f"{self.texts[(config, scenario)]:<{self.widths[i]}}"
                status = self.grid.cell(config, scenario).status
                if colour and status in _COLOURS:
                    text = f"{_COLOURS[status]}{text}{_RESET}"
                row.append(text)
            lines.append("  ".join(row).rstrip())
        return lines

    def blocks(self, width: int) -> list[range]:
        """The columns cut into the fewest blocks that fit ``width``, of
        about as many columns each; a column too wide alone is a block of
        its own."""
        count = len(self.widths)
        need, start = 0, 0
        while start < count:                  # the fewest blocks, filled greedily
            end = start + 1
            while end < count and self.span(range(start, end + 1)) <= width:
                end += 1
            need, start = need + 1, end
        for parts in range(need, count + 1):   # as many or a few more, evened out
            size = -(-count // parts)
            even = [range(i, min(i + size, count)) for i in range(0, count, size)]
            if all(self.span(block) <= width or len(block) == 1 for block in even):
                return even
        return [range(i, i + 1) for i in range(count)]


def summary_table(records: Sequence[RunRecord], colour: bool = False,
                  width: int = 120) -> str:
    """The table, one row per configuration (and unwinder), one column per scenario.

    When full scenario names and words do not fit in ``width`` columns,
    the columns are numbered (a key follows) and cells are compact; when
    those still do not fit (every scenario of a matrix: 38 columns), the
    columns are cut into blocks, one under the other, each with every row.
    """
    grid = make_grid(records)
    if not grid.rows:
        return "(no runs)"
    every = range(len(grid.scenarios))
    full = _Layout.of(grid, list(grid.scenarios), cell_text)
    if full.span(every) <= width:
        return "\n".join(full.render(every, colour))
    numbers = [str(i) for i in range(1, len(grid.scenarios) + 1)]
    compact = _Layout.of(grid, numbers, compact_cell_text)
    lines: list[str] = []
    for block in compact.blocks(width):
        lines += ([""] if lines else []) + compact.render(block, colour)
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
