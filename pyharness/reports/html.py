"""The HTML report: one self-contained page (inline CSS and one inline
script; it fetches nothing) that opens in seconds however many runs.

In order:

- the kernel trees the runs used, when any: each label's path, commit,
  whether it was dirty and the hash of its diff (or why there is none);
- filters: verdict and every other axis the records carry (configuration,
  mode, scenario, CPU today; a field a later record gains, such as a
  toolchain or a kernel generation, becomes a filter by itself), and a
  text search over run ids and reasons;
- the failures, first: one block per cause (:mod:`pyharness.reports.causes`)
  with its runs as globs, its reasons, a reproduce command and every run;
- the configurations x scenarios grid (it fits a 1280-pixel window however
  many configurations: fixed columns, compact cells); each cell opens a
  panel with its runs: reasons, reproduce command, expected and actual
  frames aligned with their ``file:line`` (linked to the source), the
  console;
- every run in a table, those that did not pass first, a page at a time;
- the stacktrace memory footprint per configuration.

What is the same for every size (trees, failures, grid, footprint) is
markup, each value escaped. What grows with the runs is data
(:mod:`pyharness.reports.html_data`): the runs table's rows as JSON, and
each run's details as gzip-compressed JSON in chunks, decompressed and
rendered by the page's script only when a run or a cell is opened, with
``textContent``: text from a record never becomes markup.
"""

from __future__ import annotations

import datetime as _dt
import re
from pathlib import Path
from typing import Sequence

from pyharness.files import write_atomically
from pyharness.reports.causes import group_failures
from pyharness.reports.grid import Cell, Grid, make_grid
from pyharness.reports.html_assets import CSS
from pyharness.reports.html_script import SCRIPT
from pyharness.reports.html_footprint import footprint_section
from pyharness.reports.output_guard import MATRIX_HTML_GENERATOR
from pyharness.reports.html_data import CHUNK, run_details, run_index
from pyharness.reports.html_runs import SourceLink, escape, no_links, source_linker
from pyharness.reports.runsets import RunNamer
from pyharness.reports.summary import cell_text, compact_cell_text, verdict_counts
from pyharness.reports.trees import tested_trees
from pyharness.run.record import RunRecord

# Record fields that are not axes to filter on: the run's outcome and details.
NOT_AXES = frozenset({"config", "kaslr_seed", "reasons", "console", "instructions",
                      "elapsed_ms", "kaslr_offset", "run_status", "exit_status", "expected",
                      "actual", "expected_panic", "build_ms", "elf", "command"})
# Axes the run id already spells (the runs table shows the others as columns).
IN_THE_ID = ("config_name", "mode", "scenario", "cpu")
_LABELS = {"config_name": "configuration", "cpu": "CPU"}
# Causes shown open; the rest (smaller: causes come largest first) are folded,
# which a browser does not lay out until they are unfolded.
SHOWN_CAUSES = 50


def _anchor(cell: Cell) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", cell.anchor)


def axes(records: Sequence[RunRecord],
         documents: Sequence[dict[str, object]] | None = None) -> dict[str, list[str]]:
    """Each axis the records carry (the verdict first) -> its values in run order.

    An axis is a record field holding a string, number or flag that is not
    an outcome detail (``NOT_AXES``); one with a single value everywhere is
    left out, except the verdict."""
    values: dict[str, dict[str, None]] = {"verdict": {}}
    for document in documents if documents is not None else (r.to_json() for r in records):
        for name, value in document.items():
            if name in NOT_AXES or not isinstance(value, (str, int, bool)):
                continue
            values.setdefault(name, {})[str(value)] = None
    return {name: list(found) for name, found in values.items()
            if name == "verdict" or len(found) > 1}


def _attribute(name: str) -> str:
    return "data-" + re.sub(r"[^a-z0-9_-]", "_", name.lower())


