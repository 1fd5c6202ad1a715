/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: what the unwinder uses of the host/hyp interface.
 *
 * struct kvm_nvhe_stacktrace_info is the lab's (stacktrace/nvhe.h): the
 * same four fields, stack_base, overflow_stack_base, fp and pc.
 *
 * struct kvm_nvhe_init_params keeps only the field the unwinder reads:
 * stack_hyp_va, the hyp VA of the TOP of this CPU's hyp stack (the
 * kernel's convention). csrc/hyp/init.S stores it at offset 0 when it sets
 * SP; csrc/kcompat/hyp_glue.c asserts that offset.
 */
#ifndef __KCOMPAT_ASM_KVM_ASM_H
#define __KCOMPAT_ASM_KVM_ASM_H

#include <linux/types.h>
#include <asm/memory.h>

struct kvm_nvhe_init_params {
	unsigned long stack_hyp_va;
};

#endif
