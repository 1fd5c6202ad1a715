/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Per-CPU variables. Each side (EL2, EL1) has a template section that the
 * linker script repeats NR_CPUS times; a CPU reaches its own copy by adding
 * its offset, kept in TPIDR_EL2 at the hypervisor and TPIDR_EL1 at the
 * host. Per-CPU data is zero-initialised.
 */
#ifndef __PERCPU_H
#define __PERCPU_H

#include <compiler.h>
#include <platform.h>
#include <asm/sysreg.h>

#define DEFINE_PER_CPU(type, name)	\
	__section(".data..percpu") __typeof__(type) name
#define DECLARE_PER_CPU(type, name)	extern __typeof__(type) name

#ifdef __KVM_NVHE_HYPERVISOR__
#define PERCPU_STRIDE		HYP_PERCPU_STRIDE
#define __my_cpu_offset()	read_sysreg(tpidr_el2)
#else
#define PERCPU_STRIDE		HOST_PERCPU_STRIDE
#define __my_cpu_offset()	read_sysreg(tpidr_el1)
#endif

/* ptr is a variable's address or an array (its first element), as in the kernel. */
#define per_cpu_ptr(ptr, cpu)						\
	((__typeof__(*(ptr)) *)((unsigned long)(ptr) + (cpu) * PERCPU_STRIDE))
#define this_cpu_ptr(ptr)						\
	((__typeof__(*(ptr)) *)((unsigned long)(ptr) + __my_cpu_offset()))

#endif /* __PERCPU_H */
