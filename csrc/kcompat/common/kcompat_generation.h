/* SPDX-License-Identifier: GPL-2.0 */
/*
 * kcompat: what the lab's glue (csrc/kcompat/host_glue.c) defines for a
 * tree of this generation. 6.1 and 6.12 (this file): the host's per-CPU
 * kernel VA of each CPU's hyp stack page, kvm_arm_hyp_stack_page. A
 * generation that differs has its own copy in csrc/kcompat/<generation>/.
 */
#ifndef __KCOMPAT_GENERATION_H
#define __KCOMPAT_GENERATION_H

#define KCOMPAT_HYP_STACK_BASE	kvm_arm_hyp_stack_page

#endif
