// SPDX-License-Identifier: GPL-2.0
/*
 * The layout record: what the harness needs to build the machine this
 * image expects, in the .platform_layout section (docs/platform.md).
 */
#include <compiler.h>
#include <platform.h>

__used __section(".platform_layout")
const struct platform_layout platform_layout = {
	.magic			= PLATFORM_LAYOUT_MAGIC,
	.version		= PLATFORM_LAYOUT_VERSION,
	.page_shift		= PAGE_SHIFT,
	.va_bits		= VA_BITS,
	.nr_cpus		= NR_CPUS,
	.kimage_vaddr		= KIMAGE_VADDR,
	.page_offset		= PAGE_OFFSET,
	.phys_ram_base		= PHYS_RAM_BASE,
	.phys_ram_size		= PHYS_RAM_SIZE,
	.image_phys_offset	= IMAGE_PHYS_OFFSET,
	.mmio_phys		= PLATFORM_MMIO_PHYS,
	.mmio_va_el1		= PLATFORM_MMIO_VA_EL1,
	.mmio_va_el2		= PLATFORM_MMIO_VA_EL2,
	.hyp_va_offset		= HYP_VA_OFFSET,
	.hyp_stack_va_base	= HYP_STACK_VA_BASE,
	.kaslr_align		= KASLR_ALIGN,
	.kaslr_max		= KASLR_MAX,
	.protected_stacktrace	= IS_ENABLED(CONFIG_PROTECTED_NVHE_STACKTRACE),
	.randomize_base		= IS_ENABLED(CONFIG_RANDOMIZE_BASE),
};
