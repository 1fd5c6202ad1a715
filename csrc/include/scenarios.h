/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The scenarios a run can ask for (platform register PLATFORM_SCENARIO
 * holds the index). The host lists their names and descriptions in the
 * .scenario_names section, where the harness reads them: this list is the
 * only place they are defined.
 */
#ifndef __SCENARIOS_H
#define __SCENARIOS_H

#define NVHE_SCENARIOS(S)						\
	S(smoke,							\
	  "host makes an HVC, the hypervisor computes a value, the host prints it") \
	S(hyp_panic,							\
	  "hyp calls a -> b -> c; c faults on an unmapped hyp VA and the vector calls hyp_panic()") \
	S(stack_overflow,						\
	  "recursive_death() at EL2 until the guard page; trace crosses overflow -> hyp stack") \
	S(bug,								\
	  "BUG() at depth two in the hypervisor")			\
	S(invalid_host_exception,					\
	  "the hyp panic path entered for an exception whose SPSR mode is not EL2") \
	S(unwind_selftest,						\
	  "host only: the shared unwinder on crafted frame records, one line per rule") \
	S(isolation_probe,						\
	  "test only: the host reads a hyp stack page; protected mode must stop it") \
	S(buffer_overrun_probe,						\
	  "test only: the hyp writes one entry past its trace buffer; the harness must see it") \
	S(packed_stacks,						\
	  "hyp_panic() called on a scratch stack, so the hyp and overflow stacks are both free") \
	S(el2t_fault,							\
	  "a fault taken at EL2 on SP_EL0 (EL2t): the vector's EL2t entry calls hyp_panic()") \
	S(fault_at_stack_top,						\
	  "a fault taken with SP exactly at the hyp stack's top: its PAGE_SHIFT bit is 0") \
	S(fault_on_overflow_stack,					\
	  "a fault taken with SP on the overflow stack: the vector tests its PAGE_SHIFT bit")

#define __SCENARIO_ENUM(name, help)	SCENARIO_##name,
enum nvhe_scenario {
	NVHE_SCENARIOS(__SCENARIO_ENUM)
	NR_SCENARIOS
};
#undef __SCENARIO_ENUM

#endif /* __SCENARIOS_H */
