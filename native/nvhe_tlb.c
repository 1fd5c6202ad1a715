/*
 * The TLB fill's plain case, natively: see nvhe_hooks.h. It follows
 * Machine._on_tlb_fill (pyharness/platform/machine.py), which still makes
 * every other decision; a fill cost a Python callback, about 75 a run.
 */
#include "nvhe_state.h"

#include <stdlib.h>
#include <string.h>

void nh_tlb_set_slow(struct nh_state *st, nh_tlb_fill_fn slow_fill, int reg_pstate,
		     uint32_t perms, uint64_t page, uint64_t image_lo, uint64_t image_hi)
{
	struct nh_tlb *t = &st->tlb;

	t->slow_fill = slow_fill;
	t->reg_pstate = reg_pstate;
	t->perms = perms;
	t->page = page;
	t->image_lo = image_lo;
	t->image_hi = image_hi;
}

bool nh_tlb_setup(struct nh_state *st, int el, const struct nh_region *regions,
		  uint32_t count)
{
	if ((el != 0 && el != 1) || count > NH_MAX_REGIONS)
		return false;
	memcpy(st->tlb.regions[el], regions, count * sizeof(*regions));
	st->tlb.nregions[el] = count;
	return true;
}

bool nh_tlb_set_private(struct nh_state *st, bool isolated, const uint64_t *ranges,
			uint32_t count)
{
	if (count > NH_MAX_REGIONS)
		return false;
	memcpy(st->tlb.private_ranges, ranges, count * 2 * sizeof(*ranges));
	st->tlb.nprivate = count;
	st->tlb.isolated = isolated;
	return true;
}

bool nh_tlb_set_watch_pages(struct nh_state *st, const uint64_t *pages, uint32_t count)
{
	struct nh_tlb *t = &st->tlb;
	size_t cap = t->watch_pages_cap;

	if (count > cap && !nh_grow((void **)&t->watch_pages, &cap, sizeof(*pages), count))
		return false;
	t->watch_pages_cap = (uint32_t)cap;
	if (count)
		memcpy(t->watch_pages, pages, count * sizeof(*pages));
	t->nwatch_pages = count;
	return true;
}

size_t nh_touched(struct nh_state *st, const uint64_t **pages)
{
	*pages = st->tlb.touched;
	return st->tlb.ntouched;
}

void nh_touched_clear(struct nh_state *st)
{
	struct nh_tlb *t = &st->tlb;
	size_t i;

	for (i = 0; i < t->ntouched; i++) {
		uint64_t bit = t->touched[i] - st->ram_base / t->page;

		t->touched_map[bit / 8] &= (uint8_t)~(1u << (bit % 8));
	}
	t->ntouched = 0;
}

void nh_tlb_free(struct nh_state *st)
{
	free(st->tlb.watch_pages);
	free(st->tlb.touched_map);
	free(st->tlb.touched);
}

/* Platform.note_touched: a RAM page outside the image, noted once. */
static void note_touched(struct nh_state *st, uint64_t pa)
{
	struct nh_tlb *t = &st->tlb;
	uint64_t bit;

	if (!st->ram || pa < st->ram_base || pa - st->ram_base >= st->ram_size ||
	    (t->image_lo <= pa && pa < t->image_hi))
		return;
	if (!t->touched_map) {
		t->touched_map = calloc(st->ram_size / t->page / 8 + 1, 1);
		if (!t->touched_map)
			return;
	}
	bit = (pa - st->ram_base) / t->page;
	if (t->touched_map[bit / 8] & (1u << (bit % 8)))
		return;
	if (t->ntouched == t->touched_cap &&
	    !nh_grow((void **)&t->touched, &t->touched_cap, sizeof(*t->touched),
		     t->ntouched + 1))
		return;
	t->touched_map[bit / 8] |= (uint8_t)(1u << (bit % 8));
	t->touched[t->ntouched++] = pa / t->page;
}

static bool translate(const struct nh_tlb *t, int el, uint64_t va, uint64_t *pa)
{
	const struct nh_region *r = t->regions[el >= 2];
	uint32_t i, n = t->nregions[el >= 2];

	for (i = 0; i < n; i++)
		if (r[i].va <= va && va - r[i].va < r[i].size) {
			*pa = r[i].pa + (va - r[i].va);
			return true;
		}
	return false;
}

static bool is_private(const struct nh_tlb *t, uint64_t pa)
{
	uint32_t i;

	for (i = 0; i < t->nprivate; i++)
		if (t->private_ranges[i][0] <= pa && pa < t->private_ranges[i][1])
			return true;
	return false;
}

static bool is_watch_page(const struct nh_tlb *t, uint64_t pa)
{
	uint32_t i;

	for (i = 0; i < t->nwatch_pages; i++)
		if (t->watch_pages[i] == pa / t->page)
			return true;
	return false;
}

bool nh_tlb_fill(nh_uc *uc, uint64_t va, int type, struct nh_tlb_entry *entry, void *user)
{
	struct nh_state *st = user;
	struct nh_tlb *t = &st->tlb;
	uint64_t pstate = 0, pa;
	int el;

	st->reg_read(uc, t->reg_pstate, &pstate);
	el = (int)((pstate >> 2) & 3);
	if (!translate(t, el, va, &pa) || (el < 2 && t->isolated && is_private(t, pa)) ||
	    (t->nwatch_pages && is_watch_page(t, pa)))
		return t->slow_fill(uc, va, type, entry, NULL);
	note_touched(st, pa);
	entry->paddr = pa;
	entry->perms = t->perms;
	return true;
}
