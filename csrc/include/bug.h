/* SPDX-License-Identifier: GPL-2.0 */
/*
 * BUG(): a BRK with the kernel's BUG immediate, and an entry in the bug
 * table naming the file and line. Entries hold 32-bit displacements from
 * themselves rather than pointers, so the table needs no relocation and
 * reads the same from the hypervisor's and the host's address spaces.
 */
#ifndef __BUG_H
#define __BUG_H

#include <compiler.h>
#include <types.h>

#define BUG_BRK_IMM		0x800

struct bug_entry {
	int bug_addr_disp;	/* the brk, relative to this field */
	int file_disp;		/* the file name, relative to this field */
	unsigned short line;
	unsigned short flags;
};

#define __BUG_STR(x)	#x
#define __BUG_XSTR(x)	__BUG_STR(x)

/*
 * The file name goes to a mergeable string section; the entry records the
 * brk (label 1) and the name (label 2) as displacements from itself.
 *
 * The brk comes first: the assembler gives the statement's line to the
 * first thing the asm emits, and Clang's integrated assembler counts data
 * too. With the sections pushed first, the line-table row for BUG() went
 * to the string and the brk inherited the row of the code before it (the
 * function's closing brace, once Clang moved the unlikely block to the
 * end), so addr2line named the wrong line.
 */
#define __BUG_ASM(line)							\
	"1:	brk #" __BUG_XSTR(BUG_BRK_IMM) "\n"				\
	".pushsection .rodata.str1.1, \"aMS\", %progbits, 1\n"		\
	"2:	.string \"" __FILE__ "\"\n"					\
	".popsection\n"							\
	".pushsection __bug_table, \"a\"\n"				\
	".balign 4\n"							\
	"3:	.long 1b - 3b\n"						\
	"	.long 2b - (3b + 4)\n"					\
	"	.short " __BUG_XSTR(line) ", 0\n"				\
	".popsection\n"

#define BUG() do {							\
	__asm__ __volatile__(__BUG_ASM(__LINE__));			\
	__builtin_unreachable();					\
} while (0)

static inline unsigned long bug_addr(const struct bug_entry *bug)
{
	return (unsigned long)&bug->bug_addr_disp + bug->bug_addr_disp;
}

static inline const char *bug_file(const struct bug_entry *bug)
{
	return (const char *)((unsigned long)&bug->file_disp + bug->file_disp);
}

#endif /* __BUG_H */
