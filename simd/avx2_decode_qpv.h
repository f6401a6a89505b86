/* P.V for Q8/Q4 values on AVX2 (included by avx2_decode.c after the
 * template). As in avx512_decode_qpv.h the block scale moves from the
 * values to the probabilities, once per (row, key, block):
 *     o[r][c] += sum_j w[r][j] * v_jc + sum_j p[r][j] * mv_jb,
 *     w[r][j] = p[r][j] * sv_jb   (b = c / 32)
 * One 32-dim block at a time: w for 4 query rows and up to 64 keys, then
 * each key's integers of the block become floats once for the 4 rows and
 * feed one FMA per (row, 8 values). The template's loaders instead scale
 * every value and run once per pair of query rows (twice per K/V row for a
 * GQA group of 4). Register tile: 4 rows x 16 dims (8 accumulators), two
 * passes per block. */
#ifndef ATTN_AVX2_DECODE_QPV_H
#define ATTN_AVX2_DECODE_QPV_H

/* The block's dims 8e..8e+7 of a row as floats, from the block's bytes vb
 * (Q8: int8 per dim; Q4: byte t holds dim t low and dim 16 + t high). */
static inline __m256 qvals8(int q4, const uint8_t *vb, int e)
{
    if (!q4)
        return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(vb + 8 * e))));
    const __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(vb + 8 * (e & 1))));
    return _mm256_cvtepi32_ps(e >= 2 ? _mm256_srli_epi32(x, 4) : _mm256_and_si256(x, _mm256_set1_epi32(15)));
}

DEC_INLINE void qpv_with(int q4, const float *p, int64_t ldp, int nr, const attn_kv_rows *v, int nk,
                         int64_t dv, float *o, int64_t ldo)
{
    float w[4][64];
    const int64_t rb = v->row_bytes, mpr = v->meta_per_row, bb = q4 ? 16 : 32;   /* bytes a block */
    for (int r0 = 0; r0 < nr; r0 += 4) {
        const int rn = dec_min(nr - r0, 4);
        const float *pr[4];
        DEC_UNROLL for (int r = 0; r < 4; r++) pr[r] = p + (r0 + dec_min(r, rn - 1)) * ldp;
        for (int64_t b = 0; b < dv / 32; b++)
            for (int j0 = 0; j0 < nk; j0 += 64) {
                const int jn = dec_min(nk - j0, 64);
                float msum[4] = { 0.0f, 0.0f, 0.0f, 0.0f };
                for (int j = 0; j < jn; j++) {
                    const uint16_t *m = v->meta + (j0 + j) * mpr + (q4 ? 2 * b : b);
                    const float sv = _cvtsh_ss(m[0]);
                    DEC_UNROLL for (int r = 0; r < 4; r++) w[r][j] = pr[r][j0 + j] * sv;
                    if (q4) {
                        const float mv = _cvtsh_ss(m[1]);
                        DEC_UNROLL for (int r = 0; r < 4; r++) msum[r] += pr[r][j0 + j] * mv;
                    }
                }
                for (int h = 0; h < 2; h++) {   /* the block's dims 16h..16h+15 */
                    float *ob = o + r0 * ldo + 32 * b + 16 * h;
                    __m256 acc[4][2];
                    DEC_UNROLL for (int r = 0; r < 4; r++)
                        DEC_UNROLL for (int e = 0; e < 2; e++)
                            acc[r][e] = r < rn ? _mm256_load_ps(ob + r * ldo + 8 * e) : _mm256_setzero_ps();
                    for (int j = 0; j < jn; j++) {
                        const uint8_t *vb = v->data + (j0 + j) * rb + b * bb;
                        if (b == 0 && h == 0)   /* whole rows: the later blocks read them from L1 */
                            dec_prefetch(attn_kv_row_ahead(v, j0 + j + dec_pf_keys, nk), rb);
                        const __m256 x0 = qvals8(q4, vb, 2 * h), x1 = qvals8(q4, vb, 2 * h + 1);
                        DEC_UNROLL for (int r = 0; r < 4; r++) {
                            const __m256 wj = _mm256_broadcast_ss(&w[r][j]);
                            acc[r][0] = _mm256_fmadd_ps(wj, x0, acc[r][0]);
                            acc[r][1] = _mm256_fmadd_ps(wj, x1, acc[r][1]);
                        }
                    }
                    DEC_UNROLL for (int r = 0; r < 4; r++)
                        if (r < rn)
                            DEC_UNROLL for (int e = 0; e < 2; e++)
                                _mm256_store_ps(ob + r * ldo + 8 * e,
                                                _mm256_add_ps(acc[r][e], _mm256_set1_ps(msum[r])));
                }
            }
    }
}

/* The template's P.V for the float types, kept out of avx2_pv: inlined
 * there, f16 P.V ran 10-15% slower (code placement; measured). */
__attribute__((noinline))
static void float_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                     int nk, int64_t dv, float *o, int64_t ldo)
{
    dec_pv(p, ldp, nr, v, dt, nk, dv, o, ldo);
}

static void avx2_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                    int nk, int64_t dv, float *o, int64_t ldo)
{
    if (dt == ATTN_Q8)
        qpv_with(0, p, ldp, nr, v, nk, dv, o, ldo);
    else if (dt == ATTN_Q4)
        qpv_with(1, p, ldp, nr, v, nk, dv, o, ldo);
    else
        float_pv(p, ldp, nr, v, dt, nk, dv, o, ldo);
}

#endif
