"""A runaway console stops the run early (platform/runaway.py), the record
keeps a capped failure (run/caps.py), and the matrix's report of it reads
back through ``report merge`` and ``--only-failed``.

The runaway is real: a copy of the firmware tree whose host unwinder never
stops (``unwind_common`` breaks only on a positive return, which never
comes) and whose host prints every pc 4 bytes off, built in a temporary
directory and run in Unicorn.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from pyharness.builder import cache as builder
from pyharness.elf.image import load_image
from pyharness.judge.verdict import Verdict
from pyharness.mutate.worker import snapshot_tree
from pyharness.paths import source_root
from pyharness.platform import native
from pyharness.platform.geometry import stack_geometry
from pyharness.platform.machine import Machine
from pyharness.platform.results import RunOptions, RunStatus
from pyharness.platform.runaway import console_bounds
from pyharness.run import caps
from pyharness.run.runner import RunRequest, run_one

EDITS = {
    "csrc/include/stacktrace/common.h": (
        "if (unwind_next_common(state, accessible, translate_fp))",
        "if (unwind_next_common(state, accessible, translate_fp) > 0)"),
    "csrc/host/handle_exit.c": ("\twhere += hyp_offset;\n", "\twhere += hyp_offset + 4;\n"),
}
RUNAWAY_CONFIG = "nvhe_64k"


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory) -> Path:
    """A copy of the firmware tree whose host dump loop never ends."""
    tree = snapshot_tree(source_root(), tmp_path_factory.mktemp("runaway") / "tree")
    for name, (old, new) in EDITS.items():
        text = (tree / name).read_text()
        assert text.count(old) == 1
        (tree / name).write_text(text.replace(old, new))
    return tree


@pytest.fixture(scope="module")
def broken_build(broken_tree: Path, tmp_path_factory):
    out = tmp_path_factory.mktemp("runaway-build")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NVHE_LAB_ROOT", str(broken_tree))
        built = builder.build(RUNAWAY_CONFIG, out_dir=out)
    return built, out


def test_a_runaway_dump_is_stopped_with_where_the_cpu_was(broken_build, monkeypatch,
                                                            broken_tree):
    """A short chain's runaway ends at the bound its memory gives: a few
    frames past the chain, not thousands."""
    built, out = broken_build
    monkeypatch.setenv("NVHE_LAB_ROOT", str(broken_tree))
    request = RunRequest(config=RUNAWAY_CONFIG, scenario="hvc_at_el2", built=built,
                         out_dir=out)
    record = run_one(request)
    assert record.verdict is Verdict.FAIL
    assert record.run_status == RunStatus.DID_NOT_FINISH.value
    first = record.reasons[0]
    printed = sum(" [<" in line for line in record.console)
    assert printed < 64 and len(record.expected) == 6
    assert first.startswith(f"stopped early, a runaway: the console holds {printed} frame "
                            f"lines, more than the {printed - 1} a valid dump can print "
                            "from this run's memory"), first
    # Where the CPU was: the pc and the callers by frame record, each with
    # its symbol and file:line; the dump is called from the panic handler.
    assert re.search(r"the CPU was at 0x[0-9a-f]+ \(\w+\+0x[0-9a-f]+\) at \S+:\d+", first)
    assert re.search(r"called from 0x[0-9a-f]+ \(nvhe_hyp_panic_handler\+0x[0-9a-f]+\) "
                     r"at csrc/host/handle_exit\.c:\d+", first), first
    assert record.instructions < 200_000


def test_a_deep_runaway_stops_at_the_deepest_chain_and_is_capped(broken_build, monkeypatch,
                                                                  broken_tree):
    """fault_packed_stacks fills both stacks with records: its memory allows
    the deepest chain, so the static bound stops it; every frame is 4
    bytes off, so the record's caps cut reasons, console and frames."""
    built, out = broken_build
    monkeypatch.setenv("NVHE_LAB_ROOT", str(broken_tree))
    record = run_one(RunRequest(config=RUNAWAY_CONFIG, scenario="fault_packed_stacks",
                                built=built, out_dir=out))
    bounds = console_bounds(stack_geometry(load_image(built.elf)))
    assert record.verdict is Verdict.FAIL
    first = record.reasons[0]
    assert first.startswith("stopped early, a runaway: the console holds "
                            f"{bounds.frames + 1} frame lines, more than the {bounds.frames}")
    assert f"the deepest valid chain is {bounds.deepest_chain} frames" in first
    assert record.instructions < record.spec.max_instructions // 2
    # The caps, with what they cut.
    assert record.cut["reasons"] > 500 and record.cut["console"] > 3000
    assert 0 < len(record.actual) + record.cut["actual"] <= bounds.frames + 1
    assert len(record.reasons) <= caps.MAX_REASONS + 10
    assert any(re.fullmatch(r"\.\.\. \d+ more 'frame N' reasons cut .*", r)
               for r in record.reasons)
    assert len(record.console) == caps.CONSOLE_HEAD + 1 + caps.CONSOLE_TAIL
    assert record.console[caps.CONSOLE_HEAD].startswith(
        f"[pyharness: {record.cut['console']} console lines cut here")
    assert len(record.actual) == len(record.expected) + caps.EXTRA_FRAMES


