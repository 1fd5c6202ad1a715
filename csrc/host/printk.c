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
 * The line being built: timestamp, then text up to the newline. A whole
 * line goes to the platform in one MMIO write of its address, rather than
 * one write per character.
 */
static char console_line[320];
static size_t console_len;

static void console_flush_line(void)
{
	console_line[console_len] = '\0';
	platform_write(PLATFORM_CONSOLE_LINE, (u64)console_line);
	console_len = 0;
}

static void console_start_line(void)
{
	u64 ns = platform_read(PLATFORM_COUNTER);

	console_len = snprintf(console_line, sizeof(console_line), "[%5lu.%06lu] ",
			       ns / NSEC_PER_SEC, (ns % NSEC_PER_SEC) / NSEC_PER_USEC);
}

static void console_putc(char c)
{
	if (!console_len)
		console_start_line();
	if (c == '\n') {
		console_flush_line();
		return;
	}
	/* An over-long line is cut, never overrun. */
	if (console_len < sizeof(console_line) - 1)
		console_line[console_len++] = c;
}

void printk(const char *fmt, ...)
{
	char text[256];
	const char *p;
	va_list args;

	va_start(args, fmt);
	vsnprintf(text, sizeof(text), fmt, args);
	va_end(args);

	for (p = text; *p; p++)
		console_putc(*p);
}

void __noreturn platform_exit(u64 status)
{
	platform_write(PLATFORM_EXIT, status);
	for (;;)
		__asm__ __volatile__("wfi");
}
