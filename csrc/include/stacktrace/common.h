/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The frame-record unwinder shared by the host (EL1) and the hypervisor
 * (EL2). The hypervisor cannot link against host code, so everything here
 * is static inline and depends on nothing but the callbacks it is given.
 *
 * An AArch64 frame record is two words at the frame pointer:
 *	fp[0] = the caller's frame pointer, fp[1] = the return address.
 *
 * A walk reports the starting pc, then the return address of each record
 * it can prove sane:
 *   - the fp is 8-byte aligned;
 *   - the whole 16-byte record lies inside a stack the reader may access;
 *   - that stack is not one the walk already left (stacks are only ever
 *     left for an older one: overflow -> hyp, irq -> task);
 *   - on the same stack, the record is strictly above the previous one;
 *   - if the stack belongs to another address space (the hyp stack read
 *     from EL1), the reader translates the fp before dereferencing it.
 * A zero fp is the end of the chain.
 */
#ifndef __STACKTRACE_COMMON_H
#define __STACKTRACE_COMMON_H

#include <compiler.h>
#include <types.h>

#define EINVAL		22
#define ENOENT		2

/* The 16 bytes of one frame record. */
#define FRAME_RECORD_SIZE	16

enum stack_type {
	STACK_TYPE_UNKNOWN,
	STACK_TYPE_TASK,
	STACK_TYPE_IRQ,
	STACK_TYPE_OVERFLOW,
	STACK_TYPE_HYP,
	__NR_STACK_TYPES
};

/* A stack, in the address space of its owner: [low, high). */
struct stack_info {
	unsigned long low;
	unsigned long high;
	enum stack_type type;
};

struct unwind_state {
	unsigned long fp;
	unsigned long pc;
	/* The record read last, and its stack. */
	unsigned long prev_fp;
	enum stack_type prev_type;
	/* Stack types the walk has left and may not return to. */
	unsigned long stacks_done;
};

/*
 * Is [sp, sp + size) wholly inside a stack the reader may access? If so,
 * describe that stack in *info.
 */
typedef bool (*on_accessible_stack_fn)(unsigned long sp, unsigned long size,
				       struct stack_info *info);

/*
 * Turn *fp, an address on a stack of the given type in its owner's
 * address space, into an address the reader can dereference.
 */
typedef bool (*translate_fp_fn)(unsigned long *fp, enum stack_type type);

/* Take one pc; return false to stop the walk. */
typedef bool (*stack_trace_consume_fn)(void *cookie, unsigned long pc);

static inline bool stack_contains(unsigned long sp, unsigned long size,
				  unsigned long low, unsigned long high)
{
	/* Written so that sp + size cannot wrap around. */
	return low && sp >= low && sp < high && size <= high - sp;
}

static inline bool on_stack(unsigned long sp, unsigned long size,
			    unsigned long low, unsigned long high,
			    enum stack_type type, struct stack_info *info)
{
	if (!stack_contains(sp, size, low, high))
		return false;
	if (info) {
		info->low = low;
		info->high = high;
		info->type = type;
	}
	return true;
}

static inline void unwind_init_common(struct unwind_state *state,
				      unsigned long fp, unsigned long pc)
{
	state->fp = fp;
	state->pc = pc;
	state->prev_fp = 0;
	state->prev_type = STACK_TYPE_UNKNOWN;
	state->stacks_done = 0;
}

/*
 * Advance to the caller's record. Returns 0, -ENOENT at the end of the
 * chain, or -EINVAL for a record that breaks one of the rules above.
 */
static inline int unwind_next_common(struct unwind_state *state,
				     on_accessible_stack_fn accessible,
				     translate_fp_fn translate_fp)
{
	unsigned long fp = state->fp, kern_fp = fp;
	struct stack_info info;

	if (!fp)
		return -ENOENT;
	if (fp & 0x7)
		return -EINVAL;
	if (!accessible(fp, FRAME_RECORD_SIZE, &info))
		return -EINVAL;
	if (state->stacks_done & (1UL << info.type))
		return -EINVAL;

	if (info.type == state->prev_type) {
		if (fp <= state->prev_fp)
			return -EINVAL;
	} else {
		/* Left the previous stack for good. */
		state->stacks_done |= 1UL << state->prev_type;
	}
	state->prev_fp = fp;
	state->prev_type = info.type;

	if (translate_fp && !translate_fp(&kern_fp, info.type))
		return -EINVAL;

	state->fp = READ_ONCE(*(unsigned long *)kern_fp);
	state->pc = READ_ONCE(*(unsigned long *)(kern_fp + 8));
	return 0;
}

/* Report state->pc and every return address after it until told to stop. */
static inline void unwind_common(struct unwind_state *state,
				 on_accessible_stack_fn accessible,
				 translate_fp_fn translate_fp,
				 stack_trace_consume_fn consume, void *cookie)
{
	for (;;) {
		if (!consume(cookie, state->pc))
			break;
		if (unwind_next_common(state, accessible, translate_fp))
			break;
	}
}

#endif /* __STACKTRACE_COMMON_H */
