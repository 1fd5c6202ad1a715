// SPDX-License-Identifier: GPL-2.0
/*
 * Host kernel main: run the scenario the platform asks for.
 */
#include <compiler.h>
#include <kvm_asm.h>
#include <platform.h>
#include <platform_io.h>
#include <printk.h>
#include <types.h>

/* Backing pages of the hypervisor stacks, mapped privately at EL2. */
u8 kvm_arm_hyp_stack_pages[NR_CPUS][PAGE_SIZE]
	__section(".bss..hyp_stacks") __aligned(PAGE_SIZE);
u8 host_task_stacks[NR_CPUS][THREAD_SIZE]
	__section(".bss..task_stacks") __aligned(THREAD_SIZE);

void host_main(u64 cpu, u64 flags, u64 phys_text);

static u64 kvm_call_hyp(u64 func, u64 arg)
{
	register u64 x0 __asm__("x0") = func;
	register u64 x1 __asm__("x1") = arg;

	__asm__ __volatile__("hvc #0" : "+r" (x0), "+r" (x1) : : "memory");
	return x1;
}

void host_main(u64 cpu, u64 flags, u64 phys_text)
{
	u64 ret;

	(void)phys_text;
	kvm_err("CPU%lu up, %s mode\n", cpu,
		flags & BOOT_FLAG_PROTECTED ? "protected" : "nVHE");
	ret = kvm_call_hyp(__KVM_HOST_SMCCC_FUNC___kvm_smoke, 41);
	kvm_err("smoke: hypervisor returned %lu\n", ret);
	platform_exit(0);
}
