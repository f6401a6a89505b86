/* State and entry points of the CPU backend. */
#ifndef ATTN_CPU_BACKEND_H
#define ATTN_CPU_BACKEND_H

#include "../backend.h"
#include "kernels.h"
#include "scratch.h"

typedef struct attn_cpu_state {
    const attn_cpu_kernels *kernels;  /* chosen at context creation */
    uint64_t                features; /* ATTN_CPU_* */
    int                     num_threads;
    attn_cpu_scratch        scratch;  /* workspace kept across calls */
} attn_cpu_state;

attn_status attn_cpu_sdpa(attn_device *dev, const attn_sdpa_problem *p);
attn_status attn_cpu_merge(attn_device *dev, const attn_merge_problem *p);
attn_status attn_cpu_block_select(attn_device *dev, const attn_block_select_problem *p);

#endif
