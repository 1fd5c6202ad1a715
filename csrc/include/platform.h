/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The emulated platform as the firmware sees it: every address and size
 * that both the EL2 and EL1 parts (and the linker script) need, derived
 * from the Kconfig options in one place. docs/platform.md describes the
 * contract with the harness; the harness reads these values back from the
 * image's layout record, never from a copy of its own.
 *
 * Usable from C, assembly and the linker script.
 */
#ifndef __PLATFORM_H
#define __PLATFORM_H

#include <generated/autoconf.h>

#ifdef __ASSEMBLER__
#define _UL(x)		(x)
#else
#define _UL(x)		(x##UL)
#endif

#define PAGE_SHIFT		CONFIG_ARM64_PAGE_SHIFT
#define PAGE_SIZE		(_UL(1) << PAGE_SHIFT)
#define NR_CPUS			CONFIG_NR_CPUS

#ifdef NVHE_KERNEL_UNWINDER
/*
 * Built against a kernel tree: the tree's own numbers, as the compiler
 * evaluated them from its asm/memory.h (pyharness.builder.kernel_numbers
 * writes this header; docs/kernel-src.md, "The tree's numbers"). The
 * platform is laid out from them, so an edit to the tree's sizes changes
 * the image and what the harness expects.
 */
#include <generated/kernel_numbers.h>
#define VA_BITS			KERNEL_VA_BITS
#define NVHE_STACK_SHIFT	KERNEL_NVHE_STACK_SHIFT
#else
#define VA_BITS			CONFIG_ARM64_VA_BITS
/* One hyp stack per CPU: one page. */
#define NVHE_STACK_SHIFT	PAGE_SHIFT
#endif
#define NVHE_STACK_SIZE		(_UL(1) << NVHE_STACK_SHIFT)

/* Physical memory of the platform. */
#define PHYS_RAM_BASE		_UL(0x40000000)
#define PHYS_RAM_SIZE		_UL(0x04000000)
#define IMAGE_PHYS_OFFSET	_UL(0x00200000)
#define PLATFORM_MMIO_PHYS	_UL(0x09000000)

/*
 * Host (EL1) virtual addresses. The linear map starts the upper half of a
 * VA_BITS address space; the kernel image lives in its upper half, 128 MiB
 * in, and the MMIO page just below the image area.
 */
#define PAGE_OFFSET		(-(_UL(1) << VA_BITS))
#define KIMAGE_AREA		(-(_UL(1) << (VA_BITS - 1)))
#define KIMAGE_VADDR		(KIMAGE_AREA + _UL(0x08000000))
#define PLATFORM_MMIO_VA_EL1	KIMAGE_AREA
#define KASLR_ALIGN		_UL(0x00200000)
#define KASLR_MAX		_UL(0x40000000)

/*
 * Hypervisor (EL2) virtual addresses. All below 2^36 so that they are
 * valid whatever VA_BITS is. RAM is aliased at PA + HYP_VA_OFFSET; the
 * stacks have a private range where CPU n's stack (NVHE_STACK_SIZE, one
 * page unless a kernel tree says otherwise) sits at an odd multiple of its
 * size above an unmapped guard of the same size at the even one below it.
 * Bit NVHE_STACK_SHIFT of an SP is therefore 1 on the stack and 0 in the
 * guard, which is what the exception vectors test for overflow.
 */
#define HYP_VA_OFFSET		_UL(0x800000000)
#define HYP_STACK_VA_BASE	_UL(0xc00000000)
#define PLATFORM_MMIO_VA_EL2	(PLATFORM_MMIO_PHYS + HYP_VA_OFFSET)
#define HYP_STACK_VA(cpu)	(HYP_STACK_VA_BASE + (2 * (cpu) + 1) * NVHE_STACK_SIZE)

