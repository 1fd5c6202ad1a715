/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __COMPILER_H
#define __COMPILER_H

#define __section(s)		__attribute__((__section__(s)))
#define __aligned(x)		__attribute__((__aligned__(x)))
#define __used			__attribute__((__used__))
#define __noreturn		__attribute__((__noreturn__))
#define noinline		__attribute__((__noinline__))
/*
 * Not inlined, and no interprocedural tricks either (constant propagation
 * into a clone, noreturn discovery): the function keeps its name and its
 * frame exactly as written, which is what a test of the unwinder needs.
 * Clang has no noipa: "used" makes it assume callers it cannot see, so it
 * may not drop or specialise arguments (it otherwise turns the constant
 * arguments of recursive_death() into none, and its frame with them).
 */
#if __has_attribute(__noipa__)
#define noipa			__attribute__((__noipa__))
#else
#define noipa			__attribute__((__noinline__, __used__))
#endif
#define __always_inline		inline __attribute__((__always_inline__))
#define __printf(a, b)		__attribute__((__format__(printf, a, b)))
#define __maybe_unused		__attribute__((__unused__))

#define likely(x)		__builtin_expect(!!(x), 1)
#define unlikely(x)		__builtin_expect(!!(x), 0)
#define barrier()		__asm__ __volatile__("" ::: "memory")

#define ARRAY_SIZE(a)		(sizeof(a) / sizeof((a)[0]))
#define ALIGN(x, a)		(((x) + (a) - 1) & ~((a) - 1))
/*
 * 1 if a bool Kconfig option is set, else 0, usable in C and #if. The
 * generated autoconf.h defines __enabled_CONFIG_X for every bool option,
 * so an unknown option name fails to compile.
 */
#define IS_ENABLED(option)	__enabled_##option

#define READ_ONCE(x)		(*(const volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v)	(*(volatile __typeof__(x) *)&(x) = (v))

#endif /* __COMPILER_H */
