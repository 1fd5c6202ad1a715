/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The hypercall interface between host and hypervisor: function numbers
 * passed in x0 with an HVC, and the layout of the saved host context.
 */
#ifndef __KVM_ASM_H
#define __KVM_ASM_H

/* Hypercall numbers (x0 on HVC). The result comes back in x1. */
#define __KVM_HOST_SMCCC_FUNC___kvm_smoke		1

/* Saved host context: x0..x30 at 8 * n. */
#define HOST_CTXT_REGS		0
#define HOST_CTXT_SIZE		(31 * 8)

#ifndef __ASSEMBLER__
#include <types.h>

struct kvm_cpu_context {
	u64 regs[31];
};
#endif

#endif /* __KVM_ASM_H */
