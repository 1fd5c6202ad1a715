/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: the sizes the unwinder works with. All come from the lab's
 * headers, which derive them from Kconfig (generated/autoconf.h):
 *   PAGE_SIZE (one hyp stack) from platform.h,
 *   OVERFLOW_STACK_SIZE (4 KiB) and NVHE_STACKTRACE_SIZE (one pc per
 *   16-byte record over both stacks, plus the terminator) from
 *   stacktrace/nvhe.h.
 */
#ifndef __KCOMPAT_ASM_MEMORY_H
#define __KCOMPAT_ASM_MEMORY_H

#include <platform.h>
#include <stacktrace/nvhe.h>	/* lab: the lab's sizes, not the tree's asm/stacktrace/nvhe.h */

#endif
