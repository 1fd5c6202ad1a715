/* SPDX-License-Identifier: GPL-2.0 */
/* kcompat: the error numbers the unwinder returns. */
#ifndef __KCOMPAT_LINUX_ERRNO_H
#define __KCOMPAT_LINUX_ERRNO_H

#define ENOENT		2
#define EINVAL		22

#endif
