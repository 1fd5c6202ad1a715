"""Reports of a real (small) matrix: summary table, JUnit, JSON, HTML, footprint.

One matrix of real runs is shared by the module: nvhe (4K pages, no trace
buffer) and pkvm_16k (16K pages, trace buffer) x smoke and bug. Failures
are made by editing copies of those records, never by mocking a run.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import gzip
import html
import re
import json
import subprocess
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from pyharness.builder import cache as builder
from pyharness.errors import HarnessError
from pyharness.matrix import Selection, plan, run_matrix
from pyharness.reports import (failure_report, html_report, load_records,
                               summary_table, write_html, write_json, write_junit)
from pyharness.reports.footprint import claimed_buffer_per_cpu, read_footprint
from pyharness.judge.verdict import FrameLine, Verdict
from pyharness.run.record import RunRecord
from pyharness.run.scenarios import list_scenarios

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def records() -> list[RunRecord]:
    specs = plan(Selection(configs=("nvhe", "pkvm_16k"), scenarios=("smoke", "bug"))).specs
    result = run_matrix(specs, jobs=2)
    assert result.exit_code == 0, [r.reasons for r in result.failures]
    return result.records


@pytest.fixture
def with_failures(records: list[RunRecord]) -> list[RunRecord]:
    """The same runs, one failed and one error, as a broken firmware would give."""
    edited = copy.deepcopy(records)
    failed, error = edited[2], edited[-1]  # nvhe x bug, pkvm_16k x bug
    failed.verdict = Verdict.FAIL
    failed.reasons = ["frame 2: expected __kvm_nvhe_c+0x10/0x20 at ffff800008011000, "
                      "got __kvm_nvhe_b+0x8/0x20 at ffff800008010ff0"]
    failed.actual = failed.expected[:1] + [FrameLine(address="ffff800008010ff0",
                                                     symbol="__kvm_nvhe_b+0x8/0x20")]
    failed.console = failed.console + ["a \x00 NUL and an \x1b[31m escape"]
    error.verdict, error.reasons, error.console = Verdict.ERROR, ["the worker process died"], []
    return edited


# Terminal summary

def test_summary_table_has_a_row_per_config_and_a_column_per_scenario(records):
    lines = summary_table(records).splitlines()
    assert lines[0].split() == ["configuration", "smoke", "bug"]
    assert [line.split()[0] for line in lines[1:]] == ["nvhe", "pkvm_16k"]
    assert all(line.split()[1:] == ["pass", "4", "pass", "4"] for line in lines[1:])


def test_summary_marks_failures_and_lists_them_with_repro(with_failures):
    table = summary_table(with_failures)
    assert "FAIL 1/4" in table and "ERROR 1/4" in table
    report = failure_report(with_failures)
    failed = with_failures[2]
    assert f"FAIL {failed.id}" in report
    assert "    frame 2: expected __kvm_nvhe_c+0x10/0x20" in report
    assert f"    reproduce: {failed.command}" in report
    assert failed.command.startswith("pyharness run --config ")
    assert "ERROR " in report and "the worker process died" in report


def test_summary_too_wide_numbers_its_columns(with_failures):
    table = summary_table(with_failures, width=30)
    assert table.splitlines()[0].split() == ["configuration", "1", "2"]
    assert "scenarios: 1 smoke, 2 bug" in table and "F1/4" in table and "E1/4" in table


# JUnit

def test_junit_has_one_testcase_per_run(records, tmp_path):
    path = tmp_path / "junit.xml"
    write_junit(records, path)
    root = ET.parse(path).getroot()
    cases = root.findall("./testsuite/testcase")
    assert [c.get("name") for c in cases] == [r.id for r in records]
    assert {c.get("classname") for c in cases} == {"matrix.nvhe", "matrix.pkvm_16k"}
    assert root.find("testsuite").get("tests") == str(len(records))
    assert root.find("testsuite").get("failures") == "0"


def test_junit_failure_text_is_reasons_and_console(with_failures, tmp_path):
    path = tmp_path / "junit.xml"
    write_junit(with_failures, path)
    suite = ET.parse(path).getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("errors")) == ("1", "1")
    failure = suite.find(f"./testcase[@name='{with_failures[2].id}']/failure")
    assert failure.get("message").startswith("frame 2: expected")
    assert "reproduce: pyharness run" in failure.text
    assert with_failures[2].console[0] in failure.text  # the console follows
    assert "a \u2400 NUL and an \u241b[31m escape" in failure.text
    error = suite.find(f"./testcase[@name='{with_failures[-1].id}']/error")
    assert error.get("message") == "the worker process died"


# JSON

def test_json_is_one_record_per_run_and_reads_back(records, tmp_path):
    path = tmp_path / "m.json"
    write_json(records, path)
    document = json.loads(path.read_text())
    n = len(records)
    assert document["summary"] == {"runs": n, "pass": n, "fail": 0, "error": 0}
    assert [r["scenario"] for r in document["runs"]] == [r.spec.scenario for r in records]
    assert set(document["runs"][0]) >= {"config", "mode", "scenario", "cpu", "kaslr_seed",
                                        "verdict", "reasons", "console", "expected",
                                        "actual", "elapsed_ms", "build_ms", "command"}
    assert load_records(path) == records


def test_load_records_accepts_a_list_or_one_run_json(records, tmp_path):
    one = tmp_path / "one.json"
    one.write_text(json.dumps(records[0].to_json()))  # `pyharness run --json`
    assert load_records(one) == records[:1]
    many = tmp_path / "many.json"
    many.write_text(json.dumps([r.to_json() for r in records]))
    assert load_records(many) == records


@pytest.mark.parametrize("content, says", [
    ("{", "not valid JSON (line 1, column 2"),
    ('"text"', "no run records in it"),
    ('{"runs": [{"verdict": "pass"}]}', "run 1: field 'config' is missing"),
    ('{"runs": [{"config": "c", "config_name": "c", "mode": "nvhe", "scenario": "s", '
     '"cpu": "0", "kaslr_seed": 1, "verdict": "fail"}]}', "field 'cpu' is not a whole number"),
])
def test_load_records_rejects_bad_files_in_one_line(tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(HarnessError) as info:
        load_records(path)
    assert says in str(info.value) and "\n" not in str(info.value)


# Footprint

@pytest.mark.parametrize("name", ["nvhe", "pkvm", "pkvm_16k", "pkvm_64k", "nvhe_64k",
                                  "smp", "tiny"])
def test_footprint_claims_hold_for_every_shipped_config(name):
    """4 KiB overflow stack whatever the page size; the buffer only with the option."""
    elf = builder.build(name).elf
    fp = read_footprint(name, str(elf))
    assert fp.overflow_stack == 4096 and fp.overflow_as_claimed
    if fp.protected_stacktrace:
        assert fp.buffer_per_cpu == claimed_buffer_per_cpu(fp.page_size)
        assert fp.stacktrace_total == fp.buffer_per_cpu * fp.nr_cpus
    else:
        assert fp.stacktrace_total is None
    assert fp.buffer_as_claimed


def test_claimed_buffer_formula():
    assert [claimed_buffer_per_cpu(k * 1024) for k in (4, 16, 64)] == [4104, 10248, 34824]


# HTML

class _Page(HTMLParser):
    """The elements of interest: grid cells, panels, the footprint table."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, str]] = []   # (class, href)
        self.ids: set[str] = set()
        self.cell_ids: set[str] = set()
        self.footprint_rows: list[list[str]] = []
        self.script_sources: list[str] = []
        self.external: list[str] = []
        self._td_class: str | None = None
        self._in_footprint = False
        self._row: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"] or "")
        if tag == "script" and a.get("src"):
            self.script_sources.append(a["src"] or "")
        for key in ("src", "href"):
            value = a.get(key) or ""
            if value.startswith(("http:", "https:", "//")) and tag != "svg":
                self.external.append(value)
        if tag == "td":
            self._td_class = a.get("class")
            if a.get("data-cell"):
                self.cell_ids.add(a["data-cell"] or "")
        if tag == "a" and self._td_class and "href" in a:
            self.cells.append((self._td_class, a["href"] or ""))
        if tag == "table" and a.get("id") == "footprint-table":
            self._in_footprint = True
        if self._in_footprint and tag == "tr":
            self._row = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._td_class = None
        if tag == "table":
            self._in_footprint = False
        if tag == "tr" and self._row is not None:
            self.footprint_rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._row is not None and data.strip():
            self._row.append(data.strip())


