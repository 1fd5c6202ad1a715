"""Issue 26, the build, mutate and clean items: no stale build, no verdict
from a crash (docs/kernel-src.md, docs/mutation.md, README "clean")."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import lzma
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from test_build import copy_tree

from pyharness.builder import cache as builder
from pyharness.builder import kernel_tree, kernelsrc, worktree
from pyharness.errors import HarnessError
from pyharness.mutate.scratch import scratch_dir
from pyharness.paths import build_base

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


# -- a kernel tree's copy (item 4) -----------------------------------------------

TARBALL = kernelsrc.debian_tarball("6.12")
needs_tree = pytest.mark.skipif(not TARBALL.is_file(), reason=f"{TARBALL} is not installed")
EXTRA_H = "arch/arm64/include/asm/stacktrace/extra.h"
NVHE_INCLUDE = "#include <asm/stacktrace/nvhe.h>"


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The files the build reads of Debian's 6.12 tree (extracted once into
    the checkout's build directory), copied; its EL1 stacktrace.c includes
    one more header of the tree's, which no list of known files names."""
    source = kernelsrc.open_source(str(TARBALL), build_base(None))
    assert source is not None
    root, dest = source.tree.root, tmp_path / "linux"
    for path in (root / kernelsrc.MAKEFILE, *source.tree.build_files):
        (dest / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / path.relative_to(root))
    (dest / EXTRA_H).write_text("#define EXTRA_DEPTH 1\n")
    host = dest / kernelsrc.HOST_STACKTRACE_C
    host.write_text(host.read_text().replace(
        NVHE_INCLUDE, f"{NVHE_INCLUDE}\n#include <asm/stacktrace/extra.h>", 1))
    return dest


@needs_tree
@pytest.mark.parametrize("header", [EXTRA_H, kernelsrc.COMMON_H])
def test_a_header_the_trees_stacktrace_c_includes_is_never_cached_stale(tree, tmp_path,
                                                                        header):
    """Item 4 holds: the key is every file the compile read."""
    out = tmp_path / "out"
    first = builder.build("tiny", out_dir=out, kernel_src=tree)
    (tree / header).write_text((tree / header).read_text() + "\n#define EDITED 1\n")
    edited = builder.build("tiny", out_dir=out, kernel_src=tree)
    assert not edited.cached and edited.digest != first.digest
    assert edited.compiled


