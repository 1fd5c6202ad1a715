// SPDX-License-Identifier: GPL-2.0
/*
 * Hypervisor stacktraces.
 *
 * Non-protected mode: the host can read hyp memory, so the hypervisor only
 * records where its stacks are and where the unwind starts; the host
 * unwinds from EL1. Protected mode: the host may not read hyp memory, so
 * the hypervisor unwinds its own stack and saves the pcs in a per-CPU
 * buffer shared with the host (CONFIG_PROTECTED_NVHE_STACKTRACE).
 */
#include <nvhe/hyp.h>
#include <stacktrace/common.h>
#include <stacktrace/nvhe.h>

DEFINE_PER_CPU(unsigned long [OVERFLOW_STACK_SIZE / sizeof(long)], overflow_stack)
	__aligned(16);
DEFINE_PER_CPU(struct kvm_nvhe_stacktrace_info, kvm_stacktrace_info);

static unsigned long hyp_stack_base(void)
{
	return HYP_STACK_VA(hyp_smp_processor_id());
}

static unsigned long hyp_overflow_stack_base(void)
{
	return (unsigned long)this_cpu_ptr(&overflow_stack);
}

static void hyp_prepare_backtrace(unsigned long fp, unsigned long pc)
{
	struct kvm_nvhe_stacktrace_info *info = this_cpu_ptr(&kvm_stacktrace_info);

	info->stack_base = hyp_stack_base();
	info->overflow_stack_base = hyp_overflow_stack_base();
	info->fp = fp;
	info->pc = pc;
}

#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE
/* Shared with the host: its own section, outside hyp-private memory. */
unsigned long pkvm_stacktrace[NR_CPUS][NVHE_STACKTRACE_ENTRIES]
	__section(".data..shared") __aligned(8);

/* The hypervisor's own stacks, in its own (hyp VA) address space. */
static bool on_accessible_stack(unsigned long sp, unsigned long size,
				struct stack_info *info)
{
	unsigned long hyp = hyp_stack_base();
	unsigned long overflow = hyp_overflow_stack_base();

	return on_stack(sp, size, overflow, overflow + OVERFLOW_STACK_SIZE,
			STACK_TYPE_OVERFLOW, info) ||
	       on_stack(sp, size, hyp, hyp + NVHE_STACK_SIZE,
			STACK_TYPE_HYP, info);
}

struct pkvm_trace_buffer {
	unsigned long *entries;
	unsigned long used;
};

/* Save one pc; stop before the slot kept for the terminator. */
static bool pkvm_save_backtrace_entry(void *arg, unsigned long pc)
{
	struct pkvm_trace_buffer *buf = arg;

	if (buf->used >= NVHE_STACKTRACE_ENTRIES - 1)
		return false;
	buf->entries[buf->used++] = pc;
	buf->entries[buf->used] = 0;
	return true;
}

static void pkvm_save_backtrace(unsigned long fp, unsigned long pc)
{
	struct pkvm_trace_buffer buf = {
		.entries = pkvm_stacktrace[hyp_smp_processor_id()],
	};
	struct unwind_state state;

	buf.entries[0] = 0;
	unwind_init_common(&state, fp, pc);
	unwind_common(&state, on_accessible_stack, NULL,
		      pkvm_save_backtrace_entry, &buf);
}

/*
 * Test only (buffer_overrun_probe): write one entry past the end of this
 * CPU's buffer, the bug the terminator slot exists to prevent. Returns 1
 * if it wrote.
 */
unsigned long trace_buffer_overrun_probe(void)
{
	unsigned long *past_end = pkvm_stacktrace[hyp_smp_processor_id()] +
				  NVHE_STACKTRACE_ENTRIES;

	/* Deliberate: keep GCC's array-bounds check from refusing to build it. */
	__asm__("" : "+r" (past_end));
	WRITE_ONCE(*past_end, 0xbad);
	return 1;
}
#else
static void pkvm_save_backtrace(unsigned long fp, unsigned long pc)
{
	(void)fp;
	(void)pc;
}

unsigned long trace_buffer_overrun_probe(void)
{
	return 0;
}
#endif

void kvm_nvhe_prepare_backtrace(unsigned long fp, unsigned long pc)
{
	if (is_protected_kvm_enabled())
		pkvm_save_backtrace(fp, pc);
	else
		hyp_prepare_backtrace(fp, pc);
}
