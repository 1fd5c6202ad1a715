// SPDX-License-Identifier: GPL-2.0
/*
 * Which nVHE unwinder this image carries, for the harness: "lab" (the
 * lab's own, csrc/hyp/stacktrace.c and the dump in handle_exit.c) or
 * "linux-<generation>" when it was built from a kernel tree
 * (cmake/kernel-src.cmake). NVHE_UNWINDER comes from CMakeLists.txt.
 *
 * A NUL-terminated string in the non-allocated section .nvhe_unwinder:
 * it is in the ELF file for the harness to read, never in the running
 * image, so it moves nothing the firmware or the oracle sees.
 */
#ifndef NVHE_UNWINDER
#error "NVHE_UNWINDER (\"lab\", \"linux-6.1\", ...) is defined by CMakeLists.txt"
#endif

__asm__(".pushsection .nvhe_unwinder, \"\", %progbits\n\t"
	".asciz \"" NVHE_UNWINDER "\"\n\t"
	".popsection");
