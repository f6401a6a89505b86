/*
 * Double-precision reference for the libattn tests.
 *
 * Written from the semantics in include/attn.h only; it shares no code with
 * the library (nothing from src/ is included). Plain loops, clarity first.
 */
#ifndef ATTN_TEST_REF_H
#define ATTN_TEST_REF_H

#include <stdint.h>
#include "attn.h"

/* ---- 16-bit float conversions (independent of the library's) ---------- */
float    ref_f16_to_f32(uint16_t h);
uint16_t ref_f32_to_f16(float f);    /* round to nearest even, overflow -> inf */
float    ref_bf16_to_f32(uint16_t h);
uint16_t ref_f32_to_bf16(float f);   /* round to nearest even, NaN stays NaN */

/* The value x becomes once stored in dtype dt (F32/F16/BF16; U8: clamp+round). */
double ref_round_to(attn_dtype dt, double x);

/* ---- Tensor element access (host tensors: data pointer, offset ignored) - */
size_t  ref_dtype_size(attn_dtype dt);
/* Element offset of idx (t->ndim indices); all-zero strides = row-major. */
int64_t ref_elem_offset(const attn_tensor *t, const int64_t *idx);
double  ref_get(const attn_tensor *t, const int64_t *idx);
void    ref_set(const attn_tensor *t, const int64_t *idx, double x);
/* Number of elements of the view. */
int64_t ref_numel(const attn_tensor *t);

/*
 * Reference attention, exactly per the comment above attn_sdpa_params.
 *   q [Bt,Tq,Hq,D]  k [Bt,Tk,Hkv,D]  v [Bt,Tk,Hkv,Dv]   (any dtype, strides)
 *   out: double [Bt,Tq,Hq,Dv] contiguous (required)
 *   lse: double [Bt,Hq,Tq] contiguous, or NULL. Filled for softmax; for
 *        sigmoid it is filled with NaN (no lse exists).
 * With varlen (cu_seqlens_q/k + num_seqs) Bt is 1; packed rows not covered
 * by any sequence get out = 0 and lse = -inf.
 * Returns 0, or -1 (with a message on stderr) for arguments it cannot use.
 */
int ref_sdpa(const attn_sdpa_params *p, const attn_tensor *q, const attn_tensor *k,
             const attn_tensor *v, double *out, double *lse);

/* A second, deliberately different formulation (dense visibility matrix built
 * by clearing rules, softmax by explicit normalisation without max
 * subtraction) used only to self-check ref_sdpa on small, tame problems. */
int ref_sdpa_naive(const attn_sdpa_params *p, const attn_tensor *q, const attn_tensor *k,
                   const attn_tensor *v, double *out, double *lse);

/*
 * Reference merge: outs[i] [B,S,H,Dv], lses[i] [B,H,S] (any dtype/strides).
 * out double [B,S,H,Dv] contiguous, lse double [B,H,S] contiguous or NULL.
 */
int ref_merge(const attn_tensor *outs, const attn_tensor *lses, int n, double *out,
              double *lse);

/* Self-checks of the reference (conversions exhaustively, ref_sdpa against
 * ref_sdpa_naive and hand-computed values). Returns the number of failures;
 * prints what failed. rnd() must return uniform doubles in [0,1). */
int ref_selfcheck(double (*rnd)(void));

#endif
