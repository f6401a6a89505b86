/* CPU feature probing: cpuid + xgetbv on x86-64, getauxval on aarch64. */
#ifndef ATTN_CPU_FEATURES_H
#define ATTN_CPU_FEATURES_H

#include <stddef.h>
#include <stdint.h>
#include "attn.h"

/* ATTN_CPU_* bits usable on this machine: instruction support AND the OS
 * saving the needed register state (ymm for AVX, zmm/opmask for AVX-512,
 * tile data for AMX). */
uint64_t attn_cpu_probe(void);

/* Asks the OS, once per process, for permission to use AMX tile data (Linux
 * arch_prctl ARCH_REQ_XCOMP_PERM; until granted, the first tile instruction
 * faults). Thread-safe; 1 when AMX may be used, 0 otherwise. */
int attn_cpu_amx_permit(void);

/* The ATTN_CPU_* bit named by name[0..len) ("avx512_bf16"), 0 if unknown. */
uint64_t attn_cpu_feature_from_name(const char *name, size_t len);

/* Best kernel set these features allow (ignoring what was compiled in). */
attn_isa attn_cpu_best_isa(uint64_t features);

/* Brand string ("Intel(R) Xeon(R) ..."), or a generic name. */
void attn_cpu_name(char *buf, size_t n, char *vendor, size_t vn);

#endif