def _pyharness(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pyharness", *args], env=env,
                          capture_output=True, text=True, timeout=600)


def test_a_matrix_report_with_a_runaway_reads_back(broken_build, broken_tree, tmp_path):
    _, out = broken_build
    env = {**os.environ, "NVHE_LAB_ROOT": str(broken_tree)}
    report = tmp_path / "matrix.json"
    ran = _pyharness("matrix", "--configs", RUNAWAY_CONFIG, "--scenarios", "hvc_at_el2",
                     "fault_packed_stacks", "--modes", "nvhe", "--out", str(out), "-j", "1",
                     "--json", str(report), env=env)
    assert ran.returncode == 1, ran.stderr
    runs = json.loads(report.read_text())["runs"]
    assert {r["verdict"] for r in runs} == {"fail"}
    assert all(r["reasons"][0].startswith("stopped early, a runaway") for r in runs)
    assert all(r["cut"]["reasons"] > 0 for r in runs)
    # Capped: the two fault_packed_stacks records hold their 4353 expected
    # frames (as a passing one does), their console and reasons are cut.
    assert report.stat().st_size < 4 << 20, "capped records are small"
    assert all(len(r["console"]) <= caps.CONSOLE_HEAD + 1 + caps.CONSOLE_TAIL for r in runs)

    merged = tmp_path / "merged.json"
    merge = _pyharness("report", "merge", str(report), "--json", str(merged), env=env)
    assert merge.returncode == 1, merge.stderr
    assert json.loads(merged.read_text())["runs"] == runs

    again = tmp_path / "again.json"
    rerun = _pyharness("matrix", "--only-failed", str(report), "--out", str(out), "-j", "1",
                       "--json", str(again), env=env)
    assert rerun.returncode == 1, rerun.stderr
    key = ("scenario", "cpu")
    assert sorted(tuple(r[k] for k in key) for r in json.loads(again.read_text())["runs"]) == \
        sorted(tuple(r[k] for k in key) for r in runs)


@pytest.mark.parametrize("config", ["nvhe_64k", "pkvm_64k"])
@pytest.mark.parametrize("scenario", ["stack_overflow", "fault_packed_stacks"])
def test_the_deepest_legitimate_traces_pass_within_the_bounds(config, scenario):
    """The deepest valid chains (every record slot of both stacks, for
    fault_packed_stacks) print no more than the chain the bounds start
    from, so the margin is all slack, and still pass."""
    for mode in (["nvhe", "protected"] if config.startswith("pkvm") else ["nvhe"]):
        record = run_one(RunRequest(config=config, scenario=scenario, mode=mode))
        assert record.passed, record.reasons[:5]
        bounds = console_bounds(stack_geometry(load_image(Path(record.elf))))
        printed = sum(" [<" in line for line in record.console)
        assert len(record.actual) <= bounds.deepest_chain < bounds.frames
        assert printed <= bounds.deepest_chain + 1          # and the panic line
        assert not record.cut


# -- the console's bounds on both backends (the tests' fixture image) ------

def _movz(rd: int, value: int) -> list[int]:
    """movz/movk: ``value`` into x<rd>, 16 bits at a time."""
    words = [0xD2800000 | (value & 0xFFFF) << 5 | rd]
    for shift in (1, 2, 3):
        words.append(0xF2800000 | shift << 21 | (value >> 16 * shift & 0xFFFF) << 5 | rd)
    return words


def _str(size: int, rt: int, rn: int, offset: int) -> int:
    return {4: 0xB9000000, 8: 0xF9000000}[size] | offset // size << 10 | rn << 5 | rt


LOOP_BACK_ONE = 0x17FFFFFF      # b .-4


def _endless_console(monkeypatch, fixture_image, switch: str, text: bytes | None):
    """The fixture's host writing ``text`` as a console line forever (or,
    for None, the byte 'a' without a newline forever)."""
    monkeypatch.setenv(native.ENV_SWITCH, switch)
    machine = Machine(load_image(fixture_image("4k")))
    layout = machine.layout
    buffer_va = layout.page_offset + layout.phys_ram_size - 0x1000
    words = _movz(9, layout.mmio_va_el1)
    if text is None:
        words += [*_movz(1, ord("a")), _str(4, 1, 9, 0x00), LOOP_BACK_ONE]
    else:
        words += [*_movz(1, buffer_va), _str(8, 1, 9, 0x20), *_movz(1, len(text)),
                  _str(4, 1, 9, 0x28), LOOP_BACK_ONE]
    host_main = machine.runtime_address(machine.image.address_of("host_main"), "kernel")

    def patch(m: Machine) -> None:
        if text is not None:
            m.write_va(buffer_va, text, el=1)
        m.write_va(host_main, b"".join(w.to_bytes(4, "little") for w in words), el=1)
    machine.add_pre_run(patch)
    result = machine.run()
    return machine.hooks_backend, machine.console_bounds, result


