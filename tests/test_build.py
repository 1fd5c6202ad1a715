"""The cross build with the real aarch64 toolchain and CMake."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection
from elftools.elf.sections import SymbolTableSection

from pyharness.builder import cache as builder
from pyharness.kconfig import resolve as kconfig
from pyharness.paths import source_root

SHIPPED = [kconfig.config_name(p) for p in kconfig.named_configs()]
HYP_PREFIX = "__kvm_nvhe_"


def symbols(elf: ELFFile) -> dict[str, int]:
    table = elf.get_section_by_name(".symtab")
    assert isinstance(table, SymbolTableSection)
    return {s.name: s["st_value"] for s in table.iter_symbols() if s.name}


def hyp_object_symbols(work_dir: Path) -> set[str]:
    """Defined symbols of the hyp partial link, before the prefix."""
    with open(work_dir / "kvm_nvhe.tmp.o", "rb") as f:
        table = ELFFile(f).get_section_by_name(".symtab")
        return {s.name for s in table.iter_symbols()
                if s.name and not s.name.startswith("$")
                and s["st_shndx"] != "SHN_UNDEF"
                and s["st_info"]["type"] in ("STT_FUNC", "STT_OBJECT", "STT_NOTYPE")}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_builds_an_aarch64_image_with_prefixed_hyp(name):
    result = builder.build(name)
    assert result.elf.is_file()
    assert (result.build_dir / "compile_commands.json").is_file()
    with open(result.elf, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_AARCH64"
        syms = symbols(elf)
        hyp_names = hyp_object_symbols(result.work_dir)
        assert {"handle_trap", "__host_exit", "__kvm_hyp_init"} <= hyp_names
        lo, hi = syms["__hyp_text_start"], syms["__hyp_text_end"]
        for hyp_name in hyp_names:
            assert HYP_PREFIX + hyp_name in syms, hyp_name
            # csrc/lib is built into both sides: the host's own copy of a
            # name is fine, a hyp definition without the prefix is not.
            if hyp_name in syms:
                assert not lo <= syms[hyp_name] < hi, f"unprefixed hyp symbol {hyp_name}"

        # Everything in the hyp text range carries the prefix.
        table = elf.get_section_by_name(".symtab")
        for sym in table.iter_symbols():
            if sym["st_info"]["type"] == "STT_FUNC" and lo <= sym["st_value"] < hi:
                assert sym.name.startswith(HYP_PREFIX), sym.name

        # The hypervisor runs at its own VAs: it may hold no absolute
        # kernel address that the KASLR loader would relocate.
        hyp_lo, hyp_hi = syms["__hyp_private_start"], syms["__hyp_shared_end"]
        for section in elf.iter_sections():
            if isinstance(section, RelocationSection):
                for rel in section.iter_relocations():
                    assert not lo <= rel["r_offset"] < hi
                    assert not hyp_lo <= rel["r_offset"] < hyp_hi


def copy_tree(dest: Path) -> Path:
    root = source_root()
    dest.mkdir()
    for name in ("Kconfig", "CMakeLists.txt"):
        shutil.copy(root / name, dest / name)
    for name in ("configs", "csrc", "cmake", "pyharness"):
        shutil.copytree(root / name, dest / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    return dest


def objects_reading(build: builder.BuildResult, path: Path) -> set[str]:
    """The objects whose compile reads ``path``, by the compiler's own word:
    each compile command of the database run again with -M."""
    readers = set()
    for entry in json.loads(build.compile_commands.read_text()):
        argv = [arg for arg in shlex.split(entry["command"]) if arg not in ("-MD", "-MMD")]
        output = argv[argv.index("-o") + 1]
        del argv[argv.index("-o"):argv.index("-o") + 2]
        proc = subprocess.run([*argv, "-M"], cwd=entry["directory"], capture_output=True,
                              text=True, check=True)
        prerequisites = proc.stdout.replace("\\\n", " ").split(":", 1)[1].split()
        if any(os.path.normpath(os.path.join(entry["directory"], p)) == str(path)
               for p in prerequisites):
            readers.add(output)
    return readers


def test_cache_hit_then_rebuild_on_config_and_source_change(tmp_path, monkeypatch):
    tree = copy_tree(tmp_path / "tree")
    monkeypatch.setenv("NVHE_LAB_ROOT", str(tree))
    out = tmp_path / "out"
    fragment = tmp_path / "mine_defconfig"
    fragment.write_text("CONFIG_ARM64_4K_PAGES=y\nCONFIG_NR_CPUS=2\n")

    first = builder.build(fragment, out_dir=out)
    assert not first.cached
    again = builder.build(fragment, out_dir=out)
    assert again.cached and again.elf == first.elf
    assert json.loads((again.build_dir / builder.STAMP).read_text())["digest"] == again.digest

    fragment.write_text("CONFIG_ARM64_4K_PAGES=y\nCONFIG_NR_CPUS=3\n")
    by_config = builder.build(fragment, out_dir=out)
    assert not by_config.cached and by_config.build_dir != first.build_dir

    source = tree / "csrc" / "host" / "main.c"
    source.write_text(source.read_text() + "\n/* a change */\n")
    by_source = builder.build(fragment, out_dir=out)
    assert not by_source.cached and by_source.digest != by_config.digest
    assert builder.build(fragment, out_dir=out).cached


def test_compiler_error_is_a_build_error(tmp_path, monkeypatch):
    tree = copy_tree(tmp_path / "tree")
    monkeypatch.setenv("NVHE_LAB_ROOT", str(tree))
    (tree / "csrc" / "host" / "broken.c").write_text("int broken(void) { return x; }\n")
    with pytest.raises(builder.BuildError, match=r"(?s)firmware build failed.*broken\.c"):
        builder.build("nvhe", out_dir=tmp_path / "out")


def test_nm_sees_the_prefixed_entry_chain():
    """An external tool agrees: the hyp entry chain carries the prefix."""
    elf = builder.build("pkvm").elf
    nm = subprocess.run(["aarch64-linux-gnu-nm", str(elf)], capture_output=True,
                        text=True, check=True).stdout
    names = {line.split()[-1] for line in nm.splitlines()}
    assert {"__kvm_nvhe___host_exit", "__kvm_nvhe_handle_trap"} <= names
    assert "handle_trap" not in names


def test_without_ninja_make_builds_the_same_image_incrementally(tmp_path, monkeypatch):
    """CMake's Makefile generator when Ninja is not installed: the same
    image and key, and (its assembler sources' dependencies included) an
    edit behind an old mtime recompiles exactly the objects that read it."""
    lab = copy_tree(tmp_path / "lab")
    monkeypatch.setenv("NVHE_LAB_ROOT", str(lab))
    with_ninja = builder.build("tiny", out_dir=tmp_path / "ninja")
    which = shutil.which
    monkeypatch.setattr(shutil, "which",
                        lambda name, *a, **k: None if name == "ninja" else which(name, *a, **k))
    made = builder.build("tiny", out_dir=tmp_path / "make")
    assert (made.work_dir / "Makefile").is_file() and not (made.work_dir / "build.ninja").exists()
    assert made.digest == with_ninja.digest and made.objects == with_ninja.objects
    assert made.elf.read_bytes() == with_ninja.elf.read_bytes()
    header = lab / "csrc/include/platform.h"
    readers = objects_reading(made, header)
    assert any(name.endswith(".S.obj") for name in readers)
    st = header.stat()
    header.write_text(header.read_text() + "/* edited */\n")
    os.utime(header, ns=(st.st_atime_ns, st.st_mtime_ns))
    edited = builder.build("tiny", out_dir=tmp_path / "make")
    assert not edited.cached and set(edited.compiled) == readers
