"""Issue 24, items 3 and 4: a build's key is every file its compile read (the
compiler's dependency output), for the lab's sources and a kernel tree's
alike, and an edit recompiles only the objects that read the edited file.

The tree is a copy of the files the build reads from Debian's 6.12 tree
(skipped when /usr/src/linux-source-6.12.tar.xz is not installed). Which
objects read a file is asked of the compiler itself (``gcc -M`` on each
entry of the compile database), not of the harness's records.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from test_build import copy_tree, objects_reading

from pyharness.builder import cache as builder
from pyharness.builder import kernelsrc
from pyharness.builder.depfiles import CONFIGURE_DEPS
from pyharness.builder.kernelsrc import KernelSourceError
from pyharness.cli.main import main
from pyharness.elf.image import load_image
from pyharness.errors import BuildError
from pyharness.paths import source_root

TARBALL = kernelsrc.debian_tarball("6.12")
pytestmark = pytest.mark.skipif(not TARBALL.is_file(), reason=f"{TARBALL} is not installed "
                                "(apt-get install linux-source-6.12)")
EXTRA_H = "arch/arm64/include/asm/stacktrace/extra.h"
NVHE_INCLUDE = "#include <asm/stacktrace/nvhe.h>"


@pytest.fixture(scope="module")
def debian_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return kernelsrc.extract(TARBALL, tmp_path_factory.mktemp("linux-6.12")).root


@pytest.fixture
def tree(debian_tree: Path, tmp_path: Path) -> Path:
    """A tree of one's own: the files the build reads, copied."""
    known = kernelsrc.inspect(debian_tree)
    for path in (debian_tree / kernelsrc.MAKEFILE, *known.build_files):
        name = path.relative_to(debian_tree)
        (tmp_path / "linux" / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, tmp_path / "linux" / name)
    return tmp_path / "linux"


def edit(path: Path, old: str, new: str, *, keep_mtime: bool = False) -> None:
    """Replace ``old`` (once in the file) by ``new``; with ``keep_mtime`` the
    file keeps its earlier mtime, as `cp -p`, `tar x` or `rsync -a` leave it."""
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} is not once in {path}"
    st = path.stat()
    path.write_text(text.replace(old, new))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def include_extra_header(tree: Path, text: str) -> None:
    """The tree's EL1 stacktrace.c includes a header of the tree's that the
    build never read before."""
    (tree / EXTRA_H).write_text(text)
    edit(tree / kernelsrc.HOST_STACKTRACE_C, NVHE_INCLUDE,
         f"{NVHE_INCLUDE}\n#include <asm/stacktrace/extra.h>")


# -- the key: every file the compile read -----------------------------------------

