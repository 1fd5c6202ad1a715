"""The scenarios a run can ask for: the firmware's own (read from the
image, :mod:`pyharness.elf.scenario_table`) and the harness's frame-record
corruptions built on them (:mod:`pyharness.judge.corruption`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyharness.elf.scenario_table import firmware_scenarios
from pyharness.errors import HarnessError
from pyharness.judge.corruption import FAULTS


@dataclass(frozen=True)
class Scenario:
    """One scenario: its number (the platform's scenario register), name,
    help, and for a fault-injection scenario the fault it adds to the
    firmware scenario of that number."""

    number: int
    name: str
    description: str
    fault: str | None = None


def list_scenarios(elf: Path) -> list[Scenario]:
    """Every scenario the image at ``elf`` knows, in number order, then the
    harness's fault-injection scenarios built on them."""
    firmware = [Scenario(s.number, s.name, s.description) for s in firmware_scenarios(elf)]
    numbers = {s.name: s.number for s in firmware}
    faults = [Scenario(numbers[f.base], f.name, f"{f.description} (on {f.base})", f.name)
              for f in FAULTS if f.base in numbers]
    return firmware + faults


def find_scenario(elf: Path, name: str) -> Scenario:
    """The scenario called ``name``, or an error listing the known ones."""
    known = list_scenarios(elf)
    for scenario in known:
        if scenario.name == name:
            return scenario
    names = ", ".join(s.name for s in known)
    raise HarnessError(f"unknown scenario {name!r}; known scenarios: {names} "
                       "(`pyharness scenarios` describes them)")
