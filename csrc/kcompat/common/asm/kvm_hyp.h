/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat, hypervisor side: is_protected_kvm_enabled() and this CPU's
 * init params, as arch/arm64/kvm/hyp/nvhe/stacktrace.c uses them.
 */
#ifndef __KCOMPAT_ASM_KVM_HYP_H
#define __KCOMPAT_ASM_KVM_HYP_H

#ifndef __KVM_NVHE_HYPERVISOR__
#error "asm/kvm_hyp.h is for hypervisor (EL2) objects only"
#endif

#include <nvhe/hyp.h>		/* lab: is_protected_kvm_enabled(), kvm_nvhe_prepare_backtrace() */
#include <linux/stacktrace.h>
#include <asm/kvm_asm.h>
#include <asm/percpu.h>

/* Defined in csrc/kcompat/hyp_glue.c, filled by csrc/hyp/init.S. */
DECLARE_PER_CPU(struct kvm_nvhe_init_params, kvm_init_params);

#endif
