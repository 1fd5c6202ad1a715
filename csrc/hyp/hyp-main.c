// SPDX-License-Identifier: GPL-2.0
/*
 * Hypervisor trap handling: a host HVC lands in handle_trap(), which
 * dispatches on the function number in x0; a result goes back in x1.
 */
#include <nvhe/hyp.h>
#include <asm/sysreg.h>

/* Set by __kvm_hyp_init. */
unsigned long hyp_kimg_offset;
unsigned long hyp_boot_flags;
DEFINE_PER_CPU(unsigned long, hyp_cpu_number);
DEFINE_PER_CPU(struct kvm_cpu_context, host_ctxt);

static noipa u64 __kvm_smoke(u64 arg)
{
	return arg * 3 + 1;
}

static noipa void handle___kvm_smoke(struct kvm_cpu_context *host_ctxt)
{
	host_ctxt->regs[1] = __kvm_smoke(host_ctxt->regs[1]);
}

static noipa void handle___kvm_nested_panic(struct kvm_cpu_context *host_ctxt)
{
	__kvm_nested_panic();
	host_ctxt->regs[1] = 0;
}

static noipa void handle___kvm_recursive_death(struct kvm_cpu_context *host_ctxt)
{
	host_ctxt->regs[1] = __kvm_recursive_death();
}

static noipa void handle___kvm_bug(struct kvm_cpu_context *host_ctxt)
{
	__kvm_bug();
	host_ctxt->regs[1] = 0;
}

/*
 * Panic while handling the host's trap: SPSR_EL2 still describes the
 * host at EL1, so the host reports an invalid host exception.
 */
static noipa void
handle___kvm_invalid_host_exception(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	hyp_panic();
}

static noipa void handle___kvm_packed_stacks(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_packed_stacks();
}

static noipa void handle___kvm_el2t_fault(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_el2t_fault();
}

static noipa void handle___kvm_fault_at_stack_top(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_fault_at_stack_top();
}

static noipa void
handle___kvm_fault_on_overflow_stack(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_fault_on_overflow_stack();
}

static noipa void handle___kvm_brk_not_bug(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_brk_not_bug();
}

static noipa void handle___kvm_brk_not_bug_high(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_brk_not_bug_high();
}

static noipa void handle___kvm_fault_at_function_entry(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_fault_at_function_entry();
}

static noipa void handle___kvm_bug_at_function_entry(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_bug_at_function_entry();
}

static noipa void handle___kvm_brk_not_bug_low(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_brk_not_bug_low();
}

static noipa void handle___kvm_hvc_at_el2(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_hvc_at_el2();
}

static noipa void handle___kvm_invalid_aarch32_exception(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_invalid_aarch32_exception();
}

static noipa void handle___kvm_wild_jump(struct kvm_cpu_context *host_ctxt)
{
	(void)host_ctxt;
	__kvm_wild_jump();
}

/* Test only: what the harness's bounds watch must catch. */
static noipa void handle___kvm_buffer_overrun_probe(struct kvm_cpu_context *host_ctxt)
{
	host_ctxt->regs[1] = trace_buffer_overrun_probe();
}

static __always_inline void handle_host_hcall(struct kvm_cpu_context *host_ctxt)
{
	switch (host_ctxt->regs[0]) {
	case __KVM_HOST_SMCCC_FUNC___kvm_smoke:
		handle___kvm_smoke(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_nested_panic:
		handle___kvm_nested_panic(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_recursive_death:
		handle___kvm_recursive_death(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_bug:
		handle___kvm_bug(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_invalid_host_exception:
		handle___kvm_invalid_host_exception(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_buffer_overrun_probe:
		handle___kvm_buffer_overrun_probe(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_packed_stacks:
		handle___kvm_packed_stacks(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_el2t_fault:
		handle___kvm_el2t_fault(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_fault_at_stack_top:
		handle___kvm_fault_at_stack_top(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_fault_on_overflow_stack:
		handle___kvm_fault_on_overflow_stack(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug:
		handle___kvm_brk_not_bug(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug_high:
		handle___kvm_brk_not_bug_high(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_fault_at_function_entry:
		handle___kvm_fault_at_function_entry(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_bug_at_function_entry:
		handle___kvm_bug_at_function_entry(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug_low:
		handle___kvm_brk_not_bug_low(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_hvc_at_el2:
		handle___kvm_hvc_at_el2(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_invalid_aarch32_exception:
		handle___kvm_invalid_aarch32_exception(host_ctxt);
		break;
	case __KVM_HOST_SMCCC_FUNC___kvm_wild_jump:
		handle___kvm_wild_jump(host_ctxt);
		break;
	default:
		host_ctxt->regs[1] = (u64)-1;
		break;
	}
}

void handle_trap(struct kvm_cpu_context *host_ctxt)
{
	u64 esr = read_sysreg(esr_el2);

	switch (ESR_ELx_EC(esr)) {
	case ESR_ELx_EC_HVC64:
		handle_host_hcall(host_ctxt);
		break;
	default:
		hyp_panic();
	}
}
