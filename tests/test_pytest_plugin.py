"""The pytest plugin: shipped configs collected as the matrix's runs.

pytest runs in a subprocess on ``configs/...`` with the plugin loaded by
``-p`` (harmless if the project's pytest options load it too), so these
tests see exactly what a user's ``pytest`` does.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pyharness.builder.kernelsrc import debian_tarball
from pyharness.matrix import Selection, plan

REPO = Path(__file__).resolve().parents[1]


def run_pytest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "pyharness.pytest_plugin",
                           "-p", "no:cacheprovider", "--no-header", "-o", "addopts=",
                           *args],
                          cwd=REPO, capture_output=True, text=True, timeout=600,
                          stdin=subprocess.DEVNULL)


def test_collects_the_matrix_runs_with_their_ids():
    proc = run_pytest("--collect-only", "-q", "configs/pkvm_16k_defconfig",
                      "configs/tiny_defconfig")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    collected = {line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::" in line}
    expected = {s.id for s in plan(Selection(configs=("pkvm_16k", "tiny"))).specs}
    assert collected == expected
    assert "pkvm_16k-protected-stack_overflow-cpu0" in collected
    assert "configs/pkvm_16k_defconfig::pkvm_16k-protected-stack_overflow-cpu0" in proc.stdout


def test_runs_pass_in_parallel_with_xdist():
    proc = run_pytest("-n", "2", "-q", "configs/tiny_defconfig", "configs/nvhe_defconfig",
                      "-k", "smoke or -bug-")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "12 passed" in proc.stdout


def test_matrix_marker_deselects_them():
    proc = run_pytest("--collect-only", "-q", "-m", "not matrix", "configs/tiny_defconfig")
    assert "no tests collected" in proc.stdout or "deselected" in proc.stdout


def test_other_defconfig_files_are_not_collected(tmp_path):
    stray = tmp_path / "stray_defconfig"
    stray.write_text("CONFIG_KVM=y\n")
    proc = run_pytest("--collect-only", "-q", "--rootdir", str(tmp_path), str(stray))
    assert "::" not in proc.stdout


def test_a_failing_run_reports_reasons_and_repro():
    from pyharness.pytest_plugin import failure_message
    from pyharness.judge.verdict import Verdict
    from pyharness.run.record import RunRecord
    from pyharness.run.spec import RunSpec

    spec = RunSpec(config="configs/tiny_defconfig", config_name="tiny", mode="nvhe",
                   scenario="bug", cpu=0, kaslr_seed=1)
    record = RunRecord(spec=spec, verdict=Verdict.FAIL,
                       reasons=["frame 1: expected a at 1, got b at 2", "footer missing"],
                       console=["kvm [1]: ..."], instructions=10, elapsed_ms=1.0)
    assert failure_message(record).splitlines() == [
        "verdict fail:",
        "  frame 1: expected a at 1, got b at 2",
        "  footer missing",
        "reproduce: pyharness run --config configs/tiny_defconfig --scenario bug "
        "--mode nvhe --cpu 0 --kaslr-seed 1",
    ]


def test_kernel_src_adds_the_unwinder_axis_to_the_collected_runs(tmp_path):
    tarball = debian_tarball("6.12")
    if not tarball.is_file():
        pytest.skip(f"{tarball} is not installed")
    proc = run_pytest("--collect-only", "-q", "configs/tiny_defconfig",
                      "--kernel-src", "lab", "--kernel-src", str(tarball))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    collected = {line.split("::", 1)[1] for line in proc.stdout.splitlines() if "::" in line}
    expected = {s.id for s in plan(Selection(configs=("tiny",),
                                             kernel_srcs=("lab", str(tarball)))).specs}
    assert collected == expected
    assert {"tiny-nvhe-bug-cpu0", "linux-6.12/tiny-nvhe-bug-cpu0"} <= collected


def test_a_kernel_src_it_cannot_use_is_one_failing_item(tmp_path):
    proc = run_pytest("-q", "configs/tiny_defconfig", "--kernel-src", str(tmp_path / "nope"))
    assert proc.returncode == 1
    assert "no such path" in proc.stdout and "supported generations" in proc.stdout
