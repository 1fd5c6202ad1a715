"""Issue 26, item 12 (the report side): every field of a loaded record is
type-checked, so a hand-edited or hostile JSON report is one line and exit
2, never a traceback, whatever field holds whatever JSON type; a JSON
integer too long for Python and a symlink loop are one line too.

The types each field accepts are written out here, apart from the loader's
own table, so the test can fail when the loader forgets one."""

from __future__ import annotations

import copy
import itertools
import json
from pathlib import Path

import pytest

from pyharness.cli.main import main
from pyharness.judge.verdict import FrameLine, Verdict
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec
from pyharness.builder.provenance import TreeProvenance

# One value of each JSON type (and a few shapes of arrays).
VALUES = {"null": None, "true": True, "int": 7, "float": 1.5, "string": "x",
          "empty array": [], "array of strings": ["x"], "array of ints": [1],
          "array of objects": [{"address": "x", "symbol": "y"}], "object": {},
          "array of arrays": [[]]}
# Which of those each field takes (an empty array is a list of anything).
STRING, INT, NUMBER, BOOL = {"string"}, {"int"}, {"int", "float"}, {"true"}
STRINGS = {"empty array", "array of strings"}
FRAMES = {"empty array", "array of objects"}
ACCEPTS: dict[str, set[str]] = {
    "config": STRING, "config_name": STRING, "mode": STRING, "scenario": STRING,
    "cpu": INT, "kaslr_seed": INT, "kernel_src": STRING | {"null"},
    "generation": STRING | {"null"}, "unwinder": STRING, "max_instructions": INT,
    "timeout_s": NUMBER, "platform": STRING, "differential": BOOL,
    "verdict": set(), "reasons": STRINGS, "console": STRINGS, "instructions": INT,
    "elapsed_ms": NUMBER, "kaslr_offset": INT, "run_status": STRING,
    "exit_status": INT | {"null"}, "expected": FRAMES, "actual": FRAMES,
    "expected_panic": STRING | {"null"}, "build_ms": NUMBER, "elf": STRING,
    "command": STRING, "differences": STRINGS, "tree": {"null", "object"},
}

# The budgets are checked by the one budget check, which names their options.
BUDGET_OPTIONS = {"max_instructions": "--max-instructions", "timeout_s": "--timeout"}


def _record() -> dict[str, object]:
    spec = RunSpec(config="configs/tiny_defconfig", config_name="tiny", mode="nvhe",
                   scenario="bug", cpu=0, kaslr_seed=3, kernel_src="/src/linux",
                   generation="6.12", unwinder="linux-6.12")
    frame = FrameLine("ffff800008010ff0", "__kvm_nvhe_b+0x8/0x20", "csrc/hyp/switch.c:14")
    record = RunRecord(spec=spec, verdict=Verdict.FAIL, reasons=["frame 2: wrong"],
                       console=["[ 0.1] kvm: nVHE call trace:"], instructions=1000,
                       elapsed_ms=2.5, kaslr_offset=0x200000, run_status="exited",
                       exit_status=0, expected=[frame], actual=[frame],
                       expected_panic="kvm [1]: nVHE hyp panic", build_ms=1.0,
                       elf="/b/vmlinux", differences=["lab ..., real ..."],
                       tree=TreeProvenance(commit="a" * 40, dirty=False))
    return record.to_json()


def test_the_table_names_every_field_a_record_writes():
    assert set(_record()) == set(ACCEPTS)


def _merge(tmp_path: Path, run: object, capsys) -> tuple[int, str]:
    report = tmp_path / "r.json"
    report.write_text(json.dumps({"format": "pyharness-matrix/1", "runs": [run]}))
    for stale in ("m.json", "m.xml", "m.html"):
        (tmp_path / stale).unlink(missing_ok=True)
    code = main(["report", "merge", str(report), "--json", str(tmp_path / "m.json"),
                 "--junit", str(tmp_path / "m.xml"), "--html", str(tmp_path / "m.html")])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("field,kind", list(itertools.product(ACCEPTS, VALUES)))
def test_every_field_with_every_json_type(field, kind, tmp_path, capsys):
    run = _record()
    run[field] = copy.deepcopy(VALUES[kind])
    takes = kind in ACCEPTS[field]
    code, err = _merge(tmp_path, run, capsys)
    if takes:
        assert code in (0, 1), err
        assert (tmp_path / "m.html").stat().st_size > 0
    else:
        assert code == 2, err
        named = BUDGET_OPTIONS.get(field, repr(field))
        assert len(err.strip().splitlines()) == 1 and (named in err or repr(field) in err), err


@pytest.mark.parametrize("field,kind", list(itertools.product(
    ("address", "symbol", "source"), ("null", "int", "object", "array of strings"))))
@pytest.mark.parametrize("where", ["expected", "actual"])
def test_every_frame_field_with_a_wrong_type(field, kind, where, tmp_path, capsys):
    run = _record()
    run[where][0][field] = copy.deepcopy(VALUES[kind])
    code, err = _merge(tmp_path, run, capsys)
    assert code == 2 and repr(where) in err and field in err, err


@pytest.mark.parametrize("field", ["commit", "dirty", "diff_sha256", "why_no_commit"])
def test_every_tree_field_with_a_wrong_type(field, tmp_path, capsys):
    run = _record()
    run["tree"][field] = [] if field != "dirty" else "yes"
    code, err = _merge(tmp_path, run, capsys)
    assert code == 2 and "'tree'" in err and field in err, err


def test_a_json_integer_longer_than_python_reads_is_one_line(tmp_path, capsys):
    report = tmp_path / "r.json"
    text = json.dumps({"format": "pyharness-matrix/1", "runs": [_record()]})
    report.write_text(text.replace('"cpu": 0', '"cpu": ' + "9" * 4400))
    code = main(["report", "merge", str(report)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "digits" in err, err


def test_a_symlink_loop_as_a_merge_input_is_one_line(tmp_path, capsys):
    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")
    (tmp_path / "b.json").symlink_to(tmp_path / "a.json")
    code = main(["report", "merge", str(tmp_path / "a.json")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "a.json" in err, err
