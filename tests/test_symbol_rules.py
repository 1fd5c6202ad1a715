"""The two symbol rules, against binutils.

The harness's rule (pyharness.elf.symbols, used by the oracle) and the
firmware's own kallsyms generator (pyharness.builder.kallsyms_gen, part of the
code under test) are kept apart on purpose (docs/architecture.md). Both
must give what the kernel's kallsyms rule gives from `nm -n`: each code
address named once (a function over a label, a global over a local, then
the smaller name), sized up to the next code symbol, the last to _etext.
The function extents the oracle scans for frame setups are nm -S's.
"""

from __future__ import annotations

import subprocess

import pytest

from pyharness.builder import cache as builder
from pyharness.builder import kallsyms_gen
from pyharness.builder.toolchain import cross_prefix
from pyharness.elf.image import load_image

from binutils import nm_kallsyms


def _nm_functions(elf: str) -> dict[int, tuple[str, int]]:
    """address -> (name, size) of the function binutils' rule names there."""
    out = subprocess.run([cross_prefix() + "nm", "-S", "--defined-only", elf],
                         capture_output=True, text=True, check=True).stdout
    best: dict[int, tuple[bool, str, int]] = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) != 4 or fields[2] not in "Tt":
            continue
        address, size, kind, name = int(fields[0], 16), int(fields[1], 16), fields[2], fields[3]
        if size == 0:
            continue
        key = (kind == "t", name, size)
        if address not in best or key < best[address]:
            best[address] = key
    return {a: (name, size) for a, (_, name, size) in best.items()}


@pytest.fixture(scope="module", params=["pkvm", "nvhe_64k"])
def elf(request) -> str:
    return str(builder.build(request.param).elf)


def _nm_kallsyms(elf: str) -> dict[int, tuple[str, int]]:
    """address -> (name, size) by the kallsyms rule, from nm -n -S."""
    return {address: (name, size) for name, (address, size) in nm_kallsyms(elf).items()}


def test_the_function_extents_are_what_nm_says(elf):
    ours = {f.address: (f.name, f.size) for f in load_image(elf).functions}
    assert ours == _nm_functions(elf)


def test_the_harness_kallsyms_rule_is_what_nm_gives(elf):
    ours = {s.address: (s.name, s.span) for s in load_image(elf).kallsyms}
    assert ours == _nm_kallsyms(elf)


def test_the_firmware_kallsyms_rule_is_what_nm_gives(elf):
    text = load_image(elf).address_of("_text")
    table = kallsyms_gen.kallsyms_table(elf)
    assert {text + off: (name, size) for off, size, name in table} == _nm_kallsyms(elf)
