"""Real kernels booted under QEMU and judged: every generation in each
mode, the real-kernel-only scenarios, the command line's exit codes and
the real matrix through the worker pool and the reports."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from real_kernels import REFERENCE, TARBALLS, kernel, tarball

from pyharness.cli.main import main
from pyharness.matrix.execute import run_matrix
from pyharness.matrix.qemu_axis import expand_qemu, qemu_axis
from pyharness.kconfig import resolve as kconfig
from pyharness.platform import qemu
from pyharness.run import qemu_runner
from pyharness.run.qemu_runner import QemuRequest, run_qemu
from pyharness.run.spec import QEMU

SHARED = ("hyp_panic", "bug", "stack_overflow")


def run(generation: str, scenario: str, mode: str, **kwargs) -> object:
    record = run_qemu(QemuRequest(config="pkvm", kernel_src=tarball(generation),
                                  scenario=scenario, mode=mode,
                                  kernel=kernel(generation), **kwargs))
    assert record.passed, "\n".join([*record.reasons, *record.console[-25:]])
    return record


@pytest.mark.parametrize("generation", sorted(TARBALLS))
@pytest.mark.parametrize("mode", ("nvhe", "protected"))
@pytest.mark.parametrize("scenario", SHARED)
def test_shared_scenarios_on_every_generation(generation, mode, scenario):
    record = run(generation, scenario, mode, kaslr_seed=11)
    assert record.spec.platform == QEMU and record.run_status == "exited"
    frames = [f.symbol for f in record.actual]
    assert frames and frames[0].startswith("__kvm_nvhe_hyp_panic+")
    if scenario == "stack_overflow":
        assert any(f.startswith("__kvm_nvhe_hyp_panic_bad_stack+") for f in frames)


@pytest.mark.parametrize("scenario, mode", [
    ("udf", "nvhe"), ("host_mem_abort", "protected"), ("pkvm_init_walk", "protected"),
    ("two_cpus", "nvhe"), ("two_cpus_overflow", "nvhe")])
def test_real_kernel_only_scenarios(scenario, mode):
    record = run(REFERENCE, scenario, mode)
    if scenario == "two_cpus_overflow":
        # The kernel took the ring the boot asked for (the line is printed
        # only when it grows its ring). It may still skip the one record a
        # CPU stopped by the other's panic never finished (seen once under
        # load: "** 1 printk messages dropped **", the run passing).
        assert any("printk: log_buf_len: 1048576 bytes" in line for line in record.console)


def test_the_preindexed_overflow_livelocks_and_ends_once_silent():
    record = run(REFERENCE, "stack_overflow_preindexed", "nvhe")
    assert record.run_status == "silent"
    assert not any("nVHE hyp panic" in line for line in record.console)


@pytest.mark.parametrize("mode", ("nvhe", "protected"))
def test_a_cpu_other_than_the_boot_cpu(mode):
    record = run(REFERENCE, "stack_overflow", mode, cpu=1)
    assert "cpu1" in record.id


def test_differential_against_the_lab():
    record = run(REFERENCE, "stack_overflow", "nvhe", differential=True, kaslr_seed=3)
    aspects = {d.split(":")[0] for d in record.differences}
    assert {"end", "recursion"} <= aspects
    assert all("(explained" in d for d in record.differences)


# -- the command line ----------------------------------------------------------

def qemu_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["qemu", "--config", "pkvm", "--kernel-src", tarball(REFERENCE), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_pass_and_json(capsys):
    kernel(REFERENCE)
    code, out, err = qemu_cli(capsys, "--scenario", "bug", "--mode", "protected", "--json")
    record = json.loads(out)
    assert code == 0 and record["verdict"] == "pass" and record["platform"] == "qemu"
    assert record["command"].startswith("pyharness qemu --config pkvm --kernel-src ")


@pytest.mark.parametrize("argv, message", [
    (("--scenario", "nope"), "unknown real-kernel scenario 'nope'"),
    (("--scenario", "host_mem_abort", "--mode", "nvhe"), "has no fault in nvhe mode"),
    (("--scenario", "bug", "--cpu", "2"), "--cpu 2 is out of range"),
    (("--scenario", "pkvm_init_walk", "--mode", "protected", "--cpu", "1"),
     "faults on the boot CPU only"),
    (("--scenario", "bug", "--timeout", "0"), "budget must be a number of seconds above 0"),
    (("--scenario", "bug", "--timeout", "nan"), "budget must be a number of seconds above 0")])
def test_cli_bad_input(capsys, argv, message):
    kernel(REFERENCE)
    code, _, err = qemu_cli(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err


def test_cli_config_the_tree_cannot_take(capsys):
    code = main(["qemu", "--config", "tiny", "--kernel-src", tarball(REFERENCE),
                 "--scenario", "bug"])
    err = capsys.readouterr().err
    assert code == 2 and "CONFIG_NR_CPUS=1 (from lab tiny) ended up '2'" in err


def test_cli_without_qemu(capsys, monkeypatch):
    kernel(REFERENCE)
    monkeypatch.setattr(qemu, "QEMU", "qemu-system-aarch64-not-installed")
    code, _, err = qemu_cli(capsys, "--scenario", "bug")
    assert code == 2 and "apt-get install qemu-system-arm" in err


# -- the real matrix -----------------------------------------------------------

def _qemu_processes() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "pyharness-qemu-" in line
            and qemu.QEMU in line]


def test_a_worker_killed_mid_boot_costs_its_run_and_leaves_no_qemu(monkeypatch):
    """The livelock, its silence marker made one the kernel never prints,
    would boot for its whole 30 s budget; its worker is killed after 8 s as
    hung: that run is an error, its QEMU dies with the worker, the other
    passes (it boots in about a second, a few under load: a 2 s kill once
    took it too on a loaded CI machine). The workers are forked: they see
    the patched marker."""
    kernel(REFERENCE)
    monkeypatch.setattr(qemu_runner, "KVM_INIT_MARKER", "a line no kernel prints")
    trees = qemu_axis([tarball(REFERENCE)], None)
    specs = expand_qemu([kconfig.find_config("pkvm")], trees, mode_patterns=("nvhe",),
                        scenario_patterns=("stack_overflow_preindexed", "hyp_panic"))
    before = set(_qemu_processes())
    result = run_matrix(specs, 2, run_timeout_s=30, kill_after_s=8)
    verdicts = {r.spec.scenario: r.verdict for r in result.records}
    assert verdicts == {"stack_overflow_preindexed": "error", "hyp_panic": "pass"}
    killed = next(r for r in result.records if r.verdict == "error")
    assert any("no result within 8 s" in reason for reason in killed.reasons), killed.reasons
    assert set(_qemu_processes()) <= before


def test_matrix_cli_reports(tmp_path, capsys):
    kernel(REFERENCE)
    report = tmp_path / "real.json"
    code = main(["matrix", "--qemu", "--kernel-src", tarball(REFERENCE), "--modes", "nvhe",
                 "--scenarios", "hyp_panic", "udf", "-q", "--json", str(report),
                 "--junit", str(tmp_path / "real.xml")])
    out = capsys.readouterr().out
    runs = json.loads(report.read_text())["runs"]
    assert code == 0 and len(runs) == 2 and {r["platform"] for r in runs} == {"qemu"}
    assert "qemu-linux-6.12/pkvm" in out
    assert (tmp_path / "real.xml").read_text().count("<testcase") == 2


def test_kernel_build_is_found_without_make():
    built = kernel(REFERENCE)
    linked = built.vmlinux.stat().st_mtime_ns
    again = run_qemu(QemuRequest(config="pkvm", kernel_src=tarball(REFERENCE),
                                 scenario="bug", mode="nvhe"))
    assert again.passed and os.path.samefile(again.elf, built.vmlinux)
    assert built.vmlinux.stat().st_mtime_ns == linked          # nothing was relinked
