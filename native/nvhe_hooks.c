/*
 * Native hot-path hooks for the pyharness Unicorn machine: see nvhe_hooks.h.
 *
 * Everything runs on the emulating thread, inside uc_emu_start: no locks.
 */
#define _POSIX_C_SOURCE 200809L

#include "nvhe_hooks.h"

#include <stdlib.h>
#include <time.h>

#include "nvhe_state.h"

int nh_abi_version(void)
{
	return NH_ABI_VERSION;
}

struct nh_state *nh_new(nh_emu_stop_fn emu_stop, nh_reg_read_fn reg_read,
			int reg_pc, int reg_sp, int reg_fp, int reg_lr)
{
	struct nh_state *st = calloc(1, sizeof(*st));

	if (!st)
		return NULL;
	st->emu_stop = emu_stop;
	st->reg_read = reg_read;
	st->reg_pc = reg_pc;
	st->reg_sp = reg_sp;
	st->reg_fp = reg_fp;
	st->reg_lr = reg_lr;
	return st;
}

void nh_free(struct nh_state *st)
{
	if (!st)
		return;
	free(st->frames);
	free(st->hits);
	nh_mmio_free(st);
	nh_tlb_free(st);
	free(st);
}

void nh_reset(struct nh_state *st)
{
	st->instructions = 0;
	st->blocks = 0;
	st->stop_reason = NH_STOP_NONE;
	st->exact = false;
	st->frozen = false;
	st->nframes = 0;
	st->nhits = 0;
	st->hits_dropped = 0;
	st->split_bytes_left = 0;
}

void nh_clear_watches(struct nh_state *st)
{
	st->nwatches = 0;
	st->split_bytes_left = 0;
}

void nh_set_limits(struct nh_state *st, uint64_t budget, int64_t deadline_ns)
{
	st->budget = budget;
	st->deadline_ns = deadline_ns;
}

void nh_set_exact(struct nh_state *st, bool exact)
{
	st->exact = exact;
}

void nh_set_frozen(struct nh_state *st, bool frozen)
{
	st->frozen = frozen;
}

uint64_t nh_instructions(const struct nh_state *st)
{
	return st->instructions;
}

uint64_t nh_blocks(const struct nh_state *st)
{
	return st->blocks;
}

int nh_stop_reason(const struct nh_state *st)
{
	return st->stop_reason;
}

void nh_clear_stop_reason(struct nh_state *st)
{
	st->stop_reason = NH_STOP_NONE;
}

size_t nh_frames(const struct nh_state *st, const struct nh_frame **out)
{
	*out = st->frames;
	return st->nframes;
}

size_t nh_hits(const struct nh_state *st, const struct nh_hit **out)
{
	*out = st->hits;
	return st->nhits;
}

uint64_t nh_hits_dropped(const struct nh_state *st)
{
	return st->hits_dropped;
}

void nh_set_ram(struct nh_state *st, uint64_t base, void *host, uint64_t size,
		uint64_t page)
{
	st->ram_base = base;
	st->ram = host;
	st->ram_size = size;
	st->page = page;
}

int nh_add_watch(struct nh_state *st, uint64_t lo, uint64_t hi, uint32_t access)
{
	struct nh_watch *w;

	if (st->nwatches >= NH_MAX_WATCHES || hi <= lo ||
	    (access != NH_READ && access != NH_WRITE))
		return -1;
	w = &st->watches[st->nwatches];
	w->st = st;
	w->lo = lo;
	w->hi = hi;
	w->access = access;
	w->index = st->nwatches;
	return (int)st->nwatches++;
}

void *nh_watch_user_data(struct nh_state *st, int watch)
{
	if (watch < 0 || (uint32_t)watch >= st->nwatches)
		return NULL;
	return &st->watches[watch];
}

/* -- callbacks ----------------------------------------------------------- */

static int64_t monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t reg(const struct nh_state *st, nh_uc *uc, int id)
{
	uint64_t value = 0;

	st->reg_read(uc, id, &value);
	return value;
}

/*
 * Once per translation block, before it runs. A stop requested here keeps
 * the block from running (the stop is checked after the block hooks), so
 * a block is counted only when it is let run. A64 instructions are 4 bytes.
 */
void nh_block_hook(nh_uc *uc, uint64_t address, uint32_t size, void *user)
{
	struct nh_state *st = user;
	uint64_t n = size / 4;

	(void)address;
	if (st->budget && !st->exact && st->instructions + n > st->budget) {
		st->stop_reason = NH_STOP_BUDGET;
		st->emu_stop(uc);
		return;
	}
	st->instructions += n;
	st->blocks++;
	if (st->deadline_ns && !(st->blocks & (NH_CLOCK_EVERY_BLOCKS - 1)) &&
	    monotonic_ns() > st->deadline_ns) {
		st->stop_reason = NH_STOP_DEADLINE;
		st->emu_stop(uc);
	}
}

