/* Q8/Q4 scores with AVX512-VNNI integer dot products. Included by
 * avx512_decode.c after avx512_decode_meta.h (meta16_*); these
 * functions carry target("avx512vnni") and are only reached through the
 * kernel table chosen for CPUs with ATTN_CPU_AVX512_VNNI.
 *
 * Query: prepared once per task (vnni_prep_q): each row (f32, already times
 * the softmax scale) is rounded to int8 per 32-dim block b,
 *     qi = round(q / step_b),   step_b = max|q_b| / 127.
 * Keys: 16 at a time, transposed so that one vector holds the same 4 bytes
 * (4 dims; Q4: 8 nibbles) of 16 keys. vpdpbusd then adds, per key lane,
 * 4 key bytes (unsigned) times 4 query bytes (signed, broadcast) to an int32
 * sum per block, and each finished block is scaled in f32 into 16 scores:
 *   Q8: key bytes k (int8) go in as k + 128 (xor 0x80); the block sum starts
 *       at -128 * sum(qi_b), so it is exactly sum(k qi):
 *           s += sk_b * step_b * sum(k qi)
 *   Q4: nibbles n (0..15) go in as they are (x = sk n + mk):
 *           s += sk_b * step_b * sum(n qi) + mk_b * step_b * sum(qi)
 * The scores are thus exactly those of the dequantised keys with the rounded
 * query step_b * qi (up to f32 summation order), and no horizontal sums are
 * needed: lanes are keys. The query's rounding is the only error beyond the
 * float path: |q - step qi| <= step_b / 2 per element, a relative rms of
 * about 0.45% for Gaussian blocks, as large as Q8's own rounding of K: Q8
 * decode's error against an f32 cache grows from 0.73% to 0.89% rms, Q4's
 * (12%) does not change. tests/test_decode.c checks these kernels against a
 * reference run on the rounded query, and reports both errors.
 *
 * The same block sums on the AMX-INT8 tile unit (tdpbsud, C[4 rows x 4
 * blocks][16 keys] from the transposed keys stored as B tiles) were
 * slower on a Sapphire Rapids VM (L = 32K, one thread, hot, least CPU
 * time a call: Q4 3.8-4.0 against 3.7-3.8 ms, Q8 6.0-6.1 against
 * 4.9-5.0; with all of a tile's B staged before its tdpbsud, worse): a
 * 16-key group's two tdpbsud with their tile loads and store take about
 * as long as its 128 vpdpbusd, and staging B costs 2 KB of stores per 16
 * keys besides. */
#ifndef ATTN_AVX512_DECODE_VNNI_H
#define ATTN_AVX512_DECODE_VNNI_H

#define VNNI_INLINE static inline __attribute__((always_inline, target("avx512vnni")))

/* Heads up to 1024 dims (the transposed keys live on the stack); larger
 * ones take the float path. */
enum { vnni_max_d = 1024 };

/* A prepared query row: int8 qi[d] | f32 step[nb] | i32 corr[nb] (Q8: -128 *
 * sum(qi_b)) | f32 msum[nb] (Q4: step_b * sum(qi_b)), 64-byte aligned. */
static inline int64_t vnni_row_bytes(int64_t d)
{
    return (d + 12 * (d / 32) + 63) / 64 * 64;
}

static size_t vnni_prep_bytes(attn_dtype dt, int nr, int64_t d)
{
    return (dt == ATTN_Q8 || dt == ATTN_Q4) && d <= vnni_max_d ? (size_t)nr * (size_t)vnni_row_bytes(d) : 0;
}

__attribute__((target("avx512vnni")))
static void vnni_prep_q(const float *q, int64_t ldq, int nr, int64_t d, void *qp)
{
    const int64_t nb = d / 32;
    for (int r = 0; r < nr; r++) {
        int8_t *qi = (int8_t *)qp + r * vnni_row_bytes(d);
        float *step = (float *)(qi + d), *msum = step + 2 * nb;
        int32_t *corr = (int32_t *)(step + nb);
        for (int64_t b = 0; b < nb; b++) {
            const float *x = q + r * ldq + 32 * b;
            const __m512 lo = _mm512_load_ps(x), hi = _mm512_load_ps(x + 16);
            const float amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(lo), _mm512_abs_ps(hi)));
            const __m512 inv = _mm512_set1_ps(amax > 0.0f ? 127.0f / amax : 0.0f);
            const __m512i ilo = _mm512_cvtps_epi32(_mm512_mul_ps(lo, inv));
            const __m512i ihi = _mm512_cvtps_epi32(_mm512_mul_ps(hi, inv));
            _mm_storeu_si128((__m128i *)(qi + 32 * b), _mm512_cvtsepi32_epi8(ilo));
            _mm_storeu_si128((__m128i *)(qi + 32 * b + 16), _mm512_cvtsepi32_epi8(ihi));
            const int isum = _mm512_reduce_add_epi32(_mm512_add_epi32(ilo, ihi));
            step[b] = amax / 127.0f;
            /* |isum| <= 32 * 127 for a finite row; a NaN or inf in it gives
             * NaN scores, and INT_MIN lanes here that must not overflow */
            corr[b] = (int32_t)(0u - 128u * (uint32_t)isum);
            msum[b] = step[b] * (float)isum;
        }
    }
}

