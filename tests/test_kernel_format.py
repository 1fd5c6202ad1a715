"""The kernel-format check: every recognised line of a hyp panic must read
exactly as the kernel's format strings print it (widths, spacing, %pB)."""

from __future__ import annotations

import pytest

from pyharness.judge.kernel_format import format_problems, render_symbol

CONSOLE = """\
[    0.000001] kvm [1]: nVHE hyp panic at: [<ffff80000800228c>] __kvm_nvhe_nested_panic_c+0xc/0x20!
[    0.000002] kvm [1]: Protected nVHE HYP call trace:
[    0.000003] kvm [1]:  [<ffff80000800270c>] __kvm_nvhe_hyp_panic+0x1c/0x40
[    0.000004] kvm [1]:  [<ffff7ff7c7e00000>] 0xffff7ff7c7e00000
[    0.000005] kvm [1]: ---- End of Protected nVHE HYP call trace ----
[    0.000006] kvm [1]: Hyp Offset: 0x00007ff7c7e00000
[    0.000007] Kernel panic - not syncing: HYP panic:
[    0.000008] PS:000003c9 PC:000000084020228c ESR:0000000096000007
[    0.000009] FAR:0000000c00000000 HPFAR:0000000000000000 PAR:0000000000000000
[    0.000010] VCPU:0000000000000000
[    0.000011] CPU: 1 PID: 1 Comm: swapper/1
[    0.000012] Call trace:
[    0.000013]  dump_stack+0x3c/0xd0
[    0.000014]  host_entry+0x4c/0x1000
[    0.000015] ---[ end Kernel panic - not syncing: HYP panic: ]---
""".splitlines()


def test_the_kernels_own_format_passes():
    assert format_problems(CONSOLE) == []


@pytest.mark.parametrize("line, before, after", [
    (1, "[<ffff80000800228c>]", "[<ffff80000800228c>] "),          # two spaces
    (3, " [<ffff80000800270c>]", "[<ffff80000800270c>]"),           # no leading space
    (3, "+0x1c/0x40", "+0x01c/0x40"),                               # padded offset
    (4, "] 0xffff7ff7c7e00000", "] 0x0ffff7ff7c7e00000"),           # padded bare pointer
    (6, "0x00007ff7c7e00000", "0x7ff7c7e00000"),                    # %lx for %016lx
    (8, "PS:000003c9", "PS:3c9"),                                   # %lx for %08lx
    (8, "ESR:0000000096000007", "ESR:96000007"),
    (9, "HPFAR:0000000000000000", "HPFAR:0"),
    (10, "VCPU:0000000000000000", "VCPU:0"),
    (11, "PID: 1 Comm", "PID:  1 Comm"),
    (13, " dump_stack", "dump_stack"),                              # host frame's space
    (15, "HYP panic: ]---", "HYP panic:\\nPS ]---"),                # not the first line
])
def test_each_misprinted_line_is_named(line, before, after):
    console = list(CONSOLE)
    assert before in console[line - 1]
    console[line - 1] = console[line - 1].replace(before, after)
    problems = format_problems(console)
    assert len(problems) == 1 and f"console line {line} " in problems[0], problems


def test_a_short_address_from_wrapped_arithmetic_is_still_sixteen_digits():
    console = list(CONSOLE)
    console[3] = "[    0.000004] kvm [1]:  [<7ff7c7dffffc>] 0x7ff7c7dffffc"
    assert "'kvm [1]:  [<00007ff7c7dffffc>] 0x7ff7c7dffffc'" in format_problems(console)[0]


def test_symbols_render_as_percent_pb():
    assert render_symbol("f+0x0c/0x20") == "f+0xc/0x20"
    assert render_symbol("0x00ff") == "0xff"
    assert render_symbol("not a symbol") == "not a symbol"
