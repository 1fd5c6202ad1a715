/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Pointer authentication (ARM64_PTR_AUTH_KERNEL): the APIA keys and what
 * the unwinders do with signed return addresses.
 *
 * There is one set of key registers (APIAKey{Lo,Hi}_EL1) for all
 * exception levels. The host programs its key at boot; the hypervisor
 * installs its own on every entry from the host and puts the host's back
 * before returning to it (hyp/host.S), as pKVM does, so that each EL signs
 * with its own key. A kernel draws its keys at random; these are fixed so
 * that runs stay reproducible, and distinct so that a return address
 * authenticated under the wrong EL's key fails.
 */
#ifndef __ASM_POINTER_AUTH_H
#define __ASM_POINTER_AUTH_H

#include <platform.h>

#define HYP_APIA_KEY_LO		_UL(0x2d79656b2d707968)	/* "hyp-key-" */
#define HYP_APIA_KEY_HI		_UL(0x0123456789abcdef)
#define HOST_APIA_KEY_LO	_UL(0x2d79656b74736f68)	/* "hostkey-" */
#define HOST_APIA_KEY_HI	_UL(0xfedcba9876543210)

#ifndef __ASSEMBLER__
#include <compiler.h>

/*
 * One of the host's own return addresses without its PAC: kernel
 * addresses have every bit above VA_BITS set, and that is where the code
 * goes (the host's TCR_EL1.T1SZ is 64 - VA_BITS).
 */
static inline unsigned long ptrauth_strip_kernel_insn_pac(unsigned long pc)
{
	if (!IS_ENABLED(CONFIG_ARM64_PTR_AUTH_KERNEL))
		return pc;
	return pc | ~((1UL << VA_BITS) - 1);
}
#endif

#endif /* __ASM_POINTER_AUTH_H */
