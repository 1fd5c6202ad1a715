"""Issue 26, items 1 and 7: a report replaces only a report of its own kind
that pyharness wrote (or nothing), is written whole or not at all, and a
rerun into its own input keeps every record."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import one_line_error
from conftest import pyharness_cli as pyharness

from pyharness.paths import configs_dir
from pyharness.reports.records import load_report

REPO = configs_dir().parent
ONE_RUN = ("--configs", "tiny", "--scenarios", "smoke", "--modes", "nvhe", "-q")
# Files the harness did not write, copied so a broken refusal damages nothing.
NOT_REPORTS = {"config": REPO / "configs" / "pkvm_defconfig", "kconfig": REPO / "Kconfig",
               "source": REPO / "csrc" / "hyp" / "stacktrace.c",
               "readme": REPO / "README.md", "pyproject": REPO / "pyproject.toml",
               "header": REPO / "csrc" / "include" / "stacktrace" / "common.h"}


@pytest.fixture(scope="module")
def shard(tmp_path_factory) -> Path:
    """A real two-run matrix report: tiny x smoke x both modes, one made failed."""
    out = tmp_path_factory.mktemp("shard")
    report = out / "m.json"
    proc = pyharness("matrix", "--configs", "tiny", "--scenarios", "smoke", "bug", "-q",
                     "--json", str(report))
    assert proc.returncode == 0, proc.stderr
    return report


def _copies(tmp_path: Path, *names: str) -> dict[str, Path]:
    copies = {}
    for name in names:
        copies[name] = tmp_path / f"copy-{name}{NOT_REPORTS[name].suffix}"
        shutil.copyfile(NOT_REPORTS[name], copies[name])
    return copies


def _unchanged(copies: dict[str, Path]) -> None:
    for name, path in copies.items():
        assert path.read_bytes() == NOT_REPORTS[name].read_bytes(), name


def test_merge_over_files_it_did_not_write_is_refused(shard, tmp_path):
    copies = _copies(tmp_path, "config", "kconfig", "source")
    for flag, name in (("--json", "config"), ("--junit", "kconfig"), ("--html", "source")):
        line = one_line_error(pyharness("report", "merge", str(shard), flag,
                                        str(copies[name])))
        assert flag in line and "not a" in line and "pyharness wrote" in line
    _unchanged(copies)


def test_matrix_over_project_files_is_refused_before_any_work(tmp_path):
    copies = _copies(tmp_path, "readme", "pyproject", "source")
    for flag, name in (("--json", "readme"), ("--junit", "pyproject"), ("--html", "source")):
        line = one_line_error(pyharness("matrix", *ONE_RUN, flag, str(copies[name]),
                                        "--out", str(tmp_path / "out")))
        assert flag in line
    assert not (tmp_path / "out").exists()              # nothing built
    _unchanged(copies)


def test_a_report_of_another_kind_is_not_replaced(shard, tmp_path):
    json_report = tmp_path / "r.json"
    shutil.copyfile(shard, json_report)
    line = one_line_error(pyharness("report", "merge", str(shard), "--html", str(json_report)))
    assert "HTML" in line
    assert json_report.read_bytes() == shard.read_bytes()


def test_reports_pyharness_wrote_are_replaced(shard, tmp_path):
    outputs = {"--json": tmp_path / "m.json", "--junit": tmp_path / "m.xml",
               "--html": tmp_path / "m.html"}
    args = [a for flag, path in outputs.items() for a in (flag, str(path))]
    for _ in range(2):                                   # written, then replaced
        proc = pyharness("report", "merge", str(shard), *args)
        assert proc.returncode in (0, 1), proc.stderr
    assert load_report(outputs["--json"])[0]


def test_mutate_over_the_file_it_mutates_is_refused(tmp_path):
    copies = _copies(tmp_path, "header")
    equivalents = tmp_path / "equivalent.txt"
    equivalents.write_text("# the equivalents' list\n")
    for flag, path in (("--json", copies["header"]), ("--html", equivalents)):
        before = path.read_bytes()
        line = one_line_error(pyharness("mutate", "--config", "tiny", flag, str(path),
                                        "--out", str(tmp_path / "out")))
        assert flag in line and path.read_bytes() == before
    assert not (tmp_path / "out").exists()


def test_a_symlink_loop_as_a_report_is_one_line(shard, tmp_path):
    (tmp_path / "a.json").symlink_to(tmp_path / "b.json")
    (tmp_path / "b.json").symlink_to(tmp_path / "a.json")
    line = one_line_error(pyharness("report", "merge", str(shard), "--json",
                                    str(tmp_path / "a.json")))
    assert "symlink loop" in line
    line = one_line_error(pyharness("report", "merge", str(tmp_path / "a.json")))
    assert "a.json" in line


def test_rerunning_into_its_own_input_keeps_every_record(shard, tmp_path):
    report = tmp_path / "m.json"
    document = json.loads(shard.read_text())
    failed = document["runs"][1]
    failed["verdict"], failed["reasons"] = "fail", ["made up for the rerun"]
    report.write_text(json.dumps(document, indent=1))
    before = [r["command"] for r in document["runs"]]
    assert len(before) == 4
    proc = pyharness("matrix", "--only-failed", str(report), "--json", str(report), "-q")
    assert proc.returncode == 0, proc.stderr
    after = json.loads(report.read_text())
    assert [r["command"] for r in after["runs"]] == before
    assert after["runs"][1]["verdict"] == "pass"          # the rerun replaced its record
    assert after["plan"] == document["plan"]
    assert after["summary"]["runs"] == 4


_FULL_DISK = """
import resource, signal, sys
from pathlib import Path
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
from pyharness.mutate.report import write_json
from pyharness.mutate.html import write_html
from pyharness.mutate.report import Counts
which, path = sys.argv[1], Path(sys.argv[2])
try:
    if which == "json":
        write_json(path, {"summary": {}, "mutants": ["x" * 100] * 1000})
    else:
        write_html(path, [], Counts(0, 0, 0, 0, 0, 0), "t", ["x" * 100000])
except OSError as err:
    print("OSError", err.errno)
"""


@pytest.mark.parametrize("which", ["json", "html"])
def test_a_mutate_report_is_written_whole_or_not_at_all(tmp_path, which):
    """A full disk (a file-size limit here) leaves the old report as it was."""
    path = tmp_path / f"mutants.{which}"
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, which, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert "OSError" in proc.stdout, proc.stdout + proc.stderr
    assert not path.exists() and not list(tmp_path.iterdir())
    old = "old report\n"
    path.write_text(old)
    proc = subprocess.run([sys.executable, "-c", _FULL_DISK, which, str(path)],
                          capture_output=True, text=True, timeout=60)
    assert "OSError" in proc.stdout, proc.stdout + proc.stderr
    assert path.read_text() == old and list(tmp_path.iterdir()) == [path]
