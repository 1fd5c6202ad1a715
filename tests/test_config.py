"""The Kconfig layer on the real Kconfig tree (kconfiglib, no mocks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyharness.kconfig import outputs as kconfig_outputs
from pyharness.kconfig import resolve as kconfig
from pyharness.errors import ConfigError

# What each shipped config promises (issue: "Kconfig and configs").
EXPECTED = {
    "nvhe": dict(page_size_kb=4, kaslr=True, protected_stacktrace=False),
    "pkvm": dict(page_size_kb=4, el2_debug=True, protected_stacktrace=True),
    "pkvm_16k": dict(page_size_kb=16, protected_stacktrace=True),
    "pkvm_64k": dict(page_size_kb=64, protected_stacktrace=True),
    "nvhe_64k": dict(page_size_kb=64, protected_stacktrace=False),
    "smp": dict(nr_cpus=4),
    "tiny": dict(optimize="-Os", nr_cpus=1, kaslr=False),
}


def write(tmp_path: Path, text: str, name: str = "frag_defconfig") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_expected_config_is_shipped():
    names = {kconfig.config_name(p) for p in kconfig.named_configs()}
    assert set(EXPECTED) <= names


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shipped_config_resolves_to_what_it_promises(name):
    resolved = kconfig.resolve(kconfig.find_config(name))
    summary = resolved.summary
    for field, value in EXPECTED[name].items():
        assert getattr(summary, field) == value, field
    assert resolved.enabled("KVM")
    assert "CONFIG_ARM64_PAGE_SHIFT=" in resolved.dotconfig


def test_olddefconfig_fills_defaults(tmp_path):
    resolved = kconfig.resolve(write(tmp_path, "CONFIG_ARM64_16K_PAGES=y\n"))
    assert resolved.integer("ARM64_PAGE_SHIFT") == 14
    assert resolved.integer("ARM64_VA_BITS") == 48
    assert not resolved.enabled("PROTECTED_NVHE_STACKTRACE")  # default n


def test_dropped_option_names_the_unmet_dependency(tmp_path):
    path = write(tmp_path, "CONFIG_PROTECTED_NVHE_STACKTRACE=y\n"
                           "# CONFIG_NVHE_EL2_DEBUG is not set\n")
    with pytest.raises(ConfigError) as err:
        kconfig.resolve(path)
    message = str(err.value)
    assert f"{path}:1" in message
    assert "PROTECTED_NVHE_STACKTRACE" in message
    assert "CONFIG_NVHE_EL2_DEBUG is not set" in message


def test_va_bits_invalid_for_page_size_is_dropped(tmp_path):
    path = write(tmp_path, "CONFIG_ARM64_16K_PAGES=y\nCONFIG_ARM64_VA_BITS_39=y\n")
    with pytest.raises(ConfigError, match=r":2: CONFIG_ARM64_VA_BITS_39=y was dropped.*"
                                          r"CONFIG_ARM64_4K_PAGES is not set"):
        kconfig.resolve(path)


def test_two_members_of_one_choice(tmp_path):
    path = write(tmp_path, "CONFIG_ARM64_4K_PAGES=y\nCONFIG_ARM64_64K_PAGES=y\n")
    with pytest.raises(ConfigError, match=r":1: .*ARM64_64K_PAGES at .*:2 is selected"):
        kconfig.resolve(path)


def test_malformed_line_reports_file_and_line(tmp_path):
    path = write(tmp_path, "CONFIG_KVM=y\n\nthis is not kconfig\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: malformed line"):
        kconfig.resolve(path)


def test_unknown_symbol_reports_file_and_line(tmp_path):
    path = write(tmp_path, "# a comment\nCONFIG_KVM=y\nCONFIG_NO_SUCH_THING=y\n")
    with pytest.raises(ConfigError, match=rf"^{path}:3: unknown symbol CONFIG_NO_SUCH_THING"):
        kconfig.resolve(path)


@pytest.mark.parametrize("line, pattern", [
    ("CONFIG_NR_CPUS=four", r"bad value 'four' for CONFIG_NR_CPUS, which is int"),
    ("CONFIG_NR_CPUS=17", r"CONFIG_NR_CPUS=17 is outside its range 1..16"),
    ("CONFIG_KVM=maybe", r"bad value 'maybe' for CONFIG_KVM, which is bool"),
    ("CONFIG_ARM64_PAGE_SHIFT=14", r"has no prompt and is derived"),
])
def test_bad_values(tmp_path, line, pattern):
    with pytest.raises(ConfigError, match=pattern):
        kconfig.resolve(write(tmp_path, line + "\n"))


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="is empty"):
        kconfig.resolve(write(tmp_path, "\n\n"))
    with pytest.raises(ConfigError, match="no such config file"):
        kconfig.resolve(tmp_path / "nope_defconfig")


def test_full_config_round_trips_through_savedefconfig(tmp_path):
    full = kconfig.resolve(kconfig.find_config("pkvm_16k"))
    dot = write(tmp_path, full.dotconfig, ".config")
    minimal = write(tmp_path, kconfig.savedefconfig(dot))
    assert kconfig.resolve(minimal).dotconfig == full.dotconfig
    assert len(minimal.read_text().splitlines()) < len(full.dotconfig.splitlines())


def test_outputs_for_c_and_cmake(tmp_path):
    resolved = kconfig.resolve(kconfig.find_config("tiny"))
    kconfig_outputs.write_outputs(resolved, tmp_path)
    header = (tmp_path / "generated" / "autoconf.h").read_text()
    assert "#define CONFIG_NR_CPUS 1\n" in header
    assert "#define CONFIG_CC_OPTIMIZE_FOR_SIZE 1\n" in header
    assert "#define __enabled_CONFIG_RANDOMIZE_BASE 0\n" in header
    assert "#define __enabled_CONFIG_KVM 1\n" in header
    cmake = (tmp_path / "config.cmake").read_text()
    assert 'set(CONFIG_NR_CPUS "1")' in cmake
    assert 'set(CONFIG_RANDOMIZE_BASE "n")' in cmake
    assert (tmp_path / ".config").read_text() == resolved.dotconfig
