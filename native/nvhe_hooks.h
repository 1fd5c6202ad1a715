/*
 * Native hot-path hooks for the pyharness Unicorn machine.
 *
 * This library does not link against Unicorn. Python (pyharness/platform/native.py)
 * loads it with ctypes, hands it the two Unicorn entry points it calls from
 * inside callbacks (uc_emu_stop, uc_reg_read) when it creates a state, and
 * registers the callbacks below with uc_hook_add itself. The few Unicorn
 * types used here are written from Unicorn's documented C API:
 *
 *   UC_HOOK_BLOCK / UC_HOOK_CODE callback:
 *       void cb(uc_engine *uc, uint64_t address, uint32_t size, void *user)
 *   UC_HOOK_MEM_READ / UC_HOOK_MEM_WRITE callback:
 *       void cb(uc_engine *uc, uc_mem_type type, uint64_t address, int size,
 *               int64_t value, void *user)
 *   UC_HOOK_MEM_*_PROT (event) callback: as above, returning bool
 *       (true: handled, go on)
 *   uc_err uc_emu_stop(uc_engine *uc)
 *   uc_err uc_reg_read(uc_engine *uc, int regid, void *value)
 *
 * uc_engine is opaque here; uc_mem_type and uc_err are C enums (int).
 */
#ifndef NVHE_HOOKS_H
#define NVHE_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NH_API __attribute__((visibility("default")))

/* The ABI version Python checks before using the library. */
#define NH_ABI_VERSION 5

typedef struct nh_uc nh_uc;                   /* Unicorn's uc_engine, opaque */
typedef int (*nh_emu_stop_fn)(nh_uc *uc);
typedef int (*nh_reg_read_fn)(nh_uc *uc, int regid, void *value);
/* Unicorn's uc_mmio_map callbacks (offset from the region's start). */
typedef uint64_t (*nh_mmio_read_fn)(nh_uc *uc, uint64_t offset, unsigned size, void *user);
typedef void (*nh_mmio_write_fn)(nh_uc *uc, uint64_t offset, unsigned size, uint64_t value,
				 void *user);
/* Unicorn's struct uc_tlb_entry and its UC_HOOK_TLB_FILL callback. */
struct nh_tlb_entry {
	uint64_t paddr;
	uint32_t perms;
};
typedef bool (*nh_tlb_fill_fn)(nh_uc *uc, uint64_t va, int type, struct nh_tlb_entry *entry,
			       void *user);

/* Why the block hook stopped the emulation (nh_stop_reason). */
enum nh_stop {
	NH_STOP_NONE = 0,
	NH_STOP_BUDGET = 1,    /* the next block would run past the budget */
	NH_STOP_DEADLINE = 2,  /* CLOCK_MONOTONIC passed the deadline */
	NH_STOP_CONSOLE = 3,   /* the console passed a bound (nh_mmio_set_console_limits) */
};

/* Access kinds of a watch and of a hit. */
enum nh_access {
	NH_READ = 1,
	NH_WRITE = 2,
};

/* One execution of a hooked frame-setup instruction. */
struct nh_frame {
	uint64_t pc;   /* the hooked address (runtime VA) */
	uint64_t sp;
	uint64_t fp;   /* x29 */
	uint64_t lr;   /* x30 */
};

/* One access to a watched range (the access's first byte is inside it). */
struct nh_hit {
	uint32_t watch;    /* index returned by nh_add_watch */
	uint32_t access;   /* NH_READ or NH_WRITE */
	uint64_t address;  /* physical address of the access */
	uint64_t size;
	uint64_t pc;
	uint64_t sp;
};

struct nh_state;

NH_API int nh_abi_version(void);

/*
 * A state for one Unicorn instance. The register ids are Unicorn's
 * (UC_ARM64_REG_PC, _SP, _X29, _X30), passed in so that nothing here
 * depends on Unicorn's headers.
 */
NH_API struct nh_state *nh_new(nh_emu_stop_fn emu_stop, nh_reg_read_fn reg_read,
			       int reg_pc, int reg_sp, int reg_fp, int reg_lr);
