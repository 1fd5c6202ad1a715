"""Reproduce commands for ``python -m pyharness`` users: the interpreter as
they invoked it and ``-m pyharness`` when ``pyharness`` on PATH is not this
installation's (``pyharness`` when it is), through real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from pyharness.matrix import FAULTS_ENV

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
RUN = ["run", "--config", "configs/tiny_defconfig", "--scenario", "bug", "--json"]


def _command(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["command"]


def test_a_relative_interpreter_is_printed_as_typed(tmp_path):
    python = os.path.relpath(sys.executable, REPO)     # .venv/bin/python
    proc = subprocess.run([python, "-m", "pyharness", *RUN, "--out", str(tmp_path)],
                          cwd=REPO, env=dict(os.environ, PATH="/usr/bin:/bin"),
                          capture_output=True, text=True, timeout=300)
    assert _command(proc).startswith(
        f"{python} -m pyharness run --config configs/tiny_defconfig --scenario bug "), proc.stdout


def test_a_python_found_on_path_stays_bare_when_pyharness_there_is_another(tmp_path):
    """``python -m pyharness`` with the venv's python first on PATH, but a
    ``pyharness`` ahead of it that is some other program."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "pyharness").write_text("#!/bin/sh\necho not this one\n")
    (other / "pyharness").chmod(0o755)
    env = dict(os.environ, PATH=f"{other}{os.pathsep}{VENV_BIN}{os.pathsep}/usr/bin:/bin")
    proc = subprocess.run(["python", "-m", "pyharness", *RUN, "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert _command(proc).startswith("python -m pyharness run --config "), proc.stdout
    # The same with this installation's pyharness found first: the plain name.
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{other}{os.pathsep}/usr/bin:/bin"
    proc = subprocess.run(["python", "-m", "pyharness", *RUN, "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert _command(proc).startswith("pyharness run --config "), proc.stdout


def test_a_matrix_outside_the_checkout_prints_the_absolute_interpreter(tmp_path):
    """The matrix's failure report (its records made in worker processes)
    from a directory outside the checkout: the interpreter's absolute path."""
    env = dict(os.environ, PATH="/usr/bin:/bin",
               **{FAULTS_ENV: "raise:tiny-protected-smoke-cpu0"})
    proc = subprocess.run([sys.executable, "-m", "pyharness", "matrix", "--configs", "tiny",
                           "--scenarios", "smoke", "--modes", "protected", "-j", "1",
                           "--out", str(tmp_path / "out")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert (f"reproduce: {sys.executable} -m pyharness run --config "
            f"{REPO / 'configs' / 'tiny_defconfig'} --scenario smoke --mode protected"
            in proc.stdout), proc.stdout