/* acc += k . q: per dword lane, 4 unsigned key bytes times the 4 signed
 * query bytes at q (broadcast). Written as asm so that the broadcast stays
 * a memory operand of vpdpbusd: gcc 12 loads it with a vpbroadcastd of its
 * own, one more uop per dot product. */
VNNI_INLINE __m512i vnni_dot(__m512i acc, __m512i k, const int32_t *q)
{
    __asm__("vpdpbusd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(k), "m"(*q));
    return acc;
}

/* In-place transpose of 16 rows of 16 dwords: r[c] lane i <- r[i] lane c. */
VNNI_INLINE void vnni_transpose16(__m512i *r)
{
    __m512i t[16], u[16];
    DEC_UNROLL for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    /* u[4i + k], 128-bit lane L: column 4L + k of rows 4i..4i+3 */
    DEC_UNROLL for (int i = 0; i < 4; i++) {
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    /* 4x4 transposes of 128-bit lanes across u[k], u[4 + k], u[8 + k], u[12 + k] */
    DEC_UNROLL for (int k = 0; k < 4; k++) {
        const __m512i x0 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0x44);
        const __m512i x1 = _mm512_shuffle_i32x4(u[k], u[4 + k], 0xee);
        const __m512i y0 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0x44);
        const __m512i y1 = _mm512_shuffle_i32x4(u[8 + k], u[12 + k], 0xee);
        r[k] = _mm512_shuffle_i32x4(x0, y0, 0x88);
        r[4 + k] = _mm512_shuffle_i32x4(x0, y0, 0xdd);
        r[8 + k] = _mm512_shuffle_i32x4(x1, y1, 0x88);
        r[12 + k] = _mm512_shuffle_i32x4(x1, y1, 0xdd);
    }
}

/* Scores of all nr prepared rows against keys j0..j0+jn-1 (jn <= 16; full:
 * jn == 16, so that no row load needs its own mask). */
