/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Host kernel entry, reached by the hypervisor's ERET at EL1 with
 *   x0 = CPU number, x1 = boot flags, x3 = PA of _text.
 * Sets up the stack, the per-CPU offset, the VA size and, with
 * ARM64_PTR_AUTH_KERNEL, the host's APIA key and SCTLR_EL1.EnIA, before
 * any C (which signs its return addresses) runs.
 */
#include <platform.h>
#include <asm/assembler.h>
#include <asm/pointer_auth.h>
#include <asm/sysreg.h>

#ifdef CONFIG_ARM64_PTR_AUTH_KERNEL
#define SCTLR_EL1_PTR_AUTH	SCTLR_ELx_ENIA
#else
#define SCTLR_EL1_PTR_AUTH	0
#endif
#ifdef CONFIG_ARM64_BTI_KERNEL
#define SCTLR_EL1_BTI		SCTLR_EL1_BT1
#else
#define SCTLR_EL1_BTI		0
#endif

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

	/* Both halves VA_BITS wide: a PAC in a kernel pointer starts there. */
	ldr	x9, =TCR_T1SZ(VA_BITS) | TCR_T0SZ(VA_BITS)
	msr	tcr_el1, x9

#ifdef CONFIG_ARM64_PTR_AUTH_KERNEL
	/* The host's APIA key (HCR_EL2.APK lets EL1 write it). */
	ldr	x9, =HOST_APIA_KEY_LO
	msr	SYS_APIAKEYLO_EL1, x9
	ldr	x9, =HOST_APIA_KEY_HI
	msr	SYS_APIAKEYHI_EL1, x9
#endif
	mrs	x9, sctlr_el1
	ldr	x10, =SCTLR_EL1_PTR_AUTH | SCTLR_EL1_BTI
	orr	x9, x9, x10
	msr	sctlr_el1, x9
	isb

	mov	x2, x3
	mov	x29, xzr
	mov	x30, xzr
	/*
	 * host_main() never returns, so this bl is host_entry's last
	 * instruction and the return address it leaves is host_halt, the
	 * next symbol: the host's call trace must still name host_entry
	 * (%pB looks up the address before a return address).
	 */
	bl	host_main
SYM_CODE_END(host_entry)

/* Where host_main() would return to, were it ever to. */
SYM_CODE_START(host_halt)
1:	wfi
	b	1b
	.ltorg
SYM_CODE_END(host_halt)
