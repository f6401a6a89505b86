/* attn_decode on GPUs: the flag word of a call, as the OpenCL
 * (opencl/decode.cl) and Vulkan (vulkan/decode.comp) kernels read it; both
 * define the same bits. */
#ifndef ATTN_GPU_DECODE_FLAGS_H
#define ATTN_GPU_DECODE_FLAGS_H

#include "problem.h"

enum { DEC_F_CAUSAL = 1 << 0, DEC_F_SIGMOID = 1 << 1, DEC_F_ALIBI = 1 << 2,
       DEC_F_SINKS = 1 << 3, DEC_F_LSE = 1 << 4, DEC_F_GATE = 1 << 5, DEC_F_SOFTCAP = 1 << 6 };

static inline int attn_gpu_decode_flags(const attn_decode_problem *p)
{
    int f = 0;
    if (p->causal) f |= DEC_F_CAUSAL;
    if (p->score == ATTN_SCORE_SIGMOID) f |= DEC_F_SIGMOID;
    if (p->alibi_slopes) f |= DEC_F_ALIBI;
    if (p->sink_logits) f |= DEC_F_SINKS;
    if (p->has_lse) f |= DEC_F_LSE;
    if (p->has_gate) f |= DEC_F_GATE;
    if (p->softcap > 0.0f) f |= DEC_F_SOFTCAP;
    return f;
}

#endif
