/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat, 7.x, host side: arch/arm64/kvm/stacktrace.c includes
 * <asm/kvm_mmu.h> for __hyp_va_bits, the size of the hypervisor's VA space,
 * with which it masks hyp return addresses (6.12 and before masked with
 * vabits_actual). The kernel sets it once at KVM init; the lab's host
 * glue (csrc/kcompat/host_glue.c) holds the lab hyp's HYP_VA_BITS.
 */
#ifndef __KCOMPAT_ASM_KVM_MMU_H
#define __KCOMPAT_ASM_KVM_MMU_H

#ifdef __KVM_NVHE_HYPERVISOR__
#error "asm/kvm_mmu.h is for host (EL1) objects only"
#endif

#include <linux/types.h>

extern u32 __hyp_va_bits;

#endif
