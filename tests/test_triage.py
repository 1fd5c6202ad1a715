"""Triage at scale: failures grouped by cause, runs said as globs, a broken
firmware's matrix on one screen, --max-failures, -v.

The end-to-end tests break a copy of the firmware tree (two printed words
changed) and point the harness at it with NVHE_LAB_ROOT, as a developer
with a bad patch would run it.
"""

from __future__ import annotations

import fnmatch
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyharness.judge.verdict import Verdict
from pyharness.reports.causes import cause_key, group_failures, normalise
from pyharness.reports.runsets import describe_runs
from pyharness.reports.triage import grouped_failures
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec

REPO = Path(__file__).resolve().parents[1]


def spec(config: str, mode: str, scenario: str, cpu: int) -> RunSpec:
    return RunSpec(config=f"configs/{config}_defconfig", config_name=config, mode=mode,
                   scenario=scenario, cpu=cpu, kaslr_seed=cpu + 7)


CONFIGS = {"nvhe": 2, "nvhe_64k": 2, "pkvm": 2, "pkvm_16k": 2, "pkvm_64k": 2, "smp": 4,
           "tiny": 1}
SCENARIOS = ["smoke", "hyp_panic", "stack_overflow", "bug", "fault_fp_misaligned",
             "fault_fp_outside", "fault_lr_tagged"]
UNIVERSE = [spec(c, m, s, cpu) for c, n in CONFIGS.items() for m in ("nvhe", "protected")
            for s in SCENARIOS for cpu in sorted({0, n - 1})]


def record(run: RunSpec, verdict: str = "pass", reasons: list[str] | None = None) -> RunRecord:
    return RunRecord(spec=run, verdict=Verdict(verdict), reasons=reasons or [], console=[],
                     instructions=1, elapsed_ms=1.0)


def matches(glob: str, run: RunSpec) -> bool:
    """Whether a rendered glob (``config/mode/scenario[/cpuN]``) names ``run``."""
    parts = glob.split("/")
    values = [run.config_name, run.mode, run.scenario, f"cpu{run.cpu}"]

    def one(pattern: str, value: str) -> bool:
        if pattern.startswith("!("):
            return value not in pattern[2:-1].split("|")
        if pattern.startswith("{"):
            return any(fnmatch.fnmatchcase(value, p) for p in pattern[1:-1].split(","))
        return fnmatch.fnmatchcase(value, pattern)
    return all(one(p, v) for p, v in zip(parts, values))


# Normalising reasons

@pytest.mark.parametrize("a, b", [
    ("frame 3: expected __kvm_nvhe_c+0x10/0x20 at ffff800008011000, got __kvm_nvhe_b+0x8/0x20 "
     "at ffff800008010ff0",
     "frame 12: expected __kvm_nvhe_c+0x18/0x28 at ffff800009a11000, got __kvm_nvhe_b+0xc/0x28 "
     "at ffff800009a10ff0"),
    ("unexpected line inside the trace: '[    0.000135] kvm [1]: ---- End of x ----'",
     "unexpected line inside the trace: '[  126.86] kvm [371]: ---- End of x ----'"),
    ("firmware exited with status 81, expected 0", "firmware exited with status 82, expected 0"),
    ("build failed: firmware build failed in /w/build/pkvm-6929665b2e85 (exit 1): "
     "csrc/hyp/switch.c:14:5: error: expected ';'",
     "build failed: firmware build failed in /w/build/all-4k-va48-kaslr-pst-o2-cpus4-"
     "0a1b2c3d4e5f (exit 1): csrc/hyp/switch.c:14:5: error: expected ';'"),
])
def test_run_specific_numbers_do_not_make_another_cause(a, b):
    assert normalise(a) == normalise(b)


@pytest.mark.parametrize("a, b", [
    ("footer missing", "protected trace header missing"),   # another difference
    ("every frame printed 0x4 past its expected pc (3 frames; frame 0: expected f+0x4/0x8 at "
     "ffff800008000010, got f+0x8/0x8 at ffff800008000014)",
     "trace cut after frame 0: 2 more expected, the first frame 1, f+0x4/0x8 at "
     "ffff800008000010"),                                   # another pattern
])
def test_another_difference_is_another_cause(a, b):
    assert normalise(a) != normalise(b)


