/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: the sizes the unwinder works with, from the lab's headers:
 *   PAGE_SIZE and the hyp stack's NVHE_STACK_SIZE from platform.h,
 *   OVERFLOW_STACK_SIZE and NVHE_STACKTRACE_SIZE from stacktrace/nvhe.h.
 * In a build against a tree those are the tree's own numbers, evaluated by
 * the compiler from the tree's asm/memory.h (generated/kernel_numbers.h,
 * docs/kernel-src.md, "The tree's numbers"), so the tree's files, the lab's
 * vectors and linker scripts and the harness all use the same sizes.
 */
#ifndef __KCOMPAT_ASM_MEMORY_H
#define __KCOMPAT_ASM_MEMORY_H

#include <platform.h>
#include <stacktrace/nvhe.h>	/* lab: the sizes, not the tree's asm/stacktrace/nvhe.h */

#endif
