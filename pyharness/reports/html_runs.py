"""One run on the HTML page: verdict, reasons, the command that reproduces
it, expected and actual frames aligned (each with its ``file:line``, linked
to the source where it can be), and the console."""

from __future__ import annotations

import functools
import os
import re
from html import escape as _escape
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import quote

from pyharness.errors import HarnessError
from pyharness.judge.verdict import FrameLine
from pyharness.paths import source_root
from pyharness.judge.align import align
from pyharness.reports.html_diagnosis import diagnosis_html
from pyharness.reports.text import printable
from pyharness.run.record import RunRecord

# "csrc/hyp/switch.c:14" -> the href of that line, or None (no link).
SourceLink = Callable[[str], "str | None"]

# Long traces repeat one frame hundreds of times (recursive_death): the page
# shows a repeat once with its count, which keeps it small enough to open.
MIN_REPEAT = 3
_TIMESTAMP = re.compile(r"^\[\s*\d+\.\d+\]\s?")
_SOURCE_RE = re.compile(r"(?P<file>.+):(?P<line>\d+)")


def escape(text: str) -> str:
    """HTML-escaped, with control characters shown as control pictures."""
    return _escape(printable(text))


def no_links(_source: str) -> None:
    return None


def source_linker(html_dir: Path | None, source_url: str | None = None) -> SourceLink:
    """Links for ``file:line``: under ``source_url`` (``URL/FILE#LLINE``), else
    to the file in this checkout, relative to the page's directory, when it
    is there."""
    if source_url:
        base = source_url.rstrip("/")

        def remote(source: str) -> str | None:
            match = _SOURCE_RE.fullmatch(source)
            if match is None or os.path.isabs(match["file"]):
                return None
            return f"{base}/{quote(match['file'])}#L{match['line']}"
        return remote
    try:
        root = source_root()
    except HarnessError:
        return no_links
    start = (html_dir or Path.cwd()).resolve()

    @functools.lru_cache(maxsize=None)
    def local(source: str) -> str | None:
        match = _SOURCE_RE.fullmatch(source)
        if match is None:
            return None
        path = (root / match["file"]).resolve()
        if not path.is_file():
            return None
        return quote(os.path.relpath(path, start).replace(os.sep, "/"))
    return local


def runs_of(items: Sequence[str]) -> list[tuple[int, int]]:
    """(start, length) of each run of equal consecutive items."""
    runs: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        if runs and items[runs[-1][0]] == item:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((i, 1))
    return runs


def _frame_cell(frame: FrameLine | None, link: SourceLink) -> str:
    if frame is None:
        return ""
    text = escape(f"{frame.address} {frame.symbol}".strip())
    if not frame.source:
        return text
    href = link(frame.source)
    where = escape(frame.source)
    if href is None:
        return f'{text} <span class="src">{where}</span>'
    return f'{text} <a class="src" href="{escape(href)}">{where}</a>'


def diff_table(record: RunRecord, link: SourceLink) -> str:
    """Expected and actual frames, aligned, repeats shown once with a count."""
    expected, actual = record.expected, record.actual
    if not expected and not actual:
        return "<p>No frames expected or printed.</p>"
    key = [(f.address, f.symbol) for f in expected], [(f.address, f.symbol) for f in actual]
    rows = []
    for row in align(*key):
        want = expected[row.expected] if row.expected is not None else None
        got = actual[row.actual] if row.actual is not None else None
        rows.append((row.kind, row.expected, row.actual, _frame_cell(want, link),
                     _frame_cell(got, link)))

    def number(index: int | None) -> str:
        return "" if index is None else str(index)

    def tr(kind: str, i: int | None, j: int | None, want: str, got: str) -> str:
        return (f'<tr class="{kind}"><td>{number(i)}</td><td>{want}</td>'
                f'<td>{number(j)}</td><td>{got}</td></tr>')

    html_rows = []
    for start, length in runs_of([f"{r[0]}\0{r[3]}\0{r[4]}" for r in rows]):
        html_rows.append(tr(*rows[start]))
        if length >= MIN_REPEAT:
            html_rows.append(f'<tr class="{rows[start][0]} repeat"><td colspan="4">the same, '
                             f'{length - 1} more times</td></tr>')
        else:
            html_rows += [tr(*rows[start + k]) for k in range(1, length)]
    return ('<table class="diff"><thead><tr><th>#</th><th>expected (oracle)</th><th>#</th>'
            f'<th>actual (console)</th></tr></thead><tbody>{"".join(html_rows)}'
            '</tbody></table>')


def console_text(lines: Sequence[str]) -> str:
    """The console, lines that differ only in their timestamp shown once with a count."""
    if not lines:
        return "(empty)"
    out = []
    for start, length in runs_of([_TIMESTAMP.sub("", line) for line in lines]):
        if length >= MIN_REPEAT:
            out += [lines[start], f"    ... the same line {length - 1} more times "
                                  "(timestamps aside)"]
        else:
            out += lines[start:start + length]
    return "\n".join(out)


def run_article(record: RunRecord, open_: bool, link: SourceLink) -> str:
    reasons = "".join(f"<li>{escape(r)}</li>" for r in record.reasons)
    panic = (f"<p>expected panic line: <code>{escape(record.expected_panic)}</code></p>"
             if record.expected_panic else "")
    verdict = escape(record.verdict)
    tree = (f"<p>tree <code>{escape(record.spec.kernel_src)}</code>: "
            f"{escape(record.tree.describe(short=False))}</p>"
            if record.spec.kernel_src and record.tree else "")
    return (f'<article class="run {verdict}" id="run-{escape(record.id)}">'
            f'<details{" open" if open_ else ""}><summary><b>{escape(record.id)}</b>'
            f'<span class="badge {verdict}">{verdict.upper()}</span></summary>'
            f'<p>{record.instructions} instructions, {record.elapsed_ms:.1f} ms, '
            f'KASLR seed {record.spec.kaslr_seed} (offset {record.kaslr_offset:#x})</p>{tree}'
            f'{f"<ul class=reasons>{reasons}</ul>" if reasons else ""}'
            f'<p>reproduce: <code>{escape(record.command)}</code></p>{panic}'
            f'{diagnosis_html(record.diagnosis, link)}'
            f'<div class="frames">{diff_table(record, link)}</div>'
            f'<pre class="console">{escape(console_text(record.console))}</pre>'
            '</details></article>')
