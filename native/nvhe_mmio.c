/*
 * The platform MMIO page's hot registers, natively: see nvhe_hooks.h and
 * pyharness/platform/mmio.py, whose Python model this follows access for
 * access (the suite compares the two). A console line used to cost a
 * Python callback, and a counter read another: one each per line.
 */
#include "nvhe_state.h"

#include <stdlib.h>
#include <string.h>

/* Register offsets (docs/platform.md). */
#define MMIO_CONSOLE		0x00
#define MMIO_COUNTER		0x10
#define MMIO_SCENARIO		0x18
#define MMIO_CONSOLE_LINE	0x28

void nh_mmio_set_slow(struct nh_state *st, nh_mmio_read_fn slow_read,
		      nh_mmio_write_fn slow_write)
{
	st->mmio.slow_read = slow_read;
	st->mmio.slow_write = slow_write;
}

void nh_mmio_start(struct nh_state *st, uint64_t scenario, uint64_t counter_step)
{
	struct nh_mmio *m = &st->mmio;

	m->counter_reads = 0;
	m->counter_step = counter_step;
	m->scenario = scenario;
	m->latched[0] = m->latched[1] = false;
	m->text_len = 0;
	m->nlines = 0;
	m->partial_len = 0;
	m->line_buffer = NULL;
	m->line_buffer_size = 0;
	m->max_lines = m->max_frames = m->max_bytes = 0;
	m->frame_lines = 0;
	m->over_limit = false;
	m->nchain_stacks = 0;
	m->chain_buffer_entries = 0;
	m->chain_bound = 0;
}

/* Guest RAM [pa, pa + size) as host memory, or NULL when it is not all RAM. */
static const uint64_t *ram_words(const struct nh_state *st, uint64_t pa, uint64_t size)
{
	if (!st->ram || pa < st->ram_base || pa - st->ram_base > st->ram_size ||
	    size > st->ram_size - (pa - st->ram_base) || (pa & 7))
		return NULL;
	return (const uint64_t *)(st->ram + (pa - st->ram_base));
}

void nh_mmio_set_chain_memory(struct nh_state *st, const uint64_t *stacks, uint32_t count,
			      uint64_t buffer_pa, uint64_t buffer_entries)
{
	struct nh_mmio *m = &st->mmio;
	uint32_t i;

	m->nchain_stacks = 0;
	for (i = 0; i < count && i < NH_CHAIN_STACKS; i++) {
		m->chain_stacks[i][0] = stacks[2 * i];
		m->chain_stacks[i][1] = stacks[2 * i + 1];
		m->nchain_stacks++;
	}
	m->chain_buffer_pa = buffer_pa;
	m->chain_buffer_entries = buffer_entries;
	m->chain_bound = 0;
}

uint64_t nh_console_chain_bound(const struct nh_state *st)
{
	return st->mmio.chain_bound;
}

/*
 * The most frame lines a valid dump prints from the memory as it is now
 * (see nh_mmio_set_chain_memory), or 0 when the memory is not RAM.
 * Guest RAM is little-endian, as the hosts this library builds for.
 */
static uint64_t chain_bound(const struct nh_state *st)
{
	const struct nh_mmio *m = &st->mmio;
	uint64_t links = 0, entries = 0, n, k, most;
	const uint64_t *words;
	uint32_t i;

	for (i = 0; i < m->nchain_stacks; i++) {
		n = m->chain_stacks[i][1] / 8;
		words = ram_words(st, m->chain_stacks[i][0], n * 8);
		if (!words)
			return 0;
		for (k = 0; k < n; k++)
			links += words[k] && !(words[k] & 7);
	}
	if (m->chain_buffer_entries) {
		words = ram_words(st, m->chain_buffer_pa, m->chain_buffer_entries * 8);
		if (!words)
			return 0;
		while (entries < m->chain_buffer_entries && words[entries])
			entries++;
	}
	most = links + 2 > entries ? links + 2 : entries;
	return most + most / 16 + 16;
}

void nh_mmio_set_console_limits(struct nh_state *st, uint64_t max_lines,
				uint64_t max_frames, uint64_t max_bytes)
{
	st->mmio.max_lines = max_lines;
	st->mmio.max_frames = max_frames;
	st->mmio.max_bytes = max_bytes;
}

/* A line the host printed a pc on: " [<%016lx>]" (the kernel's format). */
static bool is_frame_line(const char *text, uint64_t len)
{
	uint64_t i;

	for (i = 0; i + 3 <= len; i++)
		if (text[i] == ' ' && text[i + 1] == '[' && text[i + 2] == '<')
			return true;
	return false;
}

/* Whether the console now holds more than a bound allows; the bound from
 * memory is worked out again whenever the frame lines pass it. */
