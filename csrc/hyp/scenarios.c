// SPDX-License-Identifier: GPL-2.0
/*
 * What the hypervisor does for each test scenario. Ordinary noinline C, so
 * that the frames the unwinder walks are the compiler's own.
 */
#include <bug.h>
#include <nvhe/hyp.h>

/* Never equal to a recursion depth; read at run time so GCC cannot tell. */
unsigned long recursion_stop = ~0UL;

/* The first guard page of the private stack range: never mapped. */
#define HYP_UNMAPPED_VA		HYP_STACK_VA_BASE

static noinline unsigned long nested_panic_c(void)
{
	return READ_ONCE(*(unsigned long *)HYP_UNMAPPED_VA);
}

static noinline unsigned long nested_panic_b(void)
{
	return nested_panic_c() + 1;
}

static noinline unsigned long nested_panic_a(void)
{
	return nested_panic_b() + 1;
}

/* a -> b -> c, and c faults: the vector sends the abort to hyp_panic(). */
noinline void __kvm_nested_panic(void)
{
	WRITE_ONCE(recursion_stop, recursion_stop + nested_panic_a());
}

static noinline unsigned long recursive_death(unsigned long depth)
{
	if (depth == READ_ONCE(recursion_stop))
		return depth;
	return recursive_death(depth + 1) + 1;
}

/* Recurse until SP falls into the guard page below the hyp stack. */
noinline unsigned long __kvm_recursive_death(void)
{
	return recursive_death(0);
}

static noinline void bug_depth2(void)
{
	if (READ_ONCE(recursion_stop))
		BUG();
}

static noinline void bug_depth1(void)
{
	bug_depth2();
	WRITE_ONCE(recursion_stop, 0);
}

noinline void __kvm_bug(void)
{
	bug_depth1();
}
