"""The HTML report: one self-contained page (inline CSS, no script, no fetches).

- a coloured configurations x scenarios grid; each cell links to a panel
  (shown with CSS ``:target``) holding its runs: verdict, reasons, the
  reproduce command, expected-vs-actual frames side by side, the console;
- a chart of the stacktrace memory footprint per configuration, read from
  each built ELF, against the series' claims (reports.footprint).
"""

from __future__ import annotations

import datetime as _dt
import re
from html import escape as _escape
from pathlib import Path
from typing import Sequence

from pyharness.files import write_atomically
from pyharness.judge.verdict import FrameLine
from pyharness.run.record import RunRecord
from pyharness.reports.footprint import CLAIMED_OVERFLOW_STACK, Footprint, footprints
from pyharness.reports.grid import Cell, Grid, make_grid
from pyharness.reports.summary import cell_text, verdict_counts
from pyharness.reports.text import printable


def escape(text: str) -> str:
    """HTML-escaped, with control characters shown as control pictures."""
    return _escape(printable(text))

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .2em}h2{font-size:1.2em;margin:1.6em 0 .5em}
.counts{font-size:1.1em}.counts.bad{color:#b42318}.counts.good{color:#116329}
table{border-collapse:collapse}th,td{padding:3px 8px;text-align:left}
table.grid th{background:#eaeef2;border:1px solid #d0d7de;font-weight:600;white-space:nowrap}
table.grid thead th.scenario{writing-mode:vertical-rl;transform:rotate(180deg);
 vertical-align:bottom;padding:8px 4px;font-weight:500}
table.grid td{border:1px solid #d0d7de;padding:0;white-space:nowrap}
table.grid td a{display:block;padding:4px 10px;color:inherit;text-decoration:none;
 font-family:ui-monospace,monospace}
td.pass{background:#a6e3a1}td.fail{background:#f38b8b}td.error{background:#f9d27a}
td.none{background:#eee;color:#888}table.grid td a:hover{outline:2px solid #1b1f24}
.legend span{display:inline-block;padding:1px 8px;margin-right:6px;border:1px solid #d0d7de}
.detail{display:none}
.detail:target{display:block;position:fixed;inset:3vh 3vw;overflow:auto;background:#fff;
 border:1px solid #8c959f;box-shadow:0 8px 40px rgba(0,0,0,.35);padding:1em 1.5em;z-index:10}
.close{float:right;font-size:1.2em;text-decoration:none}
article.run{border-top:1px solid #d0d7de;padding:.6em 0}summary{cursor:pointer}
div.frames{max-height:24em;overflow:auto;margin:.5em 0}
.badge{font-size:.8em;padding:1px 6px;border-radius:3px;margin-left:.5em;color:#fff}
.badge.pass{background:#1a7f37}.badge.fail{background:#cf222e}.badge.error{background:#bf8700}
code,pre{font-family:ui-monospace,monospace;font-size:12px}
pre.console{background:#0d1117;color:#e6edf3;padding:.6em;max-height:24em;overflow:auto}
table.diff td{font-family:ui-monospace,monospace;font-size:12px;border-bottom:1px solid #eee}
table.diff tr.differ td{background:#ffebe9}table.diff tr.missing td,
table.diff tr.extra td{background:#fff8c5}
table.diff tr.repeat td{color:#57606a;font-style:italic}
ul.reasons{margin:.3em 0;color:#b42318}
table.numbers td,table.numbers th{border:1px solid #d0d7de}
.ok{color:#116329}.bad{color:#b42318}tspan.ok{fill:#116329}tspan.bad{fill:#b42318}
"""

_BAR_COLOURS = {"overflow": "#3b82f6", "buffer": "#8b5cf6"}


def _anchor(cell: Cell) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", cell.anchor)


def _kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size % 1024 else f"{size // 1024} KiB"


# The grid

def _grid_table(grid: Grid) -> str:
    head = "".join(f'<th class="scenario">{escape(s)}</th>' for s in grid.scenarios)
    rows = []
    for config in grid.configs:
        cells = []
        for scenario in grid.scenarios:
            cell = grid.cell(config, scenario)
            if cell.status == "none":
                cells.append('<td class="none">-</td>')
                continue
            title = f"{config} x {scenario}: {len(cell.records)} runs, {cell.passed} passed"
            cells.append(f'<td class="{cell.status}"><a href="#{_anchor(cell)}" '
                         f'title="{escape(title)}">{escape(cell_text(cell))}</a></td>')
        rows.append(f'<tr><th scope="row">{escape(config)}</th>{"".join(cells)}</tr>')
    return (f'<table class="grid" id="grid-table"><thead><tr><th>configuration</th>{head}'
            f'</tr></thead><tbody>{"".join(rows)}</tbody></table>')


# Per-cell panels

def _frame_text(frame: FrameLine | None) -> str:
    if frame is None:
        return ""
    return f"{frame.address} {frame.symbol}".strip()


# Long traces repeat one frame hundreds of times (recursive_death): the page
# shows a repeat once with its count, which keeps it small enough to open.
_MIN_REPEAT = 3
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")


def _runs_of(items: Sequence[str]) -> list[tuple[int, int]]:
    """(start, length) of each run of equal consecutive items."""
    runs: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        if runs and items[runs[-1][0]] == item:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


def _diff_table(record: RunRecord) -> str:
    expected, actual = record.expected, record.actual
    if not expected and not actual:
        return "<p>No frames expected or printed.</p>"
    rows: list[tuple[str, str, str]] = []
    for i in range(max(len(expected), len(actual))):
        want = _frame_text(expected[i]) if i < len(expected) else None
        got = _frame_text(actual[i]) if i < len(actual) else None
        kind = ("extra" if want is None else "missing" if got is None
                else "same" if want == got else "differ")
        rows.append((kind, want or "", got or ""))
    html_rows = []
    for start, length in _runs_of([f"{k}\0{w}\0{g}" for k, w, g in rows]):
        kind, want, got = rows[start]
        html_rows.append(f'<tr class="{kind}"><td>{start}</td><td>{escape(want)}</td>'
                         f'<td>{escape(got)}</td></tr>')
        if length >= _MIN_REPEAT:
            html_rows.append(f'<tr class="{kind} repeat"><td>{start + 1}&ndash;'
                             f'{start + length - 1}</td><td colspan="2">the same, '
                             f'{length - 1} more times</td></tr>')
        else:
            html_rows += [f'<tr class="{kind}"><td>{start + j}</td><td>{escape(want)}</td>'
                          f'<td>{escape(got)}</td></tr>' for j in range(1, length)]
    return ('<table class="diff"><thead><tr><th>#</th><th>expected (oracle)</th>'
            f'<th>actual (console)</th></tr></thead><tbody>{"".join(html_rows)}'
            '</tbody></table>')


def _console_text(lines: Sequence[str]) -> str:
    """The console, lines that differ only in their timestamp shown once with a count."""
    if not lines:
        return "(empty)"
    out = []
    for start, length in _runs_of([_TIMESTAMP.sub("", line) for line in lines]):
        if length >= _MIN_REPEAT:
            out += [lines[start], f"    ... the same line {length - 1} more times "
                                  "(timestamps aside)"]
        else:
            out += lines[start:start + length]
    return "\n".join(out)


def _run_article(record: RunRecord, open_: bool) -> str:
    reasons = "".join(f"<li>{escape(r)}</li>" for r in record.reasons)
    console = _console_text(record.console)
    panic = (f"<p>expected panic line: <code>{escape(record.expected_panic)}</code></p>"
             if record.expected_panic else "")
    verdict = escape(record.verdict)
    return (f'<article class="run {verdict}" id="run-{escape(record.id)}">'
            f'<details{" open" if open_ else ""}><summary><b>{escape(record.id)}</b>'
            f'<span class="badge {verdict}">{verdict.upper()}</span></summary>'
            f'<p>{record.instructions} instructions, {record.elapsed_ms:.1f} ms, '
            f'KASLR seed {record.spec.kaslr_seed} (offset {record.kaslr_offset:#x})</p>'
            f'{f"<ul class=reasons>{reasons}</ul>" if reasons else ""}'
            f'<p>reproduce: <code>{escape(record.command)}</code></p>{panic}'
            f'<div class="frames">{_diff_table(record)}</div>'
            f'<pre class="console">{escape(console)}</pre></details></article>')


def _cell_panel(cell: Cell) -> str:
    """The cell's runs, those that did not pass first and open."""
    ordered = sorted(cell.records, key=lambda r: r.passed)
    runs = "".join(_run_article(r, open_=not r.passed or (i == 0))
                   for i, r in enumerate(ordered))
    return (f'<section class="detail" id="{_anchor(cell)}"><a class="close" href="#grid" '
            f'title="close">&#x2715;</a><h3>{escape(cell.config_name)} &times; '
            f'{escape(cell.scenario)}: {escape(cell_text(cell))}</h3>{runs}</section>')


# The footprint chart

def _bar(y: int, value: int | None, scale: float, kind: str, label: str, ok: bool) -> str:
    mark = '<tspan class="ok">&#x2713;</tspan>' if ok else '<tspan class="bad">&#x2717;</tspan>'
    if value is None:
        return (f'<text x="180" y="{y + 11}" font-size="11">{escape(label)}: none {mark}'
                '</text>')
    width = max(1, round(value * scale))
    return (f'<rect x="180" y="{y}" width="{width}" height="14" fill="{_BAR_COLOURS[kind]}">'
            f'<title>{escape(label)}: {value} bytes</title></rect>'
            f'<text x="{186 + width}" y="{y + 11}" font-size="11">{escape(label)}: '
            f'{value} B ({_kib(value)}) {mark}</text>')


def _footprint_chart(prints: Sequence[Footprint]) -> str:
    if not prints:
        return "<p>No built image to read the footprint from.</p>"
    largest = max([CLAIMED_OVERFLOW_STACK] + [v for f in prints
                   for v in (f.overflow_stack, f.buffer_per_cpu) if v is not None])
    scale = 420 / largest
    group = 44
    height = 30 + group * len(prints)
    claim_x = 180 + round(CLAIMED_OVERFLOW_STACK * scale)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" id="footprint-chart" width="980" '
             f'height="{height}" role="img" aria-label="stacktrace memory per CPU">',
             f'<line x1="{claim_x}" y1="14" x2="{claim_x}" y2="{height}" stroke="#666" '
             'stroke-dasharray="4 3"/>',
             f'<text x="{claim_x + 4}" y="12" font-size="11" fill="#444">4 KiB</text>']
    for i, fp in enumerate(prints):
        y = 24 + i * group
        parts.append(f'<text x="0" y="{y + 16}" font-size="12" font-weight="600">'
                     f'{escape(fp.config_name)}</text>'
                     f'<text x="0" y="{y + 30}" font-size="10" fill="#555">'
                     f'{fp.page_size // 1024}K pages, {fp.nr_cpus} CPU'
                     f'{"s" if fp.nr_cpus > 1 else ""}</text>')
        parts.append(_bar(y, fp.overflow_stack, scale, "overflow", "overflow stack/CPU",
                          fp.overflow_as_claimed))
        buffer_label = "trace buffer/CPU" if fp.protected_stacktrace else \
            "trace buffer/CPU (option off)"
        parts.append(_bar(y + 18, fp.buffer_per_cpu, scale, "buffer", buffer_label,
                          fp.buffer_as_claimed))
    parts.append("</svg>")
    return "".join(parts)


def _footprint_table(prints: Sequence[Footprint]) -> str:
    rows = []
    for fp in prints:
        def verdict(ok: bool) -> str:
            return '<span class="ok">as claimed</span>' if ok else \
                '<span class="bad">NOT as claimed</span>'
        claimed = "none" if fp.claimed_buffer is None else f"{fp.claimed_buffer} B"
        buffer = "none" if fp.buffer_per_cpu is None else f"{fp.buffer_per_cpu} B"
        total = "-" if fp.stacktrace_total is None else f"{fp.stacktrace_total} B"
        overflow = "none" if fp.overflow_stack is None else f"{fp.overflow_stack} B"
        rows.append(
            f"<tr><td>{escape(fp.config_name)}</td><td>{fp.page_size // 1024}K</td>"
            f"<td>{fp.nr_cpus}</td><td>{'on' if fp.protected_stacktrace else 'off'}</td>"
            f"<td>{overflow} ({verdict(fp.overflow_as_claimed)}: {CLAIMED_OVERFLOW_STACK} B)"
            f"</td><td>{buffer} ({verdict(fp.buffer_as_claimed)}: {claimed})</td>"
            f"<td>{total}</td></tr>")
    return ('<table class="numbers" id="footprint-table"><thead><tr><th>configuration</th>'
            '<th>page</th><th>CPUs</th><th>PROTECTED_NVHE_STACKTRACE</th>'
            '<th>overflow stack per CPU (claim)</th><th>trace buffer per CPU (claim)</th>'
            f'<th>trace buffer, all CPUs</th></tr></thead><tbody>{"".join(rows)}'
            '</tbody></table>')


def html_report(records: Sequence[RunRecord], title: str = "pyharness matrix") -> str:
    grid = make_grid(records)
    prints = footprints(records)
    bad = any(not r.passed for r in records)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    panels = "".join(_cell_panel(grid.cell(c, s)) for c in grid.configs
                     for s in grid.scenarios if grid.cell(c, s).records)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}: {escape(verdict_counts(records))}</title>
<style>{_CSS}</style></head>
<body>
<header><h1>{escape(title)}</h1>
<p class="counts {'bad' if bad else 'good'}" id="counts">{escape(verdict_counts(records))}</p>
<p>Generated {escape(stamp)}. Click a cell for its runs: reasons, the command that
reproduces each, expected and actual frames, and the console.</p></header>
<section id="grid"><h2>Configurations &times; scenarios</h2>
{_grid_table(grid)}
<p class="legend"><span class="pass-key" style="background:#a6e3a1">pass</span>
<span style="background:#f38b8b">fail: a check failed</span>
<span style="background:#f9d27a">error: the run could not be judged</span>
<span style="background:#eee">- not run</span></p></section>
<section id="footprint"><h2>Stacktrace memory footprint per configuration</h2>
<p>Read from each configuration's built ELF: the per-CPU overflow stack
(<code>__kvm_nvhe_overflow_stack</code>; claim: 4 KiB whatever the page size) and the
per-CPU trace buffer shared with the host (<code>__kvm_nvhe_pkvm_stacktrace</code> divided
by NR_CPUS; claim: ((PAGE_SIZE + 4096) / 16 + 1) &times; 8 bytes, and none without
CONFIG_PROTECTED_NVHE_STACKTRACE).</p>
{_footprint_chart(prints)}
{_footprint_table(prints)}
</section>
{panels}
</body></html>
"""


def write_html(records: Sequence[RunRecord], path: Path) -> None:
    write_atomically(path, html_report(records))
