"""Issue 26 items 2 and 16, issue 27: the HTML report runs no script a
record brings, links only the project's and the trees' files, opens fast
however many runs, and its source links survive the page being moved.

Hostile records are rendered in headless Chromium (as tests/test_reports.py
drives it) with the run and its grid cell opened by the page's own script;
a payload that ran would mark the document, and the test looks for that
mark in the DOM Chromium dumps."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import one_line_error
from conftest import pyharness_cli as pyharness

from pyharness.builder.provenance import TreeProvenance
from pyharness.judge.verdict import FrameLine, Verdict
from pyharness.paths import configs_dir
from pyharness.reports.html import write_html
from pyharness.run.record import RunRecord
from pyharness.run.spec import RunSpec

CHROMIUM = Path("/usr/bin/chromium")
REPO = configs_dir().parent
MARK = "data-pwned"
PAYLOADS = (f"<img src=x onerror=\"document.documentElement.setAttribute('{MARK}','img')\">",
            f"</script><script>document.documentElement.setAttribute('{MARK}','tag')</script>",
            f"\"><svg onload=\"document.documentElement.setAttribute('{MARK}','svg')\">",
            "javascript:document.documentElement.setAttribute('data-pwned','href')")
HOSTILE = " ".join(PAYLOADS)


def chromium(tmp_path: Path, url: str, *args: str) -> str:
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (Debian package: chromium)")
    proc = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                           "--disable-background-networking", "--disable-dev-shm-usage",
                           f"--user-data-dir={tmp_path / 'profile'}",
                           "--virtual-time-budget=10000", *args, "--dump-dom", url],
                          capture_output=True, text=True, timeout=180,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def ran(dom: str) -> bool:
    """Whether a payload marked the document (its text holds the mark too)."""
    return re.search(rf"<html[^>]*{MARK}", dom) is not None


def hostile_record(instructions: object = 1000, cpu: int = 0) -> RunRecord:
    """A failed run with a payload in every text field a record has."""
    spec = RunSpec(config=f"c{HOSTILE}", config_name=f"n{HOSTILE}", mode=f"m{HOSTILE}",
                   scenario=f"s{HOSTILE}", cpu=cpu, kaslr_seed=1, kernel_src=f"/k{HOSTILE}",
                   generation=f"g{HOSTILE}", unwinder=f"u{HOSTILE}")
    frame = FrameLine(f"a{HOSTILE}", f"f{HOSTILE}", f"{HOSTILE}:1")
    return RunRecord(spec=spec, verdict=Verdict.FAIL, reasons=[f"r{HOSTILE}"],
                     console=[f"c{HOSTILE}"], instructions=instructions,  # type: ignore
                     elapsed_ms=1.0, run_status=f"st{HOSTILE}",
                     expected=[frame], actual=[copy.copy(frame), frame],
                     expected_panic=f"p{HOSTILE}", elf=f"e{HOSTILE}",
                     differences=[f"d{HOSTILE}"],
                     tree=TreeProvenance(why_no_commit=f"w{HOSTILE}"))


def _opened(tmp_path: Path, page: Path) -> list[str]:
    """The page's DOM as Chromium leaves it: as loaded, with the hostile run
    opened (#run-ID) and with its grid cell opened (#CELL)."""
    text = page.read_text()
    cell = re.search(r'data-cell="([^"]+)"', text).group(1)
    run_id = json.loads(re.search(r'id="run-index">(.*?)</script>', text, re.S)
                        .group(1))["runs"][0][0]
    doms = [chromium(tmp_path, page.as_uri()),
            chromium(tmp_path, page.as_uri() + "#" + quote("run-" + run_id, safe="")),
            chromium(tmp_path, page.as_uri() + "#" + cell)]
    for dom in doms[1:]:
        assert re.search(r'data-rendered="[1-9]', dom)      # the details were rendered
    return doms


def test_a_wrong_typed_field_with_markup_is_refused(tmp_path):
    shard = tmp_path / "shard.json"
    run = hostile_record().to_json()
    run["instructions"] = PAYLOADS[0]
    shard.write_text(json.dumps({"format": "pyharness-matrix/1", "runs": [run]}))
    line = one_line_error(pyharness("report", "merge", str(shard),
                                    "--html", str(tmp_path / "m.html")))
    assert "'instructions'" in line and not (tmp_path / "m.html").exists()


def test_hostile_records_run_no_script_in_chromium(tmp_path):
    page = tmp_path / "hostile.html"
    # instructions of the wrong type too: only the loader refuses it, the page
    # must still show whatever it is given as text.
    write_html([hostile_record(), hostile_record(PAYLOADS[0], cpu=1)], page)
    for dom in _opened(tmp_path, page):
        assert not ran(dom), "a payload ran"
        assert "<img src=x" not in dom and "<svg onload" not in dom
        assert 'href="javascript:' not in dom
        assert "&lt;img src=x onerror=" in dom                  # shown, as text


def test_hostile_shard_merged_with_html_runs_no_script(tmp_path):
    shard = tmp_path / "shard.json"
    shard.write_text(json.dumps({"format": "pyharness-matrix/1",
                                 "runs": [hostile_record().to_json()]}))
    proc = pyharness("report", "merge", str(shard), "--html", str(tmp_path / "m.html"))
    assert proc.returncode == 1, proc.stderr
    for dom in _opened(tmp_path, tmp_path / "m.html"):
        assert not ran(dom) and "&lt;img src=x onerror=" in dom


def _linked_frames(page: Path) -> dict[str, str | None]:
    from test_reports import page_details

    details = page_details(page.read_text())
    return {cell[1]: cell[2] for d in details for row in d["frames"]
            if row[0] != "repeat" for cell in (row[2], row[4]) if cell}


def test_only_files_of_the_project_or_the_tree_are_linked(tmp_path):
    tree = tmp_path / "linux"
    (tree / "arch").mkdir(parents=True)
    (tree / "arch" / "st.c").write_text("int x;\n")
    (tree / "arch" / "out.c").symlink_to("/etc/passwd")
    (tree / "arch" / "loop.c").symlink_to(tree / "arch" / "loop.c")
    sources = ["csrc/hyp/stacktrace.c:3", "/etc/shadow:1", "../../../../etc/passwd:1",
               f"{REPO}/../../etc/passwd:1", f"{tree}/arch/st.c:1", "arch/st.c:2",
               "arch/out.c:1", "arch/loop.c:1", f"{tree}/arch/loop.c:1"]
    record = hostile_record()
    record.spec = RunSpec(config="c", config_name="n", mode="nvhe", scenario="s", cpu=0,
                          kaslr_seed=0, kernel_src=str(tree), generation="6.12",
                          unwinder="linux-6.12")
    record.expected = [FrameLine("ffff800008000000", "f+0x0/0x4", s) for s in sources]
    record.actual = []
    page = tmp_path / "out" / "links.html"
    page.parent.mkdir()
    write_html([record], page)
    links = _linked_frames(page)
    linked = {s for s, href in links.items() if href}
    assert linked == {"csrc/hyp/stacktrace.c:3", f"{tree}/arch/st.c:1", "arch/st.c:2"}
    for source in linked:
        assert (page.parent / links[source]).resolve().is_file()
    write_html([record], page, source_url="https://example.org/lab/blob/abc")
    remote = {s for s, href in _linked_frames(page).items() if href}
    assert remote == {"csrc/hyp/stacktrace.c:3", "arch/st.c:2", "arch/out.c:1",
                      "arch/loop.c:1"}      # relative, inside the tree: the URL's business


def test_a_source_url_that_is_not_a_web_address_is_refused(tmp_path):
    shard = tmp_path / "shard.json"
    shard.write_text(json.dumps({"format": "pyharness-matrix/1",
                                 "runs": [hostile_record().to_json()]}))
    line = one_line_error(pyharness("report", "merge", str(shard), "--html",
                                    str(tmp_path / "m.html"), "--source-url",
                                    "javascript:alert(1)//"))
    assert "--source-url" in line


def test_matrix_takes_source_url(tmp_path):
    proc = pyharness("matrix", "--configs", "tiny", "--scenarios", "bug", "--modes", "nvhe",
                     "-q", "--html", str(tmp_path / "m.html"), "--source-url",
                     "https://example.org/lab/blob/abc")
    assert proc.returncode == 0, proc.stderr
    links = {href for href in _linked_frames(tmp_path / "m.html").values() if href}
    assert links and all(h.startswith("https://example.org/lab/blob/abc/csrc/")
                         for h in links)


def test_relative_source_links_still_lead_to_the_file_after_the_page_moves(tmp_path):
    written = tmp_path / "ci" / "report"
    written.mkdir(parents=True)
    proc = pyharness("matrix", "--configs", "tiny", "--scenarios", "bug", "--modes", "nvhe",
                     "-q", "--html", str(written / "m.html"))
    assert proc.returncode == 0, proc.stderr
    moved = tmp_path / "elsewhere" / "deeper" / "m.html"
    moved.parent.mkdir(parents=True)
    shutil.move(written / "m.html", moved)
    cell = re.search(r'data-cell="([^"]+)"', moved.read_text()).group(1)
    dom = chromium(tmp_path, moved.as_uri() + "#" + cell)
    hrefs = re.findall(r'<a class="src" href="([^"]+)"', dom)
    assert hrefs
    for href in hrefs:
        assert href.startswith("file:///")
        assert Path(href.removeprefix("file://").split("#")[0]).is_file(), href
