"""The terminal grid fits 120 columns (or the width it is given): a table
of every scenario is cut into blocks of numbered columns, and every cell
and scenario name is still there."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyharness.builder import kernelsrc
from pyharness.judge.verdict import Verdict
from pyharness.reports import summary_table
from pyharness.reports.grid import make_grid
from pyharness.reports.summary import cell_text, compact_cell_text
from pyharness.run.record import RunRecord
from pyharness.run.spec import MODES, RunSpec

SHIPPED = ("nvhe", "pkvm", "pkvm_clang", "pkvm_pac", "pkvm_16k", "pkvm_64k", "nvhe_64k",
           "smp", "tiny")
SCENARIOS = tuple(f"scenario_number_{i}" for i in range(38))


def _records(rows: list[tuple[str, str]], scenarios: tuple[str, ...],
             failing: frozenset[tuple[str, str]] = frozenset()) -> list[RunRecord]:
    """Four runs (two modes, two CPUs) per row and scenario; one of them
    fails where (config, scenario) is in ``failing``."""
    records = []
    for config, unwinder in rows:
        for scenario in scenarios:
            for mode in MODES:
                for cpu in (0, 1):
                    spec = RunSpec(config=f"configs/{config}_defconfig", config_name=config,
                                   mode=mode, scenario=scenario, cpu=cpu, kaslr_seed=1,
                                   unwinder=unwinder)
                    failed = (config, scenario) in failing and (mode, cpu) == ("nvhe", 0)
                    records.append(RunRecord(spec=spec,
                                             verdict=Verdict.FAIL if failed else Verdict.PASS,
                                             reasons=["x"] if failed else [], console=[],
                                             instructions=1, elapsed_ms=1.0))
    return records


def _cells_read_back(table: str) -> dict[tuple[str, str], str]:
    """Every cell of a numbered table, by row and scenario name (the key's)."""
    key_text = " ".join(line.strip() for line in table.split("\nscenarios:")[1].splitlines()
                        if not line.startswith("cells:"))
    names = dict(re.findall(r"(\d+) ([^\s,]+)", key_text))
    cells: dict[tuple[str, str], str] = {}
    for block in table.split("\nscenarios:")[0].split("\n\n"):
        header, *rows = block.splitlines()
        numbers = header.split()[1:]
        for row in rows:
            name, *texts = row.split()
            assert len(texts) == len(numbers), block
            for number, text in zip(numbers, texts):
                assert (name, names[number]) not in cells      # each cell once
                cells[(name, names[number])] = text
    return cells


@pytest.mark.parametrize("rows", [
    [(c, "lab") for c in SHIPPED],                                      # the lab's default
    [(c, u) for c in ("pkvm", "smp") for u in ("lab", "linux-6.1", "linux-6.12")],
    [("pkvm_clang", "linux-6.12-src-linux")],                           # a long row name
])
def test_every_scenario_fits_120_columns_and_every_cell_is_kept(rows):
    records = _records(rows, SCENARIOS, failing=frozenset({(rows[0][0], SCENARIOS[3]),
                                                            (rows[-1][0], SCENARIOS[37])}))
    table = summary_table(records)
    assert max(len(line) for line in table.splitlines()) <= 120, table
    grid = make_grid(records)
    expected = {(row, s): compact_cell_text(grid.cell(row, s))
                for row in grid.rows for s in grid.scenarios}
    assert _cells_read_back(table) == expected
    assert "F1/4" in table


def test_blocks_are_even_and_a_wider_terminal_takes_one():
    records = _records([(c, "lab") for c in SHIPPED], SCENARIOS)
    blocks = summary_table(records).split("\nscenarios:")[0].split("\n\n")
    assert [len(b.splitlines()[0].split()) - 1 for b in blocks] == [19, 19]
    wide = summary_table(records, width=200)
    assert "\n\n" not in wide.split("\nscenarios:")[0]
    assert max(len(line) for line in wide.split("\nscenarios:")[0].splitlines()) > 120


def test_a_table_that_fits_is_unchanged():
    records = _records([("pkvm", "lab"), ("nvhe", "lab")], ("smoke", "bug", "hyp_panic"))
    lines = summary_table(records).splitlines()
    assert lines[0].split() == ["configuration", "smoke", "bug", "hyp_panic"]
    assert len(lines) == 3 and all(line.split()[1:] == ["pass", "4"] * 3 for line in lines[1:])
    assert cell_text(make_grid(records).cell("pkvm", "bug")) == "pass 4"


def test_a_kernel_src_matrix_report_fits_120_columns(tmp_path):
    """A real ``matrix --kernel-src`` of every scenario, its report on a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    tarball = str(kernelsrc.debian_tarball("6.12"))
    proc = subprocess.run([sys.executable, "-m", "pyharness", "matrix", "--configs", "pkvm",
                           "--kernel-src", tarball, "-q", "-j", "1",
                           "--out", str(tmp_path)], env=env, capture_output=True, text=True,
                          timeout=900, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr
    assert max(len(line) for line in proc.stdout.splitlines()) <= 120, proc.stdout
    table = proc.stdout.split("\n\n", 1)[1].split("\ncells:")[0]
    cells = _cells_read_back(table)
    scenarios = {scenario for _, scenario in cells}
    assert {row for row, _ in cells} == {"linux-6.12/pkvm"}
    assert {"smoke", "hyp_panic", "fault_packed_stacks"} <= scenarios and len(scenarios) > 30
    assert set(cells.values()) == {"ok"}
