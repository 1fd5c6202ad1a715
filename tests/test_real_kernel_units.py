"""The real-kernel path's pieces on small real inputs: the kernel Kconfig
fragment derived from a lab configuration, System.map and the kernel's
kallsyms alias rule, QEMU's own device tree with a seed written in."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from pyharness.builder import kernel_config
from pyharness.elf.system_map import SystemMap
from pyharness.errors import ConfigError, HarnessError
from pyharness.kconfig import resolve as kconfig
from pyharness.platform import fdt_seed, qemu


def _resolved(name: str) -> kconfig.ResolvedConfig:
    return kconfig.resolve(kconfig.find_config(name))


def _tree(tmp_path: Path, *options: str) -> Path:
    kconfig_file = tmp_path / kernel_config.KVM_KCONFIG
    kconfig_file.parent.mkdir(parents=True)
    kconfig_file.write_text("".join(f"config {o}\n\tbool\n\n"
                                    for o in ("NVHE_EL2_DEBUG", *options)))
    return tmp_path


# -- the fragment ------------------------------------------------------------

def test_fragment_carries_the_lab_configuration(tmp_path):
    options = {o.name: o.value for o in
               kernel_config.kernel_fragment(_resolved("pkvm_16k"),
                                             _tree(tmp_path, "PROTECTED_NVHE_STACKTRACE"))}
    assert options["ARM64_16K_PAGES"] == "y" and options["ARM64_4K_PAGES"] == "n"
    assert options["ARM64_VA_BITS_47"] == "y"
    assert options["NR_CPUS"] == "2" and options["RANDOMIZE_BASE"] == "y"
    assert options["NVHE_EL2_DEBUG"] == "y" and options["PROTECTED_NVHE_STACKTRACE"] == "y"
    assert options["KVM"] == options["PRINTK_CALLER"] == "y"     # the shipped base


def test_fragment_names_the_stacktrace_option_as_the_tree_does(tmp_path):
    options = {o.name: o.value for o in
               kernel_config.kernel_fragment(_resolved("pkvm"),
                                             _tree(tmp_path, "PKVM_STACKTRACE"))}
    assert options["PKVM_STACKTRACE"] == "y"
    assert "PROTECTED_NVHE_STACKTRACE" not in options
    assert kernel_config.STAGE2_OFF_ON_PANIC not in options


def test_7x_stacktrace_brings_the_option_it_depends_on(tmp_path):
    """7.x: PKVM_STACKTRACE depends on PKVM_DISABLE_STAGE2_ON_PANIC."""
    tree = _tree(tmp_path, "PKVM_DISABLE_STAGE2_ON_PANIC", "PKVM_STACKTRACE")
    on = {o.name: o.value for o in kernel_config.kernel_fragment(_resolved("pkvm"), tree)}
    off = {o.name: o.value for o in kernel_config.kernel_fragment(_resolved("nvhe"), tree)}
    assert on["PKVM_STACKTRACE"] == on["PKVM_DISABLE_STAGE2_ON_PANIC"] == "y"
    assert off["PKVM_STACKTRACE"] == off["PKVM_DISABLE_STAGE2_ON_PANIC"] == "n"


def test_a_tree_without_the_option_is_refused_naming_both(tmp_path):
    with pytest.raises(ConfigError, match="PKVM_STACKTRACE, PROTECTED_NVHE_STACKTRACE"):
        kernel_config.kernel_fragment(_resolved("pkvm"), _tree(tmp_path, "SOMETHING_ELSE"))


def test_pac_ret_and_optimisation(tmp_path):
    tree = _tree(tmp_path, "PROTECTED_NVHE_STACKTRACE")
    pac = {o.name: o.value for o in kernel_config.kernel_fragment(_resolved("pkvm_pac"), tree)}
    tiny = {o.name: o.value for o in kernel_config.kernel_fragment(_resolved("tiny"), tree)}
    assert pac["ARM64_PTR_AUTH"] == pac["ARM64_PTR_AUTH_KERNEL"] == "y"
    assert tiny["CC_OPTIMIZE_FOR_SIZE"] == "y" and tiny["ARM64_PTR_AUTH_KERNEL"] == "n"


def test_check_applied_names_every_option_the_kernel_dropped():
    options = [kernel_config.KernelOption("NR_CPUS", "1", "lab tiny"),
               kernel_config.KernelOption("KVM", "y", "qemu.config"),
               kernel_config.KernelOption("ARM64_BTI_KERNEL", "y", "lab x")]
    dotconfig = kernel_config.read_dotconfig(
        "CONFIG_NR_CPUS=2\nCONFIG_KVM=y\n# CONFIG_ARM64_BTI_KERNEL is not set\n")
    with pytest.raises(ConfigError) as err:
        kernel_config.check_applied(options, dotconfig, "/src/linux", "tiny")
    message = str(err.value)
    assert "CONFIG_NR_CPUS=1 (from lab tiny) ended up '2'" in message
    assert "CONFIG_ARM64_BTI_KERNEL=y (from lab x) ended up not set" in message
    assert "CONFIG_KVM" not in message and err.value.exit_code == 2


# -- System.map and the kallsyms rule ----------------------------------------

SYSTEM_MAP = """\
ffff800080000000 T _text
ffff800080010000 T __hyp_text_start
ffff800080010000 T __kvm_nvhe___hyp_text_start
ffff800080010000 t __kvm_nvhe_first
ffff800080010040 W __kvm_nvhe_weak_alias
ffff800080010040 T __kvm_nvhe_strong
ffff800080010080 t __kvm_nvhe_last
ffff800080010100 T __hyp_text_end
ffff800080020000 T _etext
ffff800080030000 D some_data
"""


def test_system_map_offsets_and_kernel_alias_rule(tmp_path):
    path = tmp_path / "System.map"
    path.write_text(SYSTEM_MAP)
    smap = SystemMap(path)
    assert smap.image_offset(smap.hyp("strong")) == 0x10040
    table = smap.kallsyms
    # Fewer leading underscores first, then nm's order.
    assert table.containing(0xffff800080010000).name == "__hyp_text_start"
    # A weak alias after a strong one.
    assert table.containing(0xffff800080010044).name == "__kvm_nvhe_strong"
    assert table.render_backtrace(0xffff800080010080) == "__kvm_nvhe_strong+0x40/0x40"
    assert table.containing(0xffff800080030000) is None     # data is not code


def test_system_map_without_text_is_refused(tmp_path):
    path = tmp_path / "System.map"
    path.write_text("ffff800080030000 D some_data\n")
    with pytest.raises(HarnessError, match="no _text"):
        SystemMap(path)


# -- QEMU's device tree ------------------------------------------------------

@pytest.fixture(scope="module")
def dumped_dtb(tmp_path_factory):
    if shutil.which(qemu.QEMU) is None:
        pytest.fail(f"{qemu.QEMU} is missing: sh scripts/setup.sh --tests installs it")
    out = tmp_path_factory.mktemp("dtb") / "virt.dtb"
    subprocess.run([qemu.QEMU, "-M", qemu.MACHINE + f",dumpdtb={out}", "-cpu", "max",
                    "-display", "none", "-m", "1024"], check=True, capture_output=True,
                   timeout=60)
    return out.read_bytes()


def test_seed_is_written_in_place(dumped_dtb):
    small = fdt_seed.compacted(dumped_dtb)
    assert len(small) < len(dumped_dtb) and struct.unpack_from(">I", small, 4)[0] == len(small)
    seeded = fdt_seed.seeded(small, 42)
    assert len(seeded) == len(small)
    chosen = fdt_seed.chosen_properties(seeded)
    offset, length = chosen["kaslr-seed"]
    assert seeded[offset:offset + 8] == fdt_seed.device_tree_seed(42).to_bytes(8, "big")
    changed = [i for i in range(len(small)) if small[i] != seeded[i]]
    rng_offset, rng_length = chosen["rng-seed"]
    assert all(offset <= i < offset + 8 or rng_offset <= i < rng_offset + rng_length
               for i in changed)
    assert fdt_seed.seeded(small, 42) == seeded                      # reproducible
    assert fdt_seed.seeded(small, 43) != seeded


def test_bad_blobs_and_seeds(dumped_dtb):
    with pytest.raises(fdt_seed.DeviceTreeError):
        fdt_seed.compacted(b"\0" * 64)
    with pytest.raises(fdt_seed.DeviceTreeError, match="positive"):
        fdt_seed.seeded(fdt_seed.compacted(dumped_dtb), 0)


# -- which kernels hang on a fault after the host is deprivileged ------------

@pytest.mark.parametrize("generation, options, hangs", [
    ("6.12", "CONFIG_NVHE_EL2_DEBUG=y\n", False),
    ("6.12", "# CONFIG_NVHE_EL2_DEBUG is not set\n", True),
    ("6.1", "", True),
    ("7.x", "CONFIG_NVHE_EL2_DEBUG=y\n# CONFIG_PKVM_DISABLE_STAGE2_ON_PANIC is not set\n", True),
    ("7.x", "CONFIG_NVHE_EL2_DEBUG=y\nCONFIG_PKVM_DISABLE_STAGE2_ON_PANIC=y\n", False)])
def test_host_stage2_off_on_panic(tmp_path, generation, options, hangs):
    from pyharness.builder.kernel_image import KernelImage
    from pyharness.run.qemu_runner import host_stage2_off_on_panic

    dotconfig = tmp_path / ".config"
    dotconfig.write_text(options)
    kernel = KernelImage(image=tmp_path, vmlinux=tmp_path, system_map=tmp_path,
                         dotconfig=dotconfig, version=generation, generation=generation,
                         label="x", origin="kbuild", config_name="x")
    assert host_stage2_off_on_panic(kernel) is not hangs


# -- where a fault cannot go ---------------------------------------------------

def test_a_fault_site_the_kernel_lacks_is_named(tmp_path):
    from pyharness.run import kernel_faults
    from pyharness.run.kernel_scenarios import kernel_scenario

    path = tmp_path / "System.map"
    path.write_text(SYSTEM_MAP)
    smap = SystemMap(path)
    image = bytes(0x20000)
    with pytest.raises(kernel_faults.InjectionError) as err:
        kernel_faults.inject(kernel_scenario("host_mem_abort"), smap, image, 0)
    assert "__kvm_nvhe_handle_host_mem_abort" in str(err.value) and err.value.exit_code == 2
    with pytest.raises(kernel_faults.InjectionError, match="boot CPU only"):
        kernel_faults.inject(kernel_scenario("pkvm_init_walk"), smap, image, 1)


def test_an_hvc_site_none_of_whose_functions_exist(tmp_path):
    from pyharness.run.kernel_scenarios import kernel_scenario, resolve

    with pytest.raises(HarnessError, match="handle___kvm_get_mdcr_el2/__kvm_get_mdcr_el2"):
        resolve(kernel_scenario("hyp_panic"), "nvhe", lambda name: False)
    placed = resolve(kernel_scenario("hyp_panic"), "protected", lambda name: True)
    assert placed.site == "pkvm_cpu_set_vector"
    assert placed.frames[1].caller == "handle___pkvm_cpu_set_vector"
