"""The mutation run as one self-contained HTML page (inline CSS, no script).

Survivors first, each with its diff and where it was run; then the killed
mutants with the run that killed them and its first reason (the console
in a collapsed block), then the equivalent ones with their argument, the
compile errors and the mutants no selected configuration builds.
"""

from __future__ import annotations

import datetime as _dt
from html import escape
from pathlib import Path
from typing import Sequence

from pyharness.files import write_atomically
from pyharness.mutate.execute import COMPILE_ERROR, ERROR, KILLED, SURVIVED
from pyharness.mutate.report import EQUIVALENT, NOT_BUILT, VERDICT_ORDER, Counts, Verdict
from pyharness.reports.output_guard import ReportKind

_GENERATOR = "pyharness mutation report"
# What `mutate --html` may replace (reports/output_guard.py).
MUTATE_HTML = ReportKind("HTML mutation report", (
    rf'\A<!DOCTYPE html>\s*<html[^>]*><head><meta charset="utf-8">'
    rf'<meta name="generator" content="{_GENERATOR}">',
    r'\A<!DOCTYPE html>\s*<html[^>]*><head><meta charset="utf-8"><title>pyharness mutate'))

_TITLES = {SURVIVED: "Survived", KILLED: "Killed", EQUIVALENT: "Equivalent",
           COMPILE_ERROR: "Compile errors", NOT_BUILT: "Not built",
           ERROR: "Errors (no verdict)"}

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#1b1f24;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em;margin:1.5em 0 .4em}
.summary{font-size:1.1em;font-weight:600}.bad{color:#b42318}.good{color:#116329}
article{border:1px solid #d0d7de;border-radius:4px;background:#fff;margin:.5em 0;
 padding:.5em .8em}
article.survived{border-left:6px solid #cf222e}article.killed{border-left:6px solid #1a7f37}
article.equivalent{border-left:6px solid #8c959f}article.compile-error,
article.not-built{border-left:6px solid #bf8700}
.head{font-family:ui-monospace,monospace}.id{color:#57606a;margin-right:.6em}
pre{font-family:ui-monospace,monospace;font-size:12px;margin:.3em 0;white-space:pre-wrap}
pre.diff .del{background:#ffebe9;display:block}pre.diff .add{background:#e6ffec;display:block}
.verdict{margin:.2em 0}pre.console{background:#0d1117;color:#e6edf3;padding:.5em;
 max-height:20em;overflow:auto}summary{cursor:pointer;color:#57606a}
table.counts td,table.counts th{border:1px solid #d0d7de;padding:2px 10px;text-align:right}
table.counts{border-collapse:collapse;margin:.5em 0}
"""


def _article(v: Verdict) -> str:
    m, o = v.mutant, v.outcome
    minus, plus = m.diff()
    parts = [f'<article class="{v.verdict}" id="{escape(m.id)}">',
             f'<div class="head"><span class="id">{escape(m.id)}</span>'
             f'<b>{escape(m.location())}</b> {escape(m.operator)}: {escape(m.what)}'
             f'{" in " + escape(m.function) + "()" if m.function else ""}</div>',
             f'<pre class="diff"><span class="del">{escape(minus)}</span>'
             f'<span class="add">{escape(plus)}</span></pre>',
             f'<div class="verdict">{escape(v.line())}</div>',
             f'<div class="key">key <code>{escape(m.key)}</code></div>']
    if o.killer is not None:
        parts.append(f"<details><summary>reproduce, reasons and console</summary>"
                     f"<pre>{escape('NVHE_LAB_ROOT=<tree with this edit> ' + o.killer.command)}"
                     f"</pre><pre>{escape(chr(10).join(o.killer.reasons))}</pre>"
                     f'<pre class="console">{escape(chr(10).join(o.killer.console))}</pre>'
                     "</details>")
    if o.detail:
        parts.append(f'<details><summary>compiler output</summary><pre class="console">'
                     f"{escape(o.detail)}</pre></details>")
    parts.append("</article>")
    return "\n".join(parts)


def render(verdicts: Sequence[Verdict], counts: Counts, title: str,
           notes: Sequence[str] = ()) -> str:
    when = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    css_class = "good" if counts.survived == 0 else "bad"
    rows = "".join(f"<tr><th>{escape(_TITLES[v])}</th><td>"
                   f"{sum(1 for x in verdicts if x.verdict == v)}</td></tr>"
                   for v in VERDICT_ORDER)
    body = [f"<h1>{escape(title)}</h1>", f"<p>{escape(when)}</p>",
            f'<p class="summary {css_class}">{escape(counts.summary_line())}</p>',
            f'<table class="counts">{rows}</table>']
    body += [f"<p>{escape(note)}</p>" for note in notes]
    for verdict in VERDICT_ORDER:
        chosen = [v for v in verdicts if v.verdict == verdict]
        if chosen:
            body.append(f"<h2>{escape(_TITLES[verdict])} ({len(chosen)})</h2>")
            body.extend(_article(v) for v in chosen)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta name="generator" content="{_GENERATOR}">'
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def write_html(path: Path, verdicts: Sequence[Verdict], counts: Counts, title: str,
               notes: Sequence[str] = ()) -> None:
    write_atomically(path, render(verdicts, counts, title, notes))
