"""The pieces of the build key: depfiles and Ninja's deps log read back,
files hashed and labelled (tests/test_build_key.py builds with them)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from pyharness.builder.depfiles import (CONFIGURE_DEPS, format_depfile, parse_depfile,
                                        parse_ninja_deps, read_build_deps)
from pyharness.builder.inputs import (CHANGED_DURING_BUILD, SETTLE_NS, Roots, content_key,
                                      file_hash)


def test_a_gcc_depfile_with_continuations_escapes_and_phony_rules():
    text = ("obj/a.c.o: /src/a.c /src/inc/a\\ b.h \\\n"
            "  /src/inc/c$$d.h \\\n /src/inc/e\\#f.h\n"
            "\n/src/inc/a\\ b.h:\n/src/inc/c$$d.h:\n")
    rules = parse_depfile(text)
    assert rules["obj/a.c.o"] == ["/src/a.c", "/src/inc/a b.h", "/src/inc/c$d.h",
                                  "/src/inc/e#f.h"]
    assert rules["/src/inc/a b.h"] == [] and rules["/src/inc/c$d.h"] == []


def test_a_path_with_a_colon_and_several_targets():
    rules = parse_depfile("x.o y.o: /a:b/c.h /d.h\n")
    assert rules == {"x.o": ["/a:b/c.h", "/d.h"], "y.o": ["/a:b/c.h", "/d.h"]}


def test_ninja_deps_output():
    out = ("CMakeFiles/t.dir/a.c.obj: #deps 2, deps mtime 123 (VALID)\n"
           "    /src/a.c\n    config/generated/autoconf.h\n\n"
           "CMakeFiles/t.dir/b.S.obj: #deps 1, deps mtime 124 (STALE)\n    /src/b.S\n\n")
    assert parse_ninja_deps(out) == {
        "CMakeFiles/t.dir/a.c.obj": ["/src/a.c", "config/generated/autoconf.h"],
        "CMakeFiles/t.dir/b.S.obj": ["/src/b.S"]}


def test_a_build_trees_depfiles_and_deps_log(tmp_path):
    """Depfiles anywhere in the tree (configure-time ones apart) and, with
    Ninja, its deps log; relative paths are the build tree's."""
    build = tmp_path / "build"
    (build / "sub").mkdir(parents=True)
    (build / "sub" / "x.lds.d").write_text(f"{build}/x.lds: /src/x.lds.S config/a.h\n")
    (build / CONFIGURE_DEPS).mkdir()
    (build / CONFIGURE_DEPS / "probe.d").write_text("probe.h: /tree/asm/memory.h\n")
    if shutil.which("ninja"):
        (build / "build.ninja").write_text(
            "rule cc\n  command = cp $in $out && printf '$out: $in ../h.h\\n' > $out.d\n"
            "  deps = gcc\n  depfile = $out.d\nbuild y.o: cc ../y.c\n")
        (tmp_path / "y.c").write_text("")
        (tmp_path / "h.h").write_text("")
        subprocess.run(["ninja", "-C", str(build)], check=True, capture_output=True)
    deps = read_build_deps(build)
    assert deps.compile["x.lds"] == ("/src/x.lds.S", f"{build}/config/a.h")
    assert deps.configure == {"probe.h": ("/tree/asm/memory.h",)}
    if shutil.which("ninja"):
        assert deps.compile["y.o"] == (f"{tmp_path}/h.h", f"{tmp_path}/y.c")


def test_labels_say_what_not_where(tmp_path):
    roots = Roots(lab=tmp_path / "lab", tree=tmp_path / "linux", build=tmp_path / "lab/build")
    assert roots.label(f"{tmp_path}/lab/csrc/include/x.h") == "lab:csrc/include/x.h"
    assert roots.label(f"{tmp_path}/linux/arch/arm64/a.h") == "tree:arch/arm64/a.h"
    assert roots.label(f"{tmp_path}/lab/build/config/autoconf.h") is None
    assert roots.label("/usr/lib/gcc/include/stddef.h") == "/usr/lib/gcc/include/stddef.h"
    assert roots.label(f"{tmp_path}/labx/y.h") == f"{tmp_path}/labx/y.h"
    assert roots.path("tree:arch/arm64/a.h") == f"{tmp_path}/linux/arch/arm64/a.h"
    assert roots.path("lab:csrc/x.h") == f"{tmp_path}/lab/csrc/x.h"


def test_a_file_hash_follows_every_rewrite(tmp_path):
    """Same size, same mtime, written again: still hashed again (ctime)."""
    path = tmp_path / "h.h"
    path.write_text("#define A 1\n")
    time.sleep(SETTLE_NS / 1e9 * 2)
    first = file_hash(path)
    st = path.stat()
    path.write_text("#define A 2\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns
    assert file_hash(path) not in (None, first)
    assert file_hash(tmp_path / "missing.h") is None


def test_a_file_changed_after_a_moment_has_no_hash_for_it(tmp_path):
    path = tmp_path / "h.h"
    path.write_text("x\n")
    before = time.time_ns()
    assert file_hash(path, unchanged_since_ns=before) is not None
    time.sleep(SETTLE_NS / 1e9)
    path.write_text("y\n")
    assert file_hash(path, unchanged_since_ns=before) is None


def test_the_content_key_is_never_that_of_a_changed_file():
    settled = content_key("r", {"lab:a.h": "0" * 64})
    assert content_key("r", {"lab:a.h": None}) != settled
    assert content_key("r", {"lab:a.h": None}) == content_key(
        "r", {"lab:a.h": CHANGED_DURING_BUILD})
    assert content_key("r2", {"lab:a.h": "0" * 64}) != settled
    assert content_key("r", {"lab:b.h": "0" * 64}) != settled


@pytest.mark.parametrize("text", ["", "no rule here\n", ":\n", "a.o:\n"])
def test_odd_depfiles_give_nothing_to_build_on(text):
    assert all(not deps for deps in parse_depfile(text).values())


def test_a_depfile_written_for_a_step_reads_back_the_same():
    prerequisites = ["/a b/c.h", "/d#e.h", "/f$g.h", "/tree/arch/arm64/include/asm/memory.h"]
    text = format_depfile("/work/kernel-numbers/generated/kernel_numbers.h", prerequisites)
    assert parse_depfile(text) == {
        "/work/kernel-numbers/generated/kernel_numbers.h": prerequisites}
