"""The matrix: expansion, shards, parallel execution, crash/hang recovery, CLI.

Real builds, real Unicorn runs. Each test narrows the matrix to a few runs
except where the full default expansion is the point (counts, shards),
and those only expand, they do not run.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from pyharness.builder import cache as builder
from pyharness.kconfig import resolve as kconfig
from pyharness.matrix.expand import KASLR_SEEDS_PER_CONFIG, cpus_for
from pyharness.run.spec import MODES
from pyharness.matrix import FAULTS_ENV, Selection, plan, run_matrix
from pyharness.matrix.worker import parse_faults
from pyharness.matrix.progress import BarProgress, LineProgress, make_progress
from pyharness.reports import load_records, write_json
from pyharness.run.scenarios import list_scenarios
from pyharness.run.record import RunRecord
from pyharness.judge.verdict import Verdict

SMALL = Selection(configs=("tiny", "nvhe"), scenarios=("smoke", "bug"))


def matrix_cli(*args: str, env: dict[str, str] | None = None) \
        -> subprocess.CompletedProcess[str]:
    """``pyharness matrix ARGS`` as a user runs it."""
    return subprocess.run([sys.executable, "-m", "pyharness", "matrix", *args],
                          capture_output=True, text=True, timeout=600, env=env,
                          stdin=subprocess.DEVNULL)


def scenario_names() -> list[str]:
    return [s.name for s in list_scenarios(builder.build("nvhe").elf)]


# Expansion

def test_default_is_every_shipped_config_x_modes_x_scenarios_x_first_and_last_cpu():
    matrix = plan(Selection())
    expected = 0
    for path in kconfig.named_configs():
        nr_cpus = kconfig.resolve(path).summary.nr_cpus
        expected += len(MODES) * len(scenario_names()) * len(cpus_for(nr_cpus))
    assert len(matrix.specs) == matrix.total_runs == expected
    assert len({s.id for s in matrix.specs}) == expected
    assert matrix.config_count == len(kconfig.named_configs())
    ids = {s.id for s in matrix.specs}
    assert {"pkvm_16k-protected-stack_overflow-cpu0", "smp-nvhe-smoke-cpu3",
            "tiny-protected-bug-cpu0"} <= ids
    assert "tiny-nvhe-smoke-cpu1" not in ids  # one CPU: CPU 0 only


def test_configs_modes_and_scenarios_narrow_the_matrix():
    matrix = plan(Selection(configs=("tiny", "pkvm*"), scenarios=("smoke", "stack_*"),
                            modes=("protected",)))
    ids = {s.id for s in matrix.specs}
    assert ids == {f"{config}-protected-{scenario}-cpu{cpu}"
                   for config, cpus in (("tiny", [0]), ("pkvm", [0, 1]),
                                        ("pkvm_16k", [0, 1]), ("pkvm_64k", [0, 1]),
                                        ("pkvm_clang", [0, 1]), ("pkvm_pac", [0, 1]))
                   for scenario in ("smoke", "stack_overflow") for cpu in cpus}


def test_kaslr_seeds_follow_the_seed():
    first = {s.id: s.kaslr_seed for s in plan(SMALL).specs}
    again = {s.id: s.kaslr_seed for s in plan(SMALL).specs}
    other = {s.id: s.kaslr_seed for s in plan(Selection(configs=("tiny", "nvhe"),
                                                        scenarios=("smoke", "bug"),
                                                        seed=7)).specs}
    assert first == again and first.keys() == other.keys() and first != other


def test_a_configurations_runs_share_a_few_kaslr_seeds():
    """Eight seeds per configuration (expand.KASLR_SEEDS_PER_CONFIG): the
    emulator translates code per VA, so every new offset costs a run its
    host code's translation again."""
    specs = plan(Selection(configs=("pkvm", "nvhe"))).specs
    seeds = {config: {s.kaslr_seed for s in specs if s.config_name == config}
             for config in ("pkvm", "nvhe")}
    assert all(4 <= len(chosen) <= KASLR_SEEDS_PER_CONFIG for chosen in seeds.values()), seeds
    assert not seeds["pkvm"] & seeds["nvhe"]


def test_shards_are_disjoint_and_together_the_whole_matrix():
    full = {s.id for s in plan(Selection()).specs}
    one = plan(Selection(shard="1/2"))
    two = plan(Selection(shard="2/2"))
    ids_one, ids_two = {s.id for s in one.specs}, {s.id for s in two.specs}
    assert not ids_one & ids_two
    assert ids_one | ids_two == full
    assert abs(len(ids_one) - len(ids_two)) <= 1
    assert one.total_runs == len(full) and "shard 1/2" in one.describe()


# Execution

