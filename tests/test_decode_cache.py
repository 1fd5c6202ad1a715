"""The decoder's ELF index (elf/symbol_cache.py): read once per ELF content,
then used without opening the ELF; a damaged or foreign index is ignored
and written again; another ELF at the same path is read afresh. The
expectations come from binutils (nm, addr2line: test_decode's fixture),
never from the index itself."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from pyharness.builder.toolchain import cross_prefix
from pyharness.decode import decode_text
from pyharness.elf import reader as elf_reader
from pyharness.elf.reader import content_key
from pyharness.elf.symbolizer import ElfSymbolizer
from test_decode import FixtureElf, fixture_elf, mainline_log  # noqa: F401


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    directory = tmp_path / "decode-cache"
    monkeypatch.setenv("PYHARNESS_DECODE_CACHE", str(directory))
    return directory


def panic_log(elf: FixtureElf) -> str:
    return mainline_log([(a, elf.pb(a)) for a in elf.returns])


def expected(elf: FixtureElf) -> list[tuple[str, str]]:
    return list(zip([elf.pb(a) for a in elf.returns],
                    elf.addr2line([a - 1 for a in elf.returns])))


def decoded(elf: FixtureElf) -> list[tuple[str, str]]:
    (trace,) = decode_text(panic_log(elf), elf.path)
    assert trace.mismatches == ()
    return [(f.elf.printed, f.elf.source) for f in trace.frames]


def no_elf_reading(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the ELF was read although its index is kept")
    monkeypatch.setattr(elf_reader.ElfReader, "open", refuse)


def test_second_decode_reads_the_index_not_the_elf(fixture_elf, cache, monkeypatch):
    first = decoded(fixture_elf)
    assert first == expected(fixture_elf)
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == 2 and kept[0].endswith(".lines.json") \
        and kept[1].endswith(".symbols.json")
    no_elf_reading(monkeypatch)
    assert decoded(fixture_elf) == first


@pytest.mark.parametrize("damage", [
    lambda text: text[: len(text) // 2],                               # cut short
    lambda text: "not json at all",
    lambda text: text.replace('"format":"pyharness decode index 1"', '"format":"other"'),
    lambda text: text.replace('"key":"', '"key":"x', 1),               # another ELF's
    lambda text: json.dumps({**json.loads(text), "symbols": {"address": [1], "size": [],
                                                             "span": [], "names": []}}),
])
def test_a_damaged_index_is_ignored_and_written_again(fixture_elf, cache, damage):
    good = decoded(fixture_elf)
    for path in cache.iterdir():
        path.write_text(damage(path.read_text()))
    assert decoded(fixture_elf) == good
    symbols = next(cache.glob("*.symbols.json"))
    assert json.loads(symbols.read_text())["format"] == "pyharness decode index 1"


def test_another_elf_at_the_same_path_is_read_afresh(fixture_elf, cache, tmp_path):
    copy = tmp_path / "vmlinux"
    shutil.copy(fixture_elf.path, copy)
    decode_text(panic_log(fixture_elf), copy)
    leaf = fixture_elf.symbols["__kvm_nvhe_leaf"]
    renamed = copy.read_bytes().replace(b"__kvm_nvhe_leaf\0", b"__kvm_nvhe_LEAF\0")
    copy.write_bytes(renamed)                                     # same size, new content
    with ElfSymbolizer(copy) as symbolizer:
        assert symbolizer.symbol_containing(leaf[0]).name == "__kvm_nvhe_LEAF"
    assert len(list(cache.glob("*.symbols.json"))) == 2


def test_the_key_is_the_build_id_when_there_is_one(tmp_path):
    prefix = cross_prefix()
    gcc = shutil.which(prefix + "gcc")
    if gcc is None:
        pytest.skip(f"no aarch64 cross toolchain ({prefix}gcc)")
    source = tmp_path / "f.c"
    source.write_text("void _start(void) { for (;;) ; }\n")
    with_id, without = tmp_path / "with", tmp_path / "without"
    for out, flag in ((with_id, "-Wl,--build-id=sha1"), (without, "-Wl,--build-id=none")):
        subprocess.run([gcc, "-nostdlib", "-static", flag, "-o", str(out), str(source)],
                       check=True)
    notes = subprocess.run([prefix + "readelf", "-n", str(with_id)], capture_output=True,
                           text=True, check=True).stdout
    build_id = next(line.split()[-1] for line in notes.splitlines() if "Build ID" in line)
    assert content_key(with_id, hint="") == (
        f"{with_id.stat().st_size}-build-id-"
        f"{hashlib.sha256(bytes.fromhex(build_id)).hexdigest()}")
    assert content_key(without, hint="") == (
        f"{without.stat().st_size}-sha256-{hashlib.sha256(without.read_bytes()).hexdigest()}")


def test_an_unwritable_cache_only_costs_time(fixture_elf, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("PYHARNESS_DECODE_CACHE", str(blocker / "cache"))  # under a file
    assert decoded(fixture_elf) == expected(fixture_elf)
