/* SPDX-License-Identifier: GPL-2.0 */
/* kcompat: the callback type an unwind hands each pc to. */
#ifndef __KCOMPAT_LINUX_STACKTRACE_H
#define __KCOMPAT_LINUX_STACKTRACE_H

#include <linux/types.h>

/* Take one return address; return false to stop the walk. */
typedef bool (*stack_trace_consume_fn)(void *cookie, unsigned long addr);

#endif
