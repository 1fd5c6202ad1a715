"""pyharness.elf.image and pyharness.elf.layout against fixture images built by the
real cross toolchain (tests/fixtures/, see conftest.py)."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from conftest import CROSS
from pyharness.errors import EXIT_BAD_INPUT
from pyharness.elf.image import (R_AARCH64_ABS64, R_AARCH64_RELATIVE, ImageError, load_image)
from pyharness.elf.layout import LAYOUT_MAGIC, LAYOUT_VERSION


def test_layout_record_matches_the_configuration(fixture_image):
    layout = load_image(fixture_image("4k")).layout
    assert layout.magic == LAYOUT_MAGIC and layout.version == LAYOUT_VERSION
    assert (layout.page_shift, layout.va_bits, layout.nr_cpus) == (12, 48, 2)
    assert layout.kimage_vaddr == 0xFFFF800008000000
    assert layout.page_offset == 0xFFFF000000000000
    assert layout.randomize_base and not layout.protected_stacktrace
    layout = load_image(fixture_image("64k")).layout
    assert (layout.page_shift, layout.va_bits, layout.nr_cpus) == (16, 42, 2)
    assert not layout.randomize_base


def test_segments_cover_the_image_from_text(fixture_image):
    image = load_image(fixture_image("4k"))
    assert image.segments[0].vaddr == image.address_of("_text") == image.link_base
    assert image.link_end >= image.address_of("_end")
    assert image.link_end % image.layout.page_size == 0
    assert image.phys_address(image.link_base) == 0x40200000


def test_symbols_are_sorted_and_looked_up_by_address(fixture_image):
    image = load_image(fixture_image("4k"))
    addresses = [s.address for s in image.symbols]
    assert addresses == sorted(addresses)
    assert not [s for s in image.symbols if "$x" in s.name or "$d" in s.name]

    host_main = image.symbol("host_main")
    assert host_main.kind == "func" and host_main.size > 0
    hit = image.lookup(host_main.address + 8)
    assert (hit.symbol.name, hit.offset) == ("host_main", 8)
    assert str(hit) == "host_main+0x8"
    # A function beats a linker-script label at the same address.
    assert image.lookup(image.address_of("_text")).symbol.name == "host_entry"

    brk = image.symbol("__kvm_nvhe_hyp_brk")
    assert brk.is_hyp and not host_main.is_hyp
    assert image.describe(brk.address + 4) == "__kvm_nvhe_hyp_brk+0x4"
    assert image.lookup(image.link_base - 4) is None
    assert image.describe(0x1234) == "0x1234"


def test_unknown_symbol_is_an_image_error(fixture_image):
    image = load_image(fixture_image("4k"))
    assert image.find_symbol("no_such_symbol") is None
    with pytest.raises(ImageError, match="no symbol 'no_such_symbol'"):
        image.symbol("no_such_symbol")


def test_relocations_are_the_absolute_pointers(fixture_image):
    image = load_image(fixture_image("4k"))
    table = image.address_of("host_reloc_table")
    expected = [image.address_of(name) for name in
                ("host_marker", "host_hvc_return", "__kvm_nvhe_hyp_secret", "host_reloc_table")]
    relocs = sorted(image.relocations, key=lambda r: r.offset)
    assert [r.offset for r in relocs] == [table + 8 * i for i in range(4)]
    assert [r.value for r in relocs] == expected
    assert all(r.shifts for r in relocs)


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_memory_image_is_relocated_for_the_kaslr_offset(fixture_image, seed):
    image = load_image(fixture_image("4k"))
    offset = image.kaslr_offset(seed)
    placed = image.memory_image(offset)
    assert len(placed) == image.link_end - image.link_base
    for rel in image.relocations:
        word = struct.unpack_from("<Q", placed, rel.offset - image.link_base)[0]
        assert word == rel.value + offset
    # Linked with --no-apply-dynamic-relocs: the file itself holds zeros.
    pristine = image.memory_image(0)
    text = image.address_of("host_main") - image.link_base
    assert placed[text:text + 64] == pristine[text:text + 64]


def test_kaslr_offset_is_seeded_aligned_and_bounded(fixture_image):
    layout = load_image(fixture_image("4k")).layout
    image = load_image(fixture_image("4k"))
    offsets = [image.kaslr_offset(seed) for seed in range(32)]
    assert offsets == [image.kaslr_offset(seed) for seed in range(32)]
    assert all(o % layout.kaslr_align == 0 and 0 <= o < layout.kaslr_max for o in offsets)
    assert len(set(offsets)) > 16
    no_kaslr = load_image(fixture_image("64k"))
    assert {no_kaslr.kaslr_offset(seed) for seed in range(8)} == {0}


def test_parsed_images_are_cached_per_file_version(fixture_image, tmp_path):
    copy = tmp_path / "vmlinux"
    shutil.copy(fixture_image("4k"), copy)
    first = load_image(copy)
    assert load_image(copy) is first
    assert load_image(str(copy)) is first
    stat = copy.stat()
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert load_image(copy) is not first


# --------------------------------------------------------------------------
# Files that are not this project's image


def _image_error(path: Path) -> str:
    with pytest.raises(ImageError) as info:
        load_image(path)
    assert info.value.exit_code == EXIT_BAD_INPUT
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    return message


def test_host_elf_is_rejected(tmp_path):
    host_elf = Path(shutil.which("true") or "/bin/true").resolve()
    message = _image_error(host_elf)
    assert "not little-endian AArch64" in message and "pyharness build" in message


def test_non_elf_and_missing_files_are_rejected(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    assert "not an ELF file" in _image_error(text)
    assert "no such file" in _image_error(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert "not an ELF file" in _image_error(empty)
    assert "not a regular file" in _image_error(tmp_path)


@pytest.mark.parametrize("keep", [0.98, 0.6, 0.2, 300, 70])
def test_truncated_image_is_rejected(fixture_image, tmp_path, keep):
    data = fixture_image("4k").read_bytes()
    cut = tmp_path / "vmlinux.cut"
    cut.write_bytes(data[:int(len(data) * keep) if isinstance(keep, float) else keep])
    message = _image_error(cut)
    assert "truncated" in message or "damaged" in message


def test_aarch64_elf_without_layout_record_is_not_ours(fixture_image, tmp_path):
    stripped = tmp_path / "vmlinux.nolayout"
    subprocess.run([CROSS + "objcopy", "--remove-section=.platform_layout",
                    str(fixture_image("4k")), str(stripped)], check=True)
    message = _image_error(stripped)
    assert "no .platform_layout section" in message and "not an image of this project" in message


def _patched_copy(src: Path, dst: Path, section: str, offset: int, fmt: str, value: int) -> Path:
    data = bytearray(src.read_bytes())
    with open(src, "rb") as f:
        file_offset = ELFFile(f).get_section_by_name(section)["sh_offset"]
    struct.pack_into(fmt, data, file_offset + offset, value)
    dst.write_bytes(bytes(data))
    return dst


def test_bad_layout_magic_and_version_are_rejected(fixture_image, tmp_path):
    src = fixture_image("4k")
    bad_magic = _patched_copy(src, tmp_path / "magic", ".platform_layout", 0, "<Q", 0x1234)
    assert "bad magic" in _image_error(bad_magic)
    old = _patched_copy(src, tmp_path / "old", ".platform_layout", 8, "<Q", 1)
    assert f"record version 1, this harness reads version {LAYOUT_VERSION}" in _image_error(old)
    odd_page = _patched_copy(src, tmp_path / "page", ".platform_layout", 16, "<Q", 13)
    assert "page_shift 13" in _image_error(odd_page)


def test_unsupported_relocation_type_is_rejected(fixture_image, tmp_path):
    # r_info of the first .rela.dyn entry: type 1025 (R_AARCH64_GLOB_DAT).
    bad = _patched_copy(fixture_image("4k"), tmp_path / "globdat", ".rela.dyn", 8, "<Q", 1025)
    message = _image_error(bad)
    assert "relocation type 1025" in message and "R_AARCH64_RELATIVE" in message


def test_abs64_relocation_without_symbol_is_not_shifted(fixture_image, tmp_path):
    src = fixture_image("4k")
    patched = _patched_copy(src, tmp_path / "abs64", ".rela.dyn", 8, "<Q", R_AARCH64_ABS64)
    image = load_image(patched)
    first = min(image.relocations, key=lambda r: r.offset)
    assert not first.shifts
    assert first.value == load_image(src).address_of("host_marker")
    placed = image.memory_image(0x200000)
    assert struct.unpack_from("<Q", placed, first.offset - image.link_base)[0] == first.value
    assert R_AARCH64_RELATIVE == 1027


# -- which unwinder the image carries (.nvhe_unwinder) ------------------------

def _with_unwinder_section(src: Path, dst: Path, content: bytes,
                           section: str = ".nvhe_unwinder") -> Path:
    """A copy of ``src`` whose ``section`` (.nvhe_unwinder) holds ``content``."""
    blob = dst.with_suffix(".section")
    blob.write_bytes(content)
    subprocess.run([CROSS + "objcopy", f"--remove-section={section}",
                    "--add-section", f"{section}={blob}",
                    str(src), str(dst)], check=True)
    return dst


def test_an_image_without_the_unwinder_section_carries_the_lab_unwinder(fixture_image):
    # The fixture firmware (and any image from before the section) has none.
    image = load_image(fixture_image("4k"))
    assert image.unwinder == "lab" and image.kernel_generation is None


def test_the_lab_build_says_it_carries_the_lab_unwinder():
    from pyharness.builder import cache as builder

    elf = builder.build("pkvm").elf
    with open(elf, "rb") as f:
        section = ELFFile(f).get_section_by_name(".nvhe_unwinder")
        assert section is not None and section.data() == b"lab\0"
        assert not section["sh_flags"] & 0x2  # not allocated: nothing of the run moves
    assert load_image(elf).unwinder == "lab"


@pytest.mark.parametrize("content, unwinder, generation", [
    (b"linux-6.12\0", "linux-6.12", "6.12"),
    (b"linux-6.1\0\0\0", "linux-6.1", "6.1"),
    (b"linux-7.x\0", "linux-7.x", "7.x"),
    (b"lab\0", "lab", None),
])
def test_the_unwinder_section_is_read(fixture_image, tmp_path, content, unwinder, generation):
    image = load_image(_with_unwinder_section(fixture_image("4k"), tmp_path / "vmlinux",
                                              content))
    assert (image.unwinder, image.kernel_generation) == (unwinder, generation)


@pytest.mark.parametrize("content", [b"linux-6.12", b"linux\0", b"\0", b"gcc-12\0",
                                     b"linux-7.y\0", b"\xff\xfe\0"])
def test_a_bad_unwinder_section_is_rejected(fixture_image, tmp_path, content):
    bad = _with_unwinder_section(fixture_image("4k"), tmp_path / "vmlinux", content)
    message = _image_error(bad)
    assert "bad .nvhe_unwinder section" in message and "pyharness build" in message


def _numbers(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *values)


NUMBERS_MAGIC = int.from_bytes(b"NVHEKNUM", "little")


def test_without_a_numbers_record_the_sizes_are_the_labs_formula(fixture_image):
    image = load_image(fixture_image("16k"))
    sizes = image.stack_sizes
    assert (sizes.overflow_stack, sizes.hyp_stack, sizes.trace_buffer) == (
        4096, 16384, ((16384 + 4096) // 16 + 1) * 8)
    assert sizes.trace_capacity == (16384 + 4096) // 16 and sizes.hyp_stack_shift == 14


def test_a_trees_numbers_record_gives_the_sizes(fixture_image, tmp_path):
    elf = _with_unwinder_section(fixture_image("4k"), tmp_path / "vmlinux",
                                 _numbers(NUMBERS_MAGIC, 1, 2048, 8192, 5128, 48),
                                 ".nvhe_kernel_numbers")
    sizes = load_image(elf).stack_sizes
    assert (sizes.overflow_stack, sizes.hyp_stack, sizes.trace_buffer, sizes.va_bits) == (
        2048, 8192, 5128, 48)
    assert (sizes.hyp_stack_shift, sizes.trace_capacity) == (13, 640)
    assert sizes.source == "the kernel tree's"


@pytest.mark.parametrize("content, why", [
    (_numbers(NUMBERS_MAGIC, 1, 2048), "is 24 bytes, not 48"),
    (_numbers(NUMBERS_MAGIC, 2, 2048, 4096, 3080, 48), "version 2"),
    (_numbers(0x1234, 1, 2048, 4096, 3080, 48), "magic 0x1234"),
    (_numbers(NUMBERS_MAGIC, 1, 2048, 6144, 3080, 48), "must be a power of two"),
])
def test_a_bad_numbers_record_is_rejected(fixture_image, tmp_path, content, why):
    bad = _with_unwinder_section(fixture_image("4k"), tmp_path / "vmlinux", content,
                                 ".nvhe_kernel_numbers")
    message = _image_error(bad)
    assert "bad .nvhe_kernel_numbers section" in message and why in message
    assert "pyharness build" in message
