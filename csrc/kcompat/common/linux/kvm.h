/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: the KVM user API. arch/arm64/kvm/stacktrace.c includes it but
 * uses nothing from it.
 */
#ifndef __KCOMPAT_LINUX_KVM_H
#define __KCOMPAT_LINUX_KVM_H
#endif
