"""Issue 26, the build, mutate and clean items: no stale build, no verdict
from a crash (docs/kernel-src.md, docs/mutation.md, README "clean")."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build import copy_tree

from pyharness.builder import cache as builder
from pyharness.builder import worktree

# In the recipe, read by no compiler (the kallsyms generator is too, but a
# test's copy of the checkout runs the installed one).
CMAKE = "CMakeLists.txt"
FLAGS, EDITED_FLAGS = "-fno-strict-aliasing -g ${NVHE_OPT}", "-fno-strict-aliasing -g -O1"


def _edit_during_build(monkeypatch: pytest.MonkeyPatch, path, old: str, new: str,
                       *, undo: bool = False) -> list[int]:
    """Edit ``path`` as the compile starts (after the key's sources were
    hashed), the first time only; with ``undo``, put it back once the
    compile is done (before the build is recorded)."""
    real = worktree._run
    calls = []

    def run(argv, cwd, what, env):  # type: ignore[no-untyped-def]
        if what != "firmware build" or calls:
            return real(argv, cwd, what, env)
        calls.append(1)
        text = path.read_text()
        path.write_text(text.replace(old, new))
        try:
            return real(argv, cwd, what, env)
        finally:
            if undo:
                path.write_text(text)
    monkeypatch.setattr(worktree, "_run", run)
    return calls


@pytest.fixture(scope="module")
def lab_copy(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes]:
    """A copy of the checkout, and its tiny image (built with it in place)."""
    lab = copy_tree(tmp_path_factory.mktemp("lab") / "lab")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NVHE_LAB_ROOT", str(lab))
        built = builder.build("tiny", out_dir=tmp_path_factory.mktemp("reference"))
    return lab, built.elf.read_bytes()


def test_a_recipe_source_edited_during_the_build_is_not_cached_under_the_old_key(
        lab_copy, tmp_path, monkeypatch):
    """Item 3: CMakeLists.txt (in the recipe, read by no compiler) edited
    once the recipe is hashed: the image it made is not stored under
    the recipe of the unedited sources, so undoing the edit builds again,
    and the result is the unedited sources' image."""
    lab, reference = lab_copy
    monkeypatch.setenv("NVHE_LAB_ROOT", str(lab))
    cmake = lab / CMAKE
    calls = _edit_during_build(monkeypatch, cmake, FLAGS, EDITED_FLAGS)
    edited = builder.build("tiny", out_dir=tmp_path / "out").elf.read_bytes()
    assert calls and edited != reference
    cmake.write_text(cmake.read_text().replace(EDITED_FLAGS, FLAGS))
    undone = builder.build("tiny", out_dir=tmp_path / "out")
    assert undone.elf.read_bytes() == reference


def test_an_edit_undone_during_the_build_is_not_cached(lab_copy, tmp_path, monkeypatch):
    """Edited as the compile starts, put back before the build is recorded:
    what the compile read is neither the old sources nor the new; nothing is
    found under either key afterwards unless built from them."""
    lab, reference = lab_copy
    monkeypatch.setenv("NVHE_LAB_ROOT", str(lab))
    _edit_during_build(monkeypatch, lab / CMAKE, FLAGS, EDITED_FLAGS, undo=True)
    during = builder.build("tiny", out_dir=tmp_path / "out")
    again = builder.build("tiny", out_dir=tmp_path / "out")
    assert again.elf.read_bytes() == reference
    assert during.elf.read_bytes() == reference
