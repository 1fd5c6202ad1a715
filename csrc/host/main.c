// SPDX-License-Identifier: GPL-2.0
/*
 * Host kernel main: note where the image runs, then run the scenario the
 * platform asks for.
 */
#include <host.h>
#include <kvm_asm.h>
#include <platform_io.h>
#include <printk.h>
#include <scenarios.h>

/* Backing pages of the hypervisor stacks, mapped privately at EL2. */
u8 kvm_arm_hyp_stack_pages[NR_CPUS][NVHE_STACK_SIZE]
	__section(".bss..hyp_stacks") __aligned(PAGE_SIZE);
u8 host_task_stacks[NR_CPUS][THREAD_SIZE]
	__section(".bss..task_stacks") __aligned(THREAD_SIZE);

unsigned long kimage_kaslr_offset;
unsigned long kimage_phys_text;
unsigned long boot_cpu;
bool kvm_protected_mode;

/* Names and descriptions, NUL-separated, for the harness to read. */
#define __SCENARIO_NAME(name, help)	#name "\0" help "\0"
__used __section(".scenario_names")
static const char scenario_names[] = NVHE_SCENARIOS(__SCENARIO_NAME);

void host_main(u64 cpu, u64 flags, u64 phys_text);

static noinline u64 kvm_call_hyp(u64 func, u64 arg)
{
	register u64 x0 __asm__("x0") = func;
	register u64 x1 __asm__("x1") = arg;

	__asm__ __volatile__("hvc #0" : "+r" (x0), "+r" (x1) : : "memory");
	return x1;
}

static noinline void run_smoke(void)
{
	u64 ret = kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_smoke, 41);

	kvm_err("smoke: hypervisor returned %lu\n", ret);
}

/* Test only: the host touching hyp memory, which protected mode forbids. */
static noinline void run_isolation_probe(void)
{
	u8 byte = READ_ONCE(kvm_arm_hyp_stack_pages[smp_processor_id()][0]);

	kvm_err("isolation_probe: host read the hyp stack page (%u)\n", byte);
}

static noinline void run_buffer_overrun_probe(void)
{
	u64 wrote = kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_buffer_overrun_probe, 0);

	kvm_err("buffer_overrun_probe: %s\n",
		wrote ? "hyp wrote past its trace buffer" : "no trace buffer");
}

static noinline void run_scenario(u64 scenario)
{
	switch (scenario) {
	case SCENARIO_smoke:
		run_smoke();
		return;
	case SCENARIO_hyp_panic:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_nested_panic, 0);
		break;
	case SCENARIO_stack_overflow:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_recursive_death, 0);
		break;
	case SCENARIO_bug:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_bug, 0);
		break;
	case SCENARIO_invalid_host_exception:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_invalid_host_exception, 0);
		break;
	case SCENARIO_unwind_selftest:
		unwind_selftest();
		return;
	case SCENARIO_isolation_probe:
		run_isolation_probe();
		return;
	case SCENARIO_buffer_overrun_probe:
		run_buffer_overrun_probe();
		return;
	case SCENARIO_packed_stacks:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_packed_stacks, 0);
		break;
	case SCENARIO_el2t_fault:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_el2t_fault, 0);
		break;
	case SCENARIO_fault_at_stack_top:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_fault_at_stack_top, 0);
		break;
	case SCENARIO_fault_on_overflow_stack:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_fault_on_overflow_stack, 0);
		break;
	case SCENARIO_brk_not_bug:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug, 0);
		break;
	case SCENARIO_brk_not_bug_high:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug_high, 0);
		break;
	case SCENARIO_fault_at_function_entry:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_fault_at_function_entry, 0);
		break;
	case SCENARIO_bug_at_function_entry:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_bug_at_function_entry, 0);
		break;
	case SCENARIO_brk_not_bug_low:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_brk_not_bug_low, 0);
		break;
	case SCENARIO_hvc_at_el2:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_hvc_at_el2, 0);
		break;
	case SCENARIO_invalid_aarch32_exception:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_invalid_aarch32_exception, 0);
		break;
	case SCENARIO_wild_jump:
		kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_wild_jump, 0);
		break;
	default:
		panic("unknown scenario %lu\n", scenario);
	}
	panic("scenario %lu returned from the hypervisor\n", scenario);
}

void host_main(u64 cpu, u64 flags, u64 phys_text)
{
	console_init();
	boot_cpu = cpu;
	kvm_protected_mode = flags & BOOT_FLAG_PROTECTED;
	kimage_phys_text = phys_text;
	kimage_kaslr_offset = (unsigned long)_text - KIMAGE_VADDR;
#ifdef NVHE_KERNEL_UNWINDER
	kvm_compat_host_init();
#endif

	run_scenario(platform_read(PLATFORM_SCENARIO));
	platform_exit(EXIT_STATUS_OK);
}