def page_index(text: str) -> dict:
    """The page's run index (reports/html_data.py)."""
    found = re.search(r'<script type="application/json" id="run-index">(.*?)</script>', text,
                      re.S)
    assert found is not None
    return json.loads(found.group(1))


def page_details(text: str) -> list[dict]:
    """Every run's details, decompressed from the page's chunks, in run order."""
    details = []
    for first, blob in re.findall(r'<script type="application/x-pyharness-details" '
                                  r'data-first="(\d+)">([^<]*)</script>', text):
        assert int(first) == len(details)
        details += json.loads(gzip.decompress(base64.b64decode(blob)))
    return details


def test_html_grid_links_each_cell_to_its_runs(with_failures):
    text = html_report(with_failures)
    page = _Page()
    page.feed(text)
    classes = sorted(c for c, _ in page.cells)
    assert classes == ["error", "fail", "pass", "pass"]
    for _, href in page.cells:                      # the script opens #CELL's panel
        assert href.startswith("#") and href[1:] in page.cell_ids
    assert [run[0] for run in page_index(text)["runs"]] == [r.id for r in with_failures]
    assert [d["id"] for d in page_details(text)] == [r.id for r in with_failures]
    assert page.script_sources == [] and page.external == []  # self-contained


def test_html_shows_console_diff_and_repro(with_failures):
    details = page_details(html_report(with_failures))
    failed = with_failures[2]
    detail = details[2]
    assert "differ" in [row[0] for row in detail["frames"]]
    assert "__kvm_nvhe_b+0x8/0x20" in json.dumps(detail["frames"])
    assert detail["command"] == failed.command
    assert failed.console[0] in detail["console"]
    assert "a \u2400 NUL and an \u241b[31m escape" in detail["console"]  # control pictures


