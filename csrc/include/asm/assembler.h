/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __ASM_ASSEMBLER_H
#define __ASM_ASSEMBLER_H

#ifdef __ASSEMBLER__

#define SYM_FUNC_START(name)			\
	.globl name;				\
	.type name, %function;			\
	.balign 4;				\
	name:

#define SYM_FUNC_END(name)			\
	.size name, . - name

#define SYM_CODE_START(name)	SYM_FUNC_START(name)
#define SYM_CODE_END(name)	SYM_FUNC_END(name)

/* PC-relative address of a symbol within +/- 4 GiB: no relocation needed. */
	.macro	adr_l, dst, sym
	adrp	\dst, \sym
	add	\dst, \dst, :lo12:\sym
	.endm

#endif /* __ASSEMBLER__ */
#endif /* __ASM_ASSEMBLER_H */
