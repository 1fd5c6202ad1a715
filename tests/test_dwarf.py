"""pyharness.elf.dwarf: file:line of a real image, parsed or from a build
directory's line index."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pyharness.builder import cache as builder
from pyharness.elf import dwarf
from pyharness.elf.image import load_image


@pytest.fixture(scope="module")
def pkvm_elf() -> Path:
    return builder.build("pkvm").elf


def every_address(table: dwarf.LineTable) -> range:
    rows = table.rows()
    return range(min(r[0] for r in rows) - 8, max(r[1] for r in rows) + 8, 2)


def test_the_index_answers_as_the_parsed_table_does(pkvm_elf):
    with pkvm_elf.open("rb") as f:
        table = dwarf.LineTable(ELFFile(f))
        index = dwarf.LineIndex.from_json(dwarf.LineIndex.of(table).to_json([1, 2]), [1, 2])
        assert index is not None
        answers = [(table.lookup(a), index.lookup(a)) for a in every_address(table)]
    assert all(parsed == indexed for parsed, indexed in answers)
    assert sum(parsed is not None for parsed, _ in answers) > 1000


def builder_symbol(elf: Path, name: str) -> int:
    """An instruction inside the hyp function ``name``."""
    return load_image(elf).address_of("__kvm_nvhe_" + name) + 8


def copy_build(elf: Path, to: Path, *, marker: bool) -> Path:
    to.mkdir()
    shutil.copy2(elf, to / "vmlinux")
    if marker:
        shutil.copy2(elf.parent / dwarf.BUILD_MARKER, to / dwarf.BUILD_MARKER)
    return to / "vmlinux"


def test_a_build_directory_gets_an_index_that_follows_its_elf(pkvm_elf, tmp_path):
    elf = copy_build(pkvm_elf, tmp_path / "build", marker=True)
    address = builder_symbol(elf, "hyp_panic")
    expected = dwarf.source_line(pkvm_elf, address)
    assert expected is not None and expected[0].endswith(".c")
    assert dwarf.source_line(elf, address) == expected
    index = json.loads((elf.parent / dwarf.LINE_INDEX_NAME).read_text())
    st = elf.stat()
    assert index["elf"] == [st.st_mtime_ns, st.st_size]
    # An index of another version of the ELF is not used: poisoned, it
    # would name another line.
    index["rows"] = [[a, b, f, n + 1000] for a, b, f, n in index["rows"]]
    (elf.parent / dwarf.LINE_INDEX_NAME).write_text(json.dumps(index))
    assert dwarf.source_line(elf, address) == expected      # cached for this version
    os.utime(elf, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
    assert dwarf.source_line(elf, address) == expected      # stale: parsed again
    assert json.loads((elf.parent / dwarf.LINE_INDEX_NAME).read_text())["elf"] == \
        [st.st_mtime_ns + 1, st.st_size]
    # An up-to-date one is what it reads.
    index["elf"] = [st.st_mtime_ns + 2, st.st_size]
    (elf.parent / dwarf.LINE_INDEX_NAME).write_text(json.dumps(index))
    os.utime(elf, ns=(st.st_atime_ns, st.st_mtime_ns + 2))
    assert dwarf.source_line(elf, address) == (expected[0], expected[1] + 1000)


def test_nothing_is_written_next_to_an_elf_outside_a_build_directory(pkvm_elf, tmp_path):
    elf = copy_build(pkvm_elf, tmp_path / "elsewhere", marker=False)
    address = builder_symbol(elf, "hyp_panic")
    assert dwarf.source_line(elf, address) == dwarf.source_line(pkvm_elf, address)
    assert sorted(p.name for p in elf.parent.iterdir()) == ["vmlinux"]
