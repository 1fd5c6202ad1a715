"""The HTML page's data: what grows with the number of runs.

- the **run index**: one short row per run (its id, verdict, axis values,
  configuration file and reasons) as JSON in a ``<script
  type="application/json" id="run-index">``, in matrix order; the runs
  table, the filters and the search work on it. Rows list the runs that
  did not pass first (``order``);
- the **details** of each run (:func:`~pyharness.reports.html_runs.run_detail`):
  ``CHUNK`` runs at a time as JSON, gzip-compressed and base64-encoded, in
  ``<script type="application/x-pyharness-details">`` elements the page's
  script decompresses (``DecompressionStream``) only when one of their runs
  is opened.

Neither is ever parsed as markup: the JSON's ``<``, ``>`` and ``&`` are
written as ``\\u003c`` ..., so no record can close the script element, and
base64 has no character that means anything to HTML.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Sequence

from pyharness.judge.verdict import Verdict
from pyharness.reports.html_runs import SourceLink, run_detail
from pyharness.reports.text import printable
from pyharness.run.record import RunRecord

# Runs per compressed chunk: opening one run decompresses this many.
CHUNK = 200
_ORDER = {Verdict.FAIL: 0, Verdict.ERROR: 1, Verdict.PASS: 2}


def script_json(data: object) -> str:
    """JSON that can sit inside a ``<script>`` element whatever its strings hold."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def run_index(records: Sequence[RunRecord], documents: Sequence[dict[str, object]],
              axes: dict[str, str], extra: list[str]) -> str:
    """The index: ``documents`` are the records' JSON, ``axes`` the filters'
    fields (the verdict first), each with the name its filter has in the
    page; ``extra`` those of them the runs table shows as columns."""
    rows = []
    for record, data in zip(records, documents):
        rows.append([printable(record.id), [printable(str(data.get(a, ""))) for a in axes],
                     printable(record.spec.config), [printable(r) for r in record.reasons]])
    order = sorted(range(len(records)), key=lambda i: (_ORDER.get(records[i].verdict, 1), i))
    names = list(axes)
    document = {"axes": list(axes.values()), "extra": [names.index(name) for name in extra],
                "runs": rows, "order": order}
    return f'<script type="application/json" id="run-index">{script_json(document)}</script>'


def run_details(records: Sequence[RunRecord], link: SourceLink) -> str:
    """Every run's details, ``CHUNK`` runs per compressed script element."""
    chunks = []
    for first in range(0, len(records), CHUNK):
        details = [run_detail(r, link) for r in records[first:first + CHUNK]]
        packed = gzip.compress(json.dumps(details, separators=(",", ":")).encode("ascii"),
                               compresslevel=6, mtime=0)
        chunks.append(f'<script type="application/x-pyharness-details" data-first="{first}">'
                      f'{base64.b64encode(packed).decode("ascii")}</script>')
    return "\n".join(chunks)