NH_API void nh_free(struct nh_state *st);

/* Forget counts, frames and hits; keep the watches and the RAM. */
NH_API void nh_reset(struct nh_state *st);
/* Forget the watches (Python removes their hooks and page protection). */
NH_API void nh_clear_watches(struct nh_state *st);

/* Budget in instructions (0: none), deadline in CLOCK_MONOTONIC ns (0: none). */
NH_API void nh_set_limits(struct nh_state *st, uint64_t budget, int64_t deadline_ns);
/* With exact on, the block hook never stops for the budget (Unicorn's own
 * instruction count does, for the last stretch). */
NH_API void nh_set_exact(struct nh_state *st, bool exact);
/* Frozen: the run has its outcome; frames and hits are no longer recorded
 * (writes to protected watched pages are still carried out). */
NH_API void nh_set_frozen(struct nh_state *st, bool frozen);

NH_API uint64_t nh_instructions(const struct nh_state *st);
NH_API uint64_t nh_blocks(const struct nh_state *st);
NH_API int nh_stop_reason(const struct nh_state *st);
NH_API void nh_clear_stop_reason(struct nh_state *st);

NH_API size_t nh_frames(const struct nh_state *st, const struct nh_frame **out);
NH_API size_t nh_hits(const struct nh_state *st, const struct nh_hit **out);
NH_API uint64_t nh_hits_dropped(const struct nh_state *st);

/*
 * Host memory behind guest RAM [base, base + size), for the write watches
 * done by page protection; page is the protection granule (Unicorn's
 * target page size): Python makes each NH_WRITE watch's pages, rounded out
 * to it, read-only.
 */
NH_API void nh_set_ram(struct nh_state *st, uint64_t base, void *host, uint64_t size,
		       uint64_t page);

/* A watch on physical [lo, hi) for NH_READ or NH_WRITE; -1 when full. */
NH_API int nh_add_watch(struct nh_state *st, uint64_t lo, uint64_t hi, uint32_t access);
/* The user data for nh_mem_hook registered on that one watch's range. */
NH_API void *nh_watch_user_data(struct nh_state *st, int watch);

/*
 * Callbacks, registered by Python with uc_hook_add. User data: the state,
 * except nh_mem_hook (nh_watch_user_data of its watch). nh_write_prot_hook
 * serves every NH_WRITE watch at once: their pages are made read-only
 * (uc_mem_protect) and it records the hit and carries out the write itself
 * in the host memory given to nh_set_ram.
 */
NH_API void nh_block_hook(nh_uc *uc, uint64_t address, uint32_t size, void *user);
NH_API void nh_frame_hook(nh_uc *uc, uint64_t address, uint32_t size, void *user);
NH_API void nh_mem_hook(nh_uc *uc, int type, uint64_t address, int size, int64_t value,
			void *user);
NH_API bool nh_write_prot_hook(nh_uc *uc, int type, uint64_t address, int size,
			       int64_t value, void *user);

/*
 * The platform MMIO page's hot registers (docs/platform.md, "Platform MMIO
 * page"), registered by Python with uc_mmio_map (user data: the state):
 * reads of the counter and scenario registers, console bytes and console
 * lines. Every other access, and every access once the state is frozen,
 * goes to slow_read / slow_write (Python's device model, which reports
 * the errors). nh_mmio_start begins a run: counter at 0, console empty,
 * no line buffer. The line buffer is guest RAM [pa, pa + size): Python
 * names it when the host writes the buffer register.
 */
struct nh_line {
	uint64_t start;   /* bytes [start, start + len) of nh_console's text */
	uint64_t len;
};

NH_API void nh_mmio_set_slow(struct nh_state *st, nh_mmio_read_fn slow_read,
			     nh_mmio_write_fn slow_write);
