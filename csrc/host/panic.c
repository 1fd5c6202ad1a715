// SPDX-License-Identifier: GPL-2.0
/*
 * The host's own panic: message, call trace of the host stack (the same
 * shared unwinder, on the host's task stack), and the end of the run.
 */
#include <host.h>
#include <platform_io.h>
#include <printk.h>
#include <stacktrace/common.h>
#include <asm/current_pc.h>
#include <asm/pointer_auth.h>

static bool on_task_stack(unsigned long sp, unsigned long size,
			  struct stack_info *info)
{
	unsigned long low = (unsigned long)host_task_stacks[smp_processor_id()];

	return on_stack(sp, size, low, low + THREAD_SIZE, STACK_TYPE_TASK, info);
}

static bool dump_backtrace_entry(void *arg, unsigned long where)
{
	(void)arg;
	printk(" %pB\n", (void *)ptrauth_strip_kernel_insn_pac(where));
	return true;
}

noinline void dump_stack(void)
{
	struct unwind_state state;

	printk("CPU: %lu PID: 1 Comm: swapper/%lu\n", smp_processor_id(),
	       smp_processor_id());
	printk("Call trace:\n");
	unwind_init_common(&state, (unsigned long)__builtin_frame_address(0),
			   current_pc());
	unwind_common(&state, on_task_stack, NULL, dump_backtrace_entry, NULL);
}

static size_t first_line_length(const char *s)
{
	size_t n = 0;

	while (s[n] && s[n] != '\n')
		n++;
	return n;
}

void __noreturn panic(const char *fmt, ...)
{
	static char buf[512];
	va_list args;

	va_start(args, fmt);
	vsnprintf(buf, sizeof(buf), fmt, args);
	va_end(args);

	printk("Kernel panic - not syncing: %s", buf);
	dump_stack();
	buf[first_line_length(buf)] = '\0';
	printk("---[ end Kernel panic - not syncing: %s ]---\n", buf);
	platform_exit(EXIT_STATUS_PANIC);
}
