/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hypervisor exception vectors and the host entry/exit path.
 */
#include <platform.h>
#include <kvm_asm.h>
#include <asm/assembler.h>
#include <asm/sysreg.h>

	.text

/*
 * Host -> hypervisor: save the host's x0..x30 into this CPU's host
 * context, run handle_trap() and fall into __host_enter. The call to
 * handle_trap is the last instruction here, so the return address it
 * leaves in its frame record is __host_exit's end, as in the kernel.
 * fp is cleared first: the host's frame pointer means nothing at EL2 and
 * a zero fp ends the hypervisor's unwind.
 */
SYM_CODE_START(__host_exit)
	/* x0 and x1 were pushed by the vector. */
	stp	x2, x3, [sp, #-16]!
	adr_l	x2, host_ctxt
	mrs	x3, tpidr_el2
	add	x2, x2, x3
	ldp	x0, x1, [sp, #16]
	stp	x0, x1, [x2, #HOST_CTXT_REGS + 8 * 0]
	ldp	x0, x1, [sp], #32
	stp	x0, x1, [x2, #HOST_CTXT_REGS + 8 * 2]
	stp	x4, x5, [x2, #HOST_CTXT_REGS + 8 * 4]
	stp	x6, x7, [x2, #HOST_CTXT_REGS + 8 * 6]
	stp	x8, x9, [x2, #HOST_CTXT_REGS + 8 * 8]
	stp	x10, x11, [x2, #HOST_CTXT_REGS + 8 * 10]
	stp	x12, x13, [x2, #HOST_CTXT_REGS + 8 * 12]
	stp	x14, x15, [x2, #HOST_CTXT_REGS + 8 * 14]
	stp	x16, x17, [x2, #HOST_CTXT_REGS + 8 * 16]
	stp	x18, x19, [x2, #HOST_CTXT_REGS + 8 * 18]
	stp	x20, x21, [x2, #HOST_CTXT_REGS + 8 * 20]
	stp	x22, x23, [x2, #HOST_CTXT_REGS + 8 * 22]
	stp	x24, x25, [x2, #HOST_CTXT_REGS + 8 * 24]
	stp	x26, x27, [x2, #HOST_CTXT_REGS + 8 * 26]
	stp	x28, x29, [x2, #HOST_CTXT_REGS + 8 * 28]
	str	x30, [x2, #HOST_CTXT_REGS + 8 * 30]
	mov	x0, x2
	mov	x29, xzr
	bl	handle_trap
SYM_CODE_END(__host_exit)

/* Restore the host context of this CPU and return to the host. */
SYM_CODE_START(__host_enter)
	adr_l	x2, host_ctxt
	mrs	x3, tpidr_el2
	add	x30, x2, x3
	ldp	x0, x1, [x30, #HOST_CTXT_REGS + 8 * 0]
	ldp	x2, x3, [x30, #HOST_CTXT_REGS + 8 * 2]
	ldp	x4, x5, [x30, #HOST_CTXT_REGS + 8 * 4]
	ldp	x6, x7, [x30, #HOST_CTXT_REGS + 8 * 6]
	ldp	x8, x9, [x30, #HOST_CTXT_REGS + 8 * 8]
	ldp	x10, x11, [x30, #HOST_CTXT_REGS + 8 * 10]
	ldp	x12, x13, [x30, #HOST_CTXT_REGS + 8 * 12]
	ldp	x14, x15, [x30, #HOST_CTXT_REGS + 8 * 14]
	ldp	x16, x17, [x30, #HOST_CTXT_REGS + 8 * 16]
	ldp	x18, x19, [x30, #HOST_CTXT_REGS + 8 * 18]
	ldp	x20, x21, [x30, #HOST_CTXT_REGS + 8 * 20]
	ldp	x22, x23, [x30, #HOST_CTXT_REGS + 8 * 22]
	ldp	x24, x25, [x30, #HOST_CTXT_REGS + 8 * 24]
	ldp	x26, x27, [x30, #HOST_CTXT_REGS + 8 * 26]
	ldp	x28, x29, [x30, #HOST_CTXT_REGS + 8 * 28]
	ldr	x30, [x30, #HOST_CTXT_REGS + 8 * 30]
	eret
SYM_CODE_END(__host_enter)

/* An exception the hypervisor has no handler for: stop the platform. */
SYM_CODE_START(__hyp_invalid_vect)
	ldr	x0, =PLATFORM_MMIO_VA_EL2
	mov	x1, #0xdead
	str	x1, [x0, #PLATFORM_EXIT]
	b	.
SYM_CODE_END(__hyp_invalid_vect)

	.macro	invalid_vect
	.balign	128
	b	__hyp_invalid_vect
	.endm

	.macro	host_vect
	.balign	128
	stp	x0, x1, [sp, #-16]!
	b	__host_exit
	.endm

	.balign	2048
SYM_CODE_START(__kvm_hyp_host_vector)
	invalid_vect		/* Synchronous EL2t */
	invalid_vect		/* IRQ EL2t */
	invalid_vect		/* FIQ EL2t */
	invalid_vect		/* Error EL2t */

	invalid_vect		/* Synchronous EL2h */
	invalid_vect		/* IRQ EL2h */
	invalid_vect		/* FIQ EL2h */
	invalid_vect		/* Error EL2h */

	host_vect		/* Synchronous 64-bit EL1 */
	invalid_vect		/* IRQ 64-bit EL1 */
	invalid_vect		/* FIQ 64-bit EL1 */
	invalid_vect		/* Error 64-bit EL1 */

	invalid_vect		/* Synchronous 32-bit EL1 */
	invalid_vect		/* IRQ 32-bit EL1 */
	invalid_vect		/* FIQ 32-bit EL1 */
	invalid_vect		/* Error 32-bit EL1 */
SYM_CODE_END(__kvm_hyp_host_vector)
