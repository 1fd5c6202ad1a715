// SPDX-License-Identifier: GPL-2.0
/*
 * The unwind_selftest scenario: feed the shared unwinder crafted frame
 * records and print what it did with each, one line per case:
 *
 *	unwind_selftest: CASE pcs=PC,PC,... end=ERR
 *
 * PCs are the small tags stored as return addresses below; ERR is what
 * the last unwind_next_common() returned (0 when the consumer stopped the
 * walk). The cases that go through unwind_common() print, instead of ERR,
 * how many times the walk asked the consumer (asked=N): a walk that goes
 * on after the consumer said stop asks again. pyharness/judge/expectation.py
 * holds the expected line for each case, derived from the unwinder's
 * rules, not from this output.
 */
#include <host.h>
#include <printk.h>
#include <stacktrace/common.h>

#define SELFTEST_WORDS	64

/* Two stacks: "task" (low) and "irq"; records are placed by index. */
static unsigned long selftest_stacks[2][SELFTEST_WORDS] __aligned(16);
/* A third range, standing for a stack in another address space. */
static unsigned long selftest_foreign[SELFTEST_WORDS] __aligned(16);

#define FOREIGN_BASE	0x100000UL	/* the "owner's" address of selftest_foreign */
/*
 * A stack that was never allocated (a per-CPU stack pointer still NULL):
 * its base is 0, so it must contain nothing, not [0, its size).
 */
#define ABSENT_BASE	0UL

static unsigned long task_addr(unsigned int word)
{
	return (unsigned long)&selftest_stacks[0][word];
}

static unsigned long irq_addr(unsigned int word)
{
	return (unsigned long)&selftest_stacks[1][word];
}

static bool selftest_accessible(unsigned long sp, unsigned long size,
				struct stack_info *info)
{
	unsigned long task = task_addr(0), irq = irq_addr(0);
	unsigned long bytes = SELFTEST_WORDS * sizeof(long);

	return on_stack(sp, size, task, task + bytes, STACK_TYPE_TASK, info) ||
	       on_stack(sp, size, irq, irq + bytes, STACK_TYPE_IRQ, info) ||
	       on_stack(sp, size, FOREIGN_BASE, FOREIGN_BASE + bytes,
			STACK_TYPE_HYP, info) ||
	       on_stack(sp, size, ABSENT_BASE, ABSENT_BASE + bytes,
			STACK_TYPE_OVERFLOW, info);
}

static bool selftest_translate(unsigned long *fp, enum stack_type type)
{
	if (type != STACK_TYPE_HYP)
		return true;
	*fp = (unsigned long)selftest_foreign + (*fp - FOREIGN_BASE);
	return true;
}

static bool selftest_translate_refuses(unsigned long *fp, enum stack_type type)
{
	(void)fp;
	return type != STACK_TYPE_HYP;
}

/* Write the record {fp, lr} at word `word` of `stack`. */
static void put_record(unsigned long *stack, unsigned int word,
		       unsigned long fp, unsigned long lr)
{
	stack[word] = fp;
	stack[word + 1] = lr;
}

struct selftest_log {
	char text[160];
	size_t len;
	unsigned int taken;
	unsigned int limit;
	unsigned int asked;	/* calls, including those answered "stop" */
};

static bool selftest_consume(void *cookie, unsigned long pc)
{
	struct selftest_log *log = cookie;

	log->asked++;
	if (log->taken >= log->limit)
		return false;
	log->len += snprintf(log->text + log->len, sizeof(log->text) - log->len,
			     "%s%lx", log->taken ? "," : "", pc);
	log->taken++;
	return true;
}

static void run_case(const char *name, unsigned long fp, unsigned int limit,
		     translate_fp_fn translate)
{
	struct selftest_log log = { .limit = limit };
	struct unwind_state state;
	int err = 0;

	unwind_init_common(&state, fp, 0xa);
	for (;;) {
		if (!selftest_consume(&log, state.pc))
			break;
		err = unwind_next_common(&state, selftest_accessible, translate);
		if (err)
			break;
	}
	printk("unwind_selftest: %s pcs=%s end=%d\n", name, log.text, err);
}

