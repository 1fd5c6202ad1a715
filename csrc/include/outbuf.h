/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A bounded text buffer, filled as snprintf fills its buffer: what does
 * not fit (size - 1 bytes and the NUL) is dropped but counted. Shared by
 * vsnprintf and the kallsyms rendering of %pS/%pB. Always inlined: these
 * run for every piece of every console line, and a call costs a frame
 * record here (-mno-omit-leaf-frame-pointer).
 */
#ifndef __OUTBUF_H
#define __OUTBUF_H

#include <compiler.h>
#include <printk.h>
#include <types.h>

struct outbuf {
	char *buf;
	size_t size;
	size_t len;
};

static __always_inline void out_char(struct outbuf *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

/* Append n bytes of s (as many as fit; the length counts them all). */
static __always_inline void out_bytes(struct outbuf *o, const char *s, size_t n)
{
	size_t len = o->len, room = len + 1 < o->size ? o->size - 1 - len : 0;

	copy_text(o->buf + len, s, n < room ? n : room);
	o->len = len + n;
}

/* The digits of val in base (at most 16), backwards from end; the first. */
static __always_inline char *format_unsigned(char *end, u64 val, unsigned int base)
{
	static const char digits[] = "0123456789abcdef";

	if (base == 16) {
		/* Shifts, not a division per digit. */
		do {
			*--end = digits[val & 0xf];
			val >>= 4;
		} while (val);
	} else {
		do {
			*--end = digits[val % base];
			val /= base;
		} while (val);
	}
	return end;
}

/* val in lower-case hex, no prefix, no padding (%lx). */
static __always_inline void out_hex(struct outbuf *o, u64 val)
{
	char tmp[16], *end = tmp + sizeof(tmp);
	char *start = format_unsigned(end, val, 16);

	out_bytes(o, start, end - start);
}

/* NUL-terminate what fit; returns the length the text has (snprintf's). */
static __always_inline int out_end(struct outbuf *o)
{
	if (o->size)
		o->buf[o->len < o->size ? o->len : o->size - 1] = '\0';
	return (int)o->len;
}

static __always_inline size_t string_length(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

#endif /* __OUTBUF_H */
