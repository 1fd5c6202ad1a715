// SPDX-License-Identifier: GPL-2.0
/*
 * Console output: each line gets a printk-style timestamp from the
 * platform's emulated counter, so that output is deterministic.
 */
#include <platform_io.h>
#include <printk.h>

#define NSEC_PER_SEC	1000000000UL
#define NSEC_PER_USEC	1000UL

/*
 * The line being built: timestamp, then text up to the newline. The
 * platform knows the buffer (console_init()); a whole line goes out in one
 * 32-bit MMIO write of its length, rather than one write per character.
 */
static char console_line[320];
static size_t console_len;

void console_init(void)
{
	platform_write(PLATFORM_CONSOLE_BUFFER, (u64)console_line);
}

static void console_flush_line(void)
{
	platform_write32(PLATFORM_CONSOLE_LINE, console_len);
	console_len = 0;
}

/* val in decimal, right-aligned in at least ``width`` characters of ``pad``. */
static size_t put_unsigned(char *out, unsigned long val, size_t width, char pad)
{
	char rev[20];
	size_t n = 0, i = 0;

	do {
		rev[n++] = '0' + val % 10;
		val /= 10;
	} while (val);
	for (; width > n; width--)
		out[i++] = pad;
	while (n)
		out[i++] = rev[--n];
	return i;
}

/*
 * "[%5lu.%06lu] " of the emulated counter, written here rather than
 * through snprintf(): every line starts with one.
 */
static void console_start_line(void)
{
	/* The low half: 2^32 ns of emulated time is 4.2M lines. */
	u64 ns = platform_read32(PLATFORM_COUNTER);
	size_t n = 0;

	console_line[n++] = '[';
	n += put_unsigned(console_line + n, ns / NSEC_PER_SEC, 5, ' ');
	console_line[n++] = '.';
	n += put_unsigned(console_line + n, (ns % NSEC_PER_SEC) / NSEC_PER_USEC, 6, '0');
	console_line[n++] = ']';
	console_line[n++] = ' ';
	console_len = n;
}

/*
 * The index of the first '\n' in p[0, n), or n: eight bytes at a time
 * (a word has a '\n' byte when w ^ 0x0a.. has a zero byte, which
 * (x - 0x01..) & ~x & 0x80.. detects), then byte by byte.
 */
static size_t find_newline(const char *p, size_t n)
{
	const u64 ones = 0x0101010101010101UL, highs = 0x8080808080808080UL;
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		u64 w;

		__builtin_memcpy(&w, p + i, 8);
		w ^= 0x0a0a0a0a0a0a0a0aUL;
		if ((w - ones) & ~w & highs)
			break;
	}
	while (i < n && p[i] != '\n')
		i++;
	return i;
}

/*
 * Add n bytes of text to the console: a line goes to the platform at
 * each newline.
 */
static void console_write(const char *p, size_t n)
{
	while (n) {
		size_t line = find_newline(p, n), room, copy;

		if (!console_len)
			console_start_line();
		/* An over-long line is cut, never overrun. */
		room = sizeof(console_line) - 1 - console_len;
		copy = line < room ? line : room;
		copy_text(console_line + console_len, p, copy);
		console_len += copy;
		if (line == n)
			break;
		console_flush_line();
		p += line + 1;
		n -= line + 1;
	}
}

void printk(const char *fmt, ...)
{
	char text[256];
	va_list args;
	int n;

	va_start(args, fmt);
	n = vsnprintf(text, sizeof(text), fmt, args);
	va_end(args);
	console_write(text, n < (int)sizeof(text) ? (size_t)n : sizeof(text) - 1);
}

/*
 * The store to the exit register begins a translation block of its own:
 * the branch before it ends the block it would have shared with the code
 * before. Unicorn keeps the pc exact only at block starts, even in the
 * MMIO callback that ends the run, so the run's final pc is then the
 * store's own address however the code before it was translated (a
 * fresh instance's blocks are not a reused one's).
 */
void __noreturn platform_exit(u64 status)
{
	volatile u64 *exit_reg = (volatile u64 *)(PLATFORM_MMIO_VA_EL1 + PLATFORM_EXIT);

	__asm__ __volatile__("b	1f\n"
			     "1:	str	%0, [%1]"
			     : : "r"(status), "r"(exit_reg) : "memory");
	for (;;)
		__asm__ __volatile__("wfi");
}