VNNI_INLINE void vnni_qk16(int q4, int full, const uint8_t *qp, int nr, const attn_kv_rows *k, int j0,
                           int jn, int nk, int64_t d, float *s, int64_t lds)
{
    /* the row's bytes and meta follow from d (quant.h): constants where d is */
    const int64_t nb = d / 32, qrow = vnni_row_bytes(d), rb = q4 ? d / 2 : d, mpr = q4 ? 2 * nb : nb;
    /* kt[c]: dword c of the 16 rows (dims 4c..4c+3; Q4 bytes 4c..4c+3), zero past jn */
    __m512i kt[vnni_max_d / 4];
    const uint8_t *kd = k->data + j0 * rb;
    const uint8_t *pf = attn_kv_row_ahead(k, j0 + dec_qpf_keys, nk);   /* the rows ahead */
    for (int64_t mb = 0; mb < 32 * mpr; mb += 64)   /* and their meta */
        __builtin_prefetch((const uint8_t *)attn_kv_meta_ahead(k, j0 + dec_qpf_keys, nk) + mb, 0, dec_qpf_locality);
    for (int64_t c0 = 0; c0 < rb; c0 += 64) {
        const __mmask16 m = rb - c0 >= 64 ? (__mmask16)0xffff : (__mmask16)((1u << ((rb - c0) / 4)) - 1u);
        __m512i r[16];
        DEC_UNROLL for (int l = 0; l < 16; l++) {
            r[l] = _mm512_maskz_loadu_epi32(full || l < jn ? m : 0, kd + l * rb + c0);
            __builtin_prefetch(pf + l * rb + c0, 0, dec_qpf_locality);
        }
        vnni_transpose16(r);
        DEC_UNROLL for (int c = 0; c < 16; c++)
            kt[c0 / 4 + c] = q4 ? r[c] : _mm512_xor_si512(r[c], _mm512_set1_epi8((char)0x80));
    }
    const meta16 mt = meta16_load(k, mpr, j0, jn);
    const int all4 = q4 && mt.dpr == 4;   /* D = 128: the 4 blocks' parameters at once */
    __m512 sk4[4], mk4[4];
    if (all4) {
        __m512i col4[4];
        meta16_q4_cols(&mt, col4);
        DEC_UNROLL for (int b = 0; b < 4; b++) meta16_q4_params(col4[b], &sk4[b], &mk4[b]);
    }
    const __mmask16 store = (__mmask16)((1u << jn) - 1u);
    for (int r0 = 0; r0 < nr; r0 += 4) {
        const int rn = dec_min(nr - r0, 4);
        const int8_t *qi[4];
        DEC_UNROLL for (int r = 0; r < 4; r++) qi[r] = (const int8_t *)(qp + (r0 + dec_min(r, rn - 1)) * qrow);
        __m512 sc[4];
        DEC_UNROLL for (int r = 0; r < 4; r++) sc[r] = _mm512_setzero_ps();
        /* not unrolled: unrolled, gcc 12 computes every block's nibbles ahead
         * of the dot products and spills them (D = 128: 4% slower) */
        for (int64_t b = 0; b < nb; b++) {
            __m512i acc[4];
            DEC_UNROLL for (int r = 0; r < 4; r++)
                acc[r] = q4 ? _mm512_setzero_si512()
                            : _mm512_set1_epi32(((const int32_t *)(qi[r] + d))[nb + b]);
            if (q4) {
                /* block bytes 4i..4i+3 hold dims 4i.. (low nibbles) and 16 + 4i.. (high) */
                DEC_UNROLL for (int i = 0; i < 4; i++) {
                    const __m512i x = kt[4 * b + i];
                    const __m512i lo = _mm512_and_si512(x, _mm512_set1_epi8(0x0f));
                    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(x, 4), _mm512_set1_epi8(0x0f));
                    DEC_UNROLL for (int r = 0; r < 4; r++) {
                        const int32_t *qd = (const int32_t *)(qi[r] + 32 * b);
                        acc[r] = vnni_dot(acc[r], lo, qd + i);
                        acc[r] = vnni_dot(acc[r], hi, qd + 4 + i);
                    }
                }
            } else {
                DEC_UNROLL for (int i = 0; i < 8; i++)
                    DEC_UNROLL for (int r = 0; r < 4; r++)
                        acc[r] = vnni_dot(acc[r], kt[8 * b + i], (const int32_t *)(qi[r] + 32 * b) + i);
            }
            __m512 sk, mk;
            if (all4) {   /* b < 4 */
                sk = sk4[b & 3];
                mk = mk4[b & 3];
            } else {
                meta16_block(q4, &mt, b, &sk, &mk);
            }
            DEC_UNROLL for (int r = 0; r < 4; r++) {
                const float *step = (const float *)(qi[r] + d);
                sc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(acc[r]), _mm512_mul_ps(sk, _mm512_set1_ps(step[b])), sc[r]);
                if (q4)
                    sc[r] = _mm512_fmadd_ps(mk, _mm512_set1_ps(step[2 * nb + b]), sc[r]);
            }
        }
        DEC_UNROLL for (int r = 0; r < 4; r++)
            if (r < rn)
                _mm512_mask_storeu_ps(s + (r0 + r) * lds + j0, store, sc[r]);
    }
}

VNNI_INLINE void vnni_qk_run(const void *qp, int nr, const attn_kv_rows *k, attn_dtype dt, int nk,
                              int64_t d, float *s, int64_t lds)
{
    for (int j0 = 0; j0 < nk; j0 += 16) {
        const int jn = dec_min(nk - j0, 16);
        if (dt == ATTN_Q4 && jn == 16)
            vnni_qk16(1, 1, qp, nr, k, j0, jn, nk, d, s, lds);
        else if (dt == ATTN_Q4)
            vnni_qk16(1, 0, qp, nr, k, j0, jn, nk, d, s, lds);
        else if (jn == 16)
            vnni_qk16(0, 1, qp, nr, k, j0, jn, nk, d, s, lds);
        else
            vnni_qk16(0, 0, qp, nr, k, j0, jn, nk, d, s, lds);
    }
}

/* D = 128, the common head, gets its own copy with the row and meta
 * layouts fixed. */
__attribute__((target("avx512vnni")))
static void vnni_qk_prepared(const void *qp, int nr, const attn_kv_rows *k, attn_dtype dt, int nk,
                             int64_t d, float *s, int64_t lds)
{
    if (d == 128)
        vnni_qk_run(qp, nr, k, dt, nk, 128, s, lds);
    else
        vnni_qk_run(qp, nr, k, dt, nk, d, s, lds);
}

#endif
