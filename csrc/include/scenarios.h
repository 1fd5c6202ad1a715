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
	  "a fault taken with SP on the overflow stack: the vector tests its PAGE_SHIFT bit") \
	S(brk_not_bug,							\
	  "brk #0x801 (BUG's comment and bit 0) with a guest abort's FAR/HPFAR/PAR: a panic, not a BUG") \
	S(brk_not_bug_high,						\
	  "brk #0x8800 (BUG's comment and bit 15): a panic, not a BUG") \
	S(fault_at_function_entry,					\
	  "a fault on a function's first instruction: %pB of ELR names the function before it") \
	S(bug_at_function_entry,					\
	  "BUG() as a function's first instruction: %pB names the function before it") \
	S(brk_not_bug_low,						\
	  "brk #0x100 (below BUG's comment): a panic, not a BUG") \
	S(hvc_at_el2,							\
	  "hvc #0x800 at EL2: BUG's immediate in the ESR, but EC 0x16: a panic, not a BUG") \
	S(invalid_aarch32_exception,					\
	  "hyp_panic() with SPSR_EL2 in AArch32 System mode (M[3:0] = 0xf): invalid host exception") \
	S(wild_jump,							\
	  "a call through a corrupt pointer to the hyp VA range's top: ELR in no symbol, wrapped address")

#define __SCENARIO_ENUM(name, help)	SCENARIO_##name,
enum nvhe_scenario {
	NVHE_SCENARIOS(__SCENARIO_ENUM)
	NR_SCENARIOS
};
#undef __SCENARIO_ENUM

#endif /* __SCENARIOS_H */
