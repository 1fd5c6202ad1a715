/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Partial link of the hypervisor objects: gather their sections under
 * .hyp.* names so the final link can place (and protect) them apart from
 * the host's, before every symbol is given the __kvm_nvhe_ prefix.
 */
SECTIONS {
	.hyp.text : { *(.text .text.*) }
	.hyp.rodata : { *(.rodata .rodata.*) }
	.hyp.bug_table : { *(__bug_table) }
	.hyp.data : { *(.data .data.[!.]*) }
	.hyp.bss : { *(.bss .bss.* COMMON) }
#ifdef NVHE_KERNEL_UNWINDER
	/*
	 * A kernel tree's pkvm_stacktrace is a per-CPU variable (one input
	 * section per variable, csrc/kcompat/common/asm/percpu.h): the final
	 * link puts its template in the pages shared with the host.
	 */
	.hyp.data..percpu_shared : { *(.data..percpu.pkvm_stacktrace) }
#endif
	.hyp.data..percpu : { *(.data..percpu .data..percpu.*) }
	.hyp.data..shared : { *(.data..shared) }
}
