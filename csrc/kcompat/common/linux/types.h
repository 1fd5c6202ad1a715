/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: the basic types and compiler helpers a kernel source expects
 * from <linux/types.h> and the headers it drags in (bool, NULL, u64,
 * READ_ONCE, ARRAY_SIZE, __aligned, notrace, the errno values). The lab's
 * own types.h and compiler.h provide nearly all of it.
 */
#ifndef __KCOMPAT_LINUX_TYPES_H
#define __KCOMPAT_LINUX_TYPES_H

#include <types.h>		/* lab: u8..u64, size_t, bool, NULL */
#include <compiler.h>		/* lab: __aligned, __section, READ_ONCE, ARRAY_SIZE */
#include <linux/errno.h>

typedef u64			phys_addr_t;

/* No function tracer in the lab: notrace only keeps -pg instrumentation off. */
#define notrace			__attribute__((__no_instrument_function__))

#endif
