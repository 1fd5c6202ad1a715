/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hypervisor exception vectors, the host entry/exit path, and the exit to
 * the host's panic handler.
 */
#include <platform.h>
#include <kvm_asm.h>
#include <stacktrace/nvhe.h>
#include <asm/assembler.h>
#include <asm/pointer_auth.h>
#include <asm/sysreg.h>

	.text

/* x2 = this CPU's saved host context; clobbers x3. */
	.macro	get_host_ctxt, ctxt, tmp
	adr_l	\ctxt, host_ctxt
	mrs	\tmp, tpidr_el2
	add	\ctxt, \ctxt, \tmp
	.endm

/*
 * Host -> hypervisor: save the host's x0..x30 into this CPU's host
 * context, run handle_trap() and fall into __host_enter. The call to
 * handle_trap is the last instruction here, so the return address in its
 * frame record is __host_exit's end, as in the kernel. fp is cleared
 * first: the host's frame pointer means nothing at EL2, and a zero fp
 * ends the hypervisor's unwind.
 */
SYM_CODE_START(__host_exit)
	/* x0 and x1 were pushed by the vector. */
	stp	x2, x3, [sp, #-16]!
	get_host_ctxt x2, x3
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
#ifdef CONFIG_ARM64_PTR_AUTH_KERNEL
	/* Keep the host's APIA key and sign with the hypervisor's. */
	mrs	x3, SYS_APIAKEYLO_EL1
	mrs	x4, SYS_APIAKEYHI_EL1
	stp	x3, x4, [x2, #HOST_CTXT_APIAKEY]
	ldr	x3, =HYP_APIA_KEY_LO
	msr	SYS_APIAKEYLO_EL1, x3
	ldr	x3, =HYP_APIA_KEY_HI
	msr	SYS_APIAKEYHI_EL1, x3
	isb
#endif
	mov	x0, x2
	mov	x29, xzr
	bl	handle_trap
SYM_CODE_END(__host_exit)

/* Restore this CPU's host context and return to the host. */
SYM_CODE_START(__host_enter)
	get_host_ctxt x29, x30
	ldp	x0, x1, [x29, #HOST_CTXT_REGS + 8 * 0]
	ldp	x2, x3, [x29, #HOST_CTXT_REGS + 8 * 2]
	ldp	x4, x5, [x29, #HOST_CTXT_REGS + 8 * 4]
	ldp	x6, x7, [x29, #HOST_CTXT_REGS + 8 * 6]
	b	__host_enter_callee_saved
SYM_CODE_END(__host_enter)

/*
 * Restore the host's x8..x30 (and APIA key) from the context at x29 and
 * ERET. The panic path comes here with its own x0..x7 (the panic
 * handler's arguments), so that the handler runs on the host's registers
 * and its call trace continues into the host code that made the
 * hypercall.
 */
SYM_CODE_START(__host_enter_callee_saved)
#ifdef CONFIG_ARM64_PTR_AUTH_KERNEL
	/* The host's APIA key back (the ERET synchronizes it). */
	ldp	x8, x9, [x29, #HOST_CTXT_APIAKEY]
	msr	SYS_APIAKEYLO_EL1, x8
	msr	SYS_APIAKEYHI_EL1, x9
#endif
	ldp	x8, x9, [x29, #HOST_CTXT_REGS + 8 * 8]
	ldp	x10, x11, [x29, #HOST_CTXT_REGS + 8 * 10]
	ldp	x12, x13, [x29, #HOST_CTXT_REGS + 8 * 12]
	ldp	x14, x15, [x29, #HOST_CTXT_REGS + 8 * 14]
	ldp	x16, x17, [x29, #HOST_CTXT_REGS + 8 * 16]
	ldp	x18, x19, [x29, #HOST_CTXT_REGS + 8 * 18]
	ldp	x20, x21, [x29, #HOST_CTXT_REGS + 8 * 20]
	ldp	x22, x23, [x29, #HOST_CTXT_REGS + 8 * 22]
	ldp	x24, x25, [x29, #HOST_CTXT_REGS + 8 * 24]
	ldp	x26, x27, [x29, #HOST_CTXT_REGS + 8 * 26]
	ldr	x28, [x29, #HOST_CTXT_REGS + 8 * 28]
	ldr	x30, [x29, #HOST_CTXT_REGS + 8 * 30]
	ldr	x29, [x29, #HOST_CTXT_REGS + 8 * 29]
	eret
SYM_CODE_END(__host_enter_callee_saved)

/*
 * void __hyp_do_panic(u64 spsr, u64 elr, u64 par): leave for the host's
 * nvhe_hyp_panic_handler(esr, spsr, elr_virt, elr_phys, par, vcpu, far,
 * hpfar) at EL1. The handler's kernel VA is its hyp VA plus the offset
 * __kvm_hyp_init recorded, so the hyp image holds no absolute address.
 */
SYM_FUNC_START(__hyp_do_panic)
	mov	x9, #(PSR_DAIF_MASK | PSR_MODE_EL1h)
	msr	spsr_el2, x9
	adr_l	x9, nvhe_hyp_panic_handler
	adr_l	x10, hyp_kimg_offset
	ldr	x10, [x10]
	add	x9, x9, x10
	msr	elr_el2, x9

	mov	x4, x2				/* par */
	mov	x2, x1				/* elr_virt */
	ldr	x9, =HYP_VA_OFFSET
	sub	x3, x1, x9			/* elr_phys: hyp VA -> PA */
	mov	x1, x0				/* spsr */
	mrs	x0, esr_el2
	mov	x5, xzr				/* no vcpu is loaded */
	mrs	x6, far_el2
	mrs	x7, hpfar_el2

	get_host_ctxt x29, x30
	b	__host_enter_callee_saved
SYM_FUNC_END(__hyp_do_panic)

	.macro	invalid_vect
	.balign	128
	b	hyp_panic
	.endm

	.macro	host_vect
	.balign	128
	stp	x0, x1, [sp, #-16]!
	b	__host_exit
	.endm

/*
 * An exception taken at EL2 on SP_EL2. Hyp stacks (NVHE_STACK_SIZE, one
 * page in the lab) are placed so that bit NVHE_STACK_SHIFT of a valid SP
 * is 1 and, in the guard below, 0 (docs/platform.md). Test that bit without a scratch register: fold x0
 * into SP, take the old SP back out into x0, test it, then unfold both.
 * On overflow SP and x0 are lost, which is fine: we switch to this CPU's
 * overflow stack and panic. x29 and x30 are untouched so that the unwind
 * continues from the frame that overflowed.
 */
	.macro	hyp_el2_vect
	.balign	128
	add	sp, sp, x0			/* sp = sp0 + x0_0 */
	sub	x0, sp, x0			/* x0 = sp0 */
	tbz	x0, #NVHE_STACK_SHIFT, .Lhyp_stack_overflow\@
	sub	x0, sp, x0			/* x0 = x0_0 */
	sub	sp, sp, x0			/* sp = sp0 */
	b	hyp_panic
.Lhyp_stack_overflow\@:
	adr_l	x0, overflow_stack + OVERFLOW_STACK_SIZE
	mov	sp, x0
	mrs	x0, tpidr_el2
	add	sp, sp, x0
	b	hyp_panic_bad_stack
	.endm

	.balign	2048
SYM_CODE_START(__kvm_hyp_host_vector)
	invalid_vect		/* Synchronous EL2t */
	invalid_vect		/* IRQ EL2t */
	invalid_vect		/* FIQ EL2t */
	invalid_vect		/* Error EL2t */

	hyp_el2_vect		/* Synchronous EL2h */
	hyp_el2_vect		/* IRQ EL2h */
	hyp_el2_vect		/* FIQ EL2h */
	hyp_el2_vect		/* Error EL2h */

	host_vect		/* Synchronous 64-bit EL1 */
	invalid_vect		/* IRQ 64-bit EL1 */
	invalid_vect		/* FIQ 64-bit EL1 */
	invalid_vect		/* Error 64-bit EL1 */

	invalid_vect		/* Synchronous 32-bit EL1 */
	invalid_vect		/* IRQ 32-bit EL1 */
	invalid_vect		/* FIQ 32-bit EL1 */
	invalid_vect		/* Error 32-bit EL1 */
SYM_CODE_END(__kvm_hyp_host_vector)
