/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __TYPES_H
#define __TYPES_H

#include <stddef.h>
#include <stdbool.h>

typedef unsigned char		u8;
typedef unsigned short		u16;
typedef unsigned int		u32;
typedef unsigned long		u64;
typedef signed long		s64;
typedef unsigned long		uintptr_t;
typedef long			ssize_t;

#endif /* __TYPES_H */
