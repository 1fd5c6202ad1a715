"""``pyharness report merge``: the shards' JSON reports make the unsharded one.

One small real matrix (tiny and nvhe x smoke and bug: 12 runs) runs three
times through the command line, whole and as shards 1/2 and 2/2; the
merge of the shards must be the whole run's report, timings aside.
"""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from pyharness.reports.merge import merge_reports

MATRIX = ("--configs", "tiny", "nvhe", "--scenarios", "smoke", "bug", "-q")
TIMINGS = ("elapsed_ms", "build_ms")


def pyharness(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyharness", *args], capture_output=True,
                          text=True, timeout=600, cwd=cwd, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    paths = {"whole": out / "whole.json", "1": out / "shard1.json", "2": out / "shard2.json"}
    for key, path in paths.items():
        shard = () if key == "whole" else ("--shard", f"{key}/2")
        proc = pyharness("matrix", *MATRIX, *shard, "--json", str(path))
        assert proc.returncode == 0, proc.stderr
    return paths


def without_timings(document: dict) -> dict:
    for run in document["runs"]:
        for name in TIMINGS:
            run.pop(name)
    return document


def test_the_shards_merged_are_the_unsharded_matrix(reports, tmp_path):
    merged = tmp_path / "merged.json"
    proc = pyharness("report", "merge", str(reports["2"]), str(reports["1"]),
                     "--json", str(merged), "--junit", str(tmp_path / "m.xml"),
                     "--html", str(tmp_path / "m.html"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("merged 2 reports: 12 runs\n")
    assert "12 runs: 12 passed, 0 failed, 0 errors" in proc.stdout
    whole = json.loads(reports["whole"].read_text())
    assert whole["plan"]["shard"] is None and whole["plan"]["runs"] == 12
    one = json.loads(reports["1"].read_text())
    assert one["plan"]["shard"] == "1/2" and one["plan"]["ids"] == whole["plan"]["ids"]
    assert without_timings(json.loads(merged.read_text())) == without_timings(whole)
    cases = ET.parse(tmp_path / "m.xml").getroot().findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == whole["plan"]["ids"]
    assert (tmp_path / "m.html").stat().st_size > 1000


def test_the_same_run_twice_is_kept_once(reports):
    merged = merge_reports([reports["1"], reports["whole"], reports["2"]])
    assert merged.duplicates == 12 and len(merged.records) == 12 and not merged.missing
    proc = pyharness("report", "merge", str(reports["1"]), str(reports["1"]),
                     str(reports["2"]))
    assert proc.returncode == 0 and "6 duplicate runs dropped" in proc.stdout


def test_a_missing_shard_is_said_and_exits_1(reports):
    proc = pyharness("report", "merge", str(reports["1"]))
    assert proc.returncode == 1
    assert "incomplete: 6 of the matrix's 12 runs are in none of the reports" in proc.stdout


def test_conflicting_copies_of_a_run_exit_2_naming_it(reports, tmp_path):
    document = json.loads(reports["1"].read_text())
    run = document["runs"][1]
    run["verdict"], run["reasons"] = "fail", ["frame 2: made up for the test"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(document))
    proc = pyharness("report", "merge", str(reports["whole"]), str(edited))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert f"run {run['config_name']}-{run['mode']}-{run['scenario']}-cpu{run['cpu']}" \
        in proc.stderr and "verdict pass vs fail" in proc.stderr


def test_reports_of_different_matrices_exit_2(reports, tmp_path):
    other = tmp_path / "other.json"
    proc = pyharness("matrix", "--configs", "tiny", "--scenarios", "smoke", "-q",
                     "--json", str(other))
    assert proc.returncode == 0
    proc = pyharness("report", "merge", str(reports["1"]), str(other))
    assert proc.returncode == 2 and "come from different matrices" in proc.stderr


def test_writing_over_an_input_is_refused(reports):
    proc = pyharness("report", "merge", str(reports["1"]), str(reports["2"]),
                     "--json", str(reports["2"]))
    assert proc.returncode == 2 and "is one of the reports being merged" in proc.stderr


def test_runs_without_a_plan_come_out_in_matrix_order(reports, tmp_path):
    whole = json.loads(reports["whole"].read_text())
    paths = []
    for i, run in enumerate(reversed(whole["runs"])):       # `pyharness run --json` files
        path = tmp_path / f"run{i}.json"
        path.write_text(json.dumps(run))
        paths.append(path)
    merged = merge_reports(paths)
    assert merged.plan is None
    configs = [r.spec.config_name for r in merged.records]
    assert configs == sorted(configs, key=configs.index)     # each configuration together
    assert [r.spec.mode for r in merged.records[:4]] == ["nvhe"] * 4
    assert {r.id for r in merged.records} == set(whole["plan"]["ids"])


def test_ci_merges_the_shards_and_publishes_one_report():
    workflow = (Path(__file__).resolve().parents[1] / ".github" / "workflows"
                / "matrix.yml").read_text()
    job = workflow[workflow.index("\n  report:"):workflow.index("\n  randconfig:")]
    assert "needs: matrix" in job and "if: always()" in job
    assert "pattern: matrix-shard-*" in job
    assert ("pyharness report merge shards/*/matrix-*.json" in job
            and "--junit reports/matrix.xml --html reports/matrix.html" in job)
    assert "--json reports/matrix-${{ matrix.shard }}.json" in workflow   # what it merges
    assert "name: matrix-report" in job


# Issue 26, item 10: shards of different matrices of the same runs

@pytest.fixture(scope="module")
def other_matrices(tmp_path_factory) -> dict[str, Path]:
    """Shard 2/2 of the same runs with another seed, and with another budget."""
    out = tmp_path_factory.mktemp("others")
    paths = {"seed": out / "seed.json", "budget": out / "budget.json"}
    for key, extra in (("seed", ("--seed", "5")), ("budget", ("--max-instructions", "30000000"))):
        proc = pyharness("matrix", *MATRIX, "--shard", "2/2", *extra, "--json", str(paths[key]))
        assert proc.returncode == 0, proc.stderr
    return paths


@pytest.mark.parametrize("which,says", [("seed", "--seed 0 and --seed 5"),
                                        ("budget", "--max-instructions 20000000 and "
                                                   "--max-instructions 30000000")])
def test_shards_of_matrices_with_other_seeds_or_budgets_exit_2(reports, other_matrices,
                                                               which, says):
    proc = pyharness("report", "merge", str(reports["1"]), str(other_matrices[which]))
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert says in proc.stderr and "different matrices" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_shards_whose_label_names_two_trees_exit_2(reports, tmp_path):
    """Two trees of one generation under one label never share a row, even
    when no run of one tree is in the other's shard."""
    paths = []
    for key, tree in (("1", "/src/a/linux"), ("2", "/src/b/linux")):
        document = json.loads(reports[key].read_text())
        document["plan"]["trees"] = [{"label": "linux-6.12", "kernel_src": tree,
                                      "generation": "6.12"}]
        paths.append(tmp_path / f"{key}.json")
        paths[-1].write_text(json.dumps(document))
    proc = pyharness("report", "merge", *map(str, paths))
    assert proc.returncode == 2 and "/src/a/linux" in proc.stderr \
        and "/src/b/linux" in proc.stderr, proc.stderr


def test_the_plan_records_seed_budgets_and_trees(reports):
    plan = json.loads(reports["1"].read_text())["plan"]
    assert plan["seed"] == 0 and plan["max_instructions"] == 20_000_000
    assert plan["timeout_s"] == 30.0 and plan["trees"] == []
