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
#include <percpu.h>

/*
 * The kernel VA of the bottom of each CPU's hyp stack page, a host
 * per-CPU variable as in the kernel (arch/arm64/kvm/arm.c): the tree
 * translates hyp stack addresses by their offset from it.
 */
DEFINE_PER_CPU(unsigned long, kvm_arm_hyp_stack_page);

/*
 * Called by host_main() at boot. Only this CPU's copy is written: another
 * CPU's per-CPU data must stay untouched (the harness checks it), and a
 * run only ever unwinds the CPU that panicked.
 */
void kvm_compat_host_init(void)
{
	*this_cpu_ptr(&kvm_arm_hyp_stack_page) =
		(unsigned long)kvm_arm_hyp_stack_pages[smp_processor_id()];
}
