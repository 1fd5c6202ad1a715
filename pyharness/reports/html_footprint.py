"""The HTML page's footprint section: the stacktrace memory per
configuration, read from each built ELF (:mod:`pyharness.reports.footprint`),
as a chart and a table against the series' claims."""

from __future__ import annotations

from typing import Sequence

from pyharness.reports.footprint import CLAIMED_OVERFLOW_STACK, Footprint, footprints
from pyharness.reports.html_runs import escape
from pyharness.run.record import RunRecord

_BAR_COLOURS = {"overflow": "#3b82f6", "buffer": "#8b5cf6"}


def _kib(size: int) -> str:
    return f"{size / 1024:.1f} KiB" if size % 1024 else f"{size // 1024} KiB"


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
            f"<td>{overflow} ({verdict(fp.overflow_as_claimed)}: {fp.claimed_overflow} B)"
            f"</td><td>{buffer} ({verdict(fp.buffer_as_claimed)}: {claimed})</td>"
            f"<td>{total}</td></tr>")
    return ('<table class="numbers" id="footprint-table"><thead><tr><th>configuration</th>'
            '<th>page</th><th>CPUs</th><th>PROTECTED_NVHE_STACKTRACE</th>'
            '<th>overflow stack per CPU (claim)</th><th>trace buffer per CPU (claim)</th>'
            f'<th>trace buffer, all CPUs</th></tr></thead><tbody>{"".join(rows)}'
            '</tbody></table>')


def footprint_section(records: Sequence[RunRecord]) -> str:
    prints = footprints(records)
    return f"""<section id="footprint"><h2>Stacktrace memory footprint per configuration</h2>
<p>Read from each configuration's built ELF: the per-CPU overflow stack
(<code>__kvm_nvhe_overflow_stack</code>; claim: 4 KiB whatever the page size) and the
per-CPU trace buffer shared with the host (<code>__kvm_nvhe_pkvm_stacktrace</code> divided
by NR_CPUS; claim: ((PAGE_SIZE + 4096) / 16 + 1) &times; 8 bytes, and none without
CONFIG_PROTECTED_NVHE_STACKTRACE). A kernel tree's unwinder claims its own
OVERFLOW_STACK_SIZE and NVHE_STACKTRACE_SIZE.</p>
{_footprint_chart(prints)}
{_footprint_table(prints)}
</section>"""
