/* SPDX-License-Identifier: GPL-2.0 */
/* The host's access to the platform MMIO page. */
#ifndef __PLATFORM_IO_H
#define __PLATFORM_IO_H

#include <compiler.h>
#include <platform.h>
#include <types.h>

static inline void platform_write(unsigned long reg, u64 val)
{
	*(volatile u64 *)(PLATFORM_MMIO_VA_EL1 + reg) = val;
}

static inline u64 platform_read(unsigned long reg)
{
	return *(volatile u64 *)(PLATFORM_MMIO_VA_EL1 + reg);
}

/*
 * 32-bit accesses: Unicorn hands an 8-byte MMIO access to the platform as
 * two 4-byte ones, each a callback into the harness.
 */
static inline void platform_write32(unsigned long reg, u32 val)
{
	*(volatile u32 *)(PLATFORM_MMIO_VA_EL1 + reg) = val;
}

static inline u32 platform_read32(unsigned long reg)
{
	return *(volatile u32 *)(PLATFORM_MMIO_VA_EL1 + reg);
}

static inline void platform_putc(char c)
{
	*(volatile u8 *)(PLATFORM_MMIO_VA_EL1 + PLATFORM_CONSOLE) = c;
}

void __noreturn platform_exit(u64 status);

#endif /* __PLATFORM_IO_H */
