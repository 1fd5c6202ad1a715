"""The two symbol-choice rules, against binutils.

The harness's rule (pyharness.elf.symbols, used by the oracle) and the
firmware's own kallsyms generator (pyharness.build.kallsyms_gen, part of the
code under test) are kept apart on purpose (docs/architecture.md). Both
must name every function address as `nm` sees it: a sized function symbol,
a global over a local, then the smaller name.
"""

from __future__ import annotations

import subprocess

import pytest

from pyharness.build import cache as builder
from pyharness.build import kallsyms_gen
from pyharness.build.toolchain import cross_prefix
from pyharness.elf.image import load_image


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


def test_the_harness_rule_names_what_nm_names(elf):
    image = load_image(elf)
    ours = {f.address: (f.name, f.size) for f in image.functions}
    assert ours == _nm_functions(elf)


def test_the_firmware_kallsyms_rule_names_what_nm_names(elf):
    text = load_image(elf).address_of("_text")
    table = kallsyms_gen.one_per_address(kallsyms_gen.function_symbols(elf))
    assert {text + off: (name, size) for off, size, name in table} == _nm_functions(elf)
