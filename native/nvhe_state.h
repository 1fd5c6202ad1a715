/*
 * The state behind a struct nh_state, shared by the library's files
 * (nvhe_hooks.c: block, frame and watch hooks; nvhe_mmio.c: the platform
 * MMIO page's hot registers). Not part of the ABI: see nvhe_hooks.h.
 */
#ifndef NVHE_STATE_H
#define NVHE_STATE_H

#include "nvhe_hooks.h"

#define NH_MAX_WATCHES 64
#define NH_MAX_HITS 4096           /* then only counted (nh_hits_dropped) */
#define NH_CLOCK_EVERY_BLOCKS 1024  /* a power of two */
#define NH_CHAIN_STACKS 4           /* stacks nh_mmio_set_chain_memory takes */

struct nh_mmio {
	/* Registers Python serves (set by nh_mmio_map). */
	nh_mmio_read_fn slow_read;
	nh_mmio_write_fn slow_write;
	/* The counter and the scenario register; a low-half read latches the
	 * value for the high half. */
	uint64_t counter_reads, counter_step, scenario;
	uint64_t latch[2];
	bool latched[2];
	/* The console: whole lines, and the bytes written one at a time since
	 * the last newline. The line buffer is host memory behind guest RAM. */
	char *text;
	size_t text_len, text_cap;
	struct nh_line *lines;
	size_t nlines, lines_cap;
	char *partial;
	size_t partial_len, partial_cap;
	const unsigned char *line_buffer;
	uint64_t line_buffer_size;
	/* Bounds on the console (0: none), the frame lines so far, and whether
	 * a bound was passed (then the console takes nothing more). */
	uint64_t max_lines, max_frames, max_bytes;
	uint64_t frame_lines;
	bool over_limit;
	/* The run's stacks and buffer in RAM, and the bound on frame lines
	 * worked out from them (nh_mmio_set_chain_memory). */
	uint64_t chain_stacks[NH_CHAIN_STACKS][2];	/* pa, size */
	uint32_t nchain_stacks;
	uint64_t chain_buffer_pa, chain_buffer_entries;
	uint64_t chain_bound;
};

struct nh_tlb {
	nh_tlb_fill_fn slow_fill;
	int reg_pstate;
	uint32_t perms;
	uint64_t page;                 /* Unicorn's TLB page */
	uint64_t image_lo, image_hi;   /* RAM of the image: not "touched" */
	struct nh_region regions[2][NH_MAX_REGIONS];
	uint32_t nregions[2];
	bool isolated;                 /* protected mode: EL1 must not map private */
	uint64_t private_ranges[NH_MAX_REGIONS][2];
	uint32_t nprivate;
	uint64_t *watch_pages;         /* read-watch pages not armed yet */
	uint32_t nwatch_pages, watch_pages_cap;
	/* RAM pages outside the image mapped: a bitmap and their list. */
	uint8_t *touched_map;
	uint64_t *touched;
	size_t ntouched, touched_cap;
};

struct nh_watch {
	struct nh_state *st;
	uint64_t lo, hi;
	uint32_t access;
	uint32_t index;
};

struct nh_state {
	/* The block hook: instructions, budget, deadline. */
	uint64_t instructions;
	uint64_t blocks;
	uint64_t budget;           /* 0: none */
	int64_t deadline_ns;       /* 0: none */
	int stop_reason;
	bool exact;
	bool frozen;

	/* Unicorn's entry points and register ids. */
	nh_emu_stop_fn emu_stop;
	nh_reg_read_fn reg_read;
	int reg_pc, reg_sp, reg_fp, reg_lr;

	/* Frame records seen by nh_frame_hook. */
	struct nh_frame *frames;
	size_t nframes, frames_cap;

	/* Watches and their hits. */
	struct nh_watch watches[NH_MAX_WATCHES];
	uint32_t nwatches;
	struct nh_hit *hits;
	size_t nhits, hits_cap;
	uint64_t hits_dropped;

	/* Guest RAM as host memory, for the writes nh_write_prot_hook does. */
	uint64_t ram_base, ram_size, page;
	unsigned char *ram;
	/* Byte stores still to come from Unicorn splitting an unaligned store
	 * to a protected page (already recorded and written whole). */
	uint32_t split_bytes_left;

	/* The MMIO page (nvhe_mmio.c) and the TLB fill (nvhe_tlb.c). */
	struct nh_mmio mmio;
	struct nh_tlb tlb;
};


void nh_mmio_free(struct nh_state *st);
void nh_tlb_free(struct nh_state *st);

/* Make room for want elements of elem bytes in a growing array. */
bool nh_grow(void **array, size_t *cap, size_t elem, size_t want);

#endif
