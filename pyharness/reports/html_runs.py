"""One run on the HTML page: verdict, reasons, the command that reproduces
it, expected and actual frames aligned (each with its ``file:line``, linked
to the source where it can be), and the console."""

from __future__ import annotations

import functools
import os
import posixpath
import re
from html import escape as _escape
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import quote

from pyharness.errors import HarnessError
from pyharness.judge.verdict import FrameLine
from pyharness.paths import source_root
from pyharness.judge.align import align
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


_WEB_ADDRESS = re.compile(r"(?:https?|file)://[^\s\x00-\x1f\x7f]+")


def check_source_url(url: str | None) -> None:
    """``--source-url``: an http(s) (or file) address, or bad input; the page
    puts it in links, so nothing else (``javascript:``) gets there."""
    if url is not None and not _WEB_ADDRESS.fullmatch(url):
        raise HarnessError(f"--source-url {url}: not an https://, http:// or file:// "
                           "address; give where the sources are on the web, e.g. "
                           "https://github.com/OWNER/REPO/blob/COMMIT")


def _within(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _resolved(path: Path) -> Path | None:
    try:
        return path.resolve(strict=True)
    except (OSError, RuntimeError):        # missing, a symlink loop, unreadable
        return None


def source_linker(html_dir: Path | None, source_url: str | None = None,
                  trees: Sequence[str] = ()) -> SourceLink:
    """Links for ``file:line``: under ``source_url`` (``URL/FILE#LLINE``) for a
    path inside the project (relative, no ``..``), else to the file itself,
    relative to the page's directory, when it is a file of this checkout or
    of one of the kernel ``trees`` (directories) the runs used. Anything
    else (``/etc/shadow:1``, ``../../x:1``, a symlink out of the tree or a
    loop) gets no link."""
    if source_url:
        check_source_url(source_url)
        base = source_url.rstrip("/")

        def remote(source: str) -> str | None:
            match = _SOURCE_RE.fullmatch(source)
            if match is None:
                return None
            file = posixpath.normpath(match["file"])
            if posixpath.isabs(file) or file == ".." or file.startswith("../"):
                return None
            return f"{base}/{quote(file)}#L{match['line']}"
        return remote
    try:
        roots = [source_root().resolve()]
    except HarnessError:
        return no_links
    roots += [p for p in (_resolved(Path(t)) for t in trees) if p is not None and p.is_dir()]
    start = (html_dir or Path.cwd()).resolve()

    @functools.lru_cache(maxsize=None)
    def local(source: str) -> str | None:
        match = _SOURCE_RE.fullmatch(source)
        if match is None:
            return None
        file = Path(match["file"])
        candidates = [file] if file.is_absolute() else [root / file for root in roots]
        for candidate in candidates:
            path = _resolved(candidate)
            if path is not None and path.is_file() and _within(path, roots):
                return quote(os.path.relpath(path, start).replace(os.sep, "/"))
        return None
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


# A frame as the page's data holds it: its text, its file:line and the
# link of that (None: not a file of the project or the tree).
FrameCell = list


def _frame_cell(frame: FrameLine | None, link: SourceLink) -> FrameCell | None:
    if frame is None:
        return None
    return _cell(frame.address, frame.symbol, frame.source, link)


@functools.lru_cache(maxsize=1 << 16)
def _cell(address: str, symbol: str, source: str, link: SourceLink) -> FrameCell:
    """One frame's cell (the same frame recurs across a matrix's runs).
    The cell is shared: the caller must not change it."""
    text = printable(f"{address} {symbol}".strip())
    href = link(source) if source else None
    return [text, printable(source), href]


def diff_rows(record: RunRecord, link: SourceLink) -> list[list[object]]:
    """Expected and actual frames aligned, as rows of the page's data:
    ``[kind, i, expected cell, j, actual cell]``, a repeat of three or more
    equal rows once and then ``["repeat", kind, count]``."""
    expected, actual = record.expected, record.actual
    key = [(f.address, f.symbol) for f in expected], [(f.address, f.symbol) for f in actual]
    rows = []
    for row in align(*key):
        want = expected[row.expected] if row.expected is not None else None
        got = actual[row.actual] if row.actual is not None else None
        rows.append([row.kind, row.expected, _frame_cell(want, link), row.actual,
                     _frame_cell(got, link)])
    out: list[list[object]] = []
    for start, length in runs_of([repr((r[0], r[2], r[4])) for r in rows]):
        out.append(rows[start])
        if length >= MIN_REPEAT:
            out.append(["repeat", rows[start][0], length - 1])
        else:
            out += rows[start + 1:start + length]
    return out


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


def run_detail(record: RunRecord, link: SourceLink) -> dict[str, object]:
    """What the page shows of one run when it is opened, as data: every
    string is text (the page's script puts it in the page with
    ``textContent``, never as markup). ``notes`` are paragraphs of text
    (the run's diagnosis, one line each)."""
    tree = (f"tree {record.spec.kernel_src}: {record.tree.describe(short=False)}"
            if record.spec.kernel_src and record.tree else None)
    facts = (f"{record.instructions} instructions, {record.elapsed_ms:.1f} ms, KASLR seed "
             f"{record.spec.kaslr_seed} (offset {record.kaslr_offset:#x})")
    return {"id": printable(record.id), "verdict": str(record.verdict),
            "facts": printable(facts), "tree": printable(tree) if tree else None,
            "reasons": [printable(r) for r in record.reasons],
            "command": printable(record.command),
            "panic": printable(record.expected_panic) if record.expected_panic else None,
            "frames": diff_rows(record, link),
            "notes": [printable(line) for line in record.diagnosis.lines()]
            if record.diagnosis is not None else [],
            "console": printable(console_text(record.console))}
