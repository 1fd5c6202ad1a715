"""Runs arranged as configurations x scenarios, for the table and the page.

A row is a configuration with its unwinder (``RunSpec.row``: ``pkvm`` with
the lab's own, ``linux-6.12/pkvm`` with a kernel tree's). A cell holds every
run of one row and scenario (both modes, each CPU). Its status is the worst
of its runs: ``fail`` over ``error`` over ``pass``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pyharness.judge.verdict import Verdict
from pyharness.run.record import RunRecord

_RANK = {Verdict.PASS: 0, Verdict.ERROR: 1, Verdict.FAIL: 2}


@dataclass(frozen=True)
class Cell:
    row: str
    scenario: str
    records: tuple[RunRecord, ...]

    @property
    def status(self) -> str:
        if not self.records:
            return "none"
        return max((r.verdict for r in self.records), key=lambda v: _RANK.get(v, 2))

    @property
    def passed(self) -> int:
        return sum(1 for r in self.records if r.passed)

    @property
    def anchor(self) -> str:
        return f"cell-{self.row}-{self.scenario}"


@dataclass(frozen=True)
class Grid:
    rows: tuple[str, ...]
    scenarios: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]

    def cell(self, row: str, scenario: str) -> Cell:
        return self.cells.get((row, scenario), Cell(row, scenario, ()))


def make_grid(records: Sequence[RunRecord]) -> Grid:
    """Rows and columns in the order the runs first name them."""
    rows = tuple(dict.fromkeys(r.spec.row for r in records))
    scenarios = tuple(dict.fromkeys(r.spec.scenario for r in records))
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        grouped.setdefault((record.spec.row, record.spec.scenario), []).append(record)
    cells = {key: Cell(key[0], key[1], tuple(runs)) for key, runs in grouped.items()}
    return Grid(rows, scenarios, cells)
