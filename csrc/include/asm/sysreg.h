/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __ASM_SYSREG_H
#define __ASM_SYSREG_H

#ifdef __ASSEMBLER__
#define _BITUL(n)		(1 << (n))
#else
#define _BITUL(n)		(1UL << (n))
#endif

/* PSTATE/SPSR fields. */
#define PSR_MODE_EL1h		0x00000005
#define PSR_MODE_EL2h		0x00000009
#define PSR_MODE_MASK		0x0000000f
#define PSR_F_BIT		0x00000040
#define PSR_I_BIT		0x00000080
#define PSR_A_BIT		0x00000100
#define PSR_D_BIT		0x00000200
#define PSR_DAIF_MASK		(PSR_D_BIT | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT)

/* HCR_EL2.RW: the lower ELs are AArch64. API/APK: EL1 may use pointer
 * authentication instructions / key registers without trapping to EL2. */
#define HCR_RW			(_BITUL(31))
#define HCR_API			(_BITUL(41))
#define HCR_APK			(_BITUL(40))

/* SCTLR_ELx. EnIA: APIA-key signing is on. BT (EL2, one VA range) / BT1
 * (EL1): paciasp is no landing pad for a BR through other than x16/x17. */
#define SCTLR_ELx_ENIA		(_BITUL(31))
#define SCTLR_EL2_BT		(_BITUL(36))
#define SCTLR_EL1_BT1		(_BITUL(36))

/* TCR_ELx: the VA size of a translation regime, 64 - TxSZ bits. */
#define TCR_T0SZ(bits)		(64 - (bits))
#define TCR_T1SZ(bits)		((64 - (bits)) << 16)
#define TCR_EL2_RES1		(_BITUL(31) | _BITUL(23))

/* The pointer authentication key registers are shared by all ELs. */
#define SYS_APIAKEYLO_EL1	S3_0_C2_C1_0
#define SYS_APIAKEYHI_EL1	S3_0_C2_C1_1

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
