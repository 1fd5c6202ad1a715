"""A tree's kernel built by kbuild: incremental after an edit, a broken
tree is exit 1 with the compiler's file:line, the tree is never written,
an in-tree build is refused, a configuration the tree cannot take is
exit 2 naming the option.

The edit tests work on a copy of Debian's 6.12 tree made of hard links,
kept in the kernel cache (``test-trees/``) so that its build survives
between sessions: cold, its first build is a whole kernel (minutes);
warm, a test costs one object and a relink.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from real_kernels import REFERENCE, kernel, linked_tree_copy, tarball

from pyharness.builder.kbuild import STAMP, build_kernel, tree_files_read
from pyharness.builder.kernel_tree import open_full_tree
from pyharness.builder.kernelsrc import KernelSourceError
from pyharness.cli.main import main
from pyharness.paths import kernel_cache

EDITED = "arch/arm64/kvm/hyp/nvhe/stacktrace.c"


@pytest.fixture(scope="module")
def tree_copy() -> Path:
    """A hard-linked copy of the 6.12 tree; the edited file is a file of
    its own (so the original tree never changes)."""
    return linked_tree_copy("edits")


def _write(tree: Path, text: str) -> None:
    target = tree / EDITED
    target.unlink()               # never write through the hard link
    target.write_text(text)


def _original(tree: Path) -> str:
    source = open_full_tree(tarball(REFERENCE), kernel_cache()).root
    return (source / EDITED).read_text()


def _snapshot(tree: Path) -> dict[str, int]:
    out = subprocess.run(["find", str(tree), "-printf", "%P %T@\n"], capture_output=True,
                         text=True, check=True).stdout
    return dict(line.rsplit(" ", 1) for line in out.splitlines())


def test_edits_broken_then_fixed(tree_copy, capsys):
    """One test, in order (the copy is one tree): a broken edit is exit 1
    with the compiler's file:line; a one-line edit then rebuilds only what
    reads the file, and never writes the tree."""
    original = _original(tree_copy)
    # The copy built as the tree is (cold: a whole kernel; warm: a relink).
    if (tree_copy / EDITED).read_text() != original:
        _write(tree_copy, original)
    build_kernel("pkvm", str(tree_copy))
    lines = original.splitlines(keepends=True)
    broken_at = len(lines) // 2
    _write(tree_copy, "".join(lines[:broken_at]) + "this is not C;\n"
           + "".join(lines[broken_at:]))
    code = main(["qemu", "--config", "pkvm", "--kernel-src", str(tree_copy),
                 "--scenario", "bug"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"{tree_copy / EDITED}:{broken_at + 1}:" in err and "error:" in err
    assert "for the configuration pkvm failed" in err

    _write(tree_copy, original + f"/* edit {time.time_ns()} */\n")
    before_tree = _snapshot(tree_copy)
    started = time.time()
    built = build_kernel("pkvm", str(tree_copy))
    assert not built.cached
    recompiled = sorted(p.name for p in built.build_dir.rglob("*.o")
                        if p.stat().st_mtime >= started)
    assert "stacktrace.nvhe.o" in recompiled
    assert "stacktrace.o" not in recompiled          # the host's, which does not read it
    assert len(recompiled) <= 12, recompiled
    # The tree is never written: nothing in it appeared or changed.
    assert _snapshot(tree_copy) == before_tree
    # Nothing changed since: found without make.
    again = build_kernel("pkvm", str(tree_copy))
    assert again.cached
    assert EDITED in tree_files_read(built.build_dir, tree_copy)


def test_the_stamp_records_what_kbuild_read():
    built = kernel(REFERENCE)
    assert (built.build_dir / STAMP).is_file()
    read = tree_files_read(built.build_dir, open_full_tree(tarball(REFERENCE),
                                                            kernel_cache()).root)
    assert EDITED in read and "arch/arm64/include/asm/stacktrace/nvhe.h" in read
    assert "arch/arm64/kvm/Kconfig" in read and len(read) > 1000


def test_an_in_tree_build_is_refused(tmp_path):
    tree = tmp_path / "linux"
    source = open_full_tree(tarball(REFERENCE), kernel_cache()).root
    for name in ("Makefile", "arch/arm64/include/asm/stacktrace/common.h",
                 "arch/arm64/include/asm/stacktrace/nvhe.h",
                 "arch/arm64/kvm/hyp/nvhe/stacktrace.c", "arch/arm64/kvm/stacktrace.c"):
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_bytes((source / name).read_bytes())
    (tree / ".config").write_text("CONFIG_KVM=y\n")
    with pytest.raises(KernelSourceError, match="make mrproper"):
        open_full_tree(str(tree), tmp_path)


def test_a_tree_that_is_not_one(tmp_path, capsys):
    code = main(["qemu", "--config", "pkvm", "--kernel-src", str(tmp_path),
                 "--scenario", "bug"])
    err = capsys.readouterr().err
    assert code == 2 and "missing Makefile" in err
