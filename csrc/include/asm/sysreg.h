/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __ASM_SYSREG_H
#define __ASM_SYSREG_H

/* PSTATE/SPSR fields. */
#define PSR_MODE_EL1h		0x00000005
#define PSR_MODE_EL2h		0x00000009
#define PSR_MODE_MASK		0x0000000f
#define PSR_F_BIT		0x00000040
#define PSR_I_BIT		0x00000080
#define PSR_A_BIT		0x00000100
#define PSR_D_BIT		0x00000200
#define PSR_DAIF_MASK		(PSR_D_BIT | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT)

/* HCR_EL2.RW: the lower ELs are AArch64. */
#define HCR_RW			(1UL << 31)

/* ESR_ELx. */
#define ESR_ELx_EC_SHIFT	26
#define ESR_ELx_EC_MASK		(0x3fUL << ESR_ELx_EC_SHIFT)
#define ESR_ELx_EC(esr)		(((esr) & ESR_ELx_EC_MASK) >> ESR_ELx_EC_SHIFT)
#define ESR_ELx_EC_HVC64	0x16
#define ESR_ELx_EC_DABT_CUR	0x25
#define ESR_ELx_EC_BRK64	0x3c
#define ESR_ELx_ISS_MASK	0x01ffffffUL

#ifndef __ASSEMBLER__
#define read_sysreg(r) ({						\
	unsigned long __val;						\
	__asm__ __volatile__("mrs %0, " #r : "=r" (__val));		\
	__val;								\
})

#define write_sysreg(v, r) do {						\
	unsigned long __val = (unsigned long)(v);			\
	__asm__ __volatile__("msr " #r ", %x0" : : "rZ" (__val));	\
} while (0)
#endif

#endif /* __ASM_SYSREG_H */
