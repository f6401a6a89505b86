/* attn_sdpa on GPUs: the flag word of a call, as the OpenCL (opencl/sdpa.cl)
 * and Vulkan (vulkan/sdpa_common.glsl) kernels read it; both define the
 * same bits. The backends also build a kernel per flag word, so that the
 * code of the features a call does not use is compiled out. */
#ifndef ATTN_GPU_SDPA_FLAGS_H
#define ATTN_GPU_SDPA_FLAGS_H

#include "problem.h"

enum { F_CAUSAL = 1 << 0, F_SIGMOID = 1 << 1, F_ALIBI = 1 << 2, F_SINKS = 1 << 3,
       F_VARLEN = 1 << 4, F_LSE = 1 << 5, F_MASK = 1 << 6, F_GATE = 1 << 7,
       F_BMASK = 1 << 8, F_SOFTCAP = 1 << 9 };

static inline int attn_gpu_sdpa_flags(const attn_sdpa_problem *p)
{
    int f = 0;
    if (p->causal) f |= F_CAUSAL;
    if (p->score == ATTN_SCORE_SIGMOID) f |= F_SIGMOID;
    if (p->alibi_slopes) f |= F_ALIBI;
    if (p->sink_logits) f |= F_SINKS;
    if (p->cu_q) f |= F_VARLEN;
    if (p->has_lse) f |= F_LSE;
    if (p->has_mask) f |= F_MASK;
    if (p->has_gate) f |= F_GATE;
    if (p->has_block_mask) f |= F_BMASK;
    if (p->softcap > 0.0f) f |= F_SOFTCAP;
    return f;
}

#endif
