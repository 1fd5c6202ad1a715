// SPDX-License-Identifier: GPL-2.0
/*
 * The host's handling of a hypervisor panic: say where the hypervisor
 * died, dump its call trace, then panic the host.
 */
#include <bug.h>
#include <host.h>
#include <kvm_asm.h>
#include <nvhe_sym.h>
#include <printk.h>
#include <stacktrace/common.h>
#include <stacktrace/nvhe.h>
#include <asm/sysreg.h>

DECLARE_KVM_NVHE_SYM(struct kvm_nvhe_stacktrace_info, kvm_stacktrace_info);
DECLARE_KVM_NVHE_SYM(unsigned long, overflow_stack[OVERFLOW_STACK_SIZE / sizeof(long)]);
#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE
DECLARE_KVM_NVHE_SYM(unsigned long,
		     pkvm_stacktrace[NR_CPUS][NVHE_STACKTRACE_ENTRIES]);
#endif
extern const struct bug_entry __hyp_bug_table_start[], __hyp_bug_table_end[];

#define PSR_MODE_EL2t		0x00000008
#define ESR_ELx_BRK64_ISS_COMMENT_MASK	0xffff

/*
 * The lab's dump of the hyp call trace. Built against a kernel tree
 * (NVHE_KERNEL_UNWINDER), the tree's arch/arm64/kvm/stacktrace.c provides
 * kvm_nvhe_dump_backtrace() instead (declared in host.h).
 */
#ifndef NVHE_KERNEL_UNWINDER
/*
 * Hyp pcs may carry tag or PAC bits above the hyp's VA size (its
 * TCR_EL2.T0SZ, where a PAC starts): keep HYP_VA_BITS of them.
 */
#define HYP_VA_MASK		((1UL << HYP_VA_BITS) - 1)

static void kvm_nvhe_dump_backtrace_start(void)
{
	if (is_protected_kvm_enabled())
		kvm_err("Protected nVHE HYP call trace:\n");
	else
		kvm_err("Non-protected nVHE HYP call trace:\n");
}

static void kvm_nvhe_dump_backtrace_end(void)
{
	if (is_protected_kvm_enabled())
		kvm_err("---- End of Protected nVHE HYP call trace ----\n");
	else
		kvm_err("---- End of Non-protected nVHE HYP call trace ----\n");
}

/*
 * Print one hyp pc: as its link-time kernel address (tag bits masked, hyp
 * offset added), which matches the ELF whatever the KASLR offset, and
 * symbolized at the run-time address by the %pB rule.
 */
static bool kvm_nvhe_dump_backtrace_entry(void *arg, unsigned long where)
{
	unsigned long hyp_offset = *(unsigned long *)arg;

	where &= HYP_VA_MASK;
	where += hyp_offset;
	kvm_err(" [<%016lx>] %pB\n", where, (void *)(where + kaslr_offset()));
	return true;
}

/* Non-protected mode: the hyp stacks of the CPU that panicked, in hyp VAs. */
static struct kvm_nvhe_stacktrace_info *hyp_stacktrace_info(void)
{
	return per_cpu_ptr_nvhe_sym(kvm_stacktrace_info, smp_processor_id());
}

static bool hyp_on_accessible_stack(unsigned long sp, unsigned long size,
				    struct stack_info *info)
{
	struct kvm_nvhe_stacktrace_info *st = hyp_stacktrace_info();
	unsigned long overflow = st->overflow_stack_base;
	unsigned long hyp = st->stack_base;

	return on_stack(sp, size, overflow, overflow + OVERFLOW_STACK_SIZE,
			STACK_TYPE_OVERFLOW, info) ||
	       on_stack(sp, size, hyp, hyp + NVHE_STACK_SIZE,
			STACK_TYPE_HYP, info);
}

/*
 * Translate a hyp stack address into the kernel VA of the same byte: the
 * host maps each hyp stack through the kernel image, so keep the offset
 * from that stack's base and swap the base.
 */
static bool hyp_stack_addr_to_kern_va(unsigned long *addr, enum stack_type type)
{
	struct kvm_nvhe_stacktrace_info *st = hyp_stacktrace_info();
	unsigned long cpu = smp_processor_id();
	unsigned long hyp_base, kern_base;

	switch (type) {
	case STACK_TYPE_HYP:
		hyp_base = st->stack_base;
		kern_base = (unsigned long)kvm_arm_hyp_stack_pages[cpu];
		break;
	case STACK_TYPE_OVERFLOW:
		hyp_base = st->overflow_stack_base;
		kern_base = (unsigned long)per_cpu_ptr_nvhe_sym(overflow_stack, cpu);
		break;
	default:
		return false;
	}
	*addr = kern_base + (*addr - hyp_base);
	return true;
}

