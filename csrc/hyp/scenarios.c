// SPDX-License-Identifier: GPL-2.0
/*
 * What the hypervisor does for each test scenario. Ordinary noinline C, so
 * that the frames the unwinder walks are the compiler's own.
 */
#include <bug.h>
#include <nvhe/hyp.h>
#include <stacktrace/nvhe.h>
#include <asm/sysreg.h>

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
 * NVHE_STACK_SHIFT test sees it. (A frame opened by "stp x29, x30, [sp, #-N]!"
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

/*
 * Functions whose first instruction faults: leaves with no frame record
 * (GCC: omit-leaf-frame-pointer for these alone; Clang: naked). ELR_EL2
 * is then the symbol's own address, and %pB, which looks up ELR - 1 as it
 * would for a return address, makes the kernel's panic or BUG line name
 * the function before it. (With a BTI landing pad the fault is one
 * instruction in, and %pB names the function itself.)
 *
 * bug_at_entry() is cold, so it lands after this file's other functions
 * while its bug table entry comes first (the file's order): the table is
 * not sorted by address, and a lookup must match the brk's address
 * exactly, not the first entry at or above it.
 */
#ifdef __clang__
static __attribute__((__naked__, __noinline__, __used__))
unsigned long load_at_entry(const unsigned long *p)
{
	__asm__ volatile("ldr	x0, [x0]\n\tret");
}

static __attribute__((__naked__, __noinline__, __used__, __cold__)) void bug_at_entry(void)
{
	__asm__ volatile(__BUG_ASM(__LINE__));
}
#else
static noipa __attribute__((__target__("omit-leaf-frame-pointer")))
unsigned long load_at_entry(const unsigned long *p)
{
	return READ_ONCE(*p);
}

static noipa __attribute__((__target__("omit-leaf-frame-pointer"), __cold__))
void bug_at_entry(void)
{
	BUG();
}
#endif

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
 * is the next guard's first byte, whose NVHE_STACK_SHIFT bit is 0, so the vector
 * takes it for an overflow and moves to the overflow stack.
 */
noipa void __kvm_fault_at_stack_top(void)
{
	fault_with_sp(HYP_STACK_VA(hyp_smp_processor_id()) + NVHE_STACK_SIZE);
}

/*
 * SP inside this CPU's overflow stack when the exception is taken: the
 * vector tests the NVHE_STACK_SHIFT bit of an address it was never designed
 * for, so what it does depends on where the overflow stack sits (the
 * oracle predicts it from the same bit).
 */
noipa void __kvm_fault_on_overflow_stack(void)
{
	fault_with_sp((unsigned long)this_cpu_ptr(&overflow_stack) + OVERFLOW_STACK_SIZE / 2);
}

/*
 * A guest stage-2 abort's registers, as when the hyp dies handling one:
 * FAR_EL2 the faulting VA, HPFAR_EL2 its IPA's page (bits 43:4), PAR_EL1
 * an address translation's result. Three different non-zero values with
 * leading zeros: the host's panic message must show each in its own
 * place, at its full width.
 */
#define GUEST_ABORT_FAR		0x00000000dead0ff8UL
#define GUEST_ABORT_HPFAR	0x0000000000dead00UL
#define GUEST_ABORT_PAR		0x00000000dead0980UL

static __always_inline void set_guest_abort_registers(void)
{
	write_sysreg(GUEST_ABORT_FAR, far_el2);
	write_sysreg(GUEST_ABORT_HPFAR, hpfar_el2);
	write_sysreg(GUEST_ABORT_PAR, par_el1);
	__asm__ volatile("isb" : : : "memory");
}

/*
 * A brk whose comment is BUG_BRK_IMM with one more bit set is not a BUG:
 * the host must compare the whole 16-bit comment to report a hyp panic.
 * Bit 0 here (with the guest abort's registers), bit 15 below.
 */
static noipa void brk_near_bug(void)
{
	set_guest_abort_registers();
	__asm__ volatile("brk %[imm]" : : [imm] "i" (BUG_BRK_IMM | 0x1));
}

noipa void __kvm_brk_not_bug(void)
{
	brk_near_bug();
	WRITE_ONCE(recursion_stop, 0);
}

/* The condition flags cleared first: PS then prints with leading zeros. */
static noipa void brk_far_from_bug(void)
{
	__asm__ volatile("msr	nzcv, xzr\n\t"
			 "brk	%[imm]" : : [imm] "i" (BUG_BRK_IMM | 0x8000) : "cc");
}

noipa void __kvm_brk_not_bug_high(void)
{
	brk_far_from_bug();
	WRITE_ONCE(recursion_stop, 0);
}

/* A comment below BUG's (the kernel's fault-fixup brk): not a BUG either. */
static noipa void brk_below_bug(void)
{
	__asm__ volatile("brk %[imm]" : : [imm] "i" (0x100));
}

noipa void __kvm_brk_not_bug_low(void)
{
	brk_below_bug();
	WRITE_ONCE(recursion_stop, 0);
}

/*
 * An HVC at EL2 is taken to EL2 with EC 0x16 and its immediate in the
 * ESR's low 16 bits, where a BRK keeps its comment: with BUG's immediate,
 * only the EC tells the host this is no BUG.
 */
static noipa void hvc_with_bug_imm(void)
{
	__asm__ volatile("hvc %[imm]" : : [imm] "i" (BUG_BRK_IMM) : "memory");
}

noipa void __kvm_hvc_at_el2(void)
{
	hvc_with_bug_imm();
	WRITE_ONCE(recursion_stop, 0);
}

/*
 * hyp_panic() while SPSR_EL2 holds an AArch32 guest's System mode
 * (M[4:0] = 0x1f, so M[3:0] = 0xf, above both EL2 modes): an invalid
 * host exception like any mode that is not EL2t or EL2h.
 */
#define SPSR_AARCH32_SYS	0x1dfUL		/* AIF masked, System mode */

noipa void __kvm_invalid_aarch32_exception(void)
{
	write_sysreg(SPSR_AARCH32_SYS, spsr_el2);
	hyp_panic();
}

/*
 * A call through a corrupt function pointer: the last instruction slot of
 * the hyp's VA range, never mapped. ELR_EL2 is in no symbol, and ELR plus
 * the hyp offset wraps past 2^64 to an address with leading zeros.
 */
#define HYP_WILD_PC	((_UL(1) << HYP_VA_BITS) - 4)

noipa void __kvm_wild_jump(void)
{
	void (*volatile wild)(void) = (void (*)(void))HYP_WILD_PC;

	wild();
	WRITE_ONCE(recursion_stop, 0);
}


noipa void __kvm_fault_at_function_entry(void)
{
	WRITE_ONCE(recursion_stop, load_at_entry((const unsigned long *)HYP_UNMAPPED_VA));
}

noipa void __kvm_bug_at_function_entry(void)
{
	bug_at_entry();
	WRITE_ONCE(recursion_stop, 0);
}
