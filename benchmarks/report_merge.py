"""`report merge --html` on large synthetic matrices: the time it takes and
the page it writes.

    .venv/bin/python benchmarks/report_merge.py [--sizes 5000 10000 20000]
                                                [--causes 5000] [--keep DIR]

The records are real ones (nvhe and pkvm_16k x every scenario, run once
here) copied under --all's long configuration names until there are N
runs; half fail, spread over CAUSES causes (distinct symbols in their
reasons, so each is a cause of its own), the rest pass. Each size is
written as one JSON report and merged by the command line as a user runs
it (`pyharness report merge R.json --json --junit --html`); printed: the
wall time, the HTML page's size, and whether the merge took more than
its linear share of the largest size (the quadratic behaviour of issue 26
item 14: 5k runs 8.7 s, 10k 38.6 s, 20k with 5000 causes 5 min), and the
wall time headless Chromium takes to draw the page and to draw it with a
grid cell opened (its runs' details decompressed and rendered), beside
its time for an empty page (starting the browser).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pyharness.judge.verdict import Verdict
from pyharness.matrix import Selection, plan, run_matrix
from pyharness.reports.records import MatrixPlanIds, write_json
from pyharness.run.record import RunRecord


def base_records() -> list[RunRecord]:
    specs = plan(Selection(configs=("nvhe", "pkvm_16k"))).specs
    result = run_matrix(specs, jobs=2)
    return result.records


def synthetic(base: list[RunRecord], runs: int, causes: int) -> list[RunRecord]:
    out: list[RunRecord] = []
    config = 0
    while len(out) < runs:
        name = (f"all-{(4, 16, 64)[config % 3]}k-va{39 + config % 10}-kaslr-pst-o2-"
                f"cpus{2 + config // 30}")
        for record in base:
            if len(out) == runs:
                break
            run = copy.copy(record)
            config_name = f"{name}-{record.spec.config_name}"
            run.spec = dataclasses.replace(record.spec, config_name=config_name,
                                           config=f"build/configs/all/{config_name}_defconfig")
            if len(out) % 2 == 1:
                cause = (len(out) // 2) % causes
                run.verdict = Verdict.FAIL
                run.reasons = [f"frame 2: expected __kvm_nvhe_f{cause}+0x10/0x20 at "
                               f"ffff8000080{len(out):05x}, got __kvm_nvhe_b+0x8/0x20",
                               "footer missing"]
            out.append(run)
        config += 1
    return out


def merge_once(path: Path, out: Path) -> float:
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pyharness", "report", "merge", str(path),
                           "--json", str(out / "m.json"), "--junit", str(out / "m.xml"),
                           "--html", str(out / "m.html")],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        raise SystemExit(f"merge failed: {proc.stderr}")
    return seconds


CHROMIUM = Path("/usr/bin/chromium")


def browser_seconds(url: str) -> float | None:
    """Wall time of headless Chromium loading ``url`` (a grid cell's fragment
    opens the cell: its runs' details decompressed and rendered) until it
    has drawn it, or None without Chromium."""
    if not CHROMIUM.exists():
        return None
    with tempfile.TemporaryDirectory() as profile:
        start = time.perf_counter()
        subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                        "--window-size=1280,900", "--virtual-time-budget=10000",
                        f"--screenshot={Path(profile) / 'shot.png'}", url],
                       capture_output=True, timeout=600, stdin=subprocess.DEVNULL)
        return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[5000, 10000, 20000])
    parser.add_argument("--causes", type=int, default=5000)
    parser.add_argument("--keep", type=Path, help="keep the reports in this directory")
    args = parser.parse_args()
    base = base_records()
    print(f"base: {len(base)} real runs; half of each size fails, over at most "
          f"{args.causes} causes")
    figures = []
    with tempfile.TemporaryDirectory() as scratch:
        for size in args.sizes:
            where = (args.keep or Path(scratch)) / f"n{size}"
            where.mkdir(parents=True, exist_ok=True)
            records = synthetic(base, size, args.causes)
            report = where / "input.json"
            write_json(records, report, MatrixPlanIds(tuple(r.id for r in records)))
            seconds = merge_once(report, where)
            causes = len({json.dumps(r.reasons[:1]) for r in records if not r.passed})
            html_mb = (where / "m.html").stat().st_size / 1e6
            figures.append((size, seconds))
            page = where / "m.html"
            cell = re.search(r'data-cell="([^"]+)"', page.read_text()).group(1)
            blank = browser_seconds("about:blank")
            opened = browser_seconds(page.as_uri())
            with_cell = browser_seconds(page.as_uri() + "#" + cell)
            browser = ("" if blank is None else
                       f"; Chromium draws it in {opened:.1f} s, with a cell open "
                       f"{with_cell:.1f} s (an empty page {blank:.1f} s)")
            print(f"{size:>6} runs, {causes:>5} causes: report merge --json --junit --html "
                  f"{seconds:6.1f} s, page {html_mb:6.1f} MB{browser}", flush=True)
    (small, t_small), (large, t_large) = figures[0], figures[-1]
    ratio = (t_large / t_small) / (large / small)
    print(f"time per run at {large} over time per run at {small}: {ratio:.2f} "
          f"(1 is linear; {'ok' if ratio < 2 else 'MISS'}: under 2)")
    return 0 if ratio < 2 else 1


if __name__ == "__main__":
    raise SystemExit(main())
