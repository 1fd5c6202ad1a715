/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Naming hypervisor symbols from the host. Every hyp symbol carries the
 * __kvm_nvhe_ prefix in the final image; hyp per-CPU variables repeat
 * every HYP_PERCPU_STRIDE bytes, and the host reaches CPU n's copy through
 * the kernel-image mapping.
 */
#ifndef __NVHE_SYM_H
#define __NVHE_SYM_H

#include <platform.h>

#define kvm_nvhe_sym(sym)		__kvm_nvhe_##sym
#define DECLARE_KVM_NVHE_SYM(type, sym)	extern type kvm_nvhe_sym(sym)
#define per_cpu_ptr_nvhe_sym(sym, cpu)					\
	((__typeof__(&kvm_nvhe_sym(sym)))				\
	 ((unsigned long)&kvm_nvhe_sym(sym) + (cpu) * HYP_PERCPU_STRIDE))

#endif /* __NVHE_SYM_H */
