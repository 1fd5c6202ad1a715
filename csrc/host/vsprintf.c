// SPDX-License-Identifier: GPL-2.0
/*
 * A small vsnprintf for the host: %d %i %u %x %c %s %p %%, the l and ll
 * length modifiers, a field width and the 0 and - flags, and the kernel's
 * symbol extensions %pS (function+offset of an address) and %pB (the same
 * for a return address, see sprint_backtrace()).
 */
#include <host.h>
#include <outbuf.h>
#include <printk.h>

static void out_fill(struct outbuf *o, char c, int count)
{
	while (count-- > 0)
		out_char(o, c);
}

static __always_inline void out_padded(struct outbuf *o, const char *s, size_t n,
				       int width, bool left, char pad)
{
	int fill = width > (int)n ? width - (int)n : 0;

	if (!left)
		out_fill(o, pad, fill);
	out_bytes(o, s, n);
	if (left)
		out_fill(o, ' ', fill);
}

static void out_number(struct outbuf *o, u64 val, bool is_signed,
		       unsigned int base, int width, bool left, char pad)
{
	char tmp[24], *end = tmp + sizeof(tmp), *start;
	bool negative = is_signed && (s64)val < 0;

	start = format_unsigned(end, negative ? -val : val, base);
	if (negative)
		*--start = '-';
	out_padded(o, start, end - start, width, left, left ? ' ' : pad);
}

int vsnprintf(char *buf, size_t size, const char *fmt, va_list args)
{
	struct outbuf o = { .buf = buf, .size = size };

	for (; *fmt; fmt++) {
		bool left = false, is_long = false;
		char pad = ' ';
		int width = 0;
		const char *s;
		u64 val;

		if (*fmt != '%') {
			/* The literal text up to the next conversion, at once. */
			const char *run = fmt;

			while (fmt[1] && fmt[1] != '%')
				fmt++;
			out_bytes(&o, run, fmt - run + 1);
			continue;
		}
		fmt++;
		for (; *fmt == '-' || *fmt == '0'; fmt++) {
			if (*fmt == '-')
				left = true;
			else
				pad = '0';
		}
		for (; *fmt >= '0' && *fmt <= '9'; fmt++)
			width = width * 10 + (*fmt - '0');
		for (; *fmt == 'l'; fmt++)
			is_long = true;

		switch (*fmt) {
		case 'd':
		case 'i':
			val = is_long ? va_arg(args, long) : va_arg(args, int);
			out_number(&o, val, true, 10, width, left, pad);
			break;
		case 'u':
		case 'x':
			val = is_long ? va_arg(args, unsigned long)
				      : va_arg(args, unsigned int);
			out_number(&o, val, false, *fmt == 'x' ? 16 : 10,
				   width, left, pad);
			break;
		case 'p':
			val = (u64)va_arg(args, void *);
			if (fmt[1] == 'S' || fmt[1] == 'B') {
				char sym[128];
				size_t n;

				if (*++fmt == 'S')
					n = sprint_symbol(sym, sizeof(sym), val);
				else
					n = sprint_backtrace(sym, sizeof(sym), val);
				if (n > sizeof(sym) - 1)	/* cut to what fit */
					n = sizeof(sym) - 1;
				out_padded(&o, sym, n, width, left, ' ');
				break;
			}
			out_char(&o, '0');
			out_char(&o, 'x');
			out_number(&o, val, false, 16, 16, false, '0');
			break;
		case 'c':
			s = (const char[]){ (char)va_arg(args, int) };
			out_padded(&o, s, 1, width, left, ' ');
			break;
		case 's':
			s = va_arg(args, const char *);
			if (!s)
				s = "(null)";
			out_padded(&o, s, string_length(s), width, left, ' ');
			break;
		case '%':
			out_char(&o, '%');
			break;
		default:
			out_char(&o, '%');
			if (!*fmt)
				goto done;
			out_char(&o, *fmt);
			break;
		}
	}
done:
	return out_end(&o);
}

int snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(buf, size, fmt, args);
	va_end(args);
	return n;
}
