// SPDX-License-Identifier: GPL-2.0
/*
 * The numbers a kernel tree sets for the nVHE stacks, evaluated by the
 * compiler from the tree's own arch/arm64/include/asm/memory.h:
 * pyharness.builder.kernel_numbers compiles this file against the tree
 * (its arch/arm64/include, include and uapi directories, the lab's
 * configuration force-included through csrc/kcompat/common/linux/kconfig.h)
 * and reads the array back from the object's .nvhe_numbers section.
 *
 * Only the part of memory.h an assembler file may include is read:
 * __ASSEMBLY__ (6.x) and __ASSEMBLER__ (7.x) are defined, as for a .S
 * file, so the tree's const.h, sizes.h and page definitions are all it
 * pulls in. The C types are then gone (UL(1) is plain 1), which changes no
 * value here; sizeof(long) in NVHE_STACKTRACE_SIZE still needs C.
 */
#include <asm/memory.h>

/* Before 6.13 there is no NVHE_STACK_SIZE: a hyp stack is one page. */
#ifndef NVHE_STACK_SIZE
#define NVHE_STACK_SIZE		0
#endif

/* In this order; pyharness.builder.kernel_numbers.PROBED names them. */
__attribute__((section(".nvhe_numbers"), used))
const unsigned long long nvhe_numbers[] = {
	OVERFLOW_STACK_SIZE,
	PAGE_SIZE,
	NVHE_STACK_SIZE,
	NVHE_STACKTRACE_SIZE,
	VA_BITS,
	1ULL << CONFIG_ARM64_PAGE_SHIFT,	/* the configuration's page size */
};
