"""Every command example in README.md runs as written.

The examples are read out of the README's code blocks (each ``$ `` line,
and each command line of a ``sh`` block), so a new example with no entry
in ``HOW`` fails here until it is run too. Most run exactly as written, in
order, in a scratch directory holding a copy of ``configs/`` and the test
logs; the few whose full form takes minutes (the whole matrix, the whole
test suite) run with a narrowing the entry names. Where the README shows
output, that output is checked.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pty_screen import read_until

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
BIN = Path(sys.executable).parent
FAST = "--configs tiny --scenarios smoke bug -q"


@dataclass
class Example:
    command: str
    shown: list[str] = field(default_factory=list)   # output lines the README shows


def blocks() -> list[list[Example]]:
    """The examples of each README code block that has any, in order."""
    found: list[list[Example]] = []
    kind: str | None = None
    for line in README.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            kind = None if kind is not None else (line[3:].strip() or "text")
            found.append([])
            continue
        if kind == "sh":
            if line.strip() and not line.lstrip().startswith("#"):
                found[-1].append(Example(line.strip()))
        elif kind is not None:
            if line.startswith("$ "):
                found[-1].append(Example(line[2:].split("  #")[0].strip()))
            elif found[-1] and found[-1][-1].command.endswith("\\") \
                    and not found[-1][-1].shown:
                found[-1][-1].command = found[-1][-1].command[:-1].rstrip() + " " + line.strip()
            elif found[-1] and line.strip():
                found[-1][-1].shown.append(line)
    return [block for block in found if block]


def examples() -> list[Example]:
    return [example for block in blocks() for example in block]


def _setup_is_a_no_op(tests: bool) -> bool:
    """Whether scripts/setup.sh would install nothing here (it is then run)."""
    stamp = REPO / ".venv" / ".pyharness-installed"
    fresh = stamp.is_file() and all(stamp.stat().st_mtime >= (REPO / name).stat().st_mtime
                                    for name in ("pyproject.toml", "CMakeLists.txt"))
    return fresh and (not tests or shutil.which("chromium") is not None)


def _setup(tests: bool) -> str:
    command = "sh scripts/setup.sh" + (" --tests" if tests else "")
    return command if _setup_is_a_no_op(tests) else "true"


# README command -> (what runs, where: "repo" or the scratch directory). The
# narrowed ones keep the command and add options that make it quick.
HOW: dict[str, tuple[str, str]] = {
    "sh scripts/setup.sh && .venv/bin/pyharness matrix":
        (f"{_setup(False)} && .venv/bin/pyharness matrix {FAST}", "repo"),
    "sh scripts/setup.sh --tests && .venv/bin/python -m pytest -n auto":
        (f"{_setup(True)} && .venv/bin/python -m pytest -n auto -q -p no:cacheprovider "
         "tests/test_architecture.py", "repo"),
    "pyharness matrix --configs 'pkvm*' --scenarios stack_overflow --html report.html":
        ("pyharness matrix --configs 'pkvm*' --scenarios stack_overflow --html report.html",
         "scratch"),
    "pyharness matrix --shard 1/4 --junit matrix.xml --json matrix.json":
        (f"pyharness matrix --shard 1/4 --junit matrix.xml --json matrix.json {FAST}",
         "scratch"),
    "pyharness matrix --only-failed matrix.json":
        ("pyharness matrix --only-failed matrix.json", "scratch"),
    "pyharness matrix --max-failures 10 -v": (f"pyharness matrix --max-failures 10 -v {FAST}",
                                              "scratch"),
    "pytest -n auto configs/": ("pytest -n auto -q -p no:cacheprovider configs/ "
                                "-k tiny-nvhe-smoke", "repo"),
    "pyharness matrix --shard 1/2 --json shard1.json":
        (f"pyharness matrix --shard 1/2 --json shard1.json {FAST}", "scratch"),
    "pyharness matrix --shard 2/2 --json shard2.json":
        (f"pyharness matrix --shard 2/2 --json shard2.json {FAST}", "scratch"),
    "pyharness report merge shard1.json shard2.json --json matrix.json --junit matrix.xml "
    "--html matrix.html": ("", "scratch"),
    "pyharness configs": ("", "scratch"),
    "pyharness build --config configs/pkvm_defconfig": ("", "scratch"),
    "pyharness clean": ("", "scratch"),
    "pyharness clean --all -n": ("", "scratch"),
    "pyharness scenarios": ("", "scratch"),
    "pyharness run --config configs/pkvm_defconfig --scenario stack_overflow --mode protected":
        ("", "scratch"),
    "pyharness decode tests/data/pasted/wrapped.log": ("", "scratch"),
    "pyharness decode tests/data/real/two_cpus_6.12_seed16.log": ("", "scratch"),
    "pyharness decode tests/data/mail/thread.mbox": ("", "scratch"),
    "pyharness run --config pkvm --scenario bug > log.txt; pyharness decode --elf "
    "$(pyharness build --config pkvm) log.txt": ("", "scratch"),
    "pyharness menuconfig --config configs/pkvm_defconfig": ("", "scratch"),
    # ~/src/linux is a tree extracted from Debian's linux-source-6.12 (_home).
    "pyharness run --config pkvm --kernel-src ~/src/linux --scenario stack_overflow "
    "--mode protected": ("", "scratch"),
    "pyharness build --config pkvm --kernel-src /usr/src/linux-source-6.12.tar.xz":
        ("", "scratch"),
    'ln -sf "$(dirname "$(pyharness build --config pkvm --kernel-src ~/src/linux)")/'
    'compile_commands.json" ~/src/linux/': ("", "scratch"),
    "pyharness matrix --configs pkvm smp --kernel-src lab --kernel-src "
    "/usr/src/linux-source-6.1.tar.xz --kernel-src ~/src/linux":
        ("pyharness matrix --configs pkvm smp --kernel-src lab --kernel-src "
         "/usr/src/linux-source-6.1.tar.xz --kernel-src ~/src/linux --scenarios smoke bug -q",
         "scratch"),
    "pyharness mutate --config pkvm --only csrc/include/stacktrace/common.h:stmt-del:fe5c35465a":
        ("pyharness mutate --config pkvm --only csrc/include/stacktrace/common.h:stmt-del:"
         "fe5c35465a --scenarios unwind_selftest", "scratch"),
    "pyharness mutate --files '*stacktrace/common.h' -j2 --json common.json --html common.html":
        ("pyharness mutate --files '*stacktrace/common.h' -j2 --json common.json --html "
         "common.html --config tiny --scenarios unwind_selftest "
         "--only csrc/include/stacktrace/common.h:stmt-del:fe5c35465a", "scratch"),
    "pyharness qemu --config pkvm --kernel-src /usr/src/linux-source-6.12.tar.xz --scenario "
    "stack_overflow --mode protected --kaslr-seed 7": ("", "scratch"),
    "pyharness matrix --qemu --differential --kernel-src /usr/src/linux-source-6.1.tar.xz "
    "--kernel-src /usr/src/linux-source-6.12.tar.xz":
        ("pyharness matrix --qemu --differential --kernel-src /usr/src/linux-source-6.1.tar.xz "
         "--kernel-src /usr/src/linux-source-6.12.tar.xz --scenarios hyp_panic "
         "--modes nvhe -q", "scratch"),
    "pytest -n auto configs/ --kernel-src /usr/src/linux-source-6.12.tar.xz":
        ("pytest -n auto -q -p no:cacheprovider configs/ --kernel-src "
         "/usr/src/linux-source-6.12.tar.xz -k 'pkvm-nvhe-bug'", "repo"),
}


def _home(tmp_path: Path) -> Path:
    """A home directory whose ~/src/linux is a kernel tree (the files the
    build reads, from Debian's linux-source-6.12, which setup.sh installs)."""
    from pyharness.builder import kernelsrc

    home = tmp_path / "home"
    tree = home / "src" / "linux"
    if not tree.exists():
        kernelsrc.extract(kernelsrc.debian_tarball("6.12"), tree)
    return home


def test_every_readme_example_is_known_here():
    commands = [e.command for e in examples()]
    assert set(commands) == set(HOW), (set(commands) ^ set(HOW))
    assert any("$(pyharness build --config pkvm)" in c for c in commands)
    assert not any("build/pkvm-*" in c for c in commands)


def _scratch(tmp_path: Path) -> Path:
    scratch = tmp_path / "scratch"
    shutil.copytree(REPO / "configs", scratch / "configs")
    shutil.copytree(REPO / "tests" / "data", scratch / "tests" / "data")
    return scratch


def _fake_build_base(base: Path) -> None:
    """Two trees of one configuration, for the clean examples to work on."""
    for i, digest in enumerate(("1" * 64, "2" * 64)):
        tree = base / f"pkvm-{digest[:12]}"
        tree.mkdir(parents=True)
        (tree / "build.json").write_text(json.dumps({"digest": digest}))
        os.utime(tree / "build.json", (time.time() - 100 * i,) * 2)


def _menuconfig_quits(scratch: Path, env: dict[str, str]) -> tuple[int, str]:
    """``pyharness menuconfig --config configs/pkvm_defconfig`` in a pty, then Q."""
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(scratch)
        os.execvpe("pyharness", ["pyharness", "menuconfig", "--config",
                                 "configs/pkvm_defconfig"],
                   {**env, "TERM": "xterm-256color", "LINES": "40", "COLUMNS": "120"})
    try:
        seen = read_until(fd, b"Memory layout", 60)
        if b"Memory layout" in seen:
            os.write(fd, b"Q")
            seen += read_until(fd, None, 60)
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


_VARIES = re.compile(r"(/path/to/|[0-9a-f]{12}|\d+(?:\.\d+)?)")


def _shown_pattern(shown: str) -> re.Pattern[str]:
    """A shown line as a pattern: numbers (times, counts, hashes) and
    ``/path/to/`` stand for whatever this machine prints there; a build
    shown as built may have been cached."""
    parts = []
    for i, piece in enumerate(_VARIES.split(shown)):
        if i % 2 == 0:
            parts.append(re.escape(piece))
        elif piece == "/path/to/":
            parts.append("/.+/")
        elif re.fullmatch(r"[0-9a-f]{12}", piece) and not piece.isdigit():
            parts.append("[0-9a-f]{12}")
        else:
            parts.append(r"\d+(?:\.\d+)?")
    pattern = "".join(parts)
    built = re.escape("built in ") + r"\d+(?:\.\d+)?" + re.escape(" s")
    return re.compile(pattern.replace(built, f"(?:{built}|cached, no compiler work)"))


def _check_shown(example: Example, output: str, narrowed: bool) -> None:
    """The output lines the README shows are what the command prints (up to
    the numbers, when the example ran narrowed)."""
    lines = output.splitlines()
    # A narrowed example prints fewer runs: only its first line (the plan) is
    # the same, up to the numbers.
    for shown in example.shown[:1] if narrowed else example.shown:
        if shown.strip() in ("...", "") or shown.startswith("["):
            continue          # elisions; console lines whose stamps and addresses vary
        if shown.startswith("---"):
            assert any(ln.startswith(shown.split(" (")[0]) for ln in lines), output
        elif narrowed or "/path/to/" in shown or "built in" in shown:
            pattern = _shown_pattern(shown)
            assert any(pattern.fullmatch(ln) for ln in lines), (shown, output)
        else:
            assert shown in lines, (shown, output)


@pytest.mark.parametrize("block", range(len(blocks())),
                         ids=[b[0].command.split()[1] + f"-{i}" for i, b in enumerate(blocks())])
def test_every_readme_example_runs_as_written(tmp_path, block):
    """One code block's examples, in order, in a scratch directory of its own."""
    scratch = _scratch(tmp_path)
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYHARNESS_BUILD_DIR", None)
    if any("~/src/linux" in e.command for e in blocks()[block]):
        env["HOME"] = str(_home(tmp_path))
    failures = []
    for example in blocks()[block]:
        run, where = HOW[example.command]
        run = run or example.command
        cwd = REPO if where == "repo" else scratch
        this_env = env
        if example.command.startswith("pyharness clean"):
            base = tmp_path / "clean-base"
            if not base.exists():
                _fake_build_base(base)
            this_env = {**env, "PYHARNESS_BUILD_DIR": str(base)}
        if example.command.startswith("pyharness menuconfig"):
            code, output = _menuconfig_quits(scratch, env)
        else:
            proc = subprocess.run(["sh", "-c", run], cwd=cwd, env=this_env, text=True,
                                  capture_output=True, timeout=900, stdin=subprocess.DEVNULL)
            code, output = proc.returncode, proc.stdout + proc.stderr
        if code != 0:
            failures.append(f"{example.command!r} ran as {run!r}: exit {code}\n{output[-1500:]}")
            continue
        _check_shown(example, output, narrowed=run != example.command)
    assert not failures, "\n\n".join(failures)
    commands = " ".join(e.command for e in blocks()[block])
    if "--html report.html" in commands:
        assert (scratch / "report.html").is_file() and (scratch / "matrix.xml").is_file()
    if "report merge" in commands:
        assert json.loads((scratch / "matrix.json").read_text())["plan"]["shard"] is None
    if "menuconfig" in commands:                                 # Q: nothing saved
        assert (REPO / "configs" / "pkvm_defconfig").read_text() == \
            (scratch / "configs" / "pkvm_defconfig").read_text()
    if "pyharness clean" in commands:                            # the older tree went
        assert not (tmp_path / "clean-base" / f"pkvm-{'2' * 12}").exists()
