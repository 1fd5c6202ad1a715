/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: what kbuild force-includes into every object
 * (-include linux/kconfig.h): the configuration's CONFIG_ macros. Here they
 * are the lab's, generated from Kconfig by pyharness.
 */
#ifndef __KCOMPAT_LINUX_KCONFIG_H
#define __KCOMPAT_LINUX_KCONFIG_H

#include <generated/autoconf.h>

#endif