def test_a_header_the_tree_includes_is_in_the_key(tree, tmp_path, capsys):
    """The issue's case: a new header of the tree's, then that header an #error."""
    out = tmp_path / "out"
    include_extra_header(tree, "/* a header of the tree's own */\n")
    assert not builder.build("pkvm", out_dir=out, kernel_src=tree).cached
    assert builder.build("pkvm", out_dir=out, kernel_src=tree).cached

    (tree / EXTRA_H).write_text("#error this header is broken\n")
    with pytest.raises(BuildError, match="this header is broken"):
        builder.build("pkvm", out_dir=out, kernel_src=tree)
    # The matrix: no configuration builds, so none of its runs can pass.
    argv = ["matrix", "-q", "-j", "1", "--configs", "pkvm", "--scenarios", "hyp_panic",
            "--kernel-src", str(tree), "--out", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "this header is broken" in captured.err and "passed" not in captured.out


def test_every_kind_of_input_is_recorded(tree, tmp_path):
    """The lab's sources, the compatibility headers the tree's files read,
    the tree's own files (those it includes too) and the compiler's
    headers; nothing of the build tree (generated from the configuration)
    and no absolute lab path."""
    include_extra_header(tree, "/* a header of the tree's own */\n")
    built = builder.build("pkvm", out_dir=tmp_path / "out", kernel_src=tree)
    inputs = json.loads((built.build_dir / builder.STAMP).read_text())["inputs"]
    assert {f"tree:{name}" for name in (*kernelsrc.BUILD_FILES, EXTRA_H)} <= set(inputs)
    assert "lab:csrc/kcompat/common/linux/kvm_host.h" in inputs
    assert "lab:csrc/hyp/hyp.lds.S" in inputs               # a linker script's input
    assert any(label.endswith("/include/stddef.h") for label in inputs)
    assert not any(str(source_root()) in label or str(built.work_dir) in label
                   for label in inputs)
    assert all(len(digest) == 64 for digest in inputs.values())


def test_an_edit_behind_an_old_mtime_still_rebuilds(tree, tmp_path):
    """The key goes by content: an edit that keeps the file's mtime (older
    than the objects) is compiled, and the image is the one a fresh build
    of the same sources makes, byte for byte."""
    out = tmp_path / "out"
    first = builder.build("pkvm", out_dir=out, kernel_src=tree)
    edit(tree / kernelsrc.HOST_STACKTRACE_C, 'kvm_err("nVHE call trace:\\n");',
         'kvm_err("nVHE call stack:\\n");', keep_mtime=True)
    edited = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert not edited.cached and edited.build_dir != first.build_dir
    assert b"nVHE call stack" in edited.elf.read_bytes()
    assert b"nVHE call stack" not in first.elf.read_bytes()     # the old image stays
    fresh = builder.build("pkvm", out_dir=tmp_path / "fresh", kernel_src=tree)
    assert fresh.compiled is not None and len(fresh.compiled) == fresh.objects
    assert fresh.elf.read_bytes() == edited.elf.read_bytes()
    assert fresh.digest == edited.digest


def test_the_sources_of_a_finished_build_find_it_again(tree, tmp_path):
    out = tmp_path / "out"
    original = builder.build("pkvm", out_dir=out, kernel_src=tree)
    include_extra_header(tree, "/* one */\n")
    changed = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert not changed.cached
    (tree / EXTRA_H).unlink()
    edit(tree / kernelsrc.HOST_STACKTRACE_C, "\n#include <asm/stacktrace/extra.h>", "")
    again = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert again.cached and again.build_dir == original.build_dir and again.compiled is None


# -- the edit loop: only what read the file ------------------------------------------

@pytest.mark.parametrize("name", [kernelsrc.HOST_STACKTRACE_C, kernelsrc.NVHE_H,
                                  kernelsrc.COMMON_H])
def test_an_edit_recompiles_only_the_objects_that_read_the_file(tree, tmp_path, name):
    out = tmp_path / "out"
    first = builder.build("pkvm", out_dir=out, kernel_src=tree)
    readers = objects_reading(first, tree / name)
    assert readers and len(readers) < first.objects
    text = (tree / name).read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("#include"))
    edit(tree / name, line, f"{line} /* edited */")
    edited = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert not edited.cached and edited.objects == first.objects
    assert set(edited.compiled) == readers


def test_a_lab_header_edit_recompiles_only_its_readers(tmp_path, monkeypatch):
    lab = copy_tree(tmp_path / "lab")
    monkeypatch.setenv("NVHE_LAB_ROOT", str(lab))
    first = builder.build("tiny", out_dir=tmp_path / "out")
    header = lab / "csrc/include/percpu.h"
    readers = objects_reading(first, header)
    assert readers and len(readers) < first.objects
    header.write_text(header.read_text() + "/* edited */\n")
    edited = builder.build("tiny", out_dir=tmp_path / "out")
    assert not edited.cached and set(edited.compiled) == readers


# -- a step's depfile joins the key --------------------------------------------------