@needs_tree
def test_mutate_copies_every_header_the_tree_may_include(tree, tmp_path):
    """Item 4: mutate --kernel-src copied four files (and the generation's):
    a tree whose stacktrace.c includes any other header failed with
    CMake's dump, exit 1."""
    proc = subprocess.run([sys.executable, "-m", "pyharness", "mutate", "--kernel-src",
                           str(tree), "--config", "tiny", "--only", "k001", "--scenarios",
                           "hyp_panic", "--out", str(tmp_path / "out"), "-j", "1"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "mutants: 1 generated" in proc.stdout


@needs_tree
def test_mutate_on_a_tree_that_does_not_build_is_one_line(tree, tmp_path):
    host = tree / kernelsrc.HOST_STACKTRACE_C
    host.write_text(host.read_text().replace("extra.h>", "missing.h>"))
    proc = subprocess.run([sys.executable, "-m", "pyharness", "mutate", "--kernel-src",
                           str(tree), "--config", "tiny", "--only", "k001", "--out",
                           str(tmp_path / "out"), "-j", "1"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "missing.h: No such file" in lines[0], proc.stderr


# -- mutate: a harness error is no kill (item 5) -----------------------------------

def _mutate(out: Path, *more: str) -> subprocess.CompletedProcess[str]:
    only = () if "--only" in more else ("--only", "m001", "m002")
    return subprocess.run([sys.executable, "-m", "pyharness", "mutate", "--config", "tiny",
                           *only, "--scenarios", "hyp_panic", "--out", str(out), "-j", "1",
                           *more], capture_output=True, text=True, cwd=out.parent)


def test_mutate_with_an_unwritable_mutate_directory_is_no_kill(tmp_path):
    """Item 5: build/mutate cannot be written (a file here, as a read-only
    or full directory refuses it): the worker died on the error and each
    mutant counted as killed, score 100%, exit 0. Now one line, exit 2."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "mutate").write_text("")
    proc = _mutate(out)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "killed by" not in proc.stdout and len(proc.stderr.splitlines()) == 1


def test_mutants_a_harness_error_stopped_are_errors_not_kills(tmp_path):
    """Item 5: the mutants' builds cannot write their files (a file-size
    limit: the linker's output is refused) while the unmutated build is
    cached: each mutant is an error with what failed, not killed, not a
    compile error; exit 2 and the summary says how many."""
    out = tmp_path / "out"
    out.mkdir()
    assert _mutate(out, "--only", "m001").returncode in (0, 1)     # the baseline, cached
    proc = subprocess.run(["prlimit", "--fsize=100000", sys.executable, "-m", "pyharness",
                           "mutate", "--config", "tiny", "--only", "m004", "m005",
                           "--scenarios", "hyp_panic", "--out", str(out), "-j", "1",
                           "--json", str(tmp_path / "m.json")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "killed by" not in proc.stdout and "COMPILE ERROR" not in proc.stdout
    assert proc.stdout.count("ERROR (no verdict: the harness failed)") == 2
    assert "File size limit exceeded" in proc.stdout
    summary = json.loads((tmp_path / "m.json").read_text())["summary"]
    assert summary["errors"] == 2 and summary["killed"] == 0
    assert proc.stdout.strip().splitlines()[-1] == (
        "mutants: 0 generated, 0 killed, 0 equivalent, 0 survived, 2 without a verdict "
        "(harness errors) (no score)")


# -- tarballs: bounded, keyed by content, one line when broken (items 8, 9, 12, 16) ---

def _sparse_tarball(directory: Path, size: str) -> Path:
    """A .tar.xz of a few hundred bytes whose linux/Makefile is a hole of ``size``."""
    (directory / "linux").mkdir(parents=True)
    subprocess.run(["truncate", "-s", size, str(directory / "linux/Makefile")], check=True)
    tarball = directory / "bomb.tar.xz"
    subprocess.run(["tar", "-cJSf", str(tarball), "-C", str(directory), "linux"], check=True)
    (directory / "linux/Makefile").unlink()
    return tarball


def _peak_kb(code: str) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``code``; its peak memory from its own VmHWM (ru_maxrss would
    count the forking pytest worker's pages)."""
    proc = subprocess.run([sys.executable, "-c", code + "\nfor line in open('/proc/self/status'):"
                           "\n    if line.startswith('VmHWM:'):\n        print('peak', "
                           "line.split()[1])"], capture_output=True, text=True, timeout=60)
    return proc, int(proc.stdout.split("peak ")[-1])


@pytest.mark.parametrize("size", ["2G", "20G"])
def test_a_tarball_bomb_is_refused_in_bounded_memory(tmp_path, size):
    """Item 8: a sparse 2 GiB member cost 2.1 GB of memory (20 GiB: a
    traceback), on the fast path and unpacking a whole tree alike."""
    tarball = _sparse_tarball(tmp_path, size)
    assert tarball.stat().st_size < 1000
    proc = subprocess.run([sys.executable, "-m", "pyharness", "build", "--config", "tiny",
                           "--kernel-src", str(tarball), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "linux/Makefile is" in proc.stderr and "not a kernel source tarball" in proc.stderr
    proc, peak = _peak_kb(
        "from pathlib import Path\nfrom pyharness.builder import kernel_tree\n"
        "from pyharness.errors import HarnessError\ntry:\n"
        f"    kernel_tree.open_full_tree({str(tarball)!r}, Path({str(tmp_path / 'kc')!r}))\n"
        "except HarnessError as err:\n    print(err)\n")
    assert "a member is larger than any kernel source file" in proc.stdout, proc.stderr
    assert peak < 200_000
    assert not [p for p in (tmp_path / "kc/trees").iterdir() if p.is_dir()]


def _cut_xz() -> bytes:
    """A .tar.xz cut short, and one with its data damaged."""
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:xz") as archive:
        for name in ("linux/a.c", "linux/Makefile"):
            member = tarfile.TarInfo(name)
            member.size = 1 << 18
            archive.addfile(member, io.BytesIO(os.urandom(1 << 18)))
    return data.getvalue()[:300_000]


def _damaged_xz() -> bytes:
    whole = bytearray(lzma.compress(b"linux/Makefile".ljust(512, b"\0") * 64))
    whole[60:80] = bytes(20)
    return bytes(whole)


@pytest.mark.parametrize("content,says", [
    (_cut_xz(), "damaged or cut short"),
    (_damaged_xz(), "damaged or cut short"),
    (b"hello, not a tarball\n", "not a tar archive, plain or compressed"),
])
def test_an_unreadable_tarball_is_one_line(tmp_path, content, says):
    """Items 12 and 16: a corrupt .tar.xz was an LZMAError traceback; a file
    that is no tar at all printed tarfile's five lines as a literal \\n-."""
    tarball = tmp_path / "linux-source-6.12.tar.xz"
    tarball.write_bytes(content)
    proc = subprocess.run([sys.executable, "-m", "pyharness", "build", "--config", "tiny",
                           "--kernel-src", str(tarball), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "\\n" not in proc.stderr
    assert says in proc.stderr and "Traceback" not in proc.stderr


def _twin_tarballs(tmp_path: Path) -> tuple[Path, Path]:
    """Two tarballs of one name, size and mtime whose stacktrace.c differ
    in one byte."""
    source = kernelsrc.open_source(str(TARBALL), build_base(None))
    assert source is not None
    made = []
    for twin, letter in (("a", b"x"), ("b", b"y")):
        top = tmp_path / f"src-{twin}" / "linux"
        root = source.tree.root
        for path in (root / kernelsrc.MAKEFILE, *source.tree.build_files):
            (top / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, top / path.relative_to(root))
        host = top / kernelsrc.HOST_STACKTRACE_C
        host.write_bytes(host.read_bytes() + b"/* " + letter + b" */\n")
        (tmp_path / twin).mkdir()
        tarball = tmp_path / twin / "linux-source-6.12.tar"
        subprocess.run(["tar", "-cf", str(tarball), "--mtime=2026-01-01", "--owner=0",
                        "--group=0", "--sort=name", "-C", str(top.parent), "linux"], check=True)
        os.utime(tarball, ns=(0, 1_000_000_000))
        made.append(tarball)
    assert made[0].stat().st_size == made[1].stat().st_size
    return made[0], made[1]


@needs_tree
def test_two_tarballs_agreeing_on_name_size_and_mtime_are_two_trees(tmp_path):
    """Item 9: the extraction was keyed by name, size and mtime: the second
    tarball used the first one's files."""
    a, b = _twin_tarballs(tmp_path)
    base = tmp_path / "out"
    for tarball, letter in ((a, b"x"), (b, b"y")):
        source = kernelsrc.open_source(str(tarball), base)
        assert source is not None
        host = source.tree.root / kernelsrc.HOST_STACKTRACE_C
        assert host.read_bytes().endswith(b"/* " + letter + b" */\n")
    for tarball, letter in ((a, b"x"), (b, b"y")):
        tree = kernel_tree.open_full_tree(str(tarball), tmp_path / "kc")
        assert (tree.root / kernelsrc.HOST_STACKTRACE_C).read_bytes().endswith(
            b"/* " + letter + b" */\n")


@needs_tree
def test_a_tree_unpacked_before_content_keys_is_kept_only_if_its_files_match(tmp_path):
    """The kernel cache's trees unpacked under the old key (the real kernels
    built from them are keyed by their place) are checked once, then kept."""
    a, b = _twin_tarballs(tmp_path)
    first = kernel_tree.open_full_tree(str(a), tmp_path / "kc").root
    st = a.stat()
    old = hashlib.sha256(f"{a.name}\0{st.st_size}\0{st.st_mtime_ns}".encode()).hexdigest()
    earlier = tmp_path / "kc2/trees" / f"linux-source-6.12-{old[:12]}"
    shutil.copytree(first, earlier)
    assert kernel_tree.open_full_tree(str(a), tmp_path / "kc2").root == earlier
    assert kernel_tree.open_full_tree(str(b), tmp_path / "kc2").root != earlier


# -- clean: a build in use stays; clean says what it could not do (items 11, 15, 16) ---

def _clean(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyharness", "clean", *args],
                          capture_output=True, text=True, timeout=120)


_USER = """
import sys
from pyharness.builder import cache
built = cache.build("tiny", out_dir=sys.argv[1])
print(built.build_dir, flush=True)
sys.stdin.read()                       # uses the image until told to stop
print(len(built.elf.read_bytes()))
"""


def test_a_build_in_use_is_not_removed_by_clean_or_pruning(lab_copy, tmp_path, monkeypatch):
    """Item 11: `clean`, or the pruning after another build, removed the
    build a running matrix was about to use ("cannot read the image")."""
    lab, _ = lab_copy
    monkeypatch.setenv("NVHE_LAB_ROOT", str(lab))
    out = tmp_path / "out"
    user = subprocess.Popen([sys.executable, "-c", _USER, str(out)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        in_use = Path(user.stdout.readline().strip())
        proc = _clean("--out", str(out), "--all")
        assert proc.returncode == 0, proc.stderr
        assert f"kept {in_use.name}: in use" in proc.stdout
        # another build of the configuration, keeping one: the pruning skips it
        header = lab / "csrc/include/percpu.h"
        text = header.read_text()
        header.write_text(text + "/* another build */\n")
        try:
            monkeypatch.setenv("PYHARNESS_KEEP_BUILDS", "1")
            other = builder.build("tiny", out_dir=out)
        finally:
            header.write_text(text)
        assert other.build_dir != in_use and in_use.is_dir()
        user.stdin.close()
        assert int(user.stdout.readline()) > 0 and user.wait(timeout=30) == 0
    finally:
        user.kill()
    assert _clean("--out", str(out), "--all").returncode == 0 and not in_use.exists()


def test_clean_on_a_read_only_directory_says_it_could_not(tmp_path):
    """Item 16: it said "a build of it is running" and exited 0."""
    base = tmp_path / "ro"
    tree = base / f"tiny-{'a' * 12}"
    tree.mkdir(parents=True)
    (tree / "build.json").write_text(json.dumps({"digest": "a" * 64}))
    mount = subprocess.run(["mount", "--bind", "-o", "ro", str(base), str(base)],
                           capture_output=True)
    if mount.returncode != 0:
        pytest.skip("no read-only bind mount here (needs root)")
    try:
        proc = _clean("--out", str(base), "--all")
    finally:
        subprocess.run(["umount", str(base)], check=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "kept tiny-aaaaaaaaaaaa: cannot be removed: Read-only file system" in proc.stdout
    assert len(proc.stderr.splitlines()) == 1 and "could not be removed" in proc.stderr
    assert "running" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("command", [("clean", "--all"), ("mutate", "--list")])
def test_an_empty_out_is_refused(tmp_path, command):
    """Item 15: `clean --all --out ''` removed the build trees of the
    current directory."""
    tree = tmp_path / f"tiny-{'a' * 12}"
    tree.mkdir()
    (tree / "build.json").write_text(json.dumps({"digest": "a" * 64}))
    proc = subprocess.run([sys.executable, "-m", "pyharness", *command, "--out", ""],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert proc.returncode == 2 and "--out \"\"" in proc.stderr, proc.stderr
    assert tree.is_dir()


def test_clean_all_takes_the_mutants_and_the_generated_configurations(tmp_path):
    """Item 16: `clean --all` never removed build/mutate or matrix-configs."""
    base = tmp_path / "build"
    for where in ("", "mutate/"):
        tree = base / f"{where}tiny-{'b' * 12}"
        tree.mkdir(parents=True)
        (tree / "build.json").write_text(json.dumps({"digest": "b" * 64}))
    (base / "matrix-configs/all").mkdir(parents=True)
    proc = _clean("--out", str(base), "--all")
    assert proc.returncode == 0, proc.stderr
    assert "removed mutate/tiny-bbbbbbbbbbbb" in proc.stdout
    assert sorted(p.name for p in base.rglob("*") if not p.name.endswith(".lock")) == ["mutate"]


@pytest.mark.parametrize("out", ["/etc/passwd"])
def test_clean_out_a_file_is_one_line(out):
    """Item 12: a traceback."""
    proc = _clean("--out", out, "--all")
    assert proc.returncode == 2 and "not a directory" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@needs_tree
def test_a_link_to_a_tree_is_the_same_tree(tree, tmp_path):
    """Item 16: a symlink to a tree counted as a second tree."""
    from pyharness.matrix.expand import unwinder_axis
    link = tmp_path / "link"
    link.symlink_to(tree)
    assert [u.label for u in unwinder_axis([str(tree), str(link)], tmp_path / "out")] == [
        "linux-6.12"]
    with pytest.raises(HarnessError, match="given twice"):
        unwinder_axis([f"a={tree}", f"b={link}"], tmp_path / "out")


# -- paths CMake cannot carry, a full disk (items 12, 13) -------------------------

@pytest.mark.parametrize("bad", ["a$(id)b", "a'b", "a`b", "a&b", "a*b", "a^b", "a;b",
                                 "a\nb"])
def test_an_out_or_tree_path_cmake_cannot_carry_is_one_line(tmp_path, bad):
    """Item 13: `$(...)` (and the shell's own characters) in --out reached
    CMake: exit 1 and a 20-line dump (or a build never cached)."""
    proc = subprocess.run([sys.executable, "-m", "pyharness", "build", "--config", "tiny",
                           "--out", str(tmp_path / bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert "CMake cannot build in a path holding" in proc.stderr
    assert not (tmp_path / bad).exists()


@needs_tree
def test_a_kernel_tree_path_cmake_cannot_carry_is_one_line(tree, tmp_path):
    moved = tmp_path / "k$(x)" / "linux"
    moved.parent.mkdir()
    tree.rename(moved)
    with pytest.raises(HarnessError, match=r"--kernel-src tree .*holding '\$'"):
        builder.build("tiny", out_dir=tmp_path / "out", kernel_src=moved)


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 512 KB file system (a tiny build's work tree takes about 1 MB)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_disk_that_fills_during_the_build_is_one_line(small_disk):
    """Item 13: "firmware build failed", exit 1, the compiler's dump."""
    proc = subprocess.run([sys.executable, "-m", "pyharness", "build", "--config", "tiny",
                           "--out", str(small_disk / "build")], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "is full" in proc.stderr, proc.stderr
    assert "--out DIR on another disk" in proc.stderr


def test_a_disk_that_fills_as_the_stamp_is_written_is_one_line(lab_copy, tmp_path,
                                                               monkeypatch):
    """Item 12: a traceback; and no half-made build is left to be found."""
    lab, _ = lab_copy
    monkeypatch.setenv("NVHE_LAB_ROOT", str(lab))

    def full(path, text):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
    monkeypatch.setattr(builder, "write_atomically", full)
    with pytest.raises(HarnessError, match="is full") as caught:
        builder.build("tiny", out_dir=tmp_path / "out")
    assert "\n" not in str(caught.value)
    assert not list((tmp_path / "out").glob("tiny-*"))


@pytest.mark.parametrize("make,says", [
    (lambda p: p.write_bytes(b"# caf\xe9\n"), ":1: not UTF-8 text"),
    (lambda p: os.mkfifo(p), "not a regular file"),
    (lambda p: p.symlink_to("/dev/zero"), "not a regular file"),
    (lambda p: p.write_bytes(b"#" * (2 << 20)), "not an equivalents list"),
])
def test_an_equivalents_file_that_is_not_text_is_one_line(tmp_path, make, says):
    """Item 12: a non-UTF-8 file was a traceback; /dev/zero or a FIFO never ended."""
    path = tmp_path / "equivalent.txt"
    make(path)
    proc = subprocess.run([sys.executable, "-m", "pyharness", "mutate", "--list",
                           "--equivalents", str(path), "--out", str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert says in proc.stderr


# -- mutate's scratch copies; bounds on -j, --randconfig, --shard (item 16) ----------

_SCRATCH_USER = """
import sys, time
from pathlib import Path
from pyharness.mutate.scratch import scratch_dir
with scratch_dir(Path(sys.argv[1])) as path:
    (path / "tree").mkdir()
    print(path, flush=True)
    time.sleep(600)
"""


def test_a_killed_mutation_runs_copies_are_removed_at_the_next_start(tmp_path):
    """Item 16: kill -9 of mutate left its copies in /tmp for good."""
    mutate_dir = tmp_path / "build/mutate"
    users = [subprocess.Popen([sys.executable, "-c", _SCRATCH_USER, str(mutate_dir)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    killed, alive = (Path(u.stdout.readline().strip()) for u in users)
    users[0].kill()
    users[0].wait()
    try:
        assert killed.is_dir()
        with scratch_dir(mutate_dir) as mine:
            assert not killed.exists() and alive.is_dir() and mine.is_dir()
        assert not mine.exists() and alive.is_dir()
    finally:
        users[1].kill()
        users[1].wait()


def test_a_mutation_run_keeps_nothing_in_tmp(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "pyharness", "mutate", "--config", "tiny",
                           "--only", "m001", "--scenarios", "hyp_panic", "--out", str(out),
                           "-j", "1"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp)})
    assert proc.returncode in (0, 1), proc.stderr
    assert not [p for p in tmp.iterdir() if p.name.startswith("pyharness-mutate")]
    assert (out / "mutate/scratch").is_dir()
    assert not [p for p in (out / "mutate/scratch").iterdir()]


@pytest.mark.parametrize("args,says", [
    (("--randconfig", "1000000"), "there are only 480 combinations"),
    (("--shard", "1/\u0662"), "ASCII digits"),
    (("--shard", "\uff11/2"), "ASCII digits"),
])
def test_matrix_bounds_are_checked_at_once(tmp_path, args, says):
    """Item 16: --randconfig 1000000 enumerated for minutes; --shard 1/٢ was
    taken as 1/2."""
    proc = subprocess.run([sys.executable, "-m", "pyharness", "matrix", *args, "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and says in proc.stderr, proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_workers_beyond_what_helps_are_capped_and_said():
    """Item 16: -j 48 started 48 workers (2.5 GB) on two CPUs."""
    proc = subprocess.run([sys.executable, "-c",
                           "from pyharness.cli.options import capped_jobs\n"
                           "print(capped_jobs(100000), capped_jobs(1), capped_jobs(None))"],
                          capture_output=True, text=True, timeout=30)
    capped, one, none = proc.stdout.split()
    assert 1 <= int(capped) <= 4 * (os.cpu_count() or 1) and (one, none) == ("1", "None")
    assert proc.stderr.startswith(f"-j 100000: using {capped} workers (")


@needs_tree
def test_a_tree_file_edited_during_the_build_is_not_cached(tree, tmp_path, monkeypatch):
    """Item 3 for a tree's files: stacktrace.c edited as the compile starts
    and put back before the build is recorded; the image handed over, and
    the one found after, are the unedited tree's."""
    reference = builder.build("tiny", out_dir=tmp_path / "reference", kernel_src=tree)
    reference_bytes = reference.elf.read_bytes()
    host = tree / kernelsrc.HOST_STACKTRACE_C
    _edit_during_build(monkeypatch, host, "nVHE call trace", "nVHE call trace!", undo=True)
    during = builder.build("tiny", out_dir=tmp_path / "out", kernel_src=tree)
    assert during.elf.read_bytes() == reference_bytes
    again = builder.build("tiny", out_dir=tmp_path / "out", kernel_src=tree)
    assert again.cached and again.elf.read_bytes() == reference_bytes
