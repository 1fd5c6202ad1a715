// SPDX-License-Identifier: GPL-2.0
/*
 * Hypervisor trap handling: a host HVC lands in handle_trap(), which
 * dispatches on the function number in x0 and returns the result in x1.
 */
#include <compiler.h>
#include <kvm_asm.h>
#include <percpu.h>
#include <types.h>
#include <asm/sysreg.h>

/* Set by __kvm_hyp_init. */
unsigned long hyp_kimg_offset;
unsigned long hyp_boot_flags;
DEFINE_PER_CPU(unsigned long, hyp_cpu_number);
DEFINE_PER_CPU(struct kvm_cpu_context, host_ctxt);

void handle_trap(struct kvm_cpu_context *host_ctxt);

static noinline u64 __kvm_smoke(u64 arg)
{
	return arg * 3 + 1;
}

static noinline void handle___kvm_smoke(struct kvm_cpu_context *host_ctxt)
{
	host_ctxt->regs[1] = __kvm_smoke(host_ctxt->regs[1]);
}

static void handle_host_hcall(struct kvm_cpu_context *host_ctxt)
{
	switch (host_ctxt->regs[0]) {
	case __KVM_HOST_SMCCC_FUNC___kvm_smoke:
		handle___kvm_smoke(host_ctxt);
		break;
	default:
		host_ctxt->regs[1] = (u64)-1;
		break;
	}
}

void handle_trap(struct kvm_cpu_context *host_ctxt)
{
	u64 esr = read_sysreg(esr_el2);

	if (ESR_ELx_EC(esr) == ESR_ELx_EC_HVC64)
		handle_host_hcall(host_ctxt);
}