bool nh_grow(void **array, size_t *cap, size_t elem, size_t want)
{
	size_t ncap = *cap ? *cap * 2 : 256;
	void *p;

	while (ncap < want)
		ncap *= 2;
	p = realloc(*array, ncap * elem);
	if (!p)
		return false;
	*array = p;
	*cap = ncap;
	return true;
}

/* A single-address code hook on a frame-setup instruction. */
void nh_frame_hook(nh_uc *uc, uint64_t address, uint32_t size, void *user)
{
	struct nh_state *st = user;
	struct nh_frame *f;

	(void)size;
	if (st->frozen)
		return;
	if (st->nframes == st->frames_cap &&
	    !nh_grow((void **)&st->frames, &st->frames_cap, sizeof(*f), st->nframes + 1))
		return;
	f = &st->frames[st->nframes++];
	f->pc = address;
	f->sp = reg(st, uc, st->reg_sp);
	f->fp = reg(st, uc, st->reg_fp);
	f->lr = reg(st, uc, st->reg_lr);
}

static void record_hit(struct nh_state *st, nh_uc *uc, const struct nh_watch *w,
		       uint32_t access, uint64_t address, int size)
{
	struct nh_hit *h;

	if (st->frozen)
		return;
	if (st->nhits >= NH_MAX_HITS ||
	    (st->nhits == st->hits_cap &&
	     !nh_grow((void **)&st->hits, &st->hits_cap, sizeof(*h), st->nhits + 1))) {
		st->hits_dropped++;
		return;
	}
	h = &st->hits[st->nhits++];
	h->watch = w->index;
	h->access = access;
	h->address = address;
	h->size = (uint64_t)size;
	h->pc = reg(st, uc, st->reg_pc);
	h->sp = reg(st, uc, st->reg_sp);
}

/* UC_HOOK_MEM_READ or UC_HOOK_MEM_WRITE on one watch's range. Unicorn calls
 * it when the access's first byte is in the range. */
void nh_mem_hook(nh_uc *uc, int type, uint64_t address, int size, int64_t value, void *user)
{
	struct nh_watch *w = user;

	(void)type;
	(void)value;
	record_hit(w->st, uc, w, w->access, address, size);
}

/*
 * Is this byte on a page made read-only for a write watch? Those are the
 * watch's pages and the page before them (pyharness.native protects the
 * same): a store that crosses into a watched page from below then starts
 * on a protected page too, and is reported once, whole, like any other.
 */
static bool protected_byte(const struct nh_state *st, uint64_t address)
{
	uint32_t i;

	for (i = 0; i < st->nwatches; i++) {
		const struct nh_watch *w = &st->watches[i];
		uint64_t lo = w->lo & ~(st->page - 1);
		uint64_t hi = (w->hi + st->page - 1) & ~(st->page - 1);

		lo = lo >= st->ram_base + st->page ? lo - st->page : st->ram_base;

		if (w->access == NH_WRITE && lo <= address && address < hi)
			return true;
	}
	return false;
}

/*
 * UC_HOOK_MEM_WRITE_PROT: a write to a page made read-only because a write
 * watch covers part of it. Unicorn drops a write it reports this way even
 * when the hook says handled, so the hook does the write itself.
 *
 * Unicorn then splits an unaligned store to such a page into byte stores,
 * each reported here again: those are skipped, so that every store is seen
 * once with its own address and size, as a UC_HOOK_MEM_WRITE hook sees it.
 * (A byte store that Unicorn's split of a store crossing into a protected
 * page from an unprotected one would look like a real one: hence the
 * extra protected page, see protected_byte.)
 */
bool nh_write_prot_hook(nh_uc *uc, int type, uint64_t address, int size, int64_t value,
			void *user)
{
	struct nh_state *st = user;
	uint64_t v = (uint64_t)value;
	uint32_t i;

	(void)type;
	if (!st->ram || size <= 0 || size > 8 || address < st->ram_base ||
	    address - st->ram_base > st->ram_size - (uint64_t)size)
		return false;
	if (st->split_bytes_left && size == 1) {
		st->split_bytes_left--;
		return true;   /* written already, whole */
	}
	st->split_bytes_left = 0;
	for (i = 0; i < st->nwatches; i++) {
		const struct nh_watch *w = &st->watches[i];

		if (w->access == NH_WRITE && w->lo <= address && address < w->hi)
			record_hit(st, uc, w, NH_WRITE, address, size);
	}
	/* The guest is little-endian: the value's low bytes, lowest first. */
	for (i = 0; i < (uint32_t)size; i++)
		st->ram[address - st->ram_base + i] = (unsigned char)(v >> (8 * i));
	if (size > 1 && (address & (uint64_t)(size - 1)))
		for (i = 0; i < (uint32_t)size; i++)
			st->split_bytes_left += protected_byte(st, address + i);
	return true;
}