def test_each_configuration_is_built_once_then_cached(tmp_path):
    specs = plan(SMALL).specs
    first = run_matrix(specs, jobs=2, out_dir=tmp_path)
    assert [r.verdict for r in first.records] == ["pass"] * len(specs)
    assert [(r.spec.config_name, r.spec.mode, r.spec.scenario, r.spec.cpu) for r in first.records] == \
        [(s.config_name, s.mode, s.scenario, s.cpu) for s in specs]
    assert sorted(b.name for b in first.builds) == ["nvhe", "tiny"]
    assert not any(b.cached for b in first.builds)
    assert all(r.elf.startswith(str(tmp_path)) for r in first.records)
    second = run_matrix(specs, jobs=2, out_dir=tmp_path)
    assert all(b.cached for b in second.builds)
    assert second.exit_code == 0


def test_a_crashing_and_a_hanging_worker_cost_only_their_runs():
    specs = plan(SMALL).specs
    crash, hang, broken = specs[0].id, specs[3].id, specs[5].id
    result = run_matrix(specs, jobs=2, kill_after_s=3.0,
                        faults={crash: "crash", hang: "hang", broken: "raise"})
    by_id = {r.id: r for r in result.records}
    assert len(by_id) == len(specs)
    assert by_id[crash].verdict == "error"
    assert "worker process died (exit code 86)" in by_id[crash].reasons[0]
    assert by_id[hang].verdict == "error"
    assert "no result within 3 s" in by_id[hang].reasons[0]
    assert by_id[broken].verdict == "error"
    assert "internal error: RuntimeError" in by_id[broken].reasons[0]
    assert by_id[broken].console  # the traceback, for whoever debugs the harness
    others = [r for i, r in by_id.items() if i not in (crash, hang, broken)]
    assert others and all(r.verdict == "pass" for r in others)
    assert result.workers_lost == 2
    assert result.exit_code == 1
    assert all(r.command.startswith("pyharness run --config") for r in result.records)


def test_fault_plan_syntax():
    assert parse_faults("crash:a-b-c-cpu0, hang:x") == {"a-b-c-cpu0": "crash", "x": "hang"}
    assert parse_faults("") == {}
    with pytest.raises(Exception, match="ACTION:RUN_ID"):
        parse_faults("explode:a")


# Progress

def test_progress_is_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = make_progress(stream)
    assert isinstance(progress, LineProgress)
    result = run_matrix(plan(Selection(configs=("tiny",), scenarios=("smoke", "bug"),
                                       modes=("nvhe",))).specs,
                        jobs=1, progress=progress,
                        faults={"tiny-nvhe-bug-cpu0": "crash"})
    lines = stream.getvalue().splitlines()
    assert "ERROR tiny-nvhe-bug-cpu0: the worker process died" in "\n".join(lines)
    assert lines[-1].startswith("[2/2] 1 failed")
    assert "\r" not in stream.getvalue()
    assert result.count("error") == 1


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_live_bar_on_a_terminal():
    stream = _Terminal()
    progress = make_progress(stream)
    assert isinstance(progress, BarProgress)
    run_matrix(plan(Selection(configs=("tiny",), scenarios=("smoke",))).specs, jobs=1,
               progress=progress)
    text = stream.getvalue()
    assert "\r" in text and "2/2 runs" in text and "failed=0" in text


# The command line

