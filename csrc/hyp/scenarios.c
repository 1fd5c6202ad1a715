// SPDX-License-Identifier: GPL-2.0
/*
 * What the hypervisor does for each test scenario. Ordinary noinline C, so
 * that the frames the unwinder walks are the compiler's own.
 */
#include <bug.h>
#include <nvhe/hyp.h>
#include <stacktrace/nvhe.h>

DECLARE_PER_CPU(unsigned long [OVERFLOW_STACK_SIZE / sizeof(long)], overflow_stack);

/* Never equal to a recursion depth; read at run time so GCC cannot tell. */
unsigned long recursion_stop = ~0UL;

/* The first guard page of the private stack range: never mapped. */
#define HYP_UNMAPPED_VA		HYP_STACK_VA_BASE

static noipa unsigned long nested_panic_c(void)
{
	return READ_ONCE(*(unsigned long *)HYP_UNMAPPED_VA);
}

static noipa unsigned long nested_panic_b(void)
{
	return nested_panic_c() + 1;
}

static noipa unsigned long nested_panic_a(void)
{
	return nested_panic_b() + 1;
}

/* a -> b -> c, and c faults: the vector sends the abort to hyp_panic(). */
noipa void __kvm_nested_panic(void)
{
	WRITE_ONCE(recursion_stop, recursion_stop + nested_panic_a());
}

/*
 * Ten arguments, so that two go on the stack: GCC then opens each frame
 * with "sub sp, sp, #N" before its first store, and the store that
 * overflows faults with SP already in the guard page, where the vector's
 * PAGE_SHIFT test sees it. (A frame opened by "stp x29, x30, [sp, #-N]!"
 * faults before the write-back: SP stays on the valid page and the test
 * cannot tell; the panic path would then fault again on the same page.)
 */
static noipa unsigned long recursive_death(unsigned long depth,
					      unsigned long a1, unsigned long a2,
					      unsigned long a3, unsigned long a4,
					      unsigned long a5, unsigned long a6,
					      unsigned long a7, unsigned long a8,
					      unsigned long a9)
{
	if (depth == READ_ONCE(recursion_stop))
		return depth + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9;
	return recursive_death(depth + 1, a1, a2, a3, a4, a5, a6, a7, a8, a9) + 1;
}

/* Recurse until SP falls into the guard page below the hyp stack. */
noipa unsigned long __kvm_recursive_death(void)
{
	return recursive_death(0, 1, 2, 3, 4, 5, 6, 7, 8, 9);
}

static noipa void bug_depth2(void)
{
	if (READ_ONCE(recursion_stop))
		BUG();
}

static noipa void bug_depth1(void)
{
	bug_depth2();
	WRITE_ONCE(recursion_stop, 0);
}

noipa void __kvm_bug(void)
{
	bug_depth1();
}

/*
 * A stack for hyp_panic() that is neither the hyp stack nor the overflow
 * stack: with the unwinder's own frames there, every 16-byte slot of both
 * stacks is free for the harness to fill with frame records (the
 * fault_packed_stacks scenario), so a trace can reach the protected
 * buffer's capacity. Without a harness, the unwind starts off every stack
 * and the trace is the start pc alone. The scratch stacks are the last
 * pages of RAM, through the hyp's alias of it: nothing else uses RAM past
 * the image (docs/platform.md), and they sit far above every per-CPU
 * variable, so no bounds watch mistakes them for an overflowing stack.
 */
#define SCRATCH_STACK_SIZE	2048

void __noreturn __kvm_packed_stacks(void)
{
	unsigned long top = PHYS_RAM_BASE + PHYS_RAM_SIZE + HYP_VA_OFFSET -
			    hyp_smp_processor_id() * SCRATCH_STACK_SIZE;

	/* No frame record of this function's callers is reachable from there. */
	__asm__ volatile("mov	sp, %0\n\t"
			 "mov	x29, xzr\n\t"
			 "bl	hyp_panic"
			 : : "r" (top) : "memory");
	__builtin_unreachable();
}

static noipa unsigned long el2t_fault_b(void)
{
	return READ_ONCE(*(unsigned long *)HYP_UNMAPPED_VA);
}

static noipa unsigned long el2t_fault_a(void)
{
	return el2t_fault_b() + 1;
}

/*
 * Run el2t_fault_a() at EL2 on SP_EL0 (EL2t), on this stack, and let it
 * fault: the exception is taken from EL2t to the vector's EL2t entry. Take
 * SP_EL2 2 KiB further down first, so that the exception's frames land
 * below the EL2t frames and the chain from hyp_panic climbs through them.
 */
noipa void __kvm_el2t_fault(void)
{
	__asm__ volatile("mov	x9, sp\n\t"
			 "sub	sp, sp, #2048\n\t"
			 "msr	sp_el0, x9\n\t"
			 "msr	spsel, #0\n\t"
			 "blr	%0\n\t"
			 "msr	spsel, #1\n\t"
			 "add	sp, sp, #2048"
			 : : "r" (el2t_fault_a)
			 : "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9",
			   "x10", "x11", "x12", "x13", "x14", "x15", "x16", "x17", "x30",
			   "memory");
}

/* Load from the unmapped hyp VA with SP at ``sp``: the fault's exception
 * reaches the vector with that SP. Nothing is pushed in between. */
static inline __attribute__((__always_inline__)) void fault_with_sp(unsigned long sp)
{
	__asm__ volatile("mov	sp, %0\n\t"
			 "ldr	x0, [%1]"
			 : : "r" (sp), "r" (HYP_UNMAPPED_VA) : "x0", "memory");
}

/*
 * SP exactly at the top of this CPU's hyp stack, an empty stack: the top
 * is the next page's first byte, whose PAGE_SHIFT bit is 0, so the vector
 * takes it for an overflow and moves to the overflow stack.
 */
noipa void __kvm_fault_at_stack_top(void)
{
	fault_with_sp(HYP_STACK_VA(hyp_smp_processor_id()) + NVHE_STACK_SIZE);
}

/*
 * SP inside this CPU's overflow stack when the exception is taken: the
 * vector tests the PAGE_SHIFT bit of an address it was never designed
 * for, so what it does depends on where the overflow stack sits (the
 * oracle predicts it from the same bit).
 */
noipa void __kvm_fault_on_overflow_stack(void)
{
	fault_with_sp((unsigned long)this_cpu_ptr(&overflow_stack) + OVERFLOW_STACK_SIZE / 2);
}
