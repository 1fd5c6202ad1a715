/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __ASM_ASSEMBLER_H
#define __ASM_ASSEMBLER_H

#ifdef __ASSEMBLER__

#include <generated/autoconf.h>

/*
 * A function (SYM_FUNC_*) may be called through a pointer, so with
 * ARM64_BTI_KERNEL it starts with a landing pad for BLR, "bti c" (written
 * as its hint, which every assembler accepts). Code (SYM_CODE_*) is
 * entered otherwise: by an exception, an ERET or the platform's reset.
 */
#ifdef CONFIG_ARM64_BTI_KERNEL
#define __SYM_FUNC_BTI		hint	#34;
#else
#define __SYM_FUNC_BTI
#endif

#define SYM_FUNC_START(name)			\
	.globl name;				\
	.type name, %function;			\
	.balign 4;				\
	name:					\
	__SYM_FUNC_BTI

#define SYM_FUNC_END(name)			\
	.size name, . - name

#define SYM_CODE_START(name)			\
	.globl name;				\
	.type name, %function;			\
	.balign 4;				\
	name:
#define SYM_CODE_END(name)	SYM_FUNC_END(name)

/* PC-relative address of a symbol within +/- 4 GiB: no relocation needed. */
	.macro	adr_l, dst, sym
	adrp	\dst, \sym
	add	\dst, \dst, :lo12:\sym
	.endm

#endif /* __ASSEMBLER__ */
#endif /* __ASM_ASSEMBLER_H */
