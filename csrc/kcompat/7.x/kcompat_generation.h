/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat, 7.x: the host's per-CPU kernel VA of each CPU's hyp stack
 * (NVHE_STACK_SIZE bytes) is kvm_arm_hyp_stack_base, and the host masks hyp
 * pcs with the variable __hyp_va_bits (asm/kvm_mmu.h), which the glue
 * defines.
 */
#ifndef __KCOMPAT_GENERATION_H
#define __KCOMPAT_GENERATION_H

#define KCOMPAT_HYP_STACK_BASE	kvm_arm_hyp_stack_base
#define KCOMPAT_HYP_VA_BITS_VARIABLE

#endif