def _filters(axis_values: dict[str, list[str]], total: int) -> str:
    controls = []
    for name, values in axis_values.items():
        options = "".join(f'<option value="{escape(v)}">{escape(v)}</option>' for v in values)
        controls.append(f'<label>{escape(_LABELS.get(name, name.replace("_", " ")))} '
                        f'<select data-axis="{_attribute(name)[5:]}"><option value="">all'
                        f'</option>{options}</select></label>')
    return (f'<nav id="filters">{"".join(controls)}<label>search <input type="search" '
            'id="search" placeholder="run id or reason"></label>'
            f'<button type="button" id="reset">show all</button>'
            f'<span id="shown">{total} of {total} runs</span></nav>')


# The trees

def _trees(records: Sequence[RunRecord]) -> str:
    trees = tested_trees(records)
    if not trees:
        return ""
    rows = []
    for tree in trees:
        state = tree.provenance
        if state is None or state.commit is None:
            commit, dirty, diff = tree.state, "", ""
        else:
            commit, dirty = state.commit, "dirty" if state.dirty else "clean"
            diff = state.diff_sha256 or ""
        rows.append(f"<tr><td>{escape(tree.label)}</td><td><code>{escape(tree.kernel_src)}"
                    f"</code></td><td>{escape(tree.generation or '')}</td><td><code>"
                    f"{escape(commit)}</code></td><td>{escape(dirty)}</td><td><code>"
                    f"{escape(diff)}</code></td></tr>")
    return ('<section id="trees"><h2>Kernel trees</h2><table class="trees"><thead><tr>'
            '<th>unwinder</th><th>tree</th><th>generation</th><th>commit</th><th>tracked '
            'files</th><th>sha256 of <code>git diff HEAD</code></th></tr></thead><tbody>'
            f'{"".join(rows)}</tbody></table></section>')


# Failures, by cause

def _failures(records: Sequence[RunRecord], index: dict[str, int]) -> str:
    groups = group_failures(records)
    if not groups:
        return '<section id="failures"><h2>Failures</h2><p>None: every run passed.</p></section>'
    namer = RunNamer([r.spec for r in records])
    blocks = []
    for group in groups:
        runs = " ".join(str(index[r.id]) for r in group.records)
        globs = (group.first.id if len(group.records) == 1 else
                 ", ".join(namer.describe([r.spec for r in group.records])))
        reasons = "".join(f"<li>{escape(r)}</li>" for r in group.reasons())
        blocks.append(
            f'<section class="cause {escape(group.verdict)}" data-runs="{runs}">'
            f'<h3>{escape(group.verdict.upper())} &times;{len(group.records)}: '
            f'<span class="globs">{escape(globs)}</span></h3>'
            f'<ul class="reasons">{reasons}</ul>'
            f'<p>reproduce: <code>{escape(group.first.command)}</code></p>'
            f'<details class="ids"><summary>its {len(group.records)} runs</summary>'
            '<ul class="ids"></ul></details></section>')
    failed = sum(len(g.records) for g in groups)
    rest = blocks[SHOWN_CAUSES:]
    folded = (f'<details class="more-causes"><summary>{len(rest)} more causes (fewer runs '
              f'each)</summary>{"".join(rest)}</details>' if rest else "")
    return (f'<section id="failures"><h2>Failures: {failed} runs, {len(groups)} '
            f'cause{"s" if len(groups) != 1 else ""}</h2><p>Runs whose reasons match '
            'once addresses, offsets and counts are set aside share a cause.</p>'
            f'{"".join(blocks[:SHOWN_CAUSES])}{folded}</section>')


# Every run

def _runs_table(extra: list[str]) -> str:
    """The table's head; its rows come from the page's data, a page at a time."""
    heads = "".join(f"<th>{escape(_LABELS.get(n, n.replace('_', ' ')))}</th>" for n in extra)
    return ('<section id="runs"><h2>Runs</h2><table class="runs"><colgroup>'
            '<col class="verdict"><col class="id"></colgroup><thead><tr><th>verdict</th>'
            f'<th>run</th>{heads}<th>first reason</th></tr></thead><tbody id="runs-body">'
            '</tbody></table><button type="button" id="more" hidden>more</button>'
            '<noscript><p>The runs and their details are shown by the page\'s script: '
            'allow scripts for this file, or read the JSON report.</p></noscript></section>')