/*
 * The size of the hypervisor's own address space: its init programs
 * TCR_EL2.T0SZ = 64 - HYP_VA_BITS. It is the bit where a pointer
 * authentication code starts in a hyp pointer, so it is also how much of
 * a hyp pc the host keeps before printing it. As in the kernel of the v5
 * series (which masks with vabits_actual), it equals VA_BITS; later
 * kernels size the hyp's space separately and mask with __hyp_va_bits.
 * The harness masks with the layout record's va_bits: keep them equal.
 */
#define HYP_VA_BITS		VA_BITS

/*
 * Per-CPU areas: one template section per side, repeated NR_CPUS times at
 * this stride (zero-initialised, like .bss). The hyp area holds the 4 KiB
 * overflow stack and the stacktrace bookkeeping, hence at least 8 KiB.
 * A kernel tree's sizes may differ: its stride holds the overflow stack
 * and 4 KiB for the rest, and (the shared copies of pkvm_stacktrace use
 * the same stride) the trace buffer, in whole pages. For the lab's sizes
 * that is the lab's stride.
 */
#define PAGE_ALIGN_UP(x)	(((x) + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
#ifdef NVHE_KERNEL_UNWINDER
#if PAGE_ALIGN_UP(KERNEL_OVERFLOW_STACK_SIZE + 4096) > PAGE_ALIGN_UP(KERNEL_NVHE_STACKTRACE_SIZE)
#define HYP_PERCPU_STRIDE	PAGE_ALIGN_UP(KERNEL_OVERFLOW_STACK_SIZE + _UL(4096))
#else
#define HYP_PERCPU_STRIDE	PAGE_ALIGN_UP(KERNEL_NVHE_STACKTRACE_SIZE)
#endif
#elif PAGE_SHIFT > 13
#define HYP_PERCPU_STRIDE	PAGE_SIZE
#else
#define HYP_PERCPU_STRIDE	_UL(0x2000)
#endif
#define HOST_PERCPU_STRIDE	PAGE_SIZE

/* Host task stacks: 16 KiB per CPU, aligned to their size. */
#define THREAD_SHIFT		14
#define THREAD_SIZE		(_UL(1) << THREAD_SHIFT)

/* Offsets of the registers in the platform MMIO page. */
#define PLATFORM_CONSOLE	0x00
#define PLATFORM_EXIT		0x08
#define PLATFORM_COUNTER	0x10
#define PLATFORM_SCENARIO	0x18
#define PLATFORM_CONSOLE_BUFFER	0x20	/* u64: EL1 VA of the console line buffer */
#define PLATFORM_CONSOLE_LINE	0x28	/* u32: its first N bytes are a line */

/* Boot flags in x1 (docs/platform.md, "Boot protocol"). */
#define BOOT_FLAG_PROTECTED	_UL(1)

/* First field of the layout record: "NVHELAB1" read as a little-endian u64. */
#define PLATFORM_LAYOUT_MAGIC	_UL(0x3142414c4548564e)
#define PLATFORM_LAYOUT_VERSION	2

#ifndef __ASSEMBLER__
#ifndef LINKER_SCRIPT
/*
 * What the harness needs to know to build the machine, emitted into the
 * .platform_layout section of the image. Every field is a u64.
 */
struct platform_layout {
	unsigned long magic;
	unsigned long version;
	unsigned long page_shift;
	unsigned long va_bits;
	unsigned long nr_cpus;
	unsigned long kimage_vaddr;
	unsigned long page_offset;
	unsigned long phys_ram_base;
	unsigned long phys_ram_size;
	unsigned long image_phys_offset;
	unsigned long mmio_phys;
	unsigned long mmio_va_el1;
	unsigned long mmio_va_el2;
	unsigned long hyp_va_offset;
	unsigned long hyp_stack_va_base;
	unsigned long kaslr_align;
	unsigned long kaslr_max;
	unsigned long protected_stacktrace;
	unsigned long randomize_base;	/* CONFIG_RANDOMIZE_BASE: KASLR offsets apply (v2) */
};
#endif
#endif

#endif /* __PLATFORM_H */