def test_the_same_reasons_repeated_or_reordered_are_one_cause():
    one = record(UNIVERSE[0], "fail", ["frame 4: missing, expected f+0x4/0x8 at ffff800008000010",
                                       "footer missing"])
    two = record(UNIVERSE[1], "fail", ["footer missing"] + [
        f"frame {i}: missing, expected f+0x4/0x8 at ffff8000080000{i}0" for i in range(5, 9)])
    assert cause_key(one) == cause_key(two)
    assert cause_key(one) != cause_key(record(UNIVERSE[1], "error", ["footer missing"]))


# Runs as globs

def test_a_cause_of_every_pkvm_protected_run_is_one_glob():
    chosen = [r for r in UNIVERSE if r.config_name.startswith("pkvm") and r.mode == "protected"]
    assert describe_runs(chosen, UNIVERSE) == ["pkvm*/protected/*"]


def test_globs_over_scenarios_cpus_and_irregular_cpu_counts():
    # tiny has CPU 0 only, smp CPUs 0 and 3: '*' on the CPU axis covers both.
    chosen = [r for r in UNIVERSE if r.scenario.startswith("fault_") and r.mode == "nvhe"
              and r.config_name in ("tiny", "smp")]
    assert describe_runs(chosen, UNIVERSE) == ["{smp,tiny}/nvhe/fault_*"]
    last = [r for r in UNIVERSE if r.config_name == "smp" and r.cpu == 3]
    assert describe_runs(last, UNIVERSE) == ["smp/*/*/cpu3"]
    everything = describe_runs(UNIVERSE, UNIVERSE)
    assert everything == ["*/*/*"]


def test_segment_globs_for_generated_names():
    names = [f"all-{p}k-va48-kaslr-{t}-o2-cpus4" for p in (4, 16, 64) for t in ("pst", "dbg")]
    universe = [spec(n, "nvhe", "smoke", 0) for n in names]
    chosen = [s for s in universe if "-pst-" in s.config_name]
    assert describe_runs(chosen, universe) == ["all-*-pst-*/nvhe/smoke"]


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(min_value=0, max_value=len(UNIVERSE) - 1), min_size=1))
def test_globs_name_exactly_the_chosen_runs(indices):
    chosen = [UNIVERSE[i] for i in sorted(indices)]
    globs = describe_runs(chosen, UNIVERSE)
    named = {r.id for r in UNIVERSE if any(matches(g, r) for g in globs)}
    assert named == {r.id for r in chosen}


# The grouped report

def _broken_records() -> list[RunRecord]:
    records = [record(r) for r in UNIVERSE]
    for rec in records:
        if rec.spec.config_name.startswith("pkvm") and rec.spec.mode == "protected" \
                and rec.spec.scenario != "smoke":
            rec.verdict, rec.reasons = Verdict.FAIL, [
                f"frame {rec.spec.cpu + 3}: missing, expected __kvm_nvhe___host_exit+0x64/0x64 "
                f"at ffff80000800{rec.spec.cpu}064", "footer missing"]
        if rec.spec.config_name == "smp" and rec.spec.scenario == "bug":
            rec.verdict, rec.reasons = Verdict.ERROR, ["emulation error: unmapped fetch"]
        if rec.spec.config_name == "tiny" and rec.spec.scenario == "smoke":
            rec.verdict, rec.reasons = Verdict.FAIL, ["line missing (or out of order): 'hello'"]
    return records


def test_groups_largest_first_with_globs_reasons_and_one_command():
    records = _broken_records()
    groups = group_failures(records)
    assert [len(g.records) for g in groups] == [36, 4, 2]
    text = grouped_failures(records)
    lines = text.splitlines()
    assert lines[0].startswith("42 runs did not pass, 3 causes")
    assert "FAIL x36  pkvm*/protected/!(smoke)" in lines
    assert "    footer missing" in lines
    assert "ERROR x4  smp/*/bug" in lines
    assert any(line.startswith("FAIL x2  tiny/*/smoke") for line in lines)
    assert text.count("reproduce: pyharness run") == 3
    assert len(lines) < 25


def test_many_causes_stay_within_the_line_budget():
    words = "abcdefghijklmnopqrstuvwxyz"
    records = [record(r, "fail", [f"frame 1: expected __kvm_nvhe_f+0x4/0x8, "
                                  f"{words[i % 26]}{words[i // 26 % 26]} went wrong"])
               for i, r in enumerate(UNIVERSE)]
    text = grouped_failures(records, max_lines=40)
    lines = text.splitlines()
    assert len(lines) <= 40
    assert lines[-1].startswith("... and ") and "see the --json/--junit/--html" in lines[-1]
    assert any(line.startswith("FAIL x1  ") and ": frame 1:" in line for line in lines)


# A broken firmware, end to end