# The grid

def _grid_table(grid: Grid, index: dict[str, int]) -> str:
    head = "".join(f'<th class="scenario" title="{escape(s)}">{escape(s)}</th>'
                   for s in grid.scenarios)
    rows = []
    for config in grid.rows:
        cells = []
        for scenario in grid.scenarios:
            cell = grid.cell(config, scenario)
            if cell.status == "none":
                cells.append('<td class="none">-</td>')
                continue
            runs = " ".join(str(index[r.id]) for r in cell.records)
            title = f"{config} x {scenario}: {cell_text(cell)} ({cell.passed} passed)"
            cells.append(f'<td class="{cell.status}" data-runs="{runs}" data-cell='
                         f'"{_anchor(cell)}" data-title="{escape(_cell_title(cell))}"><a '
                         f'href="#{_anchor(cell)}" title="{escape(title)}">'
                         f'{escape(compact_cell_text(cell))}</a></td>')
        rows.append(f'<tr><th scope="row" title="{escape(config)}">{escape(config)}</th>'
                    f'{"".join(cells)}</tr>')
    return ('<table class="grid" id="grid-table"><colgroup><col class="config"></colgroup>'
            f'<thead><tr><th>configuration</th>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _cell_title(cell: Cell) -> str:
    return f"{cell.row} \u00d7 {cell.scenario}: {cell_text(cell)}"


_PANEL = ('<section class="detail" id="detail" hidden><a class="close" href="#grid" '
          'title="close">&#x2715;</a><h3 id="detail-title"></h3><div id="detail-runs">'
          '</div></section>')


def html_report(records: Sequence[RunRecord], title: str = "pyharness matrix",
                link: SourceLink = no_links, written_in: Path | None = None) -> str:
    """The page; ``written_in``: the directory it is written to, so that its
    relative source links still lead to the files when it is moved."""
    grid = make_grid(records)
    index = {r.id: i for i, r in enumerate(records)}
    documents = [r.to_json() for r in records]
    axis_values = axes(records, documents)
    extra = [name for name in axis_values if name not in IN_THE_ID and name != "verdict"]
    bad = any(not r.passed for r in records)
    stamp = _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    written = written_in.resolve().as_uri() + "/" if written_in is not None else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="generator" content="{MATRIX_HTML_GENERATOR}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}: {escape(verdict_counts(records))}</title>
<style>{CSS}</style></head>
<body data-chunk="{CHUNK}" data-written-in="{escape(written)}">
<header><h1>{escape(title)}</h1>
<p class="counts {'bad' if bad else 'good'}" id="counts">{escape(verdict_counts(records))}</p>
<p>Generated {escape(stamp)}. Failures first, grouped by cause; then the
configurations &times; scenarios grid, every run and the memory footprint. A run or a grid cell opens
its reasons, the command that reproduces it, expected and actual frames and the console.</p>
</header>
{_trees(records)}
{_filters(axis_values, len(records))}
{_failures(records, index)}
<section id="grid"><h2>Configurations &times; scenarios</h2>
{_grid_table(grid, index)}
<p class="legend"><span class="pass-key" style="background:#a6e3a1">ok: all passed</span>
<span style="background:#f38b8b">F: failed/runs (a check failed)</span>
<span style="background:#f9d27a">E: errors/runs (could not be judged)</span>
<span style="background:#eee">- not run</span></p></section>
{_runs_table(extra)}
{footprint_section(records)}
{_PANEL}
{run_index(records, documents, {n: _attribute(n)[5:] for n in axis_values}, extra)}
{run_details(records, link)}
<script>{SCRIPT}</script>
</body></html>
"""


def write_html(records: Sequence[RunRecord], path: Path, source_url: str | None = None) -> None:
    """The page at ``path``; frames link to ``source_url`` (``URL/FILE#LLINE``)
    or to this checkout's files, relative to ``path``."""
    trees = sorted({r.spec.kernel_src for r in records if r.spec.kernel_src})
    link = source_linker(path.parent, source_url, trees)
    write_atomically(path, html_report(records, link=link, written_in=path.parent))
