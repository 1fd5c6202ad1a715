/* SPDX-License-Identifier: GPL-2.0 */
/* Declarations shared by the host kernel's objects (EL1 only). */
#ifndef __HOST_H
#define __HOST_H

#include <compiler.h>
#include <platform.h>
#include <types.h>

/* Panic exit status the harness sees in the platform exit register. */
#define EXIT_STATUS_OK		0
#define EXIT_STATUS_PANIC	1

extern u8 kvm_arm_hyp_stack_pages[NR_CPUS][NVHE_STACK_SIZE];
extern u8 host_task_stacks[NR_CPUS][THREAD_SIZE];
extern char _text[];

/* Where the image runs: set by host_main() from the boot arguments. */
extern unsigned long kimage_kaslr_offset;
extern unsigned long kimage_phys_text;
extern unsigned long boot_cpu;
extern bool kvm_protected_mode;

static inline unsigned long kaslr_offset(void)
{
	return kimage_kaslr_offset;
}

static inline unsigned long smp_processor_id(void)
{
	return boot_cpu;
}

static inline bool is_protected_kvm_enabled(void)
{
	return kvm_protected_mode;
}

/* A physical address inside the image -> its kernel VA. */
static inline unsigned long __phys_to_kimg(unsigned long pa)
{
	return pa - kimage_phys_text + (unsigned long)_text;
}

#ifdef NVHE_KERNEL_UNWINDER
/* csrc/kcompat/host_glue.c: what a kernel tree's unwinder needs at boot. */
void kvm_compat_host_init(void);
/* The tree's arch/arm64/kvm/stacktrace.c. */
void kvm_nvhe_dump_backtrace(unsigned long hyp_offset);
#endif

void __noreturn panic(const char *fmt, ...) __printf(1, 2);
void dump_stack(void);
void unwind_selftest(void);

/* kallsyms.c: the %pS and %pB renderings of a kernel address. */
int sprint_symbol(char *buf, size_t size, unsigned long addr);
int sprint_backtrace(char *buf, size_t size, unsigned long addr);

#endif /* __HOST_H */