def test_html_footprint_table_reads_the_elves(records):
    page = _Page()
    page.feed(html_report(records))
    rows = {row[0]: row for row in page.footprint_rows[1:]}
    assert set(rows) == {"nvhe", "pkvm_16k"}
    assert rows["nvhe"][1:4] == ["4K", "2", "off"]
    assert rows["pkvm_16k"][1:4] == ["16K", "2", "on"]
    text = " ".join(rows["pkvm_16k"])
    assert "4096 B" in text and "10248 B" in text and "20496 B" in text
    assert "NOT as claimed" not in " ".join(" ".join(r) for r in rows.values())
    assert "id=\"footprint-chart\"" in html_report(records)


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (Debian package: chromium)")
    proc = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-dev-shm-usage",
                           f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


def test_html_in_headless_chromium_shows_the_grid(with_failures, tmp_path):
    path = tmp_path / "report.html"
    write_html(with_failures, path)
    proc = chromium(tmp_path, "--dump-dom", path.as_uri())
    page = _Page()
    page.feed(proc.stdout)
    assert sorted(c for c, _ in page.cells) == ["error", "fail", "pass", "pass"]
    assert {"grid-table", "footprint-chart", "footprint-table", "counts"} <= page.ids
    assert "16 runs: 14 passed, 1 failed, 1 errors" in proc.stdout
    assert '<span id="shown">16 of 16 runs</span>' in proc.stdout    # the script ran
    assert proc.stdout.count('<tr class="run"') == 16
    screenshot = tmp_path / "grid.png"
    chromium(tmp_path, f"--screenshot={screenshot}", "--window-size=1280,900", path.as_uri())
    assert screenshot.stat().st_size > 10_000


# HTML: failures first, filters, alignment, sources, width

def test_html_failures_come_first_grouped_by_cause(with_failures):
    text = html_report(with_failures)
    assert text.index('id="failures"') < text.index('id="grid"') < text.index('id="runs"')
    assert "Failures: 2 runs, 2 causes" in text
    failed = with_failures[2]
    assert f'<span class="globs">{failed.id}</span>' in text
    assert html.escape(failed.reasons[0], quote=True).replace("&#x27;", "'") in text \
        or failed.reasons[0] in text
    order = page_index(text)["order"]
    assert order.index(2) < order.index(0)                            # failures first


def test_html_filters_come_from_the_records_fields(records, monkeypatch):
    from pyharness.reports.html import axes

    found = axes(records)
    assert list(found) == ["verdict", "config_name", "mode", "scenario", "cpu"]
    assert found["config_name"] == ["nvhe", "pkvm_16k"] and found["cpu"] == ["0", "1"]
    # A field a later record gains (a toolchain, a kernel generation) is a filter too.
    plain = RunRecord.to_json

    def with_toolchain(self):
        return {**plain(self), "toolchain": "clang-18" if self.spec.cpu else "gcc-12",
                "kernel_generation": "v6.1"}
    monkeypatch.setattr(RunRecord, "to_json", with_toolchain)
    assert axes(records)["toolchain"] == ["gcc-12", "clang-18"]
    assert "kernel_generation" not in axes(records)              # one value: nothing to filter
    text = html_report(records)
    assert '<select data-axis="toolchain">' in text
    index = page_index(text)
    column = index["axes"].index("toolchain")
    assert {run[1][column] for run in index["runs"]} == {"gcc-12", "clang-18"}
    assert "<th>toolchain</th>" in text and column in index["extra"]  # a column of the table


def test_alignment_makes_one_dropped_frame_one_gap():
    from pyharness.judge.align import align

    expected = list("abcdefgh")
    assert [r.kind for r in align(expected, expected)] == ["same"] * 8
    dropped = [r.kind for r in align(expected, list("abdefgh"))]
    assert dropped == ["same", "same", "missing"] + ["same"] * 5
    changed = align(expected, list("abXdefgh"))
    assert [(r.kind, r.expected, r.actual) for r in changed][2] == ("differ", 2, 2)
    extra = [r.kind for r in align(list("aab"), list("aaab"))]
    assert extra.count("extra") == 1 and extra.count("same") == 3


