"""Runs arranged as configurations x scenarios, for the table and the page.

A cell holds every run of one configuration and scenario (both modes, each
CPU). Its status is the worst of its runs: ``fail`` over ``error`` over
``pass``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from pyharness.judge.verdict import Verdict
from pyharness.run.record import RunRecord

_RANK = {Verdict.PASS: 0, Verdict.ERROR: 1, Verdict.FAIL: 2}


@dataclass(frozen=True)
class Cell:
    config_name: str
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
        return f"cell-{self.config_name}-{self.scenario}"


@dataclass(frozen=True)
class Grid:
    configs: tuple[str, ...]
    scenarios: tuple[str, ...]
    cells: dict[tuple[str, str], Cell]

    def cell(self, config_name: str, scenario: str) -> Cell:
        return self.cells.get((config_name, scenario), Cell(config_name, scenario, ()))


def make_grid(records: Sequence[RunRecord]) -> Grid:
    """Rows and columns in the order the runs first name them."""
    configs = tuple(dict.fromkeys(r.spec.config_name for r in records))
    scenarios = tuple(dict.fromkeys(r.spec.scenario for r in records))
    grouped: dict[tuple[str, str], list[RunRecord]] = {}
    for record in records:
        grouped.setdefault((record.spec.config_name, record.spec.scenario), []).append(record)
    cells = {key: Cell(key[0], key[1], tuple(runs)) for key, runs in grouped.items()}
    return Grid(configs, scenarios, cells)
