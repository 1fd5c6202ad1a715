// SPDX-License-Identifier: GPL-2.0
/*
 * Symbol lookup for the host's printk. The table comes from a second link
 * pass (pyharness/kallsyms_gen.py): one entry per function, sorted by
 * address, each address an offset from _text so that the table holds no
 * pointer and works at any KASLR offset.
 */
#include <host.h>
#include <outbuf.h>
#include <printk.h>

struct kallsym {
	unsigned long offset;	/* from _text */
	unsigned int size;
	unsigned int name;	/* into kallsyms_names */
};

extern const unsigned long kallsyms_count;
extern const struct kallsym kallsyms_table[];
extern const char kallsyms_names[];

/* The function containing the run-time address addr, or NULL. */
static const struct kallsym *kallsyms_lookup(unsigned long addr)
{
	unsigned long offset = addr - (unsigned long)_text;
	unsigned long lo = 0, hi = kallsyms_count;
	const struct kallsym *sym;

	if (addr < (unsigned long)_text)
		return NULL;
	/* Find the last entry starting at or below offset. */
	while (lo < hi) {
		unsigned long mid = lo + (hi - lo) / 2;

		if (kallsyms_table[mid].offset <= offset)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return NULL;
	sym = &kallsyms_table[lo - 1];
	return offset - sym->offset < sym->size ? sym : NULL;
}

/*
 * The length of a symbol's name: the generator stores the names in table
 * order, each after the previous one's NUL.
 */
static size_t kallsym_name_length(const struct kallsym *sym)
{
	if (sym + 1 < kallsyms_table + kallsyms_count)
		return sym[1].name - sym->name - 1;
	return string_length(kallsyms_names + sym->name);
}

/*
 * snprintf(buf, size, "%s+0x%lx/0x%x", name, off, sym->size), or "0x%lx"
 * of the address outside every function, written directly: it runs for
 * every frame of every trace.
 */
static int sprint_symbol_off(char *buf, size_t size, unsigned long lookup,
			     unsigned long shown_delta)
{
	const struct kallsym *sym = kallsyms_lookup(lookup);
	struct outbuf o = { .buf = buf, .size = size };

	if (!sym) {
		out_bytes(&o, "0x", 2);
		out_hex(&o, lookup + shown_delta);
		return out_end(&o);
	}
	out_bytes(&o, kallsyms_names + sym->name, kallsym_name_length(sym));
	out_bytes(&o, "+0x", 3);
	out_hex(&o, lookup - (unsigned long)_text - sym->offset + shown_delta);
	out_bytes(&o, "/0x", 3);
	out_hex(&o, sym->size);
	return out_end(&o);
}

/* %pS: the function containing addr, as name+0xoff/0xsize. */
int sprint_symbol(char *buf, size_t size, unsigned long addr)
{
	return sprint_symbol_off(buf, size, addr, 0);
}

/*
 * %pB: for a return address. A call that is a function's last instruction
 * (to a noreturn function) returns to the first byte past it, so look up
 * addr - 1 and print the offset + 1: "name+0x10/0x10" rather than the
 * next function's name.
 */
int sprint_backtrace(char *buf, size_t size, unsigned long addr)
{
	return sprint_symbol_off(buf, size, addr - 1, 1);
}
