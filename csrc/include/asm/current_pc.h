/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __ASM_CURRENT_PC_H
#define __ASM_CURRENT_PC_H

/* The address of this very instruction: where a self-unwind starts. */
static inline __attribute__((__always_inline__)) unsigned long current_pc(void)
{
	unsigned long pc;

	__asm__ __volatile__("adr %0, ." : "=r" (pc));
	return pc;
}

#endif /* __ASM_CURRENT_PC_H */
