/* SPDX-License-Identifier: GPL-2.0 */
/* Declarations shared by the hypervisor's own objects (EL2 only). */
#ifndef __NVHE_HYP_H
#define __NVHE_HYP_H

#include <compiler.h>
#include <kvm_asm.h>
#include <percpu.h>
#include <platform.h>
#include <types.h>

/* Set by __kvm_hyp_init. */
extern unsigned long hyp_kimg_offset;
extern unsigned long hyp_boot_flags;
DECLARE_PER_CPU(unsigned long, hyp_cpu_number);

static inline bool is_protected_kvm_enabled(void)
{
	return READ_ONCE(hyp_boot_flags) & BOOT_FLAG_PROTECTED;
}

static inline unsigned long hyp_smp_processor_id(void)
{
	return *this_cpu_ptr(&hyp_cpu_number);
}

void __noreturn hyp_panic(void);
void __noreturn hyp_panic_bad_stack(void);
void __noreturn __hyp_do_panic(u64 spsr, u64 elr, u64 par);
void kvm_nvhe_prepare_backtrace(unsigned long fp, unsigned long pc);
unsigned long trace_buffer_overrun_probe(void);
void handle_trap(struct kvm_cpu_context *host_ctxt);

/* Scenario code (scenarios.c). */
void __kvm_nested_panic(void);
unsigned long __kvm_recursive_death(void);
void __kvm_bug(void);
void __noreturn __kvm_packed_stacks(void);
void __kvm_el2t_fault(void);
void __kvm_fault_at_stack_top(void);
void __kvm_fault_on_overflow_stack(void);
void __kvm_brk_not_bug(void);
void __kvm_brk_not_bug_high(void);
void __kvm_fault_at_function_entry(void);
void __kvm_bug_at_function_entry(void);
void __kvm_brk_not_bug_low(void);
void __kvm_hvc_at_el2(void);
void __kvm_invalid_aarch32_exception(void);
void __kvm_wild_jump(void);

#endif /* __NVHE_HYP_H */
