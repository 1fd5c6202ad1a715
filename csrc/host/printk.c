// SPDX-License-Identifier: GPL-2.0
/*
 * Console output: each line gets a printk-style timestamp from the
 * platform's emulated counter, so that output is deterministic.
 */
#include <platform_io.h>
#include <printk.h>

#define NSEC_PER_SEC	1000000000UL
#define NSEC_PER_USEC	1000UL

static bool printk_at_line_start = true;

static void console_write(const char *s)
{
	for (; *s; s++)
		platform_putc(*s);
}

static void print_timestamp(void)
{
	u64 ns = platform_read(PLATFORM_COUNTER);
	char stamp[32];

	snprintf(stamp, sizeof(stamp), "[%5lu.%06lu] ", ns / NSEC_PER_SEC,
		 (ns % NSEC_PER_SEC) / NSEC_PER_USEC);
	console_write(stamp);
}

void printk(const char *fmt, ...)
{
	char line[256];
	const char *p;
	va_list args;

	va_start(args, fmt);
	vsnprintf(line, sizeof(line), fmt, args);
	va_end(args);

	for (p = line; *p; p++) {
		if (printk_at_line_start)
			print_timestamp();
		platform_putc(*p);
		printk_at_line_start = *p == '\n';
	}
}

void __noreturn platform_exit(u64 status)
{
	platform_write(PLATFORM_EXIT, status);
	for (;;)
		__asm__ __volatile__("wfi");
}