static void hyp_dump_backtrace(unsigned long hyp_offset)
{
	struct kvm_nvhe_stacktrace_info *st = hyp_stacktrace_info();
	struct unwind_state state;

	kvm_nvhe_dump_backtrace_start();
	unwind_init_common(&state, st->fp, st->pc);
	unwind_common(&state, hyp_on_accessible_stack, hyp_stack_addr_to_kern_va,
		      kvm_nvhe_dump_backtrace_entry, &hyp_offset);
	kvm_nvhe_dump_backtrace_end();
}

#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE
/* Protected mode: only the buffer the hypervisor shared, up to its 0. */
static void pkvm_dump_backtrace(unsigned long hyp_offset)
{
	unsigned long *stacktrace =
		kvm_nvhe_sym(pkvm_stacktrace)[smp_processor_id()];
	unsigned long i;

	kvm_nvhe_dump_backtrace_start();
	for (i = 0; i < NVHE_STACKTRACE_ENTRIES && stacktrace[i]; i++)
		kvm_nvhe_dump_backtrace_entry(&hyp_offset, stacktrace[i]);
	kvm_nvhe_dump_backtrace_end();
}
#else
static void pkvm_dump_backtrace(unsigned long hyp_offset)
{
	(void)hyp_offset;
	kvm_err("Cannot dump pKVM nVHE stacktrace: !CONFIG_PROTECTED_NVHE_STACKTRACE\n");
}
#endif

static void kvm_nvhe_dump_backtrace(unsigned long hyp_offset)
{
	if (is_protected_kvm_enabled())
		pkvm_dump_backtrace(hyp_offset);
	else
		hyp_dump_backtrace(hyp_offset);
}
#endif /* !NVHE_KERNEL_UNWINDER */

/* The hyp bug table entry for a brk at run-time kernel VA addr. */
static const struct bug_entry *find_hyp_bug(unsigned long addr)
{
	const struct bug_entry *bug;

	for (bug = __hyp_bug_table_start; bug < __hyp_bug_table_end; bug++)
		if (bug_addr(bug) == addr)
			return bug;
	return NULL;
}

static bool is_hyp_bug(u64 esr)
{
	return ESR_ELx_EC(esr) == ESR_ELx_EC_BRK64 &&
	       (esr & ESR_ELx_BRK64_ISS_COMMENT_MASK) == BUG_BRK_IMM;
}

static void report_hyp_bug(unsigned long elr_in_kimg, unsigned long panic_addr)
{
	const struct bug_entry *bug = NULL;

	/* In protected mode the bug table is the hypervisor's to read. */
	if (!is_protected_kvm_enabled() || IS_ENABLED(CONFIG_NVHE_EL2_DEBUG))
		bug = find_hyp_bug(elr_in_kimg);
	if (bug)
		kvm_err("nVHE hyp BUG at: %s:%u!\n", bug_file(bug), bug->line);
	else
		kvm_err("nVHE hyp BUG at: [<%016lx>] %pS!\n", panic_addr,
			(void *)(panic_addr + kaslr_offset()));
}

void __noreturn nvhe_hyp_panic_handler(u64 esr, u64 spsr, u64 elr_virt,
				       u64 elr_phys, u64 par, uintptr_t vcpu,
				       u64 far, u64 hpfar)
{
	/*
	 * The hyp offset turns a hyp VA into the link-time kernel address of
	 * the same byte: go through the physical address of ELR to its
	 * run-time kernel VA, and take the KASLR offset back out.
	 */
	u64 elr_in_kimg = __phys_to_kimg(elr_phys);
	u64 hyp_offset = elr_in_kimg - kaslr_offset() - elr_virt;
	u64 mode = spsr & PSR_MODE_MASK;
	u64 panic_addr = elr_virt + hyp_offset;

	if (mode != PSR_MODE_EL2t && mode != PSR_MODE_EL2h)
		kvm_err("Invalid host exception to nVHE hyp!\n");
	else if (is_hyp_bug(esr))
		report_hyp_bug(elr_in_kimg, panic_addr);
	else
		kvm_err("nVHE hyp panic at: [<%016lx>] %pS!\n", panic_addr,
			(void *)(panic_addr + kaslr_offset()));

	kvm_nvhe_dump_backtrace(hyp_offset);

	panic("HYP panic:\nPS:%08lx PC:%016lx ESR:%08lx\n"
	      "FAR:%016lx HPFAR:%016lx PAR:%016lx\nVCPU:%016lx\n",
	      spsr, elr_virt, esr, far, hpfar, par, (unsigned long)vcpu);
}
