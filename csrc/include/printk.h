/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __PRINTK_H
#define __PRINTK_H

#include <stdarg.h>
#include <compiler.h>
#include <types.h>

int vsnprintf(char *buf, size_t size, const char *fmt, va_list args);
int snprintf(char *buf, size_t size, const char *fmt, ...) __printf(3, 4);
void printk(const char *fmt, ...) __printf(1, 2);
/* Tell the platform where console lines are built: before the first printk. */
void console_init(void);

/*
 * Copy n bytes of text eight at a time: an emulated load or store costs
 * the same whatever its width, and every console line is copied twice
 * (formatted, then into the console's line). Unaligned 8-byte accesses
 * are fine on normal memory.
 */
static inline void copy_text(char *dst, const char *src, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8)
		__builtin_memcpy(dst + i, src + i, 8);
	if (n & 4) {
		__builtin_memcpy(dst + i, src + i, 4);
		i += 4;
	}
	if (n & 2) {
		__builtin_memcpy(dst + i, src + i, 2);
		i += 2;
	}
	if (n & 1)
		dst[i] = src[i];
}

/* The KVM messages carry the kernel's "kvm [PID]: " prefix. */
#define KVM_PID		1
#define kvm_err(fmt, ...)	printk("kvm [%d]: " fmt, KVM_PID, ##__VA_ARGS__)

#endif /* __PRINTK_H */
