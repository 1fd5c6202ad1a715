/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: what kbuild force-includes into every object
 * (-include linux/kconfig.h): the configuration's CONFIG_ macros. Here they
 * are the lab's, generated from Kconfig by pyharness, plus the names kernel
 * trees use for the same settings:
 *
 *   CONFIG_PAGE_SHIFT        6.12 on (6.1 reads CONFIG_ARM64_PAGE_SHIFT)
 *   CONFIG_64BIT             every arm64 kernel
 *   CONFIG_PKVM_STACKTRACE   7.x's name for CONFIG_PROTECTED_NVHE_STACKTRACE
 */
#ifndef __KCOMPAT_LINUX_KCONFIG_H
#define __KCOMPAT_LINUX_KCONFIG_H

#include <generated/autoconf.h>

#define CONFIG_PAGE_SHIFT	CONFIG_ARM64_PAGE_SHIFT
#define CONFIG_64BIT		1
#ifdef CONFIG_PROTECTED_NVHE_STACKTRACE
#define CONFIG_PKVM_STACKTRACE	1
#endif

#endif
