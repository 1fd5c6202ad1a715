/* SPDX-License-Identifier: GPL-2.0 */
/*
 * First code run on a CPU: the platform enters here at EL2 (see
 * docs/platform.md, "Boot protocol") with
 *   x0 = CPU number, x1 = boot flags, x2 = kernel VA of host_entry,
 *   x3 = PA of _text.
 * Install the hypervisor vectors, stack and per-CPU offset, its VA size
 * and, with ARM64_PTR_AUTH_KERNEL, its APIA key and SCTLR_EL2.EnIA, then
 * drop to the host at EL1 with x0..x3 unchanged.
 */
#include <platform.h>
#include <asm/assembler.h>
#include <asm/pointer_auth.h>
#include <asm/sysreg.h>

#ifdef CONFIG_ARM64_PTR_AUTH_KERNEL
#define HCR_PTR_AUTH		(HCR_API | HCR_APK)
#define SCTLR_EL2_PTR_AUTH	SCTLR_ELx_ENIA
#else
#define HCR_PTR_AUTH		0
#define SCTLR_EL2_PTR_AUTH	0
#endif
#ifdef CONFIG_ARM64_BTI_KERNEL
#define SCTLR_EL2_BTI		SCTLR_EL2_BT
#else
#define SCTLR_EL2_BTI		0
#endif

	.text

SYM_CODE_START(__kvm_hyp_init)
	adr_l	x9, __kvm_hyp_host_vector
	msr	vbar_el2, x9

	/*
	 * SP_EL2 = top of this CPU's private stack, which sits at odd
	 * index 2n + 1 (in NVHE_STACK_SIZE units) above HYP_STACK_VA_BASE.
	 */
	ldr	x9, =HYP_STACK_VA_BASE + 2 * NVHE_STACK_SIZE
	add	x9, x9, x0, lsl #(NVHE_STACK_SHIFT + 1)
	mov	sp, x9

	ldr	x9, =HYP_PERCPU_STRIDE
	mul	x9, x9, x0
	msr	tpidr_el2, x9

#ifdef NVHE_KERNEL_UNWINDER
	/*
	 * A kernel tree's unwinder finds this CPU's hyp stack through
	 * kvm_init_params.stack_hyp_va, the stack's top (offset 0 of the
	 * struct, see csrc/kcompat/hyp_glue.c).
	 */
	adr_l	x10, kvm_init_params
	mov	x11, sp
	str	x11, [x10, x9]
#endif

	/* EL1 uses pointer authentication without trapping here. */
	ldr	x9, =HCR_RW | HCR_PTR_AUTH
	msr	hcr_el2, x9

	/*
	 * The hyp's VA size, which is also where a PAC starts in its
	 * pointers. (Translation itself is the platform's.)
	 */
	ldr	x9, =TCR_EL2_RES1 | TCR_T0SZ(HYP_VA_BITS)
	msr	tcr_el2, x9

#ifdef CONFIG_ARM64_PTR_AUTH_KERNEL
	/*
	 * The hypervisor's APIA key. The host replaces it with its own
	 * before it calls C; __host_exit installs it again on every entry.
	 */
	ldr	x9, =HYP_APIA_KEY_LO
	msr	SYS_APIAKEYLO_EL1, x9
	ldr	x9, =HYP_APIA_KEY_HI
	msr	SYS_APIAKEYHI_EL1, x9
#endif
	/* Before any C runs at EL2: signing on (EnIA), BTI's BT. */
	mrs	x9, sctlr_el2
	ldr	x10, =SCTLR_EL2_PTR_AUTH | SCTLR_EL2_BTI
	orr	x9, x9, x10
	msr	sctlr_el2, x9
	isb

	/*
	 * Remember how far the kernel image mapping is from the hyp alias
	 * of the same bytes, so that the hypervisor can hand the host a
	 * kernel VA (its panic handler) without any absolute address in
	 * its own image.
	 */
	adr_l	x9, host_entry
	sub	x9, x2, x9
	adr_l	x10, hyp_kimg_offset
	str	x9, [x10]

	adr_l	x10, hyp_boot_flags
	str	x1, [x10]
	adr_l	x10, hyp_cpu_number
	mrs	x9, tpidr_el2
	str	x0, [x10, x9]

	mov	x9, #(PSR_DAIF_MASK | PSR_MODE_EL1h)
	msr	spsr_el2, x9
	msr	elr_el2, x2
	mov	x29, xzr
	mov	x30, xzr
	eret
SYM_CODE_END(__kvm_hyp_init)
