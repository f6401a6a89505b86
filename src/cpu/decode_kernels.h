/* Decode micro-kernels: one table per ISA (scalar in src/cpu/decode_scalar.c,
 * SIMD sets in simd/<isa>_decode.c). They read K/V rows straight from cache
 * pages in their storage type (F32, F16, BF16, Q8, Q4; see quant.h) and
 * dequantise in registers: no dequantised copy of the cache is ever made.
 * The driver (decode.c) owns the loops over pages, masks and the softmax.
 *
 * Each K/V row is loaded once for all nr query rows (the query heads of one
 * GQA group times the query tokens), which is what makes decode
 * bandwidth-bound rather than latency-bound. */
#ifndef ATTN_CPU_DECODE_KERNELS_H
#define ATTN_CPU_DECODE_KERNELS_H

#include <stdint.h>
#include "attn.h"
#include "../kv_cache.h"

/* Where to prefetch row j of a run of nk rows (j may be past the run: the
 * rows the driver streams next, when it says which). */
static inline const uint8_t *attn_kv_row_ahead(const attn_kv_rows *x, int64_t j, int nk)
{
    return j >= nk && x->next ? x->next + (j - nk) * x->row_bytes : x->data + j * x->row_bytes;
}

/* The same for row j's meta (Q8/Q4). */
static inline const uint16_t *attn_kv_meta_ahead(const attn_kv_rows *x, int64_t j, int nk)
{
    return j >= nk && x->next_meta ? x->next_meta + (j - nk) * x->meta_per_row
                                   : x->meta + j * x->meta_per_row;
}

typedef struct attn_cpu_decode_kernels {
    const char *name;
    /* s[r*lds + j] = sum_c q[r*ldq + c] * k_j[c]   for r < nr, j < nk.
     * q rows are f32, 64-byte aligned, zero-padded to ldq (a multiple of 16). */
    void (*qk)(const float *q, int64_t ldq, int nr, const attn_kv_rows *k, attn_dtype dt,
               int nk, int64_t d, float *s, int64_t lds);
    /* o[r*ldo + c] += sum_j p[r*ldp + j] * v_j[c]   for r < nr, c < dv.
     * o rows are f32, 64-byte aligned, ldo a multiple of 16. */
    void (*pv)(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
               int nk, int64_t dv, float *o, int64_t ldo);
    /* Optional (NULL where the set has none): scores from query rows
     * prepared once per task. prep_bytes(dt, nr, d): size of the prepared
     * rows for keys of storage dt, 0 where qk must be used instead;
     * prep_q writes them (64-byte aligned qp); qk_prepared is qk on them. */
    size_t (*prep_bytes)(attn_dtype dt, int nr, int64_t d);
    void (*prep_q)(const float *q, int64_t ldq, int nr, int64_t d, void *qp);
    void (*qk_prepared)(const void *qp, int nr, const attn_kv_rows *k, attn_dtype dt, int nk,
                        int64_t d, float *s, int64_t lds);
} attn_cpu_decode_kernels;

extern const attn_cpu_decode_kernels attn_cpu_decode_scalar;
const attn_cpu_decode_kernels *attn_cpu_decode_avx2(void);
const attn_cpu_decode_kernels *attn_cpu_decode_avx512(void);
/* AVX-512 with VNNI scores for Q8/Q4 keys: only for CPUs with ATTN_CPU_AVX512_VNNI. */
const attn_cpu_decode_kernels *attn_cpu_decode_avx512_vnni(void);
const attn_cpu_decode_kernels *attn_cpu_decode_neon(void);

/* The set for the ISA the context uses, refined by its feature bits (scalar
 * where that ISA's file was not built). */
const attn_cpu_decode_kernels *attn_cpu_decode_kernels_for(attn_isa isa, uint64_t features);

#endif
