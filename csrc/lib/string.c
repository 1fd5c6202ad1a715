// SPDX-License-Identifier: GPL-2.0
/*
 * The two memory primitives GCC may call on its own (structure copies and
 * zeroing). Built into both the host and the hypervisor: the hypervisor
 * cannot link against host code, so it gets its own prefixed copy.
 */
#include <types.h>

void *memset(void *dst, int c, size_t n);
void *memcpy(void *dst, const void *src, size_t n);

void *memset(void *dst, int c, size_t n)
{
	volatile u8 *d = dst;	/* volatile: GCC must not turn this into memset */

	while (n--)
		*d++ = (u8)c;
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	volatile u8 *d = dst;
	const u8 *s = src;

	while (n--)
		*d++ = *s++;
	return dst;
}