@pytest.mark.parametrize("text, passed", [
    (b"kvm [1]:  [<ffff800008001068>] __kvm_nvhe___host_exit+0x68/0x68", "frame lines"),
    (b"a line", "lines"),
    (None, "bytes")])
def test_each_console_bound_stops_both_backends_alike(monkeypatch, fixture_image, text,
                                                      passed):
    native_run = _endless_console(monkeypatch, fixture_image, "1", text)
    python_run = _endless_console(monkeypatch, fixture_image, "0", text)
    assert (native_run[0], python_run[0]) == ("native", "python")
    bounds, result = native_run[1:]
    assert python_run[2].console == result.console
    assert python_run[2].reason == result.reason
    assert result.status is RunStatus.DID_NOT_FINISH
    limit = {"frame lines": bounds.frames, "lines": bounds.lines, "bytes": bounds.bytes}[passed]
    held = {"frame lines": len(result.console), "lines": len(result.console),
            "bytes": sum(len(line) for line in result.console)}[passed]
    assert result.reason.startswith(f"stopped early, a runaway: the console holds {held} "
                                    f"{passed}, more than the {limit}"), result.reason
    assert "the CPU was at " in result.reason and "(host_main+0x" in result.reason
    if passed == "bytes":
        assert held == limit + 1 and len(result.console) == 1
    else:
        assert held == limit + 1


def test_the_bound_from_memory_is_the_same_on_both_backends(broken_build, monkeypatch,
                                                             broken_tree):
    built, out = broken_build
    monkeypatch.setenv("NVHE_LAB_ROOT", str(broken_tree))
    reasons = {}
    for switch in ("1", "0"):
        monkeypatch.setenv(native.ENV_SWITCH, switch)
        record = run_one(RunRequest(config=RUNAWAY_CONFIG, scenario="hvc_at_el2",
                                    mode="nvhe", built=built, out_dir=out))
        reasons[switch] = (record.reasons[0], record.console, record.instructions)
    assert reasons["1"][:2] == reasons["0"][:2]
    assert "from this run's memory" in reasons["1"][0]


def test_a_pac_ret_hosts_callers_are_named_with_their_pac_stripped(broken_tree, tmp_path,
                                                                  monkeypatch):
    """pkvm_pac signs the host's return addresses: the reason's callers are
    the code below the PAC, not addresses mapped nowhere."""
    monkeypatch.setenv("NVHE_LAB_ROOT", str(broken_tree))
    built = builder.build("pkvm_pac", out_dir=tmp_path)
    record = run_one(RunRequest(config="pkvm_pac", scenario="hvc_at_el2", mode="nvhe",
                                built=built, out_dir=tmp_path))
    first = record.reasons[0]
    assert first.startswith("stopped early, a runaway:"), first
    assert "unmapped" not in first, first
    assert re.search(r"called from 0x[0-9a-f]+ \(nvhe_hyp_panic_handler\+0x[0-9a-f]+\) "
                     r"at csrc/host/handle_exit\.c:\d+", first), first


def test_runaways_are_one_cause_whichever_bound_and_wherever_the_cpu_was():
    from pyharness.reports.causes import normalise

    by_memory = ("stopped early, a runaway: the console holds 31 frame lines, more than the "
                 "30 a valid dump can print from this run's memory (...); the CPU was at "
                 "0xfffffe0015412604 (printk+0x1c4) at csrc/include/platform_io.h:26, called "
                 "from 0xfffffe0015412700 (unwind+0x40) at arch/arm64/kvm/stacktrace.c:126")
    static = ("stopped early, a runaway: the console holds 562 frame lines, more than the "
              "561 a valid dump can print (the deepest valid chain is 513 frames: ...); the "
              "CPU was at 0xffff800033403c10 (printk+0x368) at csrc/host/printk.c:40")
    too_long = ("stopped early, a runaway: the console holds 900 lines, more than the 800 a "
                "valid run prints (...); the CPU was at 0x1 (printk+0x4) at a.c:1")
    assert normalise(by_memory) == normalise(static) != normalise(too_long)


def test_a_run_out_of_budget_says_where_with_file_and_line(tmp_path):
    """The pc a budget ran out at, with its symbol and, from DWARF, the
    file:line of its code."""
    record = run_one(RunRequest(config="nvhe", scenario="hyp_panic", mode="nvhe",
                                max_instructions=20_000, out_dir=tmp_path))
    [stopped] = [r for r in record.reasons if r.startswith("did not finish")]
    assert re.fullmatch(r"did not finish after 20000 instructions at PC 0x[0-9a-f]+ "
                        r"\(\w+\+0x[0-9a-f]+\) \(csrc/\S+\.[chS]:\d+\) "
                        r"\(instruction budget of 20000 used up\)", stopped), stopped
