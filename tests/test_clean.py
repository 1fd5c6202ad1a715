"""Build trees: ``pyharness clean`` and the bound every build keeps.

Only a ``<name>-<12 hex>`` directory holding this tool's stamp or marker
with that digest is a build tree; everything else in the build base stays.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pyharness.builder import cache as builder
from pyharness.builder.trees import (MARKER, STAMP, WORK_DIR, build_trees, lock_path,
                                   older_than_newest, prune_after_build, remove_tree)


def fake_tree(base: Path, name: str, digest: str, age_s: float, *,
              stamp: bool = True) -> Path:
    tree = base / f"{name}-{digest[:12]}"
    tree.mkdir(parents=True)
    (tree / "vmlinux").write_bytes(b"\0" * 1000)
    marker = tree / (STAMP if stamp else MARKER)
    marker.write_text(json.dumps({"digest": digest}))
    past = time.time() - age_s
    os.utime(marker, (past, past))
    return tree


def clean(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyharness", "clean", *args],
                          capture_output=True, text=True, timeout=120, env=env,
                          stdin=subprocess.DEVNULL)


@pytest.fixture
def base(tmp_path: Path) -> Path:
    """Three pkvm trees, two tiny ones (one a failed build: marker only), and
    things that are not build trees."""
    base = tmp_path / "build"
    for i, digest in enumerate(("a" * 64, "b" * 64, "c" * 64)):
        fake_tree(base, "pkvm", digest, age_s=100 * (i + 1))
    fake_tree(base, "tiny", "d" * 64, age_s=10)
    fake_tree(base, "tiny", "e" * 64, age_s=500, stamp=False)
    (base / "notes-0123456789ab").mkdir()                       # right name, no stamp
    (base / "notes-0123456789ab" / "keep.txt").write_text("mine")
    liar = base / "liar-0123456789ab"                           # a stamp of another digest
    liar.mkdir()
    (liar / STAMP).write_text(json.dumps({"digest": "f" * 64}))
    (base / "matrix-configs").mkdir()
    (base / "matrix-timings").mkdir()
    (base / "matrix-timings" / "pkvm.json").write_text("{}")
    (base / "link-aaaaaaaaaaaa").symlink_to(base / ("pkvm-" + "a" * 12))
    return base


def names(base: Path) -> set[str]:
    return {p.name for p in base.iterdir() if not p.name.startswith(".")}


def test_only_stamped_trees_of_this_tool_count(base):
    trees = build_trees(base)
    assert [t.path.name for t in trees] == ["tiny-dddddddddddd", "pkvm-aaaaaaaaaaaa",
                                            "pkvm-bbbbbbbbbbbb", "pkvm-cccccccccccc",
                                            "tiny-eeeeeeeeeeee"]
    assert [t.path.name for t in older_than_newest(trees, 2)] == ["pkvm-cccccccccccc"]


def test_clean_keeps_the_newest_of_each_configuration(base):
    proc = clean("--out", str(base))
    assert proc.returncode == 0, proc.stderr
    assert "removed 3 build trees" in proc.stdout and "2 left" in proc.stdout
    assert names(base) == {"pkvm-aaaaaaaaaaaa", "tiny-dddddddddddd", "notes-0123456789ab",
                           "liar-0123456789ab", "matrix-configs", "matrix-timings",
                           "link-aaaaaaaaaaaa"}
    assert (base / "notes-0123456789ab" / "keep.txt").read_text() == "mine"


def test_clean_keep_n_and_all_and_dry_run(base):
    assert clean("--out", str(base), "--keep", "2").returncode == 0
    assert "pkvm-bbbbbbbbbbbb" in names(base) and "pkvm-cccccccccccc" not in names(base)
    dry = clean("--out", str(base), "--all", "-n")
    assert "would remove 4 build trees" in dry.stdout and "pkvm-aaaaaaaaaaaa" in names(base)
    assert clean("--out", str(base), "--all").returncode == 0
    # --all takes the generated configurations too (issue 26, item 16)
    assert names(base) == {"notes-0123456789ab", "liar-0123456789ab",
                           "matrix-timings", "link-aaaaaaaaaaaa"}


@pytest.mark.parametrize("args, says", [(("--keep", "0"), "keep at least 1"),
                                        (("--keep", "2", "--all"), "not both")])
def test_clean_bad_input_exits_2(base, args, says):
    proc = clean("--out", str(base), *args)
    assert proc.returncode == 2 and says in proc.stderr


def test_a_tree_being_built_is_not_removed(base):
    tree = build_trees(base)[-1]
    with open(lock_path(tree.path), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert not remove_tree(tree)
    assert tree.path.is_dir()
    assert remove_tree(tree) and not tree.path.exists()


def test_a_build_keeps_the_newest_few_of_its_configuration(base, monkeypatch):
    monkeypatch.setenv("PYHARNESS_KEEP_BUILDS", "2")
    current = base / "pkvm-aaaaaaaaaaaa"
    prune_after_build(base, "pkvm", current)
    assert {t.path.name for t in build_trees(base) if t.config_name == "pkvm"} == {
        "pkvm-aaaaaaaaaaaa", "pkvm-bbbbbbbbbbbb"}
    monkeypatch.setenv("PYHARNESS_KEEP_BUILDS", "0")          # 0: keep everything
    prune_after_build(base, "tiny", base / "tiny-dddddddddddd")
    assert len([t for t in build_trees(base) if t.config_name == "tiny"]) == 2


def test_a_real_build_stamps_and_is_bounded(tmp_path, monkeypatch):
    monkeypatch.setenv("PYHARNESS_KEEP_BUILDS", "1")
    stale = fake_tree(tmp_path, "tiny", "9" * 64, age_s=1000)
    built = builder.build("tiny", out_dir=tmp_path)
    assert (built.build_dir / MARKER).is_file() and (built.build_dir / STAMP).is_file()
    assert not stale.exists()                                   # the bound, after a build
    assert [t.path for t in build_trees(tmp_path)] == [built.build_dir]
    before = (built.build_dir / STAMP).stat().st_mtime
    time.sleep(0.01)
    assert builder.build("tiny", out_dir=tmp_path).cached
    assert (built.build_dir / STAMP).stat().st_mtime > before  # last use, for clean


def test_work_trees_are_bounded_and_cleaned_apart_from_the_builds(base):
    """A configuration's work trees (one per kernel tree's place) count on
    their own: the newest finished build and the newest work tree stay."""
    work = base / WORK_DIR
    for i, digest in enumerate(("1" * 64, "2" * 64)):
        fake_tree(work, "pkvm", digest, age_s=50 * (i + 1), stamp=False)
    proc = clean("--out", str(base))
    assert proc.returncode == 0, proc.stderr
    assert "removed work/pkvm-222222222222" in proc.stdout
    assert "removed 4 build trees" in proc.stdout and "3 left" in proc.stdout
    assert {p.name for p in work.iterdir() if not p.name.startswith(".")} == {
        "pkvm-111111111111"}
    assert "pkvm-aaaaaaaaaaaa" in names(base)


def test_a_real_build_bounds_its_work_trees(tmp_path, monkeypatch):
    monkeypatch.setenv("PYHARNESS_KEEP_BUILDS", "1")
    stale = fake_tree(tmp_path / WORK_DIR, "tiny", "8" * 64, age_s=1000, stamp=False)
    built = builder.build("tiny", out_dir=tmp_path)
    assert not stale.exists()
    assert [t.path for t in build_trees(tmp_path / WORK_DIR)] == [built.work_dir]


def test_a_finished_build_is_found_without_its_work_tree(tmp_path):
    """A work tree removed (clean, the bound) takes no finished build with it:
    the stamps say what each build read."""
    built = builder.build("tiny", out_dir=tmp_path)
    shutil.rmtree(built.work_dir)
    again = builder.build("tiny", out_dir=tmp_path)
    assert again.cached and again.build_dir == built.build_dir
    assert not built.work_dir.exists()