def test_cli_runs_writes_reports_and_exits_0(tmp_path):
    proc = matrix_cli("--configs", "tiny", "nvhe", "--scenarios", "smoke", "bug",
                      "--json", str(tmp_path / "m.json"), "--junit", str(tmp_path / "m.xml"),
                      "--html", str(tmp_path / "m.html"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("matrix (--configs): 2 configurations, 12 runs")
    assert any(line.split()[:3] == ["configuration", "smoke", "bug"] for line in out)
    assert "12 runs: 12 passed, 0 failed, 0 errors" in proc.stdout
    records = json.loads((tmp_path / "m.json").read_text())["runs"]
    assert len(records) == 12
    assert (tmp_path / "m.xml").is_file() and (tmp_path / "m.html").is_file()


def test_cli_failure_exits_1_with_reasons_and_repro_command(tmp_path):
    env = {**_environ(), FAULTS_ENV: "crash:tiny-protected-smoke-cpu0"}
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"  # pyharness on PATH
    proc = matrix_cli("--configs", "tiny", "--scenarios", "smoke", "--json",
                      str(tmp_path / "m.json"), env=env)
    assert proc.returncode == 1, proc.stderr
    assert "ERROR x1  tiny-protected-smoke-cpu0" in proc.stdout   # a cause of one run
    assert "the worker process died" in proc.stdout
    assert "reproduce: pyharness run --config" in proc.stdout
    assert "--scenario smoke --mode protected --cpu 0 --kaslr-seed" in proc.stdout


def test_only_failed_reruns_exactly_the_failures(tmp_path):
    first = run_matrix(plan(SMALL).specs, jobs=2)
    records = first.records
    records[2].verdict, records[2].reasons = "fail", ["frame 3: made up for the test"]
    records[4].verdict, records[4].reasons = "error", ["the worker process died"]
    earlier = tmp_path / "earlier.json"
    write_json(records, earlier)
    proc = matrix_cli("--only-failed", str(earlier), "--json", str(tmp_path / "again.json"))
    assert proc.returncode == 0, proc.stderr
    again = load_records(tmp_path / "again.json")
    key = [(r.spec.config, r.spec.mode, r.spec.scenario, r.spec.cpu, r.spec.kaslr_seed) for r in (records[2],
                                                                        records[4])]
    assert [(r.spec.config, r.spec.mode, r.spec.scenario, r.spec.cpu, r.spec.kaslr_seed) for r in again] == key
    assert all(r.passed for r in again)


def test_only_failed_with_nothing_failed_runs_nothing(tmp_path):
    records = run_matrix(plan(Selection(configs=("tiny",), scenarios=("smoke",),
                                        modes=("nvhe",))).specs, jobs=1).records
    write_json(records, tmp_path / "ok.json")
    proc = matrix_cli("--only-failed", str(tmp_path / "ok.json"))
    assert proc.returncode == 0, proc.stderr
    assert "0 runs" in proc.stdout


def _environ() -> dict[str, str]:
    import os

    return dict(os.environ)


@pytest.mark.parametrize("args, says", [
    (("--shard", "3/2"), "K must be between 1 and N"),
    (("--shard", "half"), "expected K/N"),
    (("--configs", "nosuch"), "matches no shipped config"),
    (("--scenarios", "nosuch"), "unknown scenario 'nosuch'"),
    (("--modes", "vhe"), "unknown mode 'vhe'"),
    (("--all", "--randconfig", "2"), "--all and --randconfig cannot be combined"),
    (("-j", "0"), "at least 1"),
    (("--only-failed", "missing.json"), "no such file"),
    (("--junit", "/nonexistent-dir/m.xml"), "does not exist"),
])
def test_bad_input_exits_2_with_one_line(args, says):
    proc = matrix_cli(*args)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("content", ['{"runs": [', "not json at all", "[1, 2]",
                                     '{"runs": [{"config": "x"}]}', '{"hello": 1}'])
def test_only_failed_on_a_corrupt_file_exits_2_with_one_line(tmp_path, content):
    path = tmp_path / "corrupt.json"
    path.write_text(content)
    proc = matrix_cli("--only-failed", str(path))
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert str(path) in proc.stderr and "pyharness matrix --json" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_randconfig_configs_are_kept_for_the_repro_commands(tmp_path):
    matrix = plan(Selection(randconfig=2, seed=5, scenarios=("smoke",), modes=("nvhe",),
                            out_dir=tmp_path))
    assert matrix.config_count == 2
    for spec in matrix.specs:
        assert Path(spec.config).is_file()
        assert Path(spec.config).is_relative_to(tmp_path / "matrix-configs" / "rand-5")
        assert spec.config_name.startswith("rand5-")


def test_all_prints_the_counts_before_starting():
    # The default build directory: its cache serves every later run of this test.
    proc = matrix_cli("--all", "--configs", "all-16k-va36-kaslr-pst-os-cpus4-pac-bti",
                      "--scenarios", "smoke", "-q")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith(
        "matrix (--all): 1 configuration, 4 runs")
    whole = plan(Selection(all_configs=True))
    assert whole.config_count == 168
    assert whole.total_runs == len(whole.specs) > 168 * len(MODES)


def test_runs_timed_before_start_longest_first(tmp_path):
    from pyharness.matrix.timings import (LONG_RUN_MS, load_timings, longest_first, row_file,
                                          save_timings)

    specs = plan(SMALL).specs
    result = run_matrix(specs, jobs=1, out_dir=None)
    rows = {s.row for s in specs}
    row = specs[0].row
    row_file(tmp_path, row).write_text('{"gone-nvhe-smoke-cpu0": 1.0}')
    save_timings(tmp_path, result.records)
    timings = load_timings(tmp_path, rows)
    assert set(timings) == {s.id for s in specs} | {"gone-nvhe-smoke-cpu0"}
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{r}.json" for r in rows)
    # The order is checked on chosen times: measured ones pass LONG_RUN_MS
    # on a loaded machine, and the order must not depend on the load.
    timings = {spec.id: 1.0 for spec in specs}
    timings[specs[3].id] = 1e6
    del timings[specs[5].id]
    ordered = [spec for _, spec in longest_first(list(enumerate(specs)), timings)]
    order = [spec.id for spec in ordered]
    assert order[:2] == [specs[5].id, specs[3].id]  # never timed, then the longest
    # Then the long ones, then the short ones image by image, offset by offset.
    took = [timings.get(spec.id, float("inf")) for spec in ordered]
    long_ones = sum(t >= LONG_RUN_MS for t in took)
    assert all(t >= LONG_RUN_MS for t in took[:long_ones]), took
    short = [(spec.config, spec.kaslr_seed) for spec in ordered[long_ones:]]
    assert short == sorted(short) and len(short) >= 8
    row_file(tmp_path, row).write_text("{broken")
    assert set(load_timings(tmp_path, rows)) == {s.id for s in specs if s.row != row}


def test_timings_file_is_rewritten_only_when_a_time_moved(tmp_path):
    from pyharness.matrix.timings import SAME_TIME_MS, read_timings, row_file, save_timings

    spec = plan(SMALL).specs[0]
    path = row_file(tmp_path, spec.row)

    def took(ms: float) -> RunRecord:
        return RunRecord(spec=spec, verdict=Verdict.PASS, reasons=[], console=[],
                         instructions=1000, elapsed_ms=ms)

    save_timings(tmp_path, [took(10.0)])
    assert read_timings(path) == {spec.id: 10.0}
    path.write_text('{"%s": 10.0, "marker": 1}' % spec.id)
    # Within the tolerance: the file is left as it was, marker and all.
    save_timings(tmp_path, [took(10.0 + SAME_TIME_MS / 2)])
    assert path.read_text() == '{"%s": 10.0, "marker": 1}' % spec.id
    save_timings(tmp_path, [took(40.0)])
    assert read_timings(path) == {spec.id: 40.0, "marker": 1.0}
    # A run that never started says nothing; a missing file is written.
    save_timings(tmp_path, [replace(took(99.0), instructions=0)])
    assert read_timings(path) == {spec.id: 40.0, "marker": 1.0}
    path.unlink()
    save_timings(tmp_path, [took(40.0)])
    assert read_timings(path) == {spec.id: 40.0}


def test_timings_row_files_are_plain_names(tmp_path):
    from pyharness.matrix.timings import row_file

    assert row_file(tmp_path, "linux-6.12/pkvm").name == "linux-6.12+pkvm.json"
    assert row_file(tmp_path, "../x y").parent == tmp_path
    assert row_file(tmp_path, "../x y").name == "..+x_y.json"


@pytest.fixture
def rejecting_compiler(tmp_path: Path) -> str:
    """A cross prefix whose gcc rejects every file (its ld and objcopy are real)."""
    import shutil

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("ld", "objcopy", "nm"):
        real = shutil.which(f"aarch64-linux-gnu-{tool}")
        assert real is not None
        (bin_dir / f"broken-{tool}").symlink_to(real)
    gcc = bin_dir / "broken-gcc"
    gcc.write_text('#!/bin/sh\ncase "$*" in *--version*) echo "broken-gcc 0.0"; exit 0;; esac\n'
                   'echo "error: this compiler rejects every file" >&2; exit 1\n')
    gcc.chmod(0o755)
    return str(bin_dir / "broken-")


def test_a_configuration_that_fails_to_build_costs_only_its_runs(tmp_path, monkeypatch,
                                                                 rejecting_compiler):
    specs = plan(Selection(configs=("tiny",), scenarios=("smoke",))).specs
    monkeypatch.setenv("CROSS_COMPILE", rejecting_compiler)
    result = run_matrix(specs, jobs=2, out_dir=tmp_path / "out")
    assert [b.ok for b in result.builds] == [False]
    assert all(r.verdict == "error" for r in result.records)
    assert all(r.reasons[0].startswith("build failed:") for r in result.records)
    assert "error: this compiler rejects every file" in result.records[0].reasons[0]
    assert any("rejects every file" in line for line in result.records[0].console)
    assert result.exit_code == 1


def test_all_meets_every_toolchain_variant_with_every_page_size_and_stacktrace_option(tmp_path):
    from pyharness.matrix.expand import TOOLCHAIN_VARIANTS, enumerate_all

    seen: dict[tuple, set] = {}
    for path in enumerate_all(tmp_path):
        s = kconfig.resolve(path).summary
        seen.setdefault((s.compiler, s.pac_ret, s.bti), set()).add(
            (s.page_size_kb, s.protected_stacktrace))
    assert len(seen) == len(TOOLCHAIN_VARIANTS)
    everything = {(page, pst) for page in (4, 16, 64) for pst in (False, True)}
    assert all(pairs == everything for pairs in seen.values()), seen


def test_randconfig_draws_clang_and_pointer_authentication(tmp_path):
    from pyharness.matrix.expand import random_configs

    summaries = [kconfig.resolve(p).summary for p in random_configs(24, 3, tmp_path)]
    assert {s.compiler for s in summaries} == {"gcc", "clang"}
    assert {s.pac_ret for s in summaries} == {False, True}
    assert {s.bti for s in summaries} == {False, True}