def test_a_configure_time_depfile_joins_the_key(tree, tmp_path):
    """What any configure-time step read (a depfile under configure-deps/):
    a change to it is not cached, and CMake configures again."""
    out = tmp_path / "out"
    first = builder.build("pkvm", out_dir=out, kernel_src=tree)
    probe_input = tree / "arch/arm64/include/asm/probed.h"
    probe_input.write_text("#define PROBED 4096\n")
    (first.work_dir / CONFIGURE_DEPS).mkdir(exist_ok=True)
    (first.work_dir / CONFIGURE_DEPS / "probe.d").write_text(
        f"probe.h: {probe_input} \\\n  {tree / kernelsrc.NVHE_H}\n")
    include_extra_header(tree, "\n")            # a build, which records the probe's inputs
    recorded = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert not recorded.cached
    assert "tree:arch/arm64/include/asm/probed.h" in json.loads(
        (recorded.build_dir / builder.STAMP).read_text())["inputs"]
    cache_file = recorded.work_dir / "CMakeCache.txt"
    configured = cache_file.stat().st_mtime_ns

    probe_input.write_text("#define PROBED 2048\n")
    again = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert not again.cached and again.digest != recorded.digest
    assert cache_file.stat().st_mtime_ns != configured
    assert builder.build("pkvm", out_dir=out, kernel_src=tree).cached


def test_the_trees_numbers_join_the_key_of_an_incremental_build(tree, tmp_path):
    """The numbers' probe reads the tree's asm/memory.h, which no object
    does (they read kcompat's): an edit to it after a build is built, with
    the tree's new number in the image (issue 24's first case: "cached, no
    compiler work" and the lab's number), and a number the platform cannot
    host is still exit 2 before any compiler work."""
    out = tmp_path / "out"
    first = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert load_image(first.elf).stack_sizes.overflow_stack == 4096
    inputs = json.loads((first.build_dir / builder.STAMP).read_text())["inputs"]
    assert f"tree:{kernelsrc.MEMORY_H}" in inputs
    edit(tree / kernelsrc.MEMORY_H, "#define OVERFLOW_STACK_SIZE\tSZ_4K",
         "#define OVERFLOW_STACK_SIZE\tSZ_2K", keep_mtime=True)
    edited = builder.build("pkvm", out_dir=out, kernel_src=tree)
    assert not edited.cached and load_image(edited.elf).stack_sizes.overflow_stack == 2048
    edit(tree / kernelsrc.MEMORY_H, "#define OVERFLOW_STACK_SIZE\tSZ_2K",
         "#define OVERFLOW_STACK_SIZE\t256")
    with pytest.raises(KernelSourceError, match="OVERFLOW_STACK_SIZE is 256"):
        builder.build("pkvm", out_dir=out, kernel_src=tree)


# -- concurrent builders of one edit -------------------------------------------------

def _build_in_child(tree: str, out: str) -> tuple[str, bool]:
    result = builder.build("pkvm", out_dir=out, kernel_src=tree)
    return str(result.build_dir), result.cached


def test_two_processes_building_one_edit_agree(tree, tmp_path):
    out = tmp_path / "out"
    builder.build("pkvm", out_dir=out, kernel_src=tree)
    include_extra_header(tree, "/* new */\n")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap(_build_in_child, [(str(tree), str(out))] * 2)
    assert results[0][0] == results[1][0]
    assert sorted(cached for _, cached in results) == [False, True]


def test_the_matrix_says_what_an_edit_compiled(tree, tmp_path, capsys):
    """The edit loop as a user runs it: one tree file edited, then the matrix."""
    argv = ["matrix", "-j", "1", "--configs", "pkvm", "nvhe", "--scenarios", "hyp_panic",
            "--kernel-src", str(tree), "--out", str(tmp_path / "out")]
    assert main(argv) == 0
    capsys.readouterr()
    edit(tree / kernelsrc.HOST_STACKTRACE_C, NVHE_INCLUDE, f"{NVHE_INCLUDE} /* edited */")
    assert main(argv) == 0
    # (pkvm, the first, is built while the matrix is planned, to read its
    # scenarios: the build phase then finds it cached.)
    err = capsys.readouterr().err
    assert re.search(r"^build linux-6\.12/nvhe: built in [\d.]+ s \(1 of \d+ objects "
                     r"compiled\)$", err, re.M), err