static bool past_limits(struct nh_state *st)
{
	struct nh_mmio *m = &st->mmio;

	if (m->nchain_stacks && m->frame_lines > m->chain_bound) {
		m->chain_bound = chain_bound(st);
		if (!m->chain_bound)
			m->nchain_stacks = 0;	/* not RAM: the static bounds only */
		else if (m->frame_lines > m->chain_bound)
			return true;
	}
	return (m->max_lines && m->nlines > m->max_lines) ||
	       (m->max_frames && m->frame_lines > m->max_frames) ||
	       (m->max_bytes && m->text_len + m->partial_len > m->max_bytes);
}

void nh_mmio_free(struct nh_state *st)
{
	free(st->mmio.text);
	free(st->mmio.lines);
	free(st->mmio.partial);
}

bool nh_mmio_set_line_buffer(struct nh_state *st, uint64_t pa, uint64_t size)
{
	if (!st->ram || pa < st->ram_base || pa - st->ram_base > st->ram_size ||
	    size > st->ram_size - (pa - st->ram_base))
		return false;
	st->mmio.line_buffer = st->ram + (pa - st->ram_base);
	st->mmio.line_buffer_size = size;
	return true;
}

void nh_console_put(struct nh_state *st, uint8_t byte)
{
	struct nh_mmio *m = &st->mmio;

	if (m->over_limit)
		return;
	if (byte == '\n') {
		nh_console_line(st, m->partial, m->partial_len);
		m->partial_len = 0;
	} else if (byte != '\r') {
		if (m->partial_len == m->partial_cap &&
		    !nh_grow((void **)&m->partial, &m->partial_cap, 1, m->partial_len + 1))
			return;
		m->partial[m->partial_len++] = (char)byte;
	}
}

bool nh_console_line(struct nh_state *st, const char *text, uint64_t len)
{
	struct nh_mmio *m = &st->mmio;
	struct nh_line *line;

	if (m->over_limit)
		return true;	/* dropped: the run is stopping */
	if ((m->text_cap - m->text_len < len &&
	     !nh_grow((void **)&m->text, &m->text_cap, 1, m->text_len + len)) ||
	    (m->nlines == m->lines_cap &&
	     !nh_grow((void **)&m->lines, &m->lines_cap, sizeof(*line), m->nlines + 1)))
		return false;
	if (len)
		memcpy(m->text + m->text_len, text, len);
	line = &m->lines[m->nlines++];
	line->start = m->text_len;
	line->len = len;
	m->text_len += len;
	if (is_frame_line(text, len))
		m->frame_lines++;
	return true;
}

size_t nh_console(const struct nh_state *st, const char **text,
		  const struct nh_line **lines, const char **partial, size_t *partial_len)
{
	*text = st->mmio.text;
	*lines = st->mmio.lines;
	*partial = st->mmio.partial;
	*partial_len = st->mmio.partial_len;
	return st->mmio.nlines;
}

/* A low half of the counter or scenario register: the value, latched. */
static uint64_t read_register(struct nh_mmio *m, int reg, unsigned size)
{
	uint64_t value = reg ? m->scenario : ++m->counter_reads * m->counter_step;

	m->latch[reg] = value;
	m->latched[reg] = true;
	return size >= 8 ? value : value & ((UINT64_C(1) << (8 * size)) - 1);
}

/* Past a bound: keep nothing more, and stop the emulation (once). */
static void check_limits(nh_uc *uc, struct nh_state *st)
{
	struct nh_mmio *m = &st->mmio;

	if (m->over_limit || !past_limits(st))
		return;
	m->over_limit = true;
	st->stop_reason = NH_STOP_CONSOLE;
	st->emu_stop(uc);
}

uint64_t nh_mmio_read(nh_uc *uc, uint64_t offset, unsigned size, void *user)
{
	struct nh_state *st = user;
	struct nh_mmio *m = &st->mmio;
	uint64_t reg = offset & ~UINT64_C(7);
	int which = reg == MMIO_SCENARIO;

	if (!st->frozen && (reg == MMIO_COUNTER || reg == MMIO_SCENARIO)) {
		if ((offset & 7) == 0)
			return read_register(m, which, size);
		if ((offset & 7) == 4 && size == 4 && m->latched[which])
			return m->latch[which] >> 32;
	}
	return m->slow_read(uc, offset, size, NULL);
}

void nh_mmio_write(nh_uc *uc, uint64_t offset, unsigned size, uint64_t value, void *user)
{
	struct nh_state *st = user;
	struct nh_mmio *m = &st->mmio;

	if (!st->frozen) {
		if (offset == MMIO_CONSOLE) {
			nh_console_put(st, (uint8_t)value);
			check_limits(uc, st);
			return;
		}
		if (offset == MMIO_CONSOLE + 4)
			return;		/* the high half of a console write: nothing */
		if (offset == MMIO_CONSOLE_LINE && size == 4 && m->line_buffer &&
		    value <= m->line_buffer_size &&
		    nh_console_line(st, (const char *)m->line_buffer, value)) {
			check_limits(uc, st);
			return;
		}
	}
	m->slow_write(uc, offset, size, value, NULL);
}
