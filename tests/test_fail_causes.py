"""When it fails: one cause per bug, a diagnosis that points into the tree,
precise messages (issue 25, items 3-5).

Unit tests feed the pattern finder, the normaliser, the diagnosis and the
header check small hand-made inputs. The end-to-end tests break a copy of
the lab's firmware or of Debian's 6.1, 6.12 and 7.2 trees the way the issue's reports
did, build it with the real cross compiler, run it in Unicorn, and check
that the bug is one cause whose diagnosis names the broken rule and the
file:line of the code that holds it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from test_kernel_src_runs import copy_tree, debian, edit  # noqa: F401 (a fixture)
from test_oracle_catches import firmware_copy, run  # noqa: F401 (a fixture)
from test_reports import page_details
from test_triage import _copy_tree

from pyharness.cli.record_output import print_record
from pyharness.judge.checker import check
from pyharness.judge.console_checks import check_hyp_panic
from pyharness.judge.diagnosis import diagnose
from pyharness.judge.expectation import ExpectedFrame, Expectation, WalkEnd, WalkRecord
from pyharness.judge.frame_patterns import PrintedPc, trace_pattern
from pyharness.judge.verdict import ChainEntry, Diagnosis, FrameLine, Verdict
from pyharness.reports.causes import normalise
from pyharness.reports.html import html_report
from pyharness.run.record import RunRecord
from pyharness.run.runner import RunRequest, observe, run_one
from pyharness.run.spec import RunSpec

BASE = 0xFFFF800008002000


def pcs(*offsets: int, symbol: str = "f+0x4/0x8") -> list[PrintedPc]:
    return [PrintedPc(BASE + o, symbol) for o in offsets]


def describe(frames: list[PrintedPc]):
    return lambda i: f"{frames[i].symbol} at {frames[i].address:016x}"


def pattern(expected: list[PrintedPc], actual: list[PrintedPc]) -> str | None:
    return trace_pattern(expected, actual, describe(expected), describe(actual))


# -- patterns -------------------------------------------------------------------

def test_every_frame_moved_by_one_delta_is_one_reason():
    expected = pcs(0x10, 0x40, 0x80)
    assert pattern(expected, pcs(0x14, 0x44, 0x84)).startswith(
        "every frame printed 0x4 past its expected pc (3 frames; frame 0: expected")
    assert pattern(expected, pcs(0x8, 0x38, 0x78)).startswith(
        "every frame printed 0x8 before its expected pc")
    # one frame moved, the others right: no whole-trace pattern
    assert pattern(expected, pcs(0x10, 0x44, 0x80)) is None


def test_tag_bits_left_in_are_one_reason():
    expected = pcs(0x10, 0x40, 0x80)
    tagged = [expected[0], PrintedPc(expected[1].address ^ (0x5A << 48), "0xbad"),
              PrintedPc(expected[2].address ^ (0x13 << 40), "0xbad")]
    reason = pattern(expected, tagged)
    assert reason.startswith("2 of 3 frames printed with bits from bit 40 up"), reason
    assert "frame 1: expected f+0x4/0x8" in reason


def test_a_trace_cut_early_or_running_on_is_one_reason():
    expected = pcs(0x10, 0x40, 0x80, 0xC0)
    assert pattern(expected, expected[:2]) == (
        f"frame 2: missing, expected f+0x4/0x8 at {BASE + 0x80:016x}: the trace cut after "
        "frame 1, 2 expected frames not printed")
    run_on = expected + [expected[-1]] * 5
    assert pattern(expected, run_on) == (
        f"frame 4: unexpected f+0x4/0x8 at {BASE + 0xC0:016x}: 5 frames past the expected "
        "end, all the same frame")
    assert pattern(expected, expected) is None


# -- normalising ----------------------------------------------------------------

@pytest.mark.parametrize("a, b", [
    # another function, another file:line, another frame number
    ("frame 3: expected __kvm_nvhe_c+0x10/0x20 at ffff800008011000 (csrc/hyp/a.c:10), got "
     "__kvm_nvhe_b+0x8/0x20 at ffff800008010ff0 (csrc/hyp/a.c:9)",
     "frame 12: expected __kvm_nvhe_x+0x18/0x28 at ffff800009a11000 "
     "(arch/arm64/kvm/hyp/nvhe/stacktrace.c:106), got __kvm_nvhe_y+0xc/0x28 at "
     "ffff800009a10ff0 (arch/arm64/kvm/stacktrace.c:152)"),
    # a raw pointer with pointer-authentication bits where another run printed a symbol
    ("frame 1: expected __kvm_nvhe_b+0x10/0x20 at ffffffc008002450, got 0xbc044402450 at "
     "00000bc008002450",
     "frame 2: expected __kvm_nvhe_a+0x10/0x20 at ffffffc008002470, got __kvm_nvhe_q+0x4/0x8 "
     "at 00000bc008002470"),
    # the pc a budget ran out at, in another function
    ("did not finish after 20000000 instructions at PC 0xffff8000444036f0 (printk+0x160) "
     "(csrc/host/printk.c:40)",
     "did not finish after 20000000 instructions at PC 0xffffffc01b4036a0 (put_unsigned+0x0) "
     "(/work/x/csrc/host/printk.c:12)"),
])
def test_names_offsets_tag_bits_and_lines_are_set_aside(a, b):
    assert normalise(a) == normalise(b)


def test_a_compiler_error_in_another_file_stays_another_cause():
    assert normalise("csrc/hyp/switch.c:14:5: error: expected ';'") != \
        normalise("csrc/host/main.c:14:5: error: expected ';'")


# -- the missing header ---------------------------------------------------------

def _panic_console(header: str, frames: int) -> list[str]:
    lines = ["kvm [1]: nVHE hyp panic at: [<ffff800008002000>] __kvm_nvhe_f+0x0/0x8!",
             f"kvm [1]: {header}"]
    lines += [f"kvm [1]:  [<ffff800008002{i:03x}>] __kvm_nvhe_g+0x4/0x8"
              for i in range(frames)]
    lines += ["kvm [1]: ---[ end nVHE call trace ]---",
              "kvm [1]: Hyp Offset: 0xffff7ff7c7e00000",
              "Kernel panic - not syncing: HYP panic:",
              "---[ end Kernel panic - not syncing: HYP panic: ]---"]
    return lines


@pytest.mark.parametrize("frames", [3, 60])     # 60: past the parser's record gap
def test_a_header_without_its_colon_is_said_as_such_on_short_and_long_traces(frames):
    expect = Expectation(kind="hyp-panic", exit_status=1, dump="mainline")
    reasons, _ = check_hyp_panic(expect, _panic_console("nVHE call trace", frames))
    assert reasons[0] == ("mainline trace header missing: expected 'nVHE call trace:' after "
                          "the panic line, console line 2 is 'kvm [1]: nVHE call trace'")
    assert not any("hyp panics in the console" in r for r in reasons), reasons
    assert not any("Hyp Offset" in r or "host panic" in r for r in reasons), reasons


def test_a_console_the_harness_stopped_lacks_its_end_as_not_reached():
    expect = Expectation(kind="hyp-panic", exit_status=1, dump="mainline",
                         hyp_offset=0xFFFF7FF7C7E00000)
    cut = _panic_console("nVHE call trace:", 5)[:-4]       # stopped inside the trace
    reasons, frames = check_hyp_panic(expect, cut, stopped=True)
    assert reasons[-1] == ("not reached before the run was stopped: the trace's footer, "
                           "the Hyp Offset line, the host panic")
    assert not any(r == "footer missing" or r.endswith(" missing") for r in reasons), reasons
    assert len(frames) == 5
    # a firmware that exits without them left them out: each is its own reason
    reasons, _ = check_hyp_panic(expect, cut)
    assert "footer missing" in reasons and not any("not reached" in r for r in reasons)


def test_two_real_panics_are_still_two():
    expect = Expectation(kind="hyp-panic", exit_status=1, dump="mainline")
    console = _panic_console("nVHE call trace:", 2) * 2
    assert check_hyp_panic(expect, console)[0] == ["2 hyp panics in the console, expected one"]


# -- the diagnosis on small inputs ----------------------------------------------

HYP, OVERFLOW = (0x1000, 0x2000), (0x3000, 0x4000)


def _expectation(records: list[tuple[int, str]], end: WalkEnd | None = None,
                 **more) -> Expectation:
    """Frame 0 at BASE; record i (fp, stack) gives frame i + 1."""
    bounds = {"hyp": HYP, "overflow": OVERFLOW}
    walk = tuple(WalkRecord(fp, 0x100 + i, stack, *bounds[stack], BASE + 0x40 * (i + 1))
                 for i, (fp, stack) in enumerate(records))
    frames = tuple(ExpectedFrame(BASE + 0x40 * i, f"f{i}+0x4/0x8")
                   for i in range(len(records) + 1))
    return Expectation(kind="hyp-panic", exit_status=1, dump="mainline", frames=frames,
                       walk=walk, walk_end=end or WalkEnd(0, "termination", "fp 0"), **more)


def printed(expect: Expectation, count: int | None = None) -> list[FrameLine]:
    return [f.line() for f in expect.frames[:count]]


def test_a_trace_cut_where_it_changes_stacks_breaks_the_stack_transition_rule():
    expect = _expectation([(0x3100, "overflow"), (0x3200, "overflow"), (0x1100, "hyp")])
    diagnosis = diagnose(expect, printed(expect, 3))
    assert (diagnosis.frame, diagnosis.rule) == (3, "stack transition")
    assert diagnosis.printed is None and diagnosis.expected.symbol == "f3+0x4/0x8"
    assert [e.frame for e in diagnosis.records] == [2, 3]
    assert diagnosis.records[-1].stack == "hyp" and diagnosis.records[-1].lo == f"{HYP[0]:016x}"


def test_a_trace_cut_at_a_record_on_its_stack_edge_breaks_the_bounds_rule():
    expect = _expectation([(0x1100, "hyp"), (0x1FF0, "hyp")])
    assert diagnose(expect, printed(expect, 2)).rule == "bounds"


def test_frames_past_the_end_break_the_rule_that_ends_the_oracle_walk():
    end = WalkEnd(0x1204, "alignment", "fp 0x1204 is not 8-byte aligned")
    expect = _expectation([(0x1100, "hyp")], end)
    extra = printed(expect) + [FrameLine(f"{BASE + 0x400:016x}", "g+0x0/0x4")]
    diagnosis = diagnose(expect, extra)
    assert (diagnosis.frame, diagnosis.rule, diagnosis.expected) == (2, "alignment", None)
    assert "fp 0x1204 is not 8-byte aligned" in diagnosis.why


def test_frames_moved_by_one_delta_break_the_translation_rule():
    expect = _expectation([(0x1100, "hyp"), (0x1200, "hyp")])
    moved = [FrameLine(f"{f.address + 4:016x}", f.symbol) for f in expect.frames]
    diagnosis = diagnose(expect, moved)
    assert (diagnosis.frame, diagnosis.rule) == (0, "translation")
    assert "0x4 off" in diagnosis.why


def test_a_passing_trace_has_no_diagnosis():
    expect = _expectation([(0x1100, "hyp")])
    assert diagnose(expect, printed(expect)) is None


def test_the_diagnosis_goes_through_json_and_html_escaped():
    nasty = "<script>alert(1)</script>"
    diagnosis = Diagnosis(frame=2, rule="bounds", why=nasty,
                          expected=FrameLine("ffff800008002000", nasty, "a/b.c:3"),
                          printed=None,
                          records=(ChainEntry(2, "1", "2", nasty, "3", "4", "x.c:1"),),
                          walk_end="fp 0", site="unwind() at a/b.c:9")
    spec = RunSpec(config="c", config_name="c", mode="nvhe", scenario="s", cpu=0,
                   kaslr_seed=1)
    record = RunRecord(spec=spec, verdict=Verdict.FAIL, reasons=["r"], console=[],
                       instructions=0, elapsed_ms=0.0, diagnosis=diagnosis)
    again = RunRecord.from_json(json.loads(json.dumps(record.to_json())))
    assert again.diagnosis == diagnosis
    page = html_report([again])
    assert "<script>alert" not in page
    [detail] = page_details(page)
    assert detail["notes"] == diagnosis.lines()
    assert "a/b.c:3" in detail["notes"][2] and "unwind() at a/b.c:9" in detail["notes"][1]


# -- end to end: the lab's firmware ---------------------------------------------

def _line_of(path: Path, text: str) -> int:
    return next(n for n, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.fixture(scope="module")
def shifted_firmware(tmp_path_factory) -> Path:
    """Every printed pc 4 bytes off: ``where += hyp_offset + 4``."""
    root = _copy_tree(tmp_path_factory.mktemp("shifted"))
    edit(root / "csrc" / "host" / "handle_exit.c", "where += hyp_offset;",
         "where += hyp_offset + 4;")
    return root


def test_a_firmware_printing_every_pc_4_bytes_off_is_one_diagnosed_cause(shifted_firmware,
                                                                        tmp_path):
    # COLUMNS: the report's width, whatever terminal (or none) pytest has
    env = {**os.environ, "NVHE_LAB_ROOT": str(shifted_firmware), "COLUMNS": "120"}
    env.pop("PYHARNESS_BUILD_DIR", None)
    report, page = tmp_path / "m.json", tmp_path / "m.html"
    proc = subprocess.run(
        [sys.executable, "-m", "pyharness", "matrix", "-q", "-j", "2", "--configs", "pkvm",
         "tiny", "--scenarios", "hyp_panic", "bug", "stack_overflow", "packed_stacks",
         "fault_fp_misaligned", "fault_longest_chain", "--json", str(report),
         "--html", str(page)], capture_output=True, text=True, timeout=900, env=env,
        stdin=subprocess.DEVNULL)
    assert proc.returncode == 1, proc.stderr
    out = proc.stdout.splitlines()
    causes = [line for line in out if line.startswith(("FAIL x", "ERROR x"))]
    assert len(causes) == 1, proc.stdout
    after_grid = out[next(i for i, line in enumerate(out) if "did not pass" in line):]
    assert len(after_grid) <= 60, proc.stdout
    source = shifted_firmware / "csrc" / "host" / "handle_exit.c"
    site = (f"kvm_nvhe_dump_backtrace_entry() at csrc/host/handle_exit.c:"
            f"{_line_of(source, 'static bool kvm_nvhe_dump_backtrace_entry')}")
    assert f"      the rule's code: {site}" in out, proc.stdout
    failed_reasons = {r for run in json.loads(report.read_text())["runs"]
                      for r in run["reasons"]}
    for reason in failed_reasons:       # both pcs with the file:line of their code
        assert re.fullmatch(r"every frame printed 0x4 past its expected pc \(\d+ frames; "
                            r"frame 0: expected \S+ at [0-9a-f]{16} \(csrc/\S+:\d+\), got \S+ "
                            r"at [0-9a-f]{16} \(csrc/\S+:\d+\)\)", reason), reason
    failed = [r for r in json.loads(report.read_text())["runs"] if r["verdict"] != "pass"]
    assert failed
    for run in failed:
        diagnosis = run["diagnosis"]
        assert (diagnosis["frame"], diagnosis["rule"], diagnosis["site"]) == \
            (0, "translation", site), run["id"] if "id" in run else run
        assert re.fullmatch(r"csrc/\S+:\d+", diagnosis["expected"]["source"])
    assert any(note.startswith("diagnosis: rule 'translation' looks broken")
               for detail in page_details(page.read_text()) for note in detail["notes"])


def test_a_wrong_panic_pc_names_the_file_line_of_the_hypervisors(tmp_path):
    obs = observe(RunRequest(config="pkvm", scenario="hyp_panic", mode="nvhe",
                             out_dir=tmp_path))
    [line] = [n for n, text in enumerate(obs.result.console) if " PC:" in text]
    value = int(re.search(r"PC:([0-9a-f]+)", obs.result.console[line])[1], 16)
    console = list(obs.result.console)
    console[line] = console[line].replace(f"PC:{value:016x}", f"PC:{value ^ 0x10:016x}")
    [reason] = check(dataclasses.replace(obs.result, console=console), obs.expect).reasons
    # hyp_panic faults on the load in nested_panic_c()
    source = Path(__file__).resolve().parents[1] / "csrc" / "hyp" / "scenarios.c"
    load = _line_of(source, "return READ_ONCE(*(unsigned long *)HYP_UNMAPPED_VA);")
    assert reason == (f"panic registers: PC is {value ^ 0x10:#x}, the hypervisor's was "
                      f"{value:#x} (csrc/hyp/scenarios.c:{load})")


def test_a_write_past_the_trace_buffer_names_its_file_line(tmp_path):
    obs = observe(RunRequest(config="pkvm", scenario="buffer_overrun_probe",
                             mode="protected", out_dir=tmp_path))
    source = Path(__file__).resolve().parents[1] / "csrc" / "hyp" / "stacktrace.c"
    [violation] = obs.violations
    match = re.search(r"\(pc 0x[0-9a-f]+: __kvm_nvhe_trace_buffer_overrun_probe\+0x[0-9a-f]+ "
                      r"\(csrc/hyp/stacktrace\.c:(\d+)\)\)$", violation)
    assert match, violation
    lines = source.read_text().splitlines()
    probe = _line_of(source, "unsigned long trace_buffer_overrun_probe(void)")
    assert probe < int(match[1]) < probe + 12, lines[int(match[1]) - 1]


def test_a_trace_buffer_one_slot_short_breaks_the_bounds_rule(firmware_copy,  # noqa: F811
                                                              tmp_path):
    source = firmware_copy / "csrc" / "hyp" / "stacktrace.c"
    edit(source, "buf->used >= NVHE_STACKTRACE_ENTRIES - 1",
         "buf->used >= NVHE_STACKTRACE_ENTRIES - 2")
    record = run(tmp_path, "pkvm", "fault_packed_stacks", "protected")
    assert record.verdict == "fail"
    diagnosis = record.diagnosis
    assert diagnosis.rule == "bounds" and diagnosis.why.startswith("the trace buffer holds")
    assert diagnosis.printed is None and diagnosis.frame == len(record.expected) - 1
    save = _line_of(source, "static bool pkvm_save_backtrace_entry")
    assert diagnosis.site == f"pkvm_save_backtrace_entry() at csrc/hyp/stacktrace.c:{save}"


# -- end to end: a copy of Debian's 6.12 tree -----------------------------------

def _tree_run(tree: Path, out: Path, scenario: str, config: str = "pkvm",
              mode: str = "nvhe") -> RunRecord:
    return run_one(RunRequest(config=config, scenario=scenario, mode=mode,
                              kernel_src=str(tree), out_dir=out))


HOST_C = "arch/arm64/kvm/stacktrace.c"


# The diagnosis names each generation's own code: the same edits in each
# tree (7.x masks with the hyp's own VA bits).
VA_MASKS = {"6.1": "vabits_actual", "6.12": "vabits_actual", "7.x": "__hyp_va_bits"}


@pytest.mark.parametrize("generation", sorted(VA_MASKS))
def test_a_dump_loop_that_never_ends_is_diagnosed_in_the_tree(debian, tmp_path,  # noqa: F811
                                                              generation):
    tree = copy_tree(debian(generation), tmp_path / "linux")
    edit(tree / HOST_C, "\t\tif (ret < 0)\n\t\t\tbreak;", "\t\tif (ret > 0)\n\t\t\tbreak;")
    record = _tree_run(tree, tmp_path / "out", "hyp_panic")
    assert record.verdict == "fail"
    [runaway] = [r for r in record.reasons if re.match(r"frame \d+: unexpected ", r)]
    assert "frames past the expected end, all the same frame" in runaway
    assert "not reached before the run was stopped: the trace's footer, the Hyp Offset line, " \
        "the host panic" in record.reasons
    assert "footer missing" not in record.reasons
    diagnosis = record.diagnosis
    assert diagnosis.rule == "termination" and diagnosis.expected is None
    unwind = _line_of(tree / HOST_C, "static void unwind(struct unwind_state *state,")
    assert diagnosis.site == f"unwind() at {HOST_C}:{unwind}"
    assert diagnosis.records and diagnosis.records[-1].stack == "hyp"


@pytest.mark.parametrize("generation", sorted(VA_MASKS))
def test_a_va_mask_that_keeps_pac_bits_is_one_reason_naming_translation(debian,  # noqa: F811
                                                                       tmp_path, capsys,
                                                                       generation):
    tree = copy_tree(debian(generation), tmp_path / "linux")
    bits = VA_MASKS[generation]
    edit(tree / HOST_C, f"GENMASK_ULL({bits} - 1, 0)", f"GENMASK_ULL({bits} + 7, 0)")
    out = tmp_path / "out"
    records = [_tree_run(tree, out, scenario, "pkvm_pac") for scenario in ("hyp_panic", "bug")]
    for record in records:
        assert record.verdict == "fail"
        [reason] = record.reasons
        # pkvm_pac: VA_BITS 39, so no bit below 39 may differ
        bit = re.search(r"frames printed with bits from bit (\d+) up that their expected pcs "
                        r"lack \(pointer-authentication or tag bits left in", reason)
        assert bit and int(bit[1]) >= 39, reason
        assert record.diagnosis.rule == "translation"
        entry = _line_of(tree / HOST_C, "static bool kvm_nvhe_dump_backtrace_entry")
        assert record.diagnosis.site == f"kvm_nvhe_dump_backtrace_entry() at {HOST_C}:{entry}"
    assert normalise(records[0].reasons[0]) == normalise(records[1].reasons[0])
    # `pyharness run` prints the diagnosis after the reasons
    print_record(records[0], False, "cost")
    err = capsys.readouterr().err.splitlines()
    assert f"      the rule's code: {records[0].diagnosis.site}" in err, err
    [diagnosis] = [i for i, line in enumerate(err) if line.startswith("    diagnosis: ")]
    assert re.fullmatch(r"    diagnosis: rule 'translation' looks broken at frame \d+: the "
                        r"printed pc differs from the recorded one only in bits (\d+) and up: "
                        r"tag or pointer-authentication bits were not masked before "
                        r"translating", err[diagnosis]), err
    assert err.index(f"    {records[0].reasons[0]}") < diagnosis


def test_a_header_that_lost_its_colon_is_said_so_on_a_long_trace(debian, tmp_path):  # noqa: F811
    tree = copy_tree(debian("6.12"), tmp_path / "linux")
    edit(tree / HOST_C, 'kvm_err("nVHE call trace:\\n");', 'kvm_err("nVHE call trace\\n");')
    record = _tree_run(tree, tmp_path / "out", "stack_overflow")
    assert record.verdict == "fail"
    assert len(record.console) > 60          # long enough to have split the panic before
    [reason] = record.reasons
    assert re.fullmatch(r"mainline trace header missing: expected 'nVHE call trace:' after "
                        r"the panic line, console line \d+ is '\[ *[\d.]+\] kvm \[1\]: "
                        r"nVHE call trace'", reason), reason
    # no trace was found, so nothing is set beside the oracle's frames
    assert record.diagnosis is None and record.actual == []
