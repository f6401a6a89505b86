/* Double-precision reference for attn_linear: the naive recurrence, one
 * token at a time, written from the formulas in include/attn.h (no code
 * shared with the library). */
#ifndef ATTN_TEST_REF_LINEAR_H
#define ATTN_TEST_REF_LINEAR_H

#include <stdint.h>
#include "attn.h"

typedef struct ref_linear_seq {
    int kind, feature, normalize, l2norm;
    double scale, eps;          /* scale already resolved (not 0) */
    int64_t T, H, Dk, Dv;
    /* One sequence, contiguous: q,k [T,H,Dk]  v [T,H,Dv]  beta [T,H] or NULL
     * g NULL, [T,H] (g_per_channel 0) or [T,H,Dk]; decay [H] or NULL. */
    const double *q, *k, *v, *g, *beta, *decay;
    int g_per_channel;
    double *S;                  /* [H,Dk,Dv] in/out */
    double *z;                  /* [H,Dk] in/out (normalize) */
    double *o;                  /* [T,H,Dv] out */
} ref_linear_seq;

void ref_linear(const ref_linear_seq *a);

/* Round-to-nearest-even conversions (independent of the library's). */
uint16_t reft_f32_to_f16(float f);
float    reft_f16_to_f32(uint16_t h);
uint16_t reft_f32_to_bf16(float f);
float    reft_bf16_to_f32(uint16_t h);

#endif
