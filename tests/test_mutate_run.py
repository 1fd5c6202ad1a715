"""A small fixed sample of mutants, built and run, each with its expected
verdict (pyharness mutate's CI check; the full run is benchmarks/mutate.py).

One configuration (pkvm), three scenarios: a handful of builds and runs.
The mutants are named by key, which does not move when other lines do.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pyharness.mutate.execute import COMPILE_ERROR, KILLED, SURVIVED
from pyharness.mutate.report import EQUIVALENT, NOT_BUILT
from pyharness.mutate.session import Options, execute, prepare

# key -> (verdict, what the verdict line must say)
EXPECTED = {
    # the check that a walk never returns to a stack it left, removed
    "csrc/include/stacktrace/common.h:stmt-del:fe5c35465a":
        (KILLED, "killed by pkvm-nvhe-unwind_selftest-cpu0: line missing"),
    # on_stack(..., info, STACK_TYPE_HYP): GCC rejects it
    "csrc/hyp/stacktrace.c:args-swap:b70a154d5f":
        (COMPILE_ERROR, "incompatible type for argument 5"),
    # NVHE_STACKTRACE_SIZE * 9: nothing in the lab build uses it
    "csrc/include/stacktrace/nvhe.h:const:7b1e71b32b":
        (EQUIVALENT, "same image in pkvm"),
    # `(void)fp;` in the stub compiled without PROTECTED_NVHE_STACKTRACE
    "csrc/hyp/stacktrace.c:stmt-del:49987805d2":
        (NOT_BUILT, "no selected configuration compiles"),
    # `sp < high` -> `sp <= high`: listed below as equivalent
    "csrc/include/stacktrace/common.h:ror:3576ab2e57":
        (EQUIVALENT, "EQUIVALENT (listed): size is never 0"),
    # `info->low = low;` removed: nothing reads stack_info.low, but it is
    # not on this test's list
    "csrc/include/stacktrace/common.h:stmt-del:d03af1984b":
        (SURVIVED, "SURVIVED 12 runs in 1 configuration"),
    # the BUG comment mask 0xffff -> 0xfffe: brk #0x801 taken for a BUG
    "csrc/host/handle_exit.c:const:a46da00aa8":
        (KILLED, "killed by pkvm-nvhe-brk_not_bug-cpu0: panic line: expected 'nVHE hyp panic"),
    # the panic message's PC printed %lx: only the text shows it
    "csrc/host/handle_exit.c:format:18d6f09ae0":
        (KILLED, "format: console line"),
}
LISTED = {
    "csrc/include/stacktrace/common.h:ror:3576ab2e57": "size is never 0",
    # wrongly listed: the run that kills it must say so
    "csrc/include/stacktrace/common.h:stmt-del:fe5c35465a": "a wrong entry",
}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    listed = tmp_path_factory.mktemp("eq") / "equivalent.txt"
    listed.write_text("".join(f"{key}  {why}\n" for key, why in LISTED.items()))
    options = Options(configs=("pkvm",), only=tuple(EXPECTED), jobs=1, equivalents=listed,
                      scenarios=("unwind_selftest", "hyp_panic", "brk_not_bug"))
    prepared = prepare(options)
    seen = []
    outcome = execute(prepared, on_verdict=seen.append)
    return prepared, outcome, seen


def test_each_sample_mutant_gets_its_verdict(result):
    prepared, outcome, _ = result
    by_key = {v.mutant.key: v for v in outcome.verdicts}
    assert set(by_key) == set(EXPECTED)
    for key, (verdict, text) in EXPECTED.items():
        assert by_key[key].verdict == verdict, (key, by_key[key].line())
        assert text in by_key[key].line(), (key, by_key[key].line())


def test_a_wrong_equivalent_entry_is_reported(result):
    _, outcome, _ = result
    killed = next(v for v in outcome.verdicts if v.verdict == KILLED and v.listed)
    assert killed.listed is not None and "the entry is wrong" in killed.line()


def test_counts_score_and_order(result):
    prepared, outcome, seen = result
    counts = outcome.counts
    assert (counts.generated, counts.killed, counts.equivalent, counts.survived,
            counts.compile_errors, counts.not_built) == (6, 3, 2, 1, 1, 1)
    assert counts.summary_line() == ("mutants: 6 generated, 3 killed, 2 equivalent, "
                                     "1 survived (score 75.0%)")
    assert counts.exit_code == 1
    # verdicts arrive in id order, each once
    assert [v.mutant.id for v in seen] == [m.id for m in prepared.mutants]
    assert outcome.baseline.failing == []


def test_cli_bad_input_and_list():
    cli = [sys.executable, "-m", "pyharness", "mutate"]
    bad = subprocess.run(cli + ["--files", "*no_such_file.c"], capture_output=True, text=True)
    assert bad.returncode == 2 and "matches none" in bad.stderr
    listing = subprocess.run(cli + ["--files", "*stacktrace/common.h", "--list"],
                             capture_output=True, text=True, check=True)
    assert int(listing.stdout.splitlines()[-1].split()[0]) >= 15


def test_json_and_html_reports(tmp_path):
    key = "csrc/include/stacktrace/nvhe.h:const:7b1e71b32b"
    out_json, out_html = tmp_path / "m.json", tmp_path / "m.html"
    proc = subprocess.run([sys.executable, "-m", "pyharness", "mutate", "--config", "pkvm",
                           "--scenarios", "hyp_panic", "--only", key, "-j1",
                           "--json", str(out_json), "--html", str(out_html)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == ("mutants: 1 generated, 0 killed, 1 equivalent, "
                                            "0 survived (score 100.0%)")
    data = json.loads(out_json.read_text())
    assert data["summary"]["equivalent"] == 1
    assert data["mutants"][0]["key"] == key and data["mutants"][0]["verdict"] == EQUIVALENT
    page = out_html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and key in page


@pytest.mark.parametrize("generation", ["6.12"])
def test_a_kernel_trees_mutant_is_killed_and_the_tree_untouched(tmp_path, generation):
    """--kernel-src mutates a copy: the tree's files keep their bytes and
    mtimes, and a mutant of the kernel's own stack bound is killed."""
    from test_kernel_src_runs import copy_tree
    from pyharness.builder import kernelsrc
    from pyharness.paths import build_base

    tarball = kernelsrc.debian_tarball(generation)
    if not tarball.is_file():
        pytest.skip(f"linux-source-{generation} is not installed")
    source = kernelsrc.open_source(tarball, build_base(None))
    tree = copy_tree(source, tmp_path / "linux")
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tree.rglob("*") if p.is_file()}
    # stackinfo_on_stack(): `sp < info->low` -> `sp <= info->low`
    key = "arch/arm64/include/asm/stacktrace/common.h:ror:"
    listing = subprocess.run([sys.executable, "-m", "pyharness", "mutate", "--kernel-src",
                              str(tree), "--list"], capture_output=True, text=True, check=True)
    k007 = next(line.split()[0] for line in listing.stdout.splitlines()
                if line.startswith("k007 "))
    proc = subprocess.run([sys.executable, "-m", "pyharness", "mutate", "--kernel-src",
                           str(tree), "--config", "pkvm", "--scenarios", "fault_fp_misaligned",
                           "--only", k007, "-j1"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"killed by linux-{generation}/pkvm-" in proc.stdout and key in listing.stdout
    after = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in tree.rglob("*") if p.is_file()}
    assert after == before


def test_a_mutant_looping_through_its_vector_is_stopped_as_a_hang():
    # The stack-overflow check removed from the vector: the handler faults
    # on the stack it overflowed, again and again. The run ends after
    # EXCEPTION_LOOP_LIMIT exceptions (tens of thousands of instructions),
    # not at its 30 s wall timeout.
    from pyharness.platform.machine import EXCEPTION_LOOP_LIMIT

    key = "csrc/hyp/host.S:asm-del:2bec19c8b0"
    options = Options(configs=("pkvm",), only=(key,), jobs=1, scenarios=("stack_overflow",),
                      modes=("nvhe",))
    outcome = execute(prepare(options))
    [verdict] = outcome.verdicts
    assert verdict.verdict == KILLED
    killer = verdict.outcome.killer
    assert killer.run_status == "did-not-finish"
    assert f"{EXCEPTION_LOOP_LIMIT} exceptions taken" in killer.reasons[0]
    assert "exception loop" in killer.reasons[0]
    assert killer.instructions < killer.spec.max_instructions // 100
