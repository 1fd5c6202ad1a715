/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Host kernel entry, reached by the hypervisor's ERET at EL1 with
 *   x0 = CPU number, x1 = boot flags, x3 = PA of _text.
 */
#include <platform.h>
#include <asm/assembler.h>

	.section .head.text, "ax"

SYM_CODE_START(host_entry)
	/* SP = top of this CPU's task stack. */
	adr_l	x9, host_task_stacks
	add	x9, x9, x0, lsl #THREAD_SHIFT
	ldr	x10, =THREAD_SIZE
	add	sp, x9, x10

	ldr	x9, =HOST_PERCPU_STRIDE
	mul	x9, x9, x0
	msr	tpidr_el1, x9

	mov	x2, x3
	mov	x29, xzr
	mov	x30, xzr
	bl	host_main
1:	wfi
	b	1b
SYM_CODE_END(host_entry)
