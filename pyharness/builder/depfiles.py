"""Which files each step of a build read, from the compiler's own dependency output.

Every compile step of the firmware has the compiler write the files it
opened (GCC's and Clang's ``-MD``): the source and every header it
included, by the path it opened them by, the lab's, a kernel tree's and
the compiler's own alike. CMake's Ninja generator hands that output to
Ninja, which keeps it in its deps log (read here with ``ninja -t deps``);
the Makefile generator leaves it beside each object (``*.o.d``); a step
the CMake files spell out themselves (the linker scripts) writes its own
``.d`` beside its output.

Any other step joins the same way: it leaves a Make-format depfile under
the build tree, named ``*.d``. A step that runs while CMake configures
(``execute_process``) puts it under ``configure-deps/`` (CMake's
``NVHE_CONFIGURE_DEPS_DIR``): a change to what it read makes CMake
configure again, rather than only rebuilding the depfile's target.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

# Depfiles of configure-time steps, under the build tree.
CONFIGURE_DEPS = "configure-deps"
# CMake's own try-compile trees (the compiler checks), not the build's.
_CMAKE_CHECKS = "CMakeFiles/CMakeTmp"


@dataclass(frozen=True)
class BuildDeps:
    """Target -> the files it was made from, for one build tree. Targets
    are relative to the tree; inputs absolute, normalised, as the compiler
    named them."""

    compile: dict[str, tuple[str, ...]] = field(default_factory=dict)
    configure: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def inputs(self) -> set[str]:
        return {path for deps in (*self.compile.values(), *self.configure.values())
                for path in deps}


def _words(text: str) -> list[str]:
    """Make's words: whitespace separates, ``\\`` escapes a space, ``#`` or
    backslash, ``$$`` is ``$``."""
    words, current, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in " \t#\\":
            current.append(text[i + 1])
            i += 2
            continue
        if char == "$" and text[i + 1:i + 2] == "$":
            current.append("$")
            i += 2
            continue
        if char in " \t":
            if current:
                words.append("".join(current))
                current = []
        else:
            current.append(char)
        i += 1
    if current:
        words.append("".join(current))
    return words


def _rule_colon(line: str) -> int:
    """Where a rule's ``:`` is: the first one followed by whitespace or the
    line's end (a path may hold a colon of its own)."""
    for i, char in enumerate(line):
        if char == ":" and (i + 1 == len(line) or line[i + 1] in " \t"):
            return i
    return -1


def parse_depfile(text: str) -> dict[str, list[str]]:
    """The rules of a Make-format depfile: target -> prerequisites, with
    ``\\`` line continuations joined. A rule with no prerequisites (``-MP``'s
    phony rule for each header) gives an empty list; its target is still a
    key, so a caller wanting the inputs takes the first rule's list or all
    prerequisites together."""
    rules: dict[str, list[str]] = {}
    for line in text.replace("\\\r\n", " ").replace("\\\n", " ").splitlines():
        colon = _rule_colon(line)
        if colon < 0:
            continue
        prerequisites = _words(line[colon + 1:])
        for target in _words(line[:colon]):
            rules.setdefault(target, []).extend(prerequisites)
    return rules


def _escaped(path: str) -> str:
    return path.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def format_depfile(target: str, prerequisites: Iterable[str]) -> str:
    """A Make-format depfile saying that ``target`` was made from
    ``prerequisites`` (for a step that runs the compiler outside CMake's
    compile rules and cannot have it write one)."""
    words = " \\\n  ".join(_escaped(p) for p in prerequisites)
    return f"{_escaped(target)}: {words}\n"


def _absolute(path: str, build_dir: Path) -> str:
    return os.path.normpath(os.path.join(build_dir, path))


def _relative_target(target: str, build_dir: Path) -> str:
    absolute = _absolute(target, build_dir)
    try:
        return str(Path(absolute).relative_to(build_dir))
    except ValueError:
        return absolute


def parse_ninja_deps(output: str) -> dict[str, list[str]]:
    """``ninja -t deps`` output: ``target: #deps N, ...`` then one
    indented input a line, a blank line after each target."""
    deps: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in output.splitlines():
        if not line.strip():
            current = None
        elif line[0] in " \t":
            if current is not None:
                current.append(line.strip())
        elif ": #deps " in line:
            current = deps.setdefault(line.split(": #deps ", 1)[0], [])
    return deps


def _ninja_log_deps(build_dir: Path) -> dict[str, list[str]]:
    ninja = shutil.which("ninja")
    if ninja is None or not (build_dir / ".ninja_deps").is_file():
        return {}
    proc = subprocess.run([ninja, "-C", str(build_dir), "-t", "deps"], capture_output=True,
                          text=True, env={"PATH": os.environ.get("PATH", ""), "LC_ALL": "C"})
    return parse_ninja_deps(proc.stdout) if proc.returncode == 0 else {}


def read_build_deps(build_dir: Path) -> BuildDeps:
    """Everything the steps of the build in ``build_dir`` read, by target:
    Ninja's deps log and every ``*.d`` depfile under the tree."""
    compile_deps: dict[str, set[str]] = {}
    configure_deps: dict[str, set[str]] = {}
    for target, inputs in _ninja_log_deps(build_dir).items():
        compile_deps.setdefault(_relative_target(target, build_dir), set()).update(
            _absolute(p, build_dir) for p in inputs)
    configure_dir = build_dir / CONFIGURE_DEPS
    checks = build_dir / _CMAKE_CHECKS
    for depfile in sorted(build_dir.rglob("*.d")):
        if not depfile.is_file() or depfile.is_relative_to(checks):
            continue
        into = configure_deps if depfile.is_relative_to(configure_dir) else compile_deps
        try:
            text = depfile.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            continue
        for target, inputs in parse_depfile(text).items():
            if inputs:
                into.setdefault(_relative_target(target, build_dir), set()).update(
                    _absolute(p, build_dir) for p in inputs)
    return BuildDeps(compile={t: tuple(sorted(d)) for t, d in sorted(compile_deps.items())},
                     configure={t: tuple(sorted(d)) for t, d in sorted(configure_deps.items())})
