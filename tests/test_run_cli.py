"""`pyharness run` and `pyharness scenarios` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

JSON_KEYS = {"config", "mode", "scenario", "cpu", "kaslr_seed", "verdict", "reasons",
             "console", "instructions", "elapsed_ms", "expected", "actual"}


def pyharness(*args: str) -> subprocess.CompletedProcess[str]:
    """As a user with the venv on PATH runs it (reproduce commands say ``pyharness``)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return subprocess.run([sys.executable, "-m", "pyharness", *args], capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, PATH=path))


@pytest.mark.parametrize("args", [
    ("--config", "configs/nvhe_defconfig", "--scenario", "smoke"),
    ("--config", "configs/smp_defconfig", "--scenario", "smoke", "--mode", "protected",
     "--cpu", "3"),
])
def test_smoke_prints_the_hosts_line_and_passes(args):
    proc = pyharness("run", *args)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1].endswith("kvm [1]: smoke: hypervisor returned 124")
    assert "PASS" in proc.stderr


def test_json_record():
    proc = pyharness("run", "--config", "pkvm", "--scenario", "stack_overflow", "--mode",
                     "protected", "--cpu", "1", "--kaslr-seed", "4", "--json")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert JSON_KEYS <= set(record)
    assert record["verdict"] == "pass" and record["reasons"] == []
    assert record["cpu"] == 1 and record["kaslr_seed"] == 4 and record["mode"] == "protected"
    assert record["expected"] == record["actual"] and len(record["expected"]) > 100
    assert record["command"].startswith("pyharness run --config pkvm --scenario stack_overflow")


def test_failing_run_exits_1_with_reasons():
    proc = pyharness("run", "--config", "pkvm", "--scenario", "stack_overflow",
                     "--max-instructions", "10000")
    assert proc.returncode == 1
    assert "FAIL" in proc.stderr and "did not finish after 10000 instructions" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (("--scenario", "nope"), "unknown scenario 'nope'"),
    (("--scenario", "smoke", "--cpu", "2"), "--cpu 2 is out of range"),
    (("--scenario", "smoke", "--cpu", "-1"), "--cpu -1 is out of range"),
])
def test_bad_input_exits_2(args, message):
    proc = pyharness("run", "--config", "nvhe", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_bad_mode_exits_2():
    proc = pyharness("run", "--config", "nvhe", "--scenario", "smoke", "--mode", "vhe")
    assert proc.returncode == 2 and "invalid choice" in proc.stderr


def test_scenarios_lists_names_and_descriptions():
    proc = pyharness("scenarios")
    assert proc.returncode == 0
    names = [line.split()[0] for line in proc.stdout.splitlines()]
    assert names[:5] == ["smoke", "hyp_panic", "stack_overflow", "bug",
                         "invalid_host_exception"]
    assert all(len(line.split(maxsplit=1)) == 2 for line in proc.stdout.splitlines())


def test_same_seed_same_console_byte_for_byte():
    a = pyharness("run", "--config", "smp", "--scenario", "bug", "--cpu", "2",
                  "--kaslr-seed", "9")
    b = pyharness("run", "--config", "smp", "--scenario", "bug", "--cpu", "2",
                  "--kaslr-seed", "9")
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout


@pytest.mark.parametrize("content, message", [
    ("CONFIG_NO_SUCH_OPTION=y\n", ":1: unknown symbol CONFIG_NO_SUCH_OPTION"),
    ("CONFIG_NR_CPUS=many\n", ":1: bad value 'many' for CONFIG_NR_CPUS"),
    ("CONFIG_KVM=y\nnot a config line\n", ":2: malformed line"),
    ("", "the config file is empty"),
    ("# CONFIG_KVM is not set\n", "CONFIG_KVM is not set"),
])
def test_bad_config_for_run_exits_2(tmp_path, content, message):
    fragment = tmp_path / "bad_defconfig"
    fragment.write_text(content)
    proc = pyharness("run", "--config", str(fragment), "--scenario", "smoke")
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1


def test_missing_config_file_exits_2(tmp_path):
    proc = pyharness("run", "--config", str(tmp_path / "nothing_defconfig"), "--scenario",
                     "smoke")
    assert proc.returncode == 2 and "no such config file" in proc.stderr
