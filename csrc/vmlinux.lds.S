/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The vmlinux image: linked at KIMAGE_VADDR as a position-independent
 * executable, so that every absolute pointer has an R_AARCH64_RELATIVE
 * entry the loader applies for the KASLR offset. Hypervisor sections come
 * from the prefixed partial link (hyp.lds.S).
 */
#include <platform.h>

OUTPUT_ARCH(aarch64)
ENTRY(host_entry)

/* The few host symbols the hypervisor may name. */
__kvm_nvhe_host_entry = host_entry;
__kvm_nvhe_nvhe_hyp_panic_handler = nvhe_hyp_panic_handler;

PHDRS
{
	text PT_LOAD FLAGS(5);		/* R X */
	rodata PT_LOAD FLAGS(4);	/* R */
	data PT_LOAD FLAGS(6);		/* RW */
	kallsyms PT_LOAD FLAGS(4);	/* R */
}

SECTIONS
{
	. = KIMAGE_VADDR;
	_text = .;
	.head.text : { KEEP(*(.head.text)) } :text

	.text : ALIGN(PAGE_SIZE) {
		__hyp_text_start = .;
		*(.hyp.text)
		__hyp_text_end = .;
		*(.text .text.*)
	}

	. = ALIGN(PAGE_SIZE);
	_etext = .;

	.rodata : {
		__hyp_rodata_start = .;
		*(.hyp.rodata)
		__hyp_rodata_end = .;
		*(.rodata .rodata.*)
	} :rodata
	.hyp.bug_table : {
		__hyp_bug_table_start = .;
		KEEP(*(.hyp.bug_table))
		__hyp_bug_table_end = .;
	}
	.platform_layout : { KEEP(*(.platform_layout)) }
	.scenario_names : { KEEP(*(.scenario_names)) }
	.rela.dyn : ALIGN(8) {
		__rela_start = .;
		*(.rela .rela.*)
		__rela_end = .;
	}

	. = ALIGN(PAGE_SIZE);
	.data : { *(.data .data.[!.]*) } :data
	.got : { *(.got) *(.got.plt) }

	/*
	 * Hypervisor-private memory: in protected mode the host may not
	 * touch any of it. It starts and ends on page boundaries so that
	 * the isolation check works per page.
	 */
	. = ALIGN(PAGE_SIZE);
	__hyp_private_start = .;
	.hyp.data : { *(.hyp.data) }
	.hyp.bss (NOLOAD) : { *(.hyp.bss) }
	.hyp.percpu (NOLOAD) : ALIGN(PAGE_SIZE) {
		__hyp_percpu_start = .;
		*(.hyp.data..percpu)
		__hyp_percpu_template_end = .;
		. = __hyp_percpu_start + NR_CPUS * HYP_PERCPU_STRIDE;
		__hyp_percpu_end = .;
	}
	.hyp.stacks (NOLOAD) : ALIGN(PAGE_SIZE) {
		*(.bss..hyp_stacks)
	}
	. = ALIGN(PAGE_SIZE);
	__hyp_private_end = .;

	/* Hypervisor memory shared with the host (pKVM stacktrace buffers). */
	__hyp_shared_start = .;
	.hyp.shared (NOLOAD) : {
#if defined(NVHE_KERNEL_UNWINDER) && defined(CONFIG_PROTECTED_NVHE_STACKTRACE)
		/*
		 * A kernel tree's per-CPU pkvm_stacktrace: its template
		 * repeated NR_CPUS times at the hyp per-CPU stride, so that
		 * this_cpu_ptr() (+ TPIDR_EL2) reaches CPU n's copy here.
		 */
		__hyp_shared_percpu_start = .;
		*(.hyp.data..percpu_shared)
		__hyp_shared_percpu_template_end = .;
		. = __hyp_shared_percpu_start + NR_CPUS * HYP_PERCPU_STRIDE;
		__hyp_shared_percpu_end = .;
#endif
		*(.hyp.data..shared)
	}
	. = ALIGN(PAGE_SIZE);
	__hyp_shared_end = .;

	.bss (NOLOAD) : {
		__host_percpu_start = .;
		*(.data..percpu)
		__host_percpu_template_end = .;
		. = __host_percpu_start + NR_CPUS * HOST_PERCPU_STRIDE;
		__host_percpu_end = .;
		*(.bss..task_stacks)
		*(.bss .bss.* COMMON)
	}

	/*
	 * Last: the kallsyms table of the second link pass. Whatever its size,
	 * no symbol before it moves.
	 */
	. = ALIGN(PAGE_SIZE);
	.kallsyms : { KEEP(*(.kallsyms)) } :kallsyms
	. = ALIGN(PAGE_SIZE);
	_end = .;

	/* Not loaded: which compiler and linker made the image. */
	.comment 0 : { *(.comment) }

	/* Not loaded: which unwinder this image carries (csrc/host/unwinder.c). */
	.nvhe_unwinder 0 : { KEEP(*(.nvhe_unwinder)) }

	/DISCARD/ : {
		*(.interp .dynamic .dynsym .dynstr .hash .gnu.hash)
		*(.eh_frame .eh_frame_hdr .note .note.*)
	}
}

ASSERT(__hyp_percpu_template_end - __hyp_percpu_start <= HYP_PERCPU_STRIDE,
       "hyp per-CPU data is larger than HYP_PERCPU_STRIDE")
#if defined(NVHE_KERNEL_UNWINDER) && defined(CONFIG_PROTECTED_NVHE_STACKTRACE)
ASSERT(__hyp_shared_percpu_template_end - __hyp_shared_percpu_start <= HYP_PERCPU_STRIDE,
       "hyp shared per-CPU data is larger than HYP_PERCPU_STRIDE")
#endif
ASSERT(__host_percpu_template_end - __host_percpu_start <= HOST_PERCPU_STRIDE,
       "host per-CPU data is larger than HOST_PERCPU_STRIDE")
ASSERT(SIZEOF(.got) <= 0x20, "unexpected GOT entries: build with -fno-pie")
ASSERT(_end - _text <= PHYS_RAM_SIZE - IMAGE_PHYS_OFFSET,
       "the image does not fit in the platform's RAM")
