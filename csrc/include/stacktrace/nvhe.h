/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What the hypervisor and the host agree on about hypervisor stacks and
 * the traces taken of them. Sizes derive from Kconfig here and only here.
 */
#ifndef __STACKTRACE_NVHE_H
#define __STACKTRACE_NVHE_H

#include <platform.h>

#ifdef NVHE_KERNEL_UNWINDER
/* A kernel tree's own sizes (platform.h, generated/kernel_numbers.h). */
#define OVERFLOW_STACK_SIZE	KERNEL_OVERFLOW_STACK_SIZE
#define NVHE_STACKTRACE_SIZE	KERNEL_NVHE_STACKTRACE_SIZE
#define NVHE_STACKTRACE_ENTRIES	(NVHE_STACKTRACE_SIZE / 8)
#else
/* The overflow stack is 4 KiB whatever the page size. */
#define OVERFLOW_STACK_SIZE	_UL(4096)

/*
 * The protected-mode trace buffer shared with the host: room for one pc
 * per 16-byte frame record on the hyp stack (NVHE_STACK_SIZE, platform.h)
 * and on the overflow stack, plus a zero terminator, and not a byte more.
 */
#define NVHE_STACKTRACE_ENTRIES \
	((NVHE_STACK_SIZE + OVERFLOW_STACK_SIZE) / 16 + 1)
#define NVHE_STACKTRACE_SIZE	(NVHE_STACKTRACE_ENTRIES * 8)
#endif

#ifndef __ASSEMBLER__
/*
 * Filled by the hypervisor on panic in non-protected mode, read by the
 * host: where the hyp stacks are (hyp VAs) and where the unwind starts.
 */
struct kvm_nvhe_stacktrace_info {
	unsigned long stack_base;
	unsigned long overflow_stack_base;
	unsigned long fp;
	unsigned long pc;
};
#endif

#endif /* __STACKTRACE_NVHE_H */
