"""The matrix's build lines say what this matrix built: a configuration its
plan or its build phase compiled is "built"; one compiled earlier in the
same process, outside this matrix, is cached (no line)."""

from __future__ import annotations

import re
import subprocess
import sys

from pyharness.builder import cache as builder
from pyharness.cli.main import main

MATRIX = ["matrix", "--scenarios", "smoke", "-j", "1"]


def _build_lines(err: str) -> dict[str, str]:
    return dict(re.findall(r"^build (\S+): (.*)$", err, re.M))


def _pyharness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyharness", *args], capture_output=True,
                          text=True, timeout=600)


def test_after_clean_all_each_configuration_has_its_build_line(tmp_path):
    """``clean --all && matrix --configs nvhe_64k nvhe tiny``: three builds,
    three lines, the first of them compiled while the plan read its scenarios."""
    out = ("--out", str(tmp_path))
    assert _pyharness(*MATRIX, *out, "--configs", "tiny").returncode == 0
    assert _pyharness("clean", "--all", *out).returncode == 0
    proc = _pyharness(*MATRIX, *out, "--configs", "nvhe_64k", "nvhe", "tiny")
    assert proc.returncode == 0, proc.stderr
    lines = _build_lines(proc.stderr)
    assert sorted(lines) == ["nvhe", "nvhe_64k", "tiny"], lines
    assert all(line.startswith("built in ") for line in lines.values()), lines


def test_a_build_made_outside_the_matrix_is_cached_for_it(tmp_path, capsys):
    """tiny compiled by this process before the matrix (as pytest or mutate
    may do): the matrix, whose plan and build phase both find it cached,
    prints no build line for it; nvhe, which it compiled, has one."""
    assert not builder.build("tiny", out_dir=tmp_path).cached
    capsys.readouterr()
    assert main([*MATRIX, "--out", str(tmp_path), "--configs", "tiny", "nvhe"]) == 0
    lines = _build_lines(capsys.readouterr().err)
    assert list(lines) == ["nvhe"] and lines["nvhe"].startswith("built in "), lines


def test_the_plan_carries_what_it_compiled(tmp_path):
    from pyharness.matrix import Selection, plan, run_matrix

    selection = Selection(configs=("tiny",), scenarios=("smoke",), modes=("nvhe",),
                          out_dir=tmp_path)
    first = plan(selection)
    assert [b.config.name for b in first.compiled] == ["tiny"]
    assert plan(selection).compiled == ()              # planned again: cached
    # Without the plan's builds, the build phase only sees a cached image;
    # with them, it reports the plan's compile.
    (alone,) = run_matrix(first.specs, 1, out_dir=tmp_path).builds
    (told,) = run_matrix(first.specs, 1, out_dir=tmp_path,
                         compiled_before=first.compiled).builds
    assert alone.cached and not told.cached
    assert told.describe().startswith("tiny: built in ")
