"""The pyharness command line, run as a user runs it (subprocesses)."""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path


from pyharness.kconfig import resolve as kconfig


def pyharness(*args: str, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyharness", *args],
                          capture_output=True, text=True, env=env, cwd=cwd,
                          timeout=300, stdin=subprocess.DEVNULL)


def test_configs_lists_every_shipped_config():
    proc = pyharness("configs")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == len(kconfig.named_configs())
    tiny = next(line for line in lines if line.startswith("tiny "))
    assert "4K pages" in tiny and "KASLR off" in tiny and "1 CPU," in tiny
    pkvm = next(line for line in lines if line.startswith("pkvm "))
    assert "protected stacktrace on" in pkvm


def test_build_prints_the_elf_then_says_cached(tmp_path):
    first = pyharness("build", "--config", "configs/pkvm_defconfig", "--out", str(tmp_path))
    assert first.returncode == 0, first.stderr
    elf = Path(first.stdout.strip())
    assert elf.is_file() and elf.name == "vmlinux"
    second = pyharness("build", "--config", "configs/pkvm_defconfig", "--out", str(tmp_path))
    assert second.returncode == 0
    assert second.stdout.strip() == str(elf)
    assert "cached" in second.stderr


def test_dropped_option_exits_2_naming_the_dependency(tmp_path):
    fragment = tmp_path / "bad_defconfig"
    fragment.write_text("CONFIG_PROTECTED_NVHE_STACKTRACE=y\n"
                        "# CONFIG_NVHE_EL2_DEBUG is not set\n")
    proc = pyharness("build", "--config", str(fragment), "--out", str(tmp_path))
    assert proc.returncode == 2
    assert "NVHE_EL2_DEBUG" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_cross_compiler_says_how_to_install(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CROSS_COMPILE"}
    env["PATH"] = str(empty)
    proc = pyharness("build", "--config", "nvhe", "--out", str(tmp_path), env=env)
    assert proc.returncode == 2
    assert "apt-get install gcc-aarch64-linux-gnu" in proc.stderr
    assert "CROSS_COMPILE" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_bad_cross_compile_prefix(tmp_path):
    env = dict(os.environ, CROSS_COMPILE="no-such-triplet-")
    proc = pyharness("build", "--config", "nvhe", "--out", str(tmp_path), env=env)
    assert proc.returncode == 2
    assert "no-such-triplet-gcc" in proc.stderr


def test_unwritable_output_directory(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = pyharness("build", "--config", "nvhe", "--out", str(blocker / "sub"))
    assert proc.returncode == 2
    assert "--out" in proc.stderr and "Traceback" not in proc.stderr


def _read_until(fd: int, needle: bytes, timeout: float) -> bytes:
    seen = b""
    deadline = time.monotonic() + timeout
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:
                break
    return seen


def spawn_menuconfig(target: Path) -> tuple[int, int]:
    """``pyharness menuconfig --config target`` in a pseudo-terminal."""
    env = dict(os.environ, TERM="xterm-256color", LINES="40", COLUMNS="120")
    pid, fd = pty.fork()
    if pid == 0:  # child: become the command
        os.execvpe(sys.executable, [sys.executable, "-m", "pyharness", "menuconfig",
                                    "--config", str(target)], env)
    return pid, fd


def test_menuconfig_starts_and_quits_in_a_pty(tmp_path):
    target = tmp_path / "mine_defconfig"
    shutil.copy(kconfig.find_config("nvhe"), target)
    before = target.read_text()
    pid, fd = spawn_menuconfig(target)
    try:
        screen = _read_until(fd, b"Memory layout", 60)
        assert b"Memory layout" in screen, screen[-2000:]
        os.write(fd, b"Q")
        _read_until(fd, b"no change", 30)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert target.read_text() == before


def test_menuconfig_saves_a_change_in_minimal_form(tmp_path):
    """Down to KVM, 'n', save, quit: the save dialog offers the user's file
    (not a temporary one), which is rewritten by savedefconfig and says KVM
    is off."""
    target = tmp_path / "mine_defconfig"
    shutil.copy(kconfig.find_config("tiny"), target)
    pid, fd = spawn_menuconfig(target)
    try:
        assert b"Memory layout" in _read_until(fd, b"Memory layout", 60)
        for keys, screen in ((b"j", b"KVM"), (b"n", b""), (b"S", b"mine_defconfig"),
                             (b"\r", b"Configuration saved"), (b"\r", b""),
                             (b"Q", b"saved " + str(target).encode())):
            os.write(fd, keys)
            seen = _read_until(fd, screen, 30) if screen else _read_until(fd, b"\0", 0.5)
            assert screen in seen, (keys, seen[-500:])
            if keys == b"S":
                assert b".config" not in seen          # the old temporary file's name
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    saved = target.read_text()
    assert "# CONFIG_KVM is not set" in saved
    assert "CONFIG_NR_CPUS=1" in saved and "CONFIG_ARM64_4K_PAGES" not in saved  # minimal


def test_menuconfig_quit_prompt_saves_the_users_full_config(tmp_path):
    """A file that is not a *_defconfig is saved as a full resolved .config,
    from the quit prompt too."""
    target = tmp_path / "my.config"
    target.write_text(kconfig.resolve(kconfig.find_config("tiny")).dotconfig)
    pid, fd = spawn_menuconfig(target)
    try:
        assert b"Memory layout" in _read_until(fd, b"Memory layout", 60)
        for keys, screen in ((b"j", b"KVM"), (b"n", b""), (b"Q", b"Save configuration?"),
                             (b"y", b"saved " + str(target).encode())):
            os.write(fd, keys)
            seen = _read_until(fd, screen, 30) if screen else _read_until(fd, b"\0", 0.5)
            assert screen in seen, (keys, seen[-500:])
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    saved = target.read_text()
    assert "# CONFIG_KVM is not set" in saved and "CONFIG_ARM64_4K_PAGES=y" in saved  # full
