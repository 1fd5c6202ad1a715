"""`--kernel-src` in the harness: what it accepts, how a tarball is
extracted once, the unwinder axis of the matrix (labels, ids, seeds), its
records and reports, and one clear exit 2 for a tree the build cannot use.

All with small synthetic trees (tests/test_kernelsrc.py); nothing here
compiles a tree's unwinder (only the numbers probe, against a synthetic
asm/memory.h). tests/test_kernel_src_runs.py builds and runs Debian's.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from test_kernelsrc import synthetic_files, synthetic_memory_h, write_tarball, write_tree

from pyharness.builder import kernelsrc
from pyharness.builder.kernelsrc import KernelSourceError
from pyharness.cli.main import main
from pyharness.errors import EXIT_BAD_INPUT
from pyharness.judge.verdict import Verdict
from pyharness.kconfig import resolve as kconfig
from pyharness.matrix.expand import expand, unwinder_axis
from pyharness.reports import summary_table
from pyharness.reports.grid import make_grid
from pyharness.reports.junit import junit_tree
from pyharness.reports.records import load_records, write_json
from pyharness.run.record import RunRecord, error_record
from pyharness.run.spec import LAB_UNWINDER, RunSpec, Unwinder

SUPPORTED = "supported generations: 6.1, 6.12, 7.x"


# -- what --kernel-src accepts -----------------------------------------------

@pytest.mark.parametrize("value", [None, "", "lab"])
def test_lab_means_the_labs_own_unwinder(tmp_path, value):
    assert kernelsrc.is_lab(value)
    assert kernelsrc.open_source(value, tmp_path) is None


def test_a_tree_is_used_where_it_is(tmp_path):
    root = write_tree(tmp_path / "linux", synthetic_files("6.12"))
    source = kernelsrc.open_source(str(root), tmp_path / "build")
    assert source.given == str(root) and source.tree.root == root.resolve()
    assert (source.generation, source.unwinder) == ("6.12", "linux-6.12")
    assert not (tmp_path / "build").exists()


def test_a_tarball_is_extracted_once_into_the_build_directory(tmp_path, monkeypatch):
    tarball = write_tarball(tmp_path / "linux-source-6.1.tar.xz", synthetic_files("6.1"))
    calls = []
    real_extract = kernelsrc.extract
    monkeypatch.setattr(kernelsrc, "extract",
                        lambda *a: calls.append(a) or real_extract(*a))
    first = kernelsrc.open_source(str(tarball), tmp_path / "build")
    again = kernelsrc.open_source(str(tarball), tmp_path / "build")
    assert len(calls) == 1
    assert first.given == again.given == str(tarball)
    root = first.tree.root
    assert again.tree.root == root and root.parent == (tmp_path / "build/kernel-src").resolve()
    assert root.name.startswith("linux-source-6.1-") and first.generation == "6.1"
    # The extraction is keyed by the tarball's content (issue 26 item 9): a
    # touched tarball is the same one; a new version, even of the same
    # name, size and mtime, is extracted again, beside.
    os.utime(tarball, ns=(1, 1))
    assert kernelsrc.open_source(str(tarball), tmp_path / "build").tree.root == root
    assert len(calls) == 1
    write_tarball(tarball, synthetic_files("6.1", common_h=synthetic_files("6.1")[
        kernelsrc.COMMON_H].replace("synthetic", "Synthetic")))
    os.utime(tarball, ns=(1, 1))
    newer = kernelsrc.open_source(str(tarball), tmp_path / "build")
    assert len(calls) == 2 and newer.tree.root != root


def test_concurrent_workers_share_one_extraction(tmp_path, monkeypatch):
    tarball = write_tarball(tmp_path / "linux-source-6.12.tar.xz", synthetic_files("6.12"),
                            top="linux-source-6.12")
    calls = []
    real_extract = kernelsrc.extract
    monkeypatch.setattr(kernelsrc, "extract",
                        lambda *a: calls.append(a) or real_extract(*a))
    roots: list[Path] = []
    start = threading.Barrier(4)

    def worker() -> None:
        start.wait()
        roots.append(kernelsrc.extract_cached(tarball, tmp_path / "cache").root)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1 and len(set(roots)) == 1 and len(roots) == 4
    # Published by a rename when complete: no scratch directory is left.
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.is_dir()] == [roots[0].name]


def test_a_tarball_with_an_unknown_unwinder_names_the_tarball(tmp_path):
    old = "enum stack_type { STACK_TYPE_HYP };\nunsigned long stacks_done;\n"
    tarball = write_tarball(tmp_path / "linux-source-5.19.tar.xz",
                            synthetic_files(common_h=old))
    with pytest.raises(KernelSourceError) as err:
        kernelsrc.open_source(str(tarball), tmp_path / "build")
    assert str(err.value).startswith(f"{tarball}: ") and "older unwinder" in str(err.value)
    assert SUPPORTED in str(err.value)
    assert not [p for p in (tmp_path / "build/kernel-src").iterdir() if p.is_dir()]


@pytest.mark.parametrize("name, what", [("nope", "no such path"),
                                        ("notes.txt", "not a directory or a kernel source")])
def test_neither_a_tree_nor_a_tarball(tmp_path, name, what):
    (tmp_path / "notes.txt").write_text("hello\n")
    with pytest.raises(KernelSourceError) as err:
        kernelsrc.open_source(str(tmp_path / name), tmp_path)
    message = str(err.value)
    assert what in message and "`lab`" in message and SUPPORTED in message


# -- the unwinder axis ----------------------------------------------------------

def test_no_kernel_src_is_the_labs_unwinder_only():
    assert unwinder_axis([]) == [LAB_UNWINDER]


def test_the_axis_keeps_the_order_drops_repeats_and_labels_uniquely(tmp_path):
    a = write_tree(tmp_path / "a" / "linux", synthetic_files("6.1"))
    b = write_tree(tmp_path / "b" / "linux", synthetic_files("6.1"))
    c = write_tree(tmp_path / "work", synthetic_files("6.12"))
    axis = unwinder_axis([str(c), "lab", str(a), str(b), str(c)], tmp_path)
    assert [u.label for u in axis] == ["linux-6.12", "lab", "linux-6.1-linux",
                                       "linux-6.1-linux-2"]
    assert [u.kernel_src for u in axis] == [str(c), None, str(a), str(b)]
    assert [u.generation for u in axis] == ["6.12", None, "6.1", "6.1"]


def test_expand_puts_each_configuration_with_each_unwinder(tmp_path):
    tree = Unwinder("linux-6.12", str(tmp_path / "linux"), "6.12")
    config = kconfig.find_config("pkvm")
    runs = expand([config], ["bug", "smoke"], unwinders=[LAB_UNWINDER, tree])
    lab_runs = expand([config], ["bug", "smoke"])
    assert runs[:len(lab_runs)] == lab_runs        # the lab's runs are what they were
    tree_runs = runs[len(lab_runs):]
    assert [r.id for r in tree_runs] == [f"linux-6.12/{r.id}" for r in lab_runs]
    assert len({r.id for r in runs}) == len(runs)
    # The same KASLR seed for the same run with either unwinder.
    assert [r.kaslr_seed for r in tree_runs] == [r.kaslr_seed for r in lab_runs]
    assert {(r.kernel_src, r.generation, r.unwinder) for r in tree_runs} == {
        (str(tmp_path / "linux"), "6.12", "linux-6.12")}
    assert tree_runs[0].row == "linux-6.12/pkvm" and lab_runs[0].row == "pkvm"


# -- records and reports ----------------------------------------------------------

def _spec(unwinder: Unwinder = LAB_UNWINDER, config_name: str = "pkvm") -> RunSpec:
    return RunSpec.with_unwinder(unwinder, config=f"configs/{config_name}_defconfig",
                                 config_name=config_name, mode="protected", scenario="bug",
                                 cpu=1, kaslr_seed=9)


TREE = Unwinder("linux-6.12", "/home/me/src/my linux", "6.12")


def test_a_trees_run_names_its_unwinder_and_reproduces_with_it():
    lab, tree = _spec(), _spec(TREE)
    assert lab.id == "pkvm-protected-bug-cpu1"
    assert tree.id == "linux-6.12/pkvm-protected-bug-cpu1"
    assert lab.command() == ("pyharness run --config configs/pkvm_defconfig --scenario bug "
                             "--mode protected --cpu 1 --kaslr-seed 9")
    assert tree.command() == ("pyharness run --config configs/pkvm_defconfig --kernel-src "
                              "'/home/me/src/my linux' --scenario bug --mode protected "
                              "--cpu 1 --kaslr-seed 9")
    assert lab.to_dict()["kernel_src"] is None and lab.to_dict()["generation"] is None
    assert tree.to_dict().items() >= {"kernel_src": "/home/me/src/my linux",
                                      "generation": "6.12", "unwinder": "linux-6.12"}.items()


def test_json_records_keep_the_unwinder_and_old_ones_are_the_labs(tmp_path):
    records = [error_record(_spec(), "x"), error_record(_spec(TREE), "y")]
    write_json(records, tmp_path / "m.json")
    document = json.loads((tmp_path / "m.json").read_text())
    assert [(r["kernel_src"], r["generation"], r["unwinder"]) for r in document["runs"]] == [
        (None, None, "lab"), ("/home/me/src/my linux", "6.12", "linux-6.12")]
    assert [r.spec for r in load_records(tmp_path / "m.json")] == [_spec(), _spec(TREE)]

    for run in document["runs"]:           # a report from before the axis
        for name in ("kernel_src", "generation", "unwinder"):
            del run[name]
    (tmp_path / "old.json").write_text(json.dumps(document))
    assert {r.spec for r in load_records(tmp_path / "old.json")} == {_spec()}

    document["runs"][0]["generation"] = 6.12
    (tmp_path / "bad.json").write_text(json.dumps(document))
    with pytest.raises(Exception, match=r"field 'generation' is not a string or null"):
        load_records(tmp_path / "bad.json")


def test_grid_rows_and_junit_names_carry_the_unwinder():
    records = [RunRecord(spec=_spec(u, c), verdict=Verdict.PASS, reasons=[], console=[],
                         instructions=1, elapsed_ms=1.0)
               for c in ("pkvm", "smp") for u in (LAB_UNWINDER, TREE)]
    records[3] = error_record(_spec(TREE, "smp"), "no")
    assert make_grid(records).rows == ("pkvm", "linux-6.12/pkvm", "smp", "linux-6.12/smp")
    table = summary_table(records).splitlines()
    assert [line.split()[:2] for line in table[1:]] == [
        ["pkvm", "pass"], ["linux-6.12/pkvm", "pass"], ["smp", "pass"],
        ["linux-6.12/smp", "ERROR"]]
    cases = [(c.get("classname"), c.get("name"))
             for c in junit_tree(records).getroot().iter("testcase")]
    assert cases == [("matrix.pkvm", "pkvm-protected-bug-cpu1"),
                     ("matrix.linux-6_12.pkvm", "linux-6.12/pkvm-protected-bug-cpu1"),
                     ("matrix.smp", "smp-protected-bug-cpu1"),
                     ("matrix.linux-6_12.smp", "linux-6.12/smp-protected-bug-cpu1")]


# -- a tree the build cannot use: one line, exit 2 ----------------------------------

def _broken_tree(tmp_path: Path, kind: str) -> tuple[Path, str]:
    files = synthetic_files("7.x" if kind == "hyp stack below a page" else "6.12")
    files[kernelsrc.MEMORY_H] = synthetic_memory_h()
    if kind == "missing file":
        del files[kernelsrc.HYP_STACKTRACE_C]
        expected = "missing arch/arm64/kvm/hyp/nvhe/stacktrace.c"
    elif kind == "unknown API":
        files[kernelsrc.COMMON_H] = ("enum stack_type { STACK_TYPE_HYP };\n"
                                     "struct unwind_state { unsigned long stacks_done; };\n")
        expected = "has the older unwinder (stack types and a stacks_done bitmap"
    elif kind == "mixed API":
        files[kernelsrc.HOST_STACKTRACE_C] = files[kernelsrc.HOST_STACKTRACE_C].replace(
            "vabits_actual", "__hyp_va_bits")
        expected = ("the nearest is 6.12 (as in 6.12.117), but it lacks vabits_actual "
                    "(arch/arm64/kvm/stacktrace.c); it has __hyp_va_bits "
                    "(arch/arm64/kvm/stacktrace.c), which 6.12 has not")
    elif kind == "numbers not evaluable":
        files[kernelsrc.MEMORY_H] = synthetic_memory_h(overflow="SZ_FOUR_K")
        expected = ("the compiler cannot evaluate the tree's numbers (OVERFLOW_STACK_SIZE, "
                    "PAGE_SIZE, NVHE_STACK_SIZE, NVHE_STACKTRACE_SIZE, VA_BITS) from "
                    "arch/arm64/include/asm/memory.h: ")
    elif kind == "overflow stack too small":
        files[kernelsrc.MEMORY_H] = synthetic_memory_h(overflow="256")
        expected = ("the tree's OVERFLOW_STACK_SIZE is 256 (evaluated from arch/arm64/include/"
                    "asm/memory.h); the platform cannot host it: it must be 1024 to 262144 "
                    "bytes in 16-byte steps")
    else:
        files[kernelsrc.MEMORY_H] = synthetic_memory_h(nvhe_stack="(PAGE_SIZE / 2)")
        expected = "the tree's NVHE_STACK_SIZE is 2048 (evaluated from"
    return write_tree(tmp_path / "linux", files), expected


COMMANDS = {
    "build": ["build", "--config", "pkvm"],
    "run": ["run", "--config", "pkvm", "--scenario", "bug"],
    "matrix": ["matrix", "-q", "--configs", "pkvm", "--kernel-src", "lab"],
}


@pytest.mark.parametrize("kind", ["missing file", "unknown API", "mixed API"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_tree_it_cannot_serve_is_one_line_and_exit_2(tmp_path, capsys, kind, command):
    tree, expected = _broken_tree(tmp_path, kind)
    argv = [*COMMANDS[command], "--kernel-src", str(tree), "--out", str(tmp_path / "out")]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pyharness: error: {tree}") and "\n" not in err
    assert expected in err and SUPPORTED in err
    assert not list((tmp_path / "out").glob("pkvm-*"))   # nothing was built


@pytest.mark.parametrize("kind", ["numbers not evaluable", "overflow stack too small",
                                  "hyp stack below a page"])
@pytest.mark.parametrize("command", ["build", "matrix"])
def test_numbers_it_cannot_use_are_one_line_and_exit_2(tmp_path, capsys, kind, command):
    """The compiler's message, or the number the platform cannot host, before
    any compiler work on the firmware."""
    tree, expected = _broken_tree(tmp_path, kind)
    argv = [*COMMANDS[command], "--kernel-src", str(tree), "--out", str(tmp_path / "out")]
    assert main(argv) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"pyharness: error: {tree}") and "\n" not in err
    assert expected in err, err
    if kind == "numbers not evaluable":
        assert "'SZ_FOUR_K' undeclared" in err and err.endswith("fix the tree's header")
    assert not list((tmp_path / "out").glob("pkvm-linux-*/vmlinux"))


def test_the_environment_variable_is_the_default(tmp_path, capsys, monkeypatch):
    tree, expected = _broken_tree(tmp_path, "missing file")
    monkeypatch.setenv(kernelsrc.KERNEL_SRC_ENV, str(tree))
    for argv in (["build", "--config", "pkvm"], ["matrix", "-q", "--configs", "pkvm"]):
        assert main([*argv, "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
        assert expected in capsys.readouterr().err
    # ... and --kernel-src lab overrides it (the lab's build needs no tree).
    assert main(["build", "--config", "pkvm", "--kernel-src", "lab",
                 "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip().endswith("/vmlinux")


def test_only_failed_takes_the_unwinder_from_the_report(tmp_path, capsys):
    (tmp_path / "m.json").write_text("[]")
    assert main(["matrix", "--only-failed", str(tmp_path / "m.json"),
                 "--kernel-src", "lab"]) == EXIT_BAD_INPUT
    assert "drop --configs/--scenarios/--modes/--kernel-src" in capsys.readouterr().err
