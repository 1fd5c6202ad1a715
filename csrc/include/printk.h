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

/* The KVM messages carry the kernel's "kvm [PID]: " prefix. */
#define KVM_PID		1
#define kvm_err(fmt, ...)	printk("kvm [%d]: " fmt, KVM_PID, ##__VA_ARGS__)

#endif /* __PRINTK_H */
