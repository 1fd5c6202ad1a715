/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: per-CPU variables on the lab's scheme (csrc/include/percpu.h):
 * one template section per side repeated NR_CPUS times, this CPU's copy
 * at the variable's address plus TPIDR_EL2 (hyp) or TPIDR_EL1 (host).
 * this_cpu_ptr() takes an address or an array, as the kernel's does.
 */
#ifndef __KCOMPAT_ASM_PERCPU_H
#define __KCOMPAT_ASM_PERCPU_H

#include <percpu.h>		/* lab: DECLARE_PER_CPU, this_cpu_ptr, per_cpu_ptr */

#ifdef __KVM_NVHE_HYPERVISOR__
/*
 * One input section per hyp variable, .data..percpu.NAME, so that the
 * partial link (csrc/hyp/hyp.lds.S) can put the tree's pkvm_stacktrace,
 * a per-CPU variable in the kernel, into the pages shared with the host.
 * Every other variable joins the hyp per-CPU template as usual.
 */
#undef DEFINE_PER_CPU
#define DEFINE_PER_CPU(type, name)					\
	__section(".data..percpu." #name) __typeof__(type) name
#endif

#endif
