// SPDX-License-Identifier: GPL-2.0
/*
 * The hypervisor's panic path: record where the unwind starts (or, in
 * protected mode, unwind right here), then leave for the host.
 */
#include <nvhe/hyp.h>
#include <asm/current_pc.h>
#include <asm/sysreg.h>

void __noreturn hyp_panic(void)
{
	u64 spsr = read_sysreg(spsr_el2);
	u64 elr = read_sysreg(elr_el2);
	u64 par = read_sysreg(par_el1);

	kvm_nvhe_prepare_backtrace((unsigned long)__builtin_frame_address(0),
				   current_pc());
	__hyp_do_panic(spsr, elr, par);
}

/*
 * Entered by a branch from the vectors, already on the overflow stack, with
 * the overflowing code's fp and lr still in x29 and x30: the frame record
 * made here links the overflow stack back to the hyp stack.
 */
void __noreturn hyp_panic_bad_stack(void)
{
	hyp_panic();
}