def test_html_shows_a_dropped_frame_as_one_gap(records):
    record = copy.deepcopy(next(r for r in records if r.spec.scenario == "bug"
                                and r.spec.config_name == "pkvm_16k"))
    assert len(record.expected) > 3
    record.actual = record.expected[:1] + record.expected[2:]
    record.verdict, record.reasons = Verdict.FAIL, ["frame 1: made up"]
    kinds = [row[0] for row in page_details(html_report([record]))[0]["frames"]]
    assert kinds.count("missing") == 1
    assert "differ" not in kinds and "extra" not in kinds


def test_frames_show_file_line_linked_to_the_source(records, tmp_path):
    record = next(r for r in records if r.spec.scenario == "bug" and r.expected)
    assert all(f.source.startswith("csrc/") for f in record.expected)
    file, line = record.expected[0].source.rsplit(":", 1)
    out = tmp_path / "pages"
    out.mkdir()
    write_html([record], out / "local.html")
    (frame,) = [row[2] for row in page_details((out / "local.html").read_text())[0]["frames"]
                if row[0] != "repeat" and row[1] == 0]
    assert frame[1] == record.expected[0].source
    assert (out / frame[2]).resolve() == (REPO / file).resolve()
    write_html([record], out / "ci.html", source_url="https://example.org/lab/blob/abc123/")
    (frame,) = [row[2] for row in page_details((out / "ci.html").read_text())[0]["frames"]
                if row[0] != "repeat" and row[1] == 0]
    assert frame[2] == f"https://example.org/lab/blob/abc123/{file}#L{line}"


def _many_configurations(records: list[RunRecord], count: int) -> list[RunRecord]:
    """``count`` configurations with --all's long names x 16 scenarios x 2 modes."""
    scenarios = [s.name for s in list_scenarios(builder.build("nvhe").elf)]
    out = []
    for i in range(count):
        name = f"all-{(4, 16, 64)[i % 3]}k-va{39 + i % 10}-kaslr-pst-o2-cpus{1 + i // 30}"
        for mode in ("nvhe", "protected"):
            for scenario in scenarios:
                run = copy.copy(records[0])
                run.spec = dataclasses.replace(run.spec, config_name=name, mode=mode,
                                               scenario=scenario)
                run.console, run.expected, run.actual = [], [], []
                failed = mode == "protected" and scenario != "smoke" and i % 4 == 0
                run.verdict = Verdict.FAIL if failed else Verdict.PASS
                run.reasons = ["footer missing"] if failed else []
                out.append(run)
    return out


_MEASURE = """<script>
document.body.dataset.overflow = document.documentElement.scrollWidth - window.innerWidth;
document.body.dataset.gridRight = document.getElementById('grid-table')
  .getBoundingClientRect().right;
</script></body>"""


def test_html_grid_fits_1280_pixels_with_many_configurations(records, tmp_path):
    many = _many_configurations(records, 90)
    path = tmp_path / "many.html"
    write_html(many, path)
    path.write_text(path.read_text().replace("</body>", _MEASURE))
    dom = chromium(tmp_path, "--window-size=1280,900", "--dump-dom", path.as_uri()).stdout
    overflow = int(re.search(r'data-overflow="(-?\d+)"', dom).group(1))
    right = float(re.search(r'data-grid-right="([\d.]+)"', dom).group(1))
    assert overflow <= 0 and right <= 1280, (overflow, right)
    shot = tmp_path / "many.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,1200", path.as_uri())
    assert shot.stat().st_size > 10_000


def test_html_filters_from_the_query_hide_the_other_runs(with_failures, tmp_path):
    path = tmp_path / "report.html"
    write_html(with_failures, path)
    dom = chromium(tmp_path, "--dump-dom", path.as_uri() + "?verdict=fail").stdout
    assert '<span id="shown">1 of 16 runs</span>' in dom
    rows = re.findall(r'<tr class="run"[^>]*>', dom)
    assert len(rows) == 1 and 'data-index="2"' in rows[0]
    searched = chromium(tmp_path, "--dump-dom", path.as_uri() + "?q=worker+process").stdout
    assert '<span id="shown">1 of 16 runs</span>' in searched


def test_html_shows_a_long_repeat_once_with_its_count():
    from pyharness.run.runner import RunRequest, run_one

    record = run_one(RunRequest(config="pkvm", scenario="stack_overflow", mode="protected"))
    assert record.passed and len(record.expected) > 100
    (detail,) = page_details(html_report([record]))
    frames = json.dumps(detail["frames"])
    assert frames.count("__kvm_nvhe_recursive_death+") < 10
    assert "repeat" in [row[0] for row in detail["frames"]]
    assert "the same line" in detail["console"]
    assert record.console[-1] in detail["console"]  # the console's end is still there
