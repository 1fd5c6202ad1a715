"""JUnit XML for CI: one testcase per run.

``classname`` is ``matrix.<configuration>`` so CI groups runs by
configuration, ``matrix.<unwinder>.<configuration>`` for a kernel tree's
unwinder (``matrix.linux-6_12.pkvm``: the generation's dot would be one
more level in CI's package tree); ``name`` is the run's id. A failed check is a
``<failure>``, a run that could not be judged an ``<error>``; either holds
the reasons, the reproduce command and the console.

Which tree a kernel tree's run ran is in properties: the testcase's
(``unwinder``, ``kernel_src``, ``generation``, ``tree.commit``,
``tree.dirty``, ``tree.diff_sha256``, ``tree.why_no_commit``; a field git
could not give is left out) and the suite's, once per tree
(``tree.<label>.kernel_src``, ``tree.<label>.commit``, ...).
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Sequence

from pyharness.files import write_atomically
from pyharness.judge.verdict import Verdict
from pyharness.run.record import RunRecord
from pyharness.reports.text import printable as _xml_text
from pyharness.reports.trees import TreeInReport, tested_trees, tree_of


def failure_text(record: RunRecord) -> str:
    """Reasons, the reproduce command, then the console."""
    parts = list(record.reasons) or ["no reason given"]
    parts += ["", f"reproduce: {record.command}", "", "console:"]
    parts += record.console or ["(empty)"]
    return "\n".join(parts)


def classname(record: RunRecord) -> str:
    spec = record.spec
    if spec.kernel_src is None:
        return f"matrix.{spec.config_name}"
    return f"matrix.{spec.unwinder.replace('.', '_')}.{spec.config_name}"


def tree_properties(tree: TreeInReport, where: str = "",
                    state: str = "tree.") -> list[tuple[str, str]]:
    """A tree's (name, value) pairs: where it is (names prefixed ``where``),
    and what git said of it (prefixed ``state``); a field git could not
    give is left out."""
    pairs = [(f"{where}kernel_src", tree.kernel_src),
             (f"{where}generation", tree.generation or "")]
    recorded = tree.provenance.to_json() if tree.provenance else {}
    for name, value in recorded.items():
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            pairs.append((f"{state}{name}", text))
    return pairs


def _properties(parent: ET.Element, pairs: list[tuple[str, str]]) -> None:
    if pairs:
        element = ET.SubElement(parent, "properties")
        for name, value in pairs:
            ET.SubElement(element, "property", {"name": _xml_text(name),
                                                "value": _xml_text(value)})


def junit_tree(records: Sequence[RunRecord], suite_name: str = "pyharness-matrix") \
        -> ET.ElementTree:
    failures = sum(1 for r in records if r.verdict is Verdict.FAIL)
    errors = sum(1 for r in records if not r.passed and r.verdict is not Verdict.FAIL)
    seconds = sum(r.elapsed_ms for r in records) / 1000
    counts = {"tests": str(len(records)), "failures": str(failures),
              "errors": str(errors), "skipped": "0", "time": f"{seconds:.3f}"}
    root = ET.Element("testsuites", {"name": suite_name, **counts})
    suite = ET.SubElement(root, "testsuite", {"name": suite_name, **counts})
    _properties(suite, [pair for tree in tested_trees(records) for pair in
                        tree_properties(tree, f"tree.{tree.label}.", f"tree.{tree.label}.")])
    for record in records:
        case = ET.SubElement(suite, "testcase", {
            "classname": _xml_text(classname(record)),
            "name": _xml_text(record.id), "time": f"{record.elapsed_ms / 1000:.3f}"})
        tree = tree_of(record)
        if tree is not None:
            _properties(case, [("unwinder", tree.label), *tree_properties(tree)])
        if record.passed:
            continue
        tag = "failure" if record.verdict is Verdict.FAIL else "error"
        message = record.reasons[0] if record.reasons else record.verdict
        element = ET.SubElement(case, tag, {"message": _xml_text(message),
                                            "type": str(record.verdict)})
        element.text = _xml_text(failure_text(record))
    ET.indent(root)
    return ET.ElementTree(root)


def write_junit(records: Sequence[RunRecord], path: Path) -> None:
    buffer = io.BytesIO()
    junit_tree(records).write(buffer, encoding="utf-8", xml_declaration=True)
    write_atomically(path, buffer.getvalue())
