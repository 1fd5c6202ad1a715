"""A run's diagnosis on the HTML page: the rule that looks broken, the
first frame that differs (expected and printed, each with its
``file:line``), and the frame records the oracle read there with the
stack each lies on. Every value is escaped (:func:`html.escape`)."""

from __future__ import annotations

from html import escape
from typing import Callable

from pyharness.judge.verdict import ChainEntry, Diagnosis, FrameLine
from pyharness.reports.text import printable

# "csrc/hyp/switch.c:14" -> the href of that line, or None (no link).
SourceLink = Callable[[str], "str | None"]


def _text(value: str) -> str:
    return escape(printable(value))


def _source(source: str, link: SourceLink) -> str:
    if not source:
        return ""
    href = link(source)
    if href is None:
        return f' <span class="src">{_text(source)}</span>'
    return f' <a class="src" href="{_text(href)}">{_text(source)}</a>'


def _frame(frame: FrameLine | None, none: str, link: SourceLink) -> str:
    if frame is None:
        return f"<i>{_text(none)}</i>"
    return f"<code>{_text(frame.address or '?')} {_text(frame.symbol)}</code>" \
           f"{_source(frame.source, link)}"


def _record_row(entry: ChainEntry, link: SourceLink) -> str:
    cells = (str(entry.frame), entry.fp, entry.lr, entry.stack, f"[{entry.lo}, {entry.hi})")
    tds = "".join(f"<td><code>{_text(cell)}</code></td>" for cell in cells)
    return f"<tr>{tds}<td>{_source(entry.source, link)}</td></tr>"


def diagnosis_html(diagnosis: Diagnosis | None, link: SourceLink) -> str:
    """The diagnosis block of one run ('' when it has none)."""
    if diagnosis is None:
        return ""
    rows = "".join(_record_row(entry, link) for entry in diagnosis.records)
    records = ('<table class="chain"><thead><tr><th>frame</th><th>record fp</th><th>lr</th>'
               '<th>stack</th><th>bounds</th><th>call</th></tr></thead>'
               f"<tbody>{rows}</tbody></table>") if rows else ""
    end = (f"<p>the oracle's walk stopped: {_text(diagnosis.walk_end)}</p>"
           if diagnosis.walk_end else "")
    site = (f"<p>the rule's code: <code>{_text(diagnosis.site)}</code></p>"
            if diagnosis.site else "")
    return (f'<div class="diagnosis"><p><b>diagnosis</b>: rule '
            f"<b>{_text(diagnosis.rule)}</b> looks broken at frame {diagnosis.frame}: "
            f"{_text(diagnosis.why)}</p>"
            f"<p>expected {_frame(diagnosis.expected, '(the trace had ended)', link)}<br>"
            f"printed {_frame(diagnosis.printed, '(nothing: the printed trace had ended)', link)}"
            f"</p>{records}{end}{site}</div>")
