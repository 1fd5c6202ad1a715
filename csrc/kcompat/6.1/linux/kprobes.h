/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat, 6.1: asm/stacktrace/common.h includes <linux/kprobes.h>. The
 * lab has no kprobes, so there is nothing to keep a probe away from.
 */
#ifndef __KCOMPAT_LINUX_KPROBES_H
#define __KCOMPAT_LINUX_KPROBES_H

#define NOKPROBE_SYMBOL(fname)

#endif
