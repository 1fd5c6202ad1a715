/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat, 7.x: asm/stacktrace/common.h reads each frame record as a
 * struct frame_record, declared in the tree's asm/stacktrace/frame.h,
 * which the kernel reaches through asm/ptrace.h. common.h includes nothing
 * but <linux/types.h>, so the tree's frame.h comes in here, after the
 * common types (u64) it needs.
 */
#ifndef __KCOMPAT_7X_LINUX_TYPES_H
#define __KCOMPAT_7X_LINUX_TYPES_H

#include_next <linux/types.h>
#include <asm/stacktrace/frame.h>	/* the tree's */

#endif