def _copy_tree(destination: Path) -> Path:
    files = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True,
                           text=True, check=True).stdout.splitlines()
    for name in files:
        if name.startswith(("csrc/", "cmake/", "configs/")) or name in (
                "Kconfig", "CMakeLists.txt", "pyharness/builder/kallsyms_gen.py"):
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes((REPO / name).read_bytes())
    return destination


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory) -> Path:
    """The firmware with a protected footer and the invalid-exception line misspelt."""
    root = _copy_tree(tmp_path_factory.mktemp("broken"))
    source = root / "csrc" / "host" / "handle_exit.c"
    text = source.read_text()
    for old, new in (("---- End of Protected nVHE HYP call trace ----",
                      "---- End of Protected nVHE HYP stack trace ----"),
                     ("Invalid host exception to nVHE hyp!", "Invalid host exception to hyp!")):
        assert old in text
        text = text.replace(old, new)
    source.write_text(text)
    return root


def broken_matrix(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NVHE_LAB_ROOT": str(root),      # the venv on PATH: `pyharness run`
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYHARNESS_BUILD_DIR", None)
    return subprocess.run([sys.executable, "-m", "pyharness", "matrix", "--configs", "nvhe",
                           "pkvm", "pkvm_16k", "tiny", *args], capture_output=True, text=True,
                          timeout=900, env=env, stdin=subprocess.DEVNULL)


def test_a_broken_firmware_matrix_fits_a_screen_and_exits_1(broken_tree, tmp_path):
    proc = broken_matrix(broken_tree, "--json", str(tmp_path / "m.json"))
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.splitlines()
    assert len(out) + len(proc.stderr.splitlines()) < 100, proc.stdout + proc.stderr
    # three causes: the footer (pkvm protected), the panic line (invalid_host_exception,
    # everywhere but pkvm protected), and both at once (pkvm protected there)
    assert sum(line.startswith("FAIL x") for line in out) == 3, proc.stdout
    assert any(line.startswith("FAIL x") and "pkvm*/protected/" in line for line in out)
    assert "    footer missing" in out
    assert sum("reproduce: pyharness run" in line for line in out) == 3
    assert proc.stderr.count("new cause: FAIL") == 3     # progress: each cause once


def test_verbose_lists_every_failure(broken_tree):
    proc = broken_matrix(broken_tree, "--scenarios", "invalid_host_exception", "-v", "-q")
    assert proc.returncode == 1
    assert proc.stdout.count("reproduce: pyharness run") == 14   # every run failed
    assert "FAIL pkvm-protected-invalid_host_exception-cpu1" in proc.stdout


def test_max_failures_stops_cleanly_and_still_writes_reports(broken_tree, tmp_path):
    from pyharness.reports import load_records

    report = tmp_path / "m.json"
    proc = broken_matrix(broken_tree, "--max-failures", "3", "-j", "2", "--json", str(report),
                         "--junit", str(tmp_path / "m.xml"))
    assert proc.returncode == 1, proc.stderr
    records = load_records(report)
    failed = [r for r in records if not r.passed]
    assert 3 <= len(failed) <= 4            # a run in flight may finish with the third
    assert "stopped at 3 failures (--max-failures)" in proc.stdout
    assert (tmp_path / "m.xml").is_file()


def test_max_failures_stops_the_workers():
    import multiprocessing

    from pyharness.matrix import Selection, plan, run_matrix

    specs = plan(Selection(configs=("tiny", "nvhe"), scenarios=("smoke", "bug"))).specs
    faults = {s.id: "crash" for s in specs[:4]}
    result = run_matrix(specs, jobs=2, faults=faults, max_failures=2)
    assert 2 <= len(result.failures) <= 3
    assert result.not_run == len(specs) - len(result.records) > 0
    assert result.exit_code == 1 and "--max-failures" in result.summary_line()
    assert multiprocessing.active_children() == []


def test_control_characters_in_reasons_do_not_reach_the_terminal():
    rec = record(UNIVERSE[0], "fail", ["unexpected line inside the trace: '\x1b[31mred\x00'"])
    text = grouped_failures([rec, *[record(r) for r in UNIVERSE[1:]]])
    assert "\x1b" not in text and "\x00" not in text and "\u241b[31mred\u2400" in text


def test_a_clipped_reason_keeps_one_space_between_its_words():
    from pyharness.reports.triage import wrap_clipped

    words = " ".join(f"word{n}" for n in range(60))
    lines = wrap_clipped(words, 40)
    assert len(lines) == 3 and lines[-1].endswith("...")
    assert "  " not in lines[-1].strip(), lines
