"""run/caps.py: what a record keeps of a failure, and the count of the rest."""

from __future__ import annotations

from pyharness.judge.verdict import FrameLine, Verdict
from pyharness.run import caps
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec


def test_reasons_keep_each_kind_and_say_what_was_cut():
    reasons = (["stopped early, a runaway: the console holds 5458 frame lines"]
               + [f"frame {k}: unexpected X at {k:016x}" for k in range(500)]
               + ["footer missing"]
               + [f"host frame {k}: missing, expected Y" for k in range(30)])
    kept, cut = caps.cap_reasons(reasons)
    assert kept[0] == reasons[0]
    assert kept[1:21] == reasons[1:21]
    assert kept[21] == ("... 480 more 'frame N' reasons cut (a record keeps "
                        f"{caps.REASONS_OF_A_KIND} of a kind)")
    assert kept[22] == "footer missing"
    assert kept[23:43] == reasons[502:522]
    assert kept[43].startswith("... 10 more 'host frame N' reasons cut")
    assert len(kept) == 44 and cut == 490


def test_reasons_past_the_total_are_counted_once():
    reasons = [f"reason number {chr(65 + k % 26)}{k // 26}x: a" for k in range(150)]
    kept, cut = caps.cap_reasons(reasons)
    assert kept[:caps.MAX_REASONS] == reasons[:caps.MAX_REASONS]
    assert kept[-1] == f"... 50 more reasons cut (a record keeps {caps.MAX_REASONS})"
    assert cut == 50


def test_a_short_failure_is_kept_whole():
    reasons = ["frame 3: missing, expected X", "footer missing"]
    assert caps.cap_reasons(reasons) == (reasons, 0)
    console = [f"line {k}" for k in range(caps.CONSOLE_HEAD + caps.CONSOLE_TAIL)]
    assert caps.cap_console(console) == (console, 0)


def test_a_long_console_keeps_its_head_and_tail():
    console = [f"line {k}" for k in range(5000)]
    kept, cut = caps.cap_console(console)
    assert cut == 5000 - caps.CONSOLE_HEAD - caps.CONSOLE_TAIL
    assert kept[:caps.CONSOLE_HEAD] == console[:caps.CONSOLE_HEAD]
    assert kept[caps.CONSOLE_HEAD] == (
        f"[pyharness: {cut} console lines cut here; the record keeps the first "
        f"{caps.CONSOLE_HEAD} and the last {caps.CONSOLE_TAIL} of 5000]")
    assert kept[caps.CONSOLE_HEAD + 1:] == console[-caps.CONSOLE_TAIL:]


def _record(verdict: Verdict, console: list[str], actual: int) -> RunRecord:
    frame = FrameLine("ffff800008001068", "__kvm_nvhe___host_exit+0x68/0x68")
    return RunRecord(spec=RunSpec(config="nvhe", config_name="nvhe", mode="nvhe",
                                  scenario="hvc_at_el2", cpu=0, kaslr_seed=0),
                     verdict=verdict, reasons=[], console=console, instructions=1,
                     elapsed_ms=1.0, expected=[frame] * 6, actual=[frame] * actual)


def test_a_passing_record_keeps_its_console_and_frames():
    record = caps.cap_record(_record(Verdict.PASS, ["x"] * 4371, 4352))
    assert len(record.console) == 4371 and len(record.actual) == 4352
    assert record.cut == {} and "cut" not in record.to_json()


def test_a_failing_record_counts_what_it_cut_and_reads_back():
    record = caps.cap_record(_record(Verdict.FAIL, ["x"] * 3000, 2000))
    assert record.cut == {"console": 3000 - caps.CONSOLE_HEAD - caps.CONSOLE_TAIL,
                          "actual": 2000 - 6 - caps.EXTRA_FRAMES}
    assert len(record.actual) == 6 + caps.EXTRA_FRAMES
    again = RunRecord.from_json(record.to_json())
    assert again.cut == record.cut and again.console == record.console
    assert RunRecord.from_json({**record.to_json(), "cut": "garbage"}).cut == {}
