/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat, host side: what arch/arm64/kvm/stacktrace.c uses from the KVM
 * headers. The host kernel's own facts come from the lab (host.h):
 * smp_processor_id(), kaslr_offset(), is_protected_kvm_enabled(); printing
 * from printk.h (kvm_err() with the "kvm [PID]: " prefix, %pB); hyp
 * symbols from nvhe_sym.h (the __kvm_nvhe_ prefix, and CPU n's copy of a
 * hyp per-CPU variable at n * HYP_PERCPU_STRIDE through the kernel image).
 */
#ifndef __KCOMPAT_LINUX_KVM_HOST_H
#define __KCOMPAT_LINUX_KVM_HOST_H

#ifdef __KVM_NVHE_HYPERVISOR__
#error "linux/kvm_host.h is for host (EL1) objects only"
#endif

#include <host.h>
#include <nvhe_sym.h>
#include <printk.h>
#include <linux/stacktrace.h>
#include <linux/types.h>
#include <asm/kvm_asm.h>
#include <asm/memory.h>
#include <asm/percpu.h>

/* Bits h..l set (h >= l), as a 64-bit mask. */
#define GENMASK_ULL(h, l)	((~0ULL << (l)) & (~0ULL >> (63 - (h))))

/* The lab's VA size is fixed by Kconfig: no 52-bit fallback at run time. */
#define vabits_actual		((u64)VA_BITS)

#define DECLARE_KVM_NVHE_PER_CPU(type, sym)				\
	extern __typeof__(type) kvm_nvhe_sym(sym)
#define this_cpu_ptr_nvhe_sym(sym)					\
	per_cpu_ptr_nvhe_sym(sym, smp_processor_id())

#endif