/* The same walk through unwind_common(), as the hyp and the host make it. */
static noinline void run_common_case(const char *name, unsigned long fp,
				     unsigned int limit)
{
	struct selftest_log log = { .limit = limit };
	struct unwind_state state;

	unwind_init_common(&state, fp, 0xa);
	unwind_common(&state, selftest_accessible, NULL, selftest_consume, &log);
	printk("unwind_selftest: %s pcs=%s asked=%u\n", name, log.text, log.asked);
}

static void clear_stacks(void)
{
	unsigned int i;

	for (i = 0; i < SELFTEST_WORDS; i++) {
		selftest_stacks[0][i] = 0;
		selftest_stacks[1][i] = 0;
		selftest_foreign[i] = 0;
	}
}

void unwind_selftest(void)
{
	/* Three records going up the task stack, then the end (fp 0). */
	clear_stacks();
	put_record(selftest_stacks[0], 4, task_addr(10), 0xb);
	put_record(selftest_stacks[0], 10, task_addr(20), 0xc);
	put_record(selftest_stacks[0], 20, 0, 0xd);
	run_case("chain", task_addr(4), 100, NULL);
	run_case("consumer_stop", task_addr(4), 2, NULL);
	run_common_case("common_chain", task_addr(4), 100);
	run_common_case("common_stop", task_addr(4), 2);

	/* An fp that is not 8-byte aligned: off by 4, and off by 1. */
	put_record(selftest_stacks[0], 10, task_addr(20) + 4, 0xc);
	run_case("misaligned", task_addr(4), 100, NULL);
	put_record(selftest_stacks[0], 10, task_addr(20) + 1, 0xc);
	run_case("misaligned_by_1", task_addr(4), 100, NULL);

	/* An fp outside every stack. */
	put_record(selftest_stacks[0], 10, 0x8000, 0xc);
	run_case("outside", task_addr(4), 100, NULL);

	/* An fp inside [0, size) of the stack that does not exist. */
	put_record(selftest_stacks[0], 10, ABSENT_BASE + 16, 0xc);
	run_case("absent_stack", task_addr(4), 100, NULL);

	/* A record whose second word lies past the end of the stack. */
	put_record(selftest_stacks[0], 10, task_addr(SELFTEST_WORDS - 1), 0xc);
	run_case("straddles_end", task_addr(4), 100, NULL);

	/* A record pointing to itself, and one pointing back down. */
	put_record(selftest_stacks[0], 10, task_addr(10), 0xc);
	run_case("self_loop", task_addr(4), 100, NULL);
	put_record(selftest_stacks[0], 10, task_addr(4), 0xc);
	run_case("downward", task_addr(4), 100, NULL);

	/* irq -> task is a move to an older stack: allowed, once. */
	clear_stacks();
	put_record(selftest_stacks[1], 2, irq_addr(8), 0xb);
	put_record(selftest_stacks[1], 8, task_addr(30), 0xc);
	put_record(selftest_stacks[0], 30, 0, 0xd);
	run_case("cross_stack", irq_addr(2), 100, NULL);
	/* ... and back to the finished irq stack is refused. */
	put_record(selftest_stacks[0], 30, irq_addr(40), 0xd);
	put_record(selftest_stacks[1], 40, 0, 0xe);
	run_case("return_to_done", irq_addr(2), 100, NULL);

	/* A stack in another address space: read through the translation. */
	clear_stacks();
	put_record(selftest_stacks[0], 2, FOREIGN_BASE + 8 * 6, 0xb);
	put_record(selftest_foreign, 6, FOREIGN_BASE + 8 * 12, 0xc);
	put_record(selftest_foreign, 12, 0, 0xd);
	run_case("translated", task_addr(2), 100, selftest_translate);
	run_case("translate_refused", task_addr(2), 100,
		 selftest_translate_refuses);
}
