/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hypercall interface between host and hypervisor: function numbers
 * passed in x0 with an HVC, and the layout of the saved host context.
 */
#ifndef __KVM_ASM_H
#define __KVM_ASM_H

/* Hypercall numbers (x0 on HVC). A result comes back in x1. */
#define __KVM_HOST_SMCCC_FUNC___kvm_smoke			1
#define __KVM_HOST_SMCCC_FUNC___kvm_nested_panic		2
#define __KVM_HOST_SMCCC_FUNC___kvm_recursive_death		3
#define __KVM_HOST_SMCCC_FUNC___kvm_bug				4
#define __KVM_HOST_SMCCC_FUNC___kvm_invalid_host_exception	5
#define __KVM_HOST_SMCCC_FUNC___kvm_buffer_overrun_probe	6
#define __KVM_HOST_SMCCC_FUNC___kvm_packed_stacks		7
#define __KVM_HOST_SMCCC_FUNC___kvm_el2t_fault			8
#define __KVM_HOST_SMCCC_FUNC___kvm_fault_at_stack_top		9
#define __KVM_HOST_SMCCC_FUNC___kvm_fault_on_overflow_stack	10
#define __KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug			11
#define __KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug_high		12
#define __KVM_HOST_SMCCC_FUNC___kvm_fault_at_function_entry	13
#define __KVM_HOST_SMCCC_FUNC___kvm_bug_at_function_entry	14
#define __KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug_low		15
#define __KVM_HOST_SMCCC_FUNC___kvm_hvc_at_el2			16
#define __KVM_HOST_SMCCC_FUNC___kvm_invalid_aarch32_exception	17
#define __KVM_HOST_SMCCC_FUNC___kvm_wild_jump			18

/*
 * Saved host context: x0..x30 at 8 * n, then the host's APIA key (lo, hi)
 * while the hypervisor runs with its own (ARM64_PTR_AUTH_KERNEL).
 */
#define HOST_CTXT_REGS		0
#define HOST_CTXT_APIAKEY	(31 * 8)
#define HOST_CTXT_SIZE		(33 * 8)

#ifndef __ASSEMBLER__
#include <types.h>

struct kvm_cpu_context {
	u64 regs[31];
	u64 apiakey[2];
};

/* The host's handler for a hypervisor panic, entered by ERET from EL2. */
void nvhe_hyp_panic_handler(u64 esr, u64 spsr, u64 elr_virt, u64 elr_phys,
			    u64 par, uintptr_t vcpu, u64 far, u64 hpfar);
#endif

#endif /* __KVM_ASM_H */
