// SPDX-License-Identifier: GPL-2.0
/*
 * Lab glue for a kernel tree's arch/arm64/kvm/hyp/nvhe/stacktrace.c (EL2):
 * the symbols it leaves undefined, in the lab's terms. Compiled only when
 * the firmware is built against a tree (NVHE_KERNEL_SRC).
 *
 * The tree's file itself defines overflow_stack (the vectors in
 * csrc/hyp/host.S switch to it), kvm_stacktrace_info, pkvm_stacktrace and
 * kvm_nvhe_prepare_backtrace() (called by hyp_panic() in csrc/hyp/switch.c).
 */
#include <stddef.h>
#include <asm/kvm_asm.h>
#include <asm/kvm_hyp.h>
#include <asm/memory.h>
#include <asm/percpu.h>

/*
 * Only stack_hyp_va is used: the top of this CPU's hyp stack, stored by
 * csrc/hyp/init.S when it sets SP. The tree takes the stack to be the
 * PAGE_SIZE (6.1, 6.12) or NVHE_STACK_SIZE (7.x) bytes below it, which is
 * the lab's HYP_STACK_VA(cpu) stack: NVHE_STACK_SIZE is the tree's own
 * (platform.h), and one page in trees before 7.x.
 */
DEFINE_PER_CPU(struct kvm_nvhe_init_params, kvm_init_params);

_Static_assert(offsetof(struct kvm_nvhe_init_params, stack_hyp_va) == 0,
	       "csrc/hyp/init.S stores stack_hyp_va at offset 0");

#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE
DECLARE_PER_CPU(unsigned long [NVHE_STACKTRACE_SIZE / sizeof(long)], pkvm_stacktrace);

/*
 * Test only (buffer_overrun_probe): write one entry past the end of this
 * CPU's buffer, which the harness's bounds watch must catch. Returns 1 if
 * it wrote.
 */
unsigned long trace_buffer_overrun_probe(void)
{
	unsigned long *past_end = this_cpu_ptr(pkvm_stacktrace) +
				  ARRAY_SIZE(pkvm_stacktrace);

	/* Deliberate: keep GCC's array-bounds check from refusing to build it. */
	__asm__("" : "+r" (past_end));
	WRITE_ONCE(*past_end, 0xbad);
	return 1;
}
#else
unsigned long trace_buffer_overrun_probe(void)
{
	return 0;
}
#endif
