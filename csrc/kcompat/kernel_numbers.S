/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The kernel tree's numbers this image was built with (platform.h,
 * generated/kernel_numbers.h), for the harness: the platform lays out the
 * stacks and buffers from them and the oracle expects them
 * (pyharness/elf/stack_sizes.py). In the non-allocated section
 * .nvhe_kernel_numbers, like .nvhe_unwinder: in the ELF file, never in the
 * running image. Assembled only in a build against a tree.
 */
#include <platform.h>
#include <stacktrace/nvhe.h>

/* "NVHEKNUM" read as a little-endian u64; then the record's version. */
#define KERNEL_NUMBERS_MAGIC	0x4d554e4b4548564e
#define KERNEL_NUMBERS_VERSION	1

	.pushsection .nvhe_kernel_numbers, "", %progbits
	.quad	KERNEL_NUMBERS_MAGIC, KERNEL_NUMBERS_VERSION
	.quad	OVERFLOW_STACK_SIZE, NVHE_STACK_SIZE, NVHE_STACKTRACE_SIZE, VA_BITS
	.popsection
