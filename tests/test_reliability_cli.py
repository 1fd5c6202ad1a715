"""Issue 11, the command-line side: reports never replace an input, workers
never outlive a killed matrix, budgets and hostile files are bad input with
one line, text from input cannot drive the terminal or break XML, repro
commands carry everything that changes a verdict, decode streams its log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import one_line_error
from conftest import pyharness_cli as pyharness

from pyharness.judge.verdict import Verdict
from pyharness.matrix.worker import FAULTS_ENV
from pyharness.paths import configs_dir
from pyharness.reports import failure_report, junit_tree, load_records, summary_table
from pyharness.run.record import RunRecord, error_record
from pyharness.run.spec import RunSpec

DATA = Path(__file__).resolve().parent / "data"
TINY = configs_dir() / "tiny_defconfig"
ONE_RUN = ("--configs", "tiny", "--scenarios", "smoke", "--modes", "nvhe", "-q")


# --- 4. a report never replaces an input or another report ----------------------


def test_a_report_over_an_input_config_is_refused(tmp_path):
    config = tmp_path / "mine_defconfig"
    shutil.copyfile(TINY, config)
    before = config.read_bytes()
    line = one_line_error(pyharness("matrix", "--configs", str(config), "--scenarios", "smoke",
                                    "--modes", "nvhe", "--json", str(config),
                                    "--out", str(tmp_path / "out")))
    assert "--json" in line and "input" in line
    assert config.read_bytes() == before


def test_a_report_through_a_symlink_to_an_input_is_refused(tmp_path):
    config = tmp_path / "mine_defconfig"
    shutil.copyfile(TINY, config)
    (tmp_path / "link.xml").symlink_to(config)
    one_line_error(pyharness("matrix", "--configs", str(config), "--scenarios", "smoke",
                             "--junit", str(tmp_path / "link.xml"),
                             "--out", str(tmp_path / "out")))
    assert config.read_bytes() == TINY.read_bytes()


def test_two_reports_in_one_file_are_refused(tmp_path):
    line = one_line_error(pyharness("matrix", *ONE_RUN, "--json", str(tmp_path / "r"),
                                    "--html", str(tmp_path / "." / "r"),
                                    "--out", str(tmp_path / "out")))
    assert "--html" in line and "--json" in line
    assert not (tmp_path / "r").exists()


@pytest.fixture
def tree(tmp_path) -> tuple[Path, dict[str, str]]:
    """A copy of the firmware tree's inputs (NVHE_LAB_ROOT), so that a test
    of a refusal cannot damage the real one if the refusal is broken."""
    root = tmp_path / "tree"
    shutil.copytree(configs_dir().parent / "csrc", root / "csrc")
    shutil.copyfile(configs_dir().parent / "Kconfig", root / "Kconfig")
    shutil.copytree(configs_dir(), root / "configs")
    return root, dict(os.environ, NVHE_LAB_ROOT=str(root))


def test_a_report_inside_the_configs_directory_is_refused(tmp_path, tree):
    """The shipped configurations are the tree's input: a report in
    configs/ would be collected as one (and could replace one)."""
    root, env = tree
    for target in ("new.json", "tiny_defconfig"):
        line = one_line_error(pyharness("matrix", *ONE_RUN, "--json",
                                        str(root / "configs" / target),
                                        "--out", str(tmp_path / "out"), env=env))
        assert "configurations directory" in line or "input" in line
    assert not (root / "configs" / "new.json").exists()
    assert (root / "configs" / "tiny_defconfig").read_bytes() == TINY.read_bytes()


@pytest.mark.parametrize("source", ["Kconfig", "csrc/hyp/hyp-main.c"])
def test_a_report_over_a_firmware_source_is_refused(tmp_path, tree, source):
    root, env = tree
    before = (root / source).read_bytes()
    line = one_line_error(pyharness("matrix", *ONE_RUN, "--junit", str(root / source),
                                    "--out", str(tmp_path / "out"), env=env))
    assert "input" in line
    assert (root / source).read_bytes() == before


# --- 8. workers never outlive a killed matrix -----------------------------------


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _cmdline(pid: int) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:          # it has exited since it was listed
        return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_killing_the_matrix_parent_kills_its_workers(tmp_path, signum):
    """One worker idle (its run done), one busy (a hang): after the parent is
    killed, neither may survive, re-parented to PID 1."""
    hang = "tiny-protected-smoke-cpu0"
    env = dict(os.environ, **{FAULTS_ENV: f"hang:{hang}"})
    log = open(tmp_path / "matrix.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "pyharness", "matrix", "--configs", "tiny",
                             "--scenarios", "smoke", "-j", "2", "--out", str(tmp_path),
                             "--timeout", "300"],
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(workers) < 2:
            # Forked workers share the parent's command line (read it each
            # time: just after the spawn it may still be empty).
            cmdline = _cmdline(proc.pid)
            workers = {c for c in _children(proc.pid) if cmdline and _cmdline(c) == cmdline}
            time.sleep(0.2)
        assert len(workers) == 2, ("the matrix never started its two workers: "
                                   + (tmp_path / "matrix.log").read_text())
        time.sleep(3)   # the smoke run finishes: one worker idle, one hanging
        proc.send_signal(signum)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(w) for w in workers):
            time.sleep(0.1)
        survivors = [w for w in workers if _alive(w)]
        assert not survivors, f"workers {survivors} outlived the killed matrix"
    finally:
        for worker in workers:
            if _alive(worker):
                os.kill(worker, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()


# --- 11. a hostile JSON report -----------------------------------------------------


def test_only_failed_on_deeply_nested_json_is_one_line(tmp_path):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    line = one_line_error(pyharness("matrix", "--only-failed", str(deep)))
    assert str(deep) in line and "nested" in line


def test_only_failed_with_a_bad_budget_in_the_file_is_one_line(tmp_path):
    spec = RunSpec(config=str(TINY), config_name="tiny", mode="nvhe", scenario="smoke",
                   cpu=0, kaslr_seed=0)
    data = error_record(spec, "made up").to_json()
    data["timeout_s"] = "soon"
    (tmp_path / "r.json").write_text(json.dumps([data]))
    line = one_line_error(pyharness("matrix", "--only-failed", str(tmp_path / "r.json")))
    assert "run 1" in line and "--timeout" in line


# --- 12. budgets: one check for every command ------------------------------------


@pytest.mark.parametrize("option,value", [("--timeout", "nan"), ("--timeout", "inf"),
                                          ("--timeout", "-1"), ("--timeout", "0"),
                                          ("--timeout", "1e300"),
                                          ("--max-instructions", "0"),
                                          ("--max-instructions", "-5"),
                                          ("--max-instructions", str(10**30))])
@pytest.mark.parametrize("command", ["run", "matrix"])
def test_bad_budgets_are_bad_input_for_every_command(tmp_path, command, option, value):
    args = (("--config", "tiny", "--scenario", "smoke") if command == "run" else ONE_RUN)
    start = time.monotonic()
    line = one_line_error(pyharness(command, *args, option, value,
                                    "--out", str(tmp_path), timeout=120))
    assert option in line
    assert time.monotonic() - start < 60
    assert not (tmp_path / "matrix-timings").exists()


# --- 13. text from input on a terminal and in XML ----------------------------------


HOSTILE = "tiny\x1b]0;pwned\x07\x9b31m\u202e"


def _hostile_record() -> RunRecord:
    spec = RunSpec(config=f"/tmp/{HOSTILE}_defconfig", config_name=HOSTILE, mode="nvhe",
                   scenario="smoke", cpu=0, kaslr_seed=0)
    record = error_record(spec, f"reason with {HOSTILE}")
    record.console = [f"console \x1b[2J{HOSTILE}"]
    return record


def test_junit_with_control_characters_in_a_name_is_valid_xml():
    tree = junit_tree([_hostile_record()])
    import io

    buffer = io.BytesIO()
    tree.write(buffer, encoding="utf-8", xml_declaration=True)
    parsed = ET.fromstring(buffer.getvalue())   # an XML parser accepts it
    case = parsed.find("./testsuite/testcase")
    assert case is not None and "\x1b" not in case.get("name", "")


def _raw_controls(text: str) -> list[str]:
    return [c for c in text if (ord(c) < 0x20 and c not in "\n\t") or 0x7f <= ord(c) < 0xa0
            or c == "\u202e"]


def test_terminal_reports_show_control_characters_visibly():
    record = _hostile_record()
    for text in (summary_table([record]), failure_report([record])):
        assert not _raw_controls(text), repr(text)
        assert "\\x1b]0;pwned\\x07" in text


def test_error_messages_show_control_characters_visibly(tmp_path):
    proc = pyharness("build", "--config", f"nosuch{HOSTILE}")
    line = one_line_error(proc)
    assert not _raw_controls(line) and "\\x1b" in line


def test_decode_shows_a_stray_line_visibly(tmp_path):
    lines = (DATA / "firmware_console.log").read_text().splitlines(keepends=True)
    # A stray line inside the trace that would set the terminal's title.
    lines.insert(6, "[    0.000463] \x1b]0;owned\x07 interleaved\n")
    log = tmp_path / "stray.log"
    log.write_text("".join(lines))
    proc = pyharness("decode", str(log))
    assert proc.returncode == 0, proc.stderr
    assert "unrecognised line" in proc.stdout
    assert not _raw_controls(proc.stdout) and "\\x1b]0;owned\\x07" in proc.stdout


def test_a_config_file_name_that_is_not_utf8_runs_and_reports(tmp_path):
    """Python hands such a name over with lone surrogates, which cannot be
    encoded: the KASLR seed, the generated files, the terminal and every
    report used to raise UnicodeEncodeError on it."""
    name = os.fsdecode(b"t\xffx_defconfig")
    shutil.copyfile(TINY, tmp_path / name)
    proc = pyharness("matrix", "--configs", str(tmp_path / name), "--scenarios", "smoke",
                     "--modes", "nvhe", "-q", "--out", str(tmp_path / "out"),
                     *(arg for kind in ("json", "junit", "html")
                       for arg in (f"--{kind}", str(tmp_path / f"r.{kind}"))))
    assert proc.returncode == 0, proc.stderr
    assert "t\\xffx" in proc.stdout
    (record,) = load_records(tmp_path / "r.json")
    assert record.spec.config == str(tmp_path / name) and record.passed
    ET.parse(tmp_path / "r.junit")


def test_visible_escapes_what_a_terminal_would_act_on():
    from pyharness.terminal import visible

    assert visible("a\x1b[2Jb\tc\nd") == "a\\x1b[2Jb\tc\\nd"
    assert visible("a\nb", multiline=True) == "a\nb"
    assert visible("bad \udcff byte") == "bad \\xff byte"        # undecodable file name
    assert visible("\u202eevil \x9b") == "\\u202eevil \\x9b"
    assert visible("plain é text") == "plain é text"


# --- 14. the reproduce command carries every option that changes the verdict -----


def test_repro_command_carries_the_budgets_and_quotes_everything():
    spec = RunSpec(config="my config", config_name="x", mode="nvhe",
                   scenario="smoke; rm -rf ~", cpu=1, kaslr_seed=7,
                   max_instructions=12345, timeout_s=2.5)
    command = spec.command()
    assert "--max-instructions 12345" in command and "--timeout 2.5" in command
    assert "'smoke; rm -rf ~'" in command and "'my config'" in command
    default = replace(spec, max_instructions=RunSpec.max_instructions,
                      timeout_s=RunSpec.timeout_s)
    assert "--timeout" not in default.command()


def test_matrix_records_carry_the_budgets_they_ran_with(tmp_path):
    proc = pyharness("matrix", *ONE_RUN, "--timeout", "12.5", "--max-instructions", "3000000",
                     "--json", str(tmp_path / "m.json"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    (record,) = load_records(tmp_path / "m.json")
    assert record.spec.timeout_s == 12.5 and record.spec.max_instructions == 3_000_000
    assert "--max-instructions 3000000 --timeout 12.5" in record.command
    # The reproduce command gives the same verdict on the same budgets.
    repro = subprocess.run([sys.executable, "-m", "pyharness",
                            *record.command.split()[1:], "--out", str(tmp_path / "out")],
                           capture_output=True, text=True, timeout=300)
    assert repro.returncode == 0, repro.stderr


def test_a_tight_budget_fails_and_its_repro_command_fails_the_same_way(tmp_path):
    proc = pyharness("matrix", *ONE_RUN, "--max-instructions", "1000",
                     "--json", str(tmp_path / "m.json"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 1
    (record,) = load_records(tmp_path / "m.json")
    repro = subprocess.run([sys.executable, "-m", "pyharness",
                            *record.command.split()[1:], "--out", str(tmp_path / "out")],
                           capture_output=True, text=True, timeout=300)
    assert repro.returncode == 1, repro.stderr


def test_only_failed_reruns_on_the_recorded_budgets(tmp_path):
    spec = RunSpec(config=str(TINY), config_name="tiny", mode="nvhe", scenario="smoke",
                   cpu=0, kaslr_seed=0, max_instructions=4_000_000, timeout_s=12.5)
    (tmp_path / "failed.json").write_text(json.dumps([error_record(spec, "made up").to_json()]))
    proc = pyharness("matrix", "--only-failed", str(tmp_path / "failed.json"), "-q",
                     "--json", str(tmp_path / "again.json"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    (again,) = load_records(tmp_path / "again.json")
    assert again.spec == spec and again.passed
    proc = pyharness("matrix", "--only-failed", str(tmp_path / "failed.json"), "-q",
                     "--timeout", "20", "--json", str(tmp_path / "given.json"),
                     "--out", str(tmp_path / "out"))
    (given,) = load_records(tmp_path / "given.json")
    assert given.spec.timeout_s == 20 and given.spec.max_instructions == 4_000_000


def test_old_reports_without_budgets_still_load(tmp_path):
    spec = RunSpec(config=str(TINY), config_name="tiny", mode="nvhe", scenario="smoke",
                   cpu=0, kaslr_seed=0)
    data = error_record(spec, "made up").to_json()
    del data["max_instructions"], data["timeout_s"]
    (tmp_path / "old.json").write_text(json.dumps([data]))
    (record,) = load_records(tmp_path / "old.json")
    assert record.spec == spec and record.verdict is Verdict.ERROR


# --- 15. decode streams its input ----------------------------------------------------


# The peak of this process image (VmHWM; getrusage's ru_maxrss would carry
# the forking pytest's own peak across the exec).
_MEASURE = """
import re, sys
from pathlib import Path
from pyharness.cli.main import main
code = main(["decode", sys.argv[1]])
status = Path("/proc/self/status").read_text()
print("RSS", re.search(r"VmHWM:\\s*(\\d+) kB", status)[1], file=sys.stderr)
sys.exit(code)
"""


def _peak_rss_kb(log: Path) -> int:
    proc = subprocess.run([sys.executable, "-c", _MEASURE, str(log)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stderr.rsplit("RSS", 1)[1])


def test_decode_memory_does_not_grow_with_the_log(tmp_path):
    trace = (DATA / "firmware_console.log").read_text()
    small = tmp_path / "small.log"
    small.write_text(trace)
    big = tmp_path / "big.log"
    filler = ("[   12.345678] some unrelated driver chatter that goes on and on "
              "for a while, as kernel logs do\n") * 10_000
    with open(big, "w") as f:
        f.write(trace)
        for _ in range(40):          # ~40 MB
            f.write(filler)
        f.write(trace)
    size_kb = big.stat().st_size // 1024
    growth = _peak_rss_kb(big) - _peak_rss_kb(small)
    assert growth < size_kb // 4, f"decode of a {size_kb} KiB log grew by {growth} KiB"


def test_decode_reads_a_huge_line_without_holding_it(tmp_path):
    log = tmp_path / "long.log"
    with open(log, "w") as f:
        f.write((DATA / "firmware_console.log").read_text())
        f.write("x" * (30 << 20) + "\n")
        f.write((DATA / "firmware_console.log").read_text())
    growth = _peak_rss_kb(log) - _peak_rss_kb(DATA / "firmware_console.log")
    assert growth < 10 << 10, f"a 30 MiB line grew decode by {growth} KiB"


# --- extra: absurd counts -------------------------------------------------------------


def test_randconfig_asking_for_more_than_exist_gives_up(tmp_path, monkeypatch):
    """Asking for more random configurations than there are valid ones used
    to loop for 200 draws per configuration asked for (hours); it gives up
    once draws stop finding anything new. (A small space here, so it runs
    in seconds; an alarm fails the test if it loops.)"""
    from pyharness.errors import HarnessError
    from pyharness.matrix import expand

    for name, value in (("PAGE_SIZES", ("ARM64_4K_PAGES",)),
                        ("VA_CHOICES", ("ARM64_VA_BITS_48",)),
                        ("OPTIMIZE", ("CC_OPTIMIZE_FOR_PERFORMANCE",)),
                        ("RANDCONFIG_GIVE_UP", 500)):
        monkeypatch.setattr(expand, name, value, raising=name != "RANDCONFIG_GIVE_UP")

    def too_long(*_args: object) -> None:
        raise TimeoutError("random_configs is still looking after 60 s")

    previous = signal.signal(signal.SIGALRM, too_long)
    signal.alarm(60)
    try:
        with pytest.raises(HarnessError, match="found only"):
            expand.random_configs(10_000, 0, tmp_path)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("what", ["/dev/zero", "fifo"])
def test_decode_elf_that_is_not_a_file_is_one_line(tmp_path, what):
    """--elf /dev/zero read until memory ran out; a FIFO blocked forever."""
    if what == "fifo":
        os.mkfifo(tmp_path / "fifo")
        what = str(tmp_path / "fifo")
    line = one_line_error(pyharness("decode", "--elf", what,
                                    str(DATA / "firmware_console.log"), timeout=30))
    assert "not a regular file" in line


def test_only_failed_on_an_endless_file_is_one_line():
    line = one_line_error(pyharness("matrix", "--only-failed", "/dev/zero", timeout=60))
    assert "/dev/zero" in line
