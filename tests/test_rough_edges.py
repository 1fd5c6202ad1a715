"""Issue 27's rough edges: menuconfig's save keeps kconfiglib's deprecation
note off the screen, every configuration a matrix built has its build
line, and reproduce commands name the program as the user ran it."""

from __future__ import annotations

import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

from pty_screen import read_until

from pyharness.cli.main import main
from pyharness.kconfig import resolve as kconfig
from pyharness.run import spec

REPO = Path(__file__).resolve().parents[1]
VENV_SCRIPT = Path(sys.executable).parent / "pyharness"


def test_menuconfig_save_prints_no_deprecation_note(tmp_path):
    target = tmp_path / "mine_defconfig"
    shutil.copy(kconfig.find_config("tiny"), target)
    env = dict(os.environ, TERM="xterm-256color", LINES="40", COLUMNS="120")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe(sys.executable, [sys.executable, "-m", "pyharness", "menuconfig",
                                    "--config", str(target)], env)
    screen = b""
    try:
        screen += read_until(fd, b"Memory layout", 60)
        for keys, wait in ((b"j", b"KVM"), (b"n", b"\0"), (b"S", b"mine_defconfig"),
                           (b"\r", b"Configuration saved"), (b"\r", b"\0"), (b"Q", b"saved")):
            os.write(fd, keys)
            screen += read_until(fd, wait, 30 if wait != b"\0" else 0.5)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"Configuration saved" in screen
    assert b"has no effect" not in screen and b"Deprecation" not in screen, screen[-800:]


def test_every_configuration_built_has_its_build_line(tmp_path, capsys):
    """The plan builds the first configuration to read its scenario table;
    the matrix then finds it cached, and still says it was built."""
    code = main(["matrix", "--out", str(tmp_path), "--configs", "tiny", "nvhe",
                 "--scenarios", "smoke", "-j", "1"])
    err = capsys.readouterr().err
    assert code == 0
    assert "build tiny: built in" in err and "build nvhe: built in" in err, err
    main(["matrix", "--out", str(tmp_path), "--configs", "tiny", "nvhe",
          "--scenarios", "smoke", "-j", "1"])
    assert "build " not in capsys.readouterr().err     # a second matrix: all cached


def test_reproduce_command_names_the_script_when_not_on_path(tmp_path):
    env = dict(os.environ, PATH="/usr/bin:/bin")
    proc = subprocess.run([str(os.path.relpath(VENV_SCRIPT, REPO)), "run", "--config",
                           "configs/tiny_defconfig", "--scenario", "bug", "--json",
                           "--out", str(tmp_path)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    expected = os.path.relpath(VENV_SCRIPT, REPO)
    assert f'"command": "{expected} run --config configs/tiny_defconfig' in proc.stdout


def test_program_name_is_plain_when_on_path(monkeypatch, tmp_path):
    monkeypatch.setattr(sys, "argv", [str(VENV_SCRIPT), "run"])
    monkeypatch.setenv("PATH", f"{VENV_SCRIPT.parent}{os.pathsep}/usr/bin")
    spec.program_argv.cache_clear()
    try:
        assert spec.program_argv() == ("pyharness",)
        spec.program_argv.cache_clear()
        monkeypatch.setenv("PATH", "/usr/bin")
        monkeypatch.chdir(tmp_path)                 # the script is outside the cwd
        assert spec.program_argv() == (str(VENV_SCRIPT),)
        spec.program_argv.cache_clear()
        monkeypatch.setattr(sys, "argv", ["/x/pytest"])
        assert spec.program_argv() == ("pyharness",)     # not run as pyharness
    finally:
        spec.program_argv.cache_clear()
