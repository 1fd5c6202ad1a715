// SPDX-License-Identifier: GPL-2.0
/*
 * Lab glue for a kernel tree's arch/arm64/kvm/stacktrace.c (EL1): the
 * symbols it leaves undefined, in the lab's terms. Compiled only when the
 * firmware is built against a tree (NVHE_KERNEL_SRC).
 *
 * Everything else it needs is bound at compile time by csrc/kcompat:
 * kaslr_offset(), is_protected_kvm_enabled() and smp_processor_id() are
 * the lab's (host.h), kvm_err() prints through the lab's printk, and
 * vabits_actual is VA_BITS.
 */
#include <host.h>
#include <kcompat_generation.h>
#include <percpu.h>
#include <types.h>

/*
 * The kernel VA of the bottom of each CPU's hyp stack, a host per-CPU
 * variable as in the kernel (arch/arm64/kvm/arm.c): the tree translates hyp
 * stack addresses by their offset from it. kvm_arm_hyp_stack_page in 6.1
 * and 6.12, kvm_arm_hyp_stack_base in 7.x (kcompat_generation.h).
 */
DEFINE_PER_CPU(unsigned long, KCOMPAT_HYP_STACK_BASE);

#ifdef KCOMPAT_HYP_VA_BITS_VARIABLE
/* 7.x: the size of the hyp's VA space, what KVM init sets it to once. */
u32 __hyp_va_bits = HYP_VA_BITS;
#endif

/*
 * Called by host_main() at boot. Only this CPU's copy is written: another
 * CPU's per-CPU data must stay untouched (the harness checks it), and a
 * run only ever unwinds the CPU that panicked.
 */
void kvm_compat_host_init(void)
{
	*this_cpu_ptr(&KCOMPAT_HYP_STACK_BASE) =
		(unsigned long)kvm_arm_hyp_stack_pages[smp_processor_id()];
}