NH_API void nh_mmio_start(struct nh_state *st, uint64_t scenario, uint64_t counter_step);
NH_API bool nh_mmio_set_line_buffer(struct nh_state *st, uint64_t pa, uint64_t size);
/*
 * Bounds on the run's console (0: none): lines, frame lines (those holding
 * " [<", as the host prints a pc) and bytes (the partial line's too). The
 * write that passes one is the last the console keeps: the emulation stops
 * with NH_STOP_CONSOLE, and every console write after is dropped. Set after
 * nh_mmio_start, which clears them.
 */
NH_API void nh_mmio_set_console_limits(struct nh_state *st, uint64_t max_lines,
				       uint64_t max_frames, uint64_t max_bytes);
/*
 * A tighter bound on the frame lines, from the run's own memory: a chain
 * the unwinder follows reads each record once, and every record but the
 * last holds the next one's address, nonzero and 8-aligned. So no valid
 * dump prints more than the nonzero 8-aligned words of the stacks, the
 * first pc and the last record's pc; nor, from the protected buffer, more
 * than its entries before the first zero. The bound is that (the larger
 * of the two), a sixteenth more and 16, worked out again from RAM each
 * time the frame lines pass it (the stacks are final once the hyp has
 * panicked, before the host prints its dump). stacks: count pairs (pa,
 * size) of guest RAM, at most 4; buffer_entries 0: no buffer. Needs
 * nh_set_ram; set after nh_mmio_start, which clears it.
 */
NH_API void nh_mmio_set_chain_memory(struct nh_state *st, const uint64_t *stacks,
				     uint32_t count, uint64_t buffer_pa,
				     uint64_t buffer_entries);
/* The frame-line bound nh_mmio_set_chain_memory last worked out (0: none yet). */
NH_API uint64_t nh_console_chain_bound(const struct nh_state *st);
NH_API void nh_console_put(struct nh_state *st, uint8_t byte);
NH_API bool nh_console_line(struct nh_state *st, const char *text, uint64_t len);
/* The console so far: text, its lines (nh_line), the partial line. */
NH_API size_t nh_console(const struct nh_state *st, const char **text,
			 const struct nh_line **lines, const char **partial,
			 size_t *partial_len);
NH_API uint64_t nh_mmio_read(nh_uc *uc, uint64_t offset, unsigned size, void *user);
NH_API void nh_mmio_write(nh_uc *uc, uint64_t offset, unsigned size, uint64_t value,
			  void *user);

/*
 * The TLB fill (UC_HOOK_TLB_FILL, user data: the state) for the plain case:
 * a VA inside one of the run's regions of its exception level, not a
 * hyp-private page seen from EL1 in protected mode, not a page of a read
 * watch still to arm. Those map to the region's PA with every permission
 * (a RAM page outside the image is noted for nh_touched); anything else
 * goes to slow_fill (Python's, which makes aborts and arms watches).
 * nh_tlb_setup replaces the regions for a run (el 0: EL0/EL1, 1: EL2; at
 * most NH_MAX_REGIONS each); nh_tlb_set_private, nh_tlb_set_watch_pages
 * what their names say. The EL is PSTATE's, read through reg_read.
 */
#define NH_MAX_REGIONS 16

struct nh_region {
	uint64_t va, size, pa;
};

NH_API void nh_tlb_set_slow(struct nh_state *st, nh_tlb_fill_fn slow_fill, int reg_pstate,
			    uint32_t perms, uint64_t page, uint64_t image_lo, uint64_t image_hi);
NH_API bool nh_tlb_setup(struct nh_state *st, int el, const struct nh_region *regions,
			 uint32_t count);
NH_API bool nh_tlb_set_private(struct nh_state *st, bool isolated, const uint64_t *ranges,
			       uint32_t count);
NH_API bool nh_tlb_set_watch_pages(struct nh_state *st, const uint64_t *pages, uint32_t count);
/* RAM pages outside the image the fill mapped since the last call (each once). */
NH_API size_t nh_touched(struct nh_state *st, const uint64_t **pages);
NH_API void nh_touched_clear(struct nh_state *st);
NH_API bool nh_tlb_fill(nh_uc *uc, uint64_t va, int type, struct nh_tlb_entry *entry,
			void *user);

#endif
