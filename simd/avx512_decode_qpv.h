/* P.V for Q8/Q4 values on AVX-512 (included by avx512_decode.c after the
 * template). The float loaders of decode_tmpl.h multiply every 16 values
 * by their block scale (and add the Q4 min), for each key: here the scale
 * moves to the probabilities instead, once per (row, key, block):
 *     o[r][c] += sum_j p[r][j] * (sv_jb * v_jc + mv_jb)
 *              = sum_j w[r][b][j] * v_jc + sum_j p[r][j] * mv_jb,
 *     w[r][b][j] = p[r][j] * sv_jb   (b = c / 32)
 * w is computed 16 keys at a time (the scales of 16 rows gathered from the
 * page's meta), the Q4 min term as 16-lane dot products added once per
 * tile. The inner loop is then integer -> f32 conversion and one FMA per
 * (row, 16 values), with w broadcast from memory. Register tile: 4 rows x
 * 64 dims (two blocks), as in decode_tmpl.h. */
#ifndef ATTN_AVX512_DECODE_QPV_H
#define ATTN_AVX512_DECODE_QPV_H

/* The meta dwords at byte off of 16 key rows' meta (rows: key indices). */
static inline __m512i meta16(const attn_kv_rows *x, __m512i rows, int64_t off)
{
    const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(rows, _mm512_set1_epi32((int)(2 * x->meta_per_row))),
                                         _mm512_set1_epi32((int)off));
    return _mm512_i32gather_epi32(idx, (const void *)x->meta, 1);
}

/* The f16 in the low / high half of each dword, as f32. */
static inline __m512 lo_f16(__m512i w) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w)); }
static inline __m512 hi_f16(__m512i w) { return lo_f16(_mm512_srli_epi32(w, 16)); }

/* Block b's (scale, min) of keys j0..j0+15 (clamped to nk - 1): Q4 stores
 * the pair as one dword; Q8's scale is the high half of the dword ending at
 * it (the data precedes the meta in a page plane: never reads before it). */
static inline void block_params16(int q4, const attn_kv_rows *x, int j0, int nk, int64_t b,
                                  __m512 *sv, __m512 *mv)
{
    const __m512i rows = _mm512_min_epi32(
        _mm512_add_epi32(_mm512_set1_epi32(j0), _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)),
        _mm512_set1_epi32(nk - 1));
    const __m512i w = meta16(x, rows, q4 ? 4 * b : 2 * b - 2);
    *sv = q4 ? lo_f16(w) : hi_f16(w);
    *mv = q4 ? hi_f16(w) : _mm512_setzero_ps();
}

/* 16 values of the pass's dims 16cc.. of row vd (Q8: int8 at dims c0..;
 * Q4: block c0/32 + cc/2, low nibbles for even cc, high for odd). */
static inline __m512 qvals16(int q4, const uint8_t *vd, int64_t c0, int cc)
{
    if (!q4)
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(vd + c0 + 16 * cc))));
    const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(vd + c0 / 2 + 16 * (cc / 2))));
    return _mm512_cvtepi32_ps((cc & 1) ? _mm512_srli_epi32(x, 4) : _mm512_and_si512(x, _mm512_set1_epi32(15)));
}

DEC_INLINE void qpv_with(int q4, const float *p, int64_t ldp, int nr, const attn_kv_rows *v,
                            int nk, int64_t dv, float *o, int64_t ldo)
{
    float w[4][2][64] __attribute__((aligned(64)));
    const int64_t rb = v->row_bytes;
    for (int r0 = 0; r0 < nr; r0 += 4) {
        const int rn = dec_min(nr - r0, 4);
        for (int64_t c0 = 0; c0 < dv; c0 += 64) {
            const int nh = c0 + 32 < dv ? 2 : 1;   /* blocks in this pass */
            __m512 acc[4][4];
            DEC_UNROLL for (int r = 0; r < 4; r++)
                DEC_UNROLL for (int cc = 0; cc < 4; cc++)
                    acc[r][cc] = r < rn && cc < 2 * nh ? _mm512_load_ps(o + (r0 + r) * ldo + c0 + 16 * cc)
                                                      : _mm512_setzero_ps();
            for (int j0 = 0; j0 < nk; j0 += 64) {
                const int jn = dec_min(nk - j0, 64);
                __m512 msum[4][2];
                DEC_UNROLL for (int r = 0; r < 4; r++) msum[r][0] = msum[r][1] = _mm512_setzero_ps();
                for (int j = 0; j < jn; j += 16) {
                    if (c0 == 0)   /* the meta of the 16 keys after these */
                        for (int64_t mb = 0; mb < 32 * v->meta_per_row; mb += 64)
                            __builtin_prefetch((const uint8_t *)attn_kv_meta_ahead(v, j0 + j + 16, nk) + mb, 0, 3);
                    const __mmask16 keys = jn - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (jn - j)) - 1u);
                    for (int h = 0; h < nh; h++) {
                        __m512 sv, mv;
                        block_params16(q4, v, j0 + j, nk, c0 / 32 + h, &sv, &mv);
                        DEC_UNROLL for (int r = 0; r < 4; r++) {
                            const __m512 pr = _mm512_maskz_loadu_ps(keys, p + (r0 + dec_min(r, rn - 1)) * ldp + j0 + j);
                            _mm512_store_ps(&w[r][h][j], _mm512_mul_ps(pr, sv));
                            if (q4)
                                msum[r][h] = _mm512_fmadd_ps(pr, mv, msum[r][h]);
                        }
                    }
                }
                for (int j = 0; j < jn; j++) {
                    const uint8_t *vd = v->data + (j0 + j) * rb;
                    __builtin_prefetch(attn_kv_row_ahead(v, j0 + j + 16, nk) + c0 * rb / dv, 0, 3);
                    __m512 x[4];
                    DEC_UNROLL for (int cc = 0; cc < 4; cc++)
                        x[cc] = cc < 2 * nh ? qvals16(q4, vd, c0, cc) : _mm512_setzero_ps();
                    DEC_UNROLL for (int r = 0; r < 4; r++)
                        DEC_UNROLL for (int cc = 0; cc < 4; cc++)
                            if (cc < 2 * nh)
                                acc[r][cc] = _mm512_fmadd_ps(_mm512_set1_ps(w[r][cc / 2][j]), x[cc], acc[r][cc]);
                }
                if (q4)
                    DEC_UNROLL for (int r = 0; r < 4; r++)
                        DEC_UNROLL for (int cc = 0; cc < 4; cc++)
                            acc[r][cc] = _mm512_add_ps(acc[r][cc], _mm512_set1_ps(_mm512_reduce_add_ps(msum[r][cc / 2])));
            }
            DEC_UNROLL for (int r = 0; r < 4; r++)
                DEC_UNROLL for (int cc = 0; cc < 4; cc++)
                    if (r < rn && cc < 2 * nh)
                        _mm512_store_ps(o + (r0 + r) * ldo + c0 + 16 * cc, acc[r][cc]);
        }
    }
}

static void avx512_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                      int nk, int64_t dv, float *o, int64_t ldo)
{
    if (dt == ATTN_Q8)
        qpv_with(0, p, ldp, nr, v, nk, dv, o, ldo);
    else if (dt == ATTN_Q4)
        qpv_with(1, p, ldp, nr, v, nk, dv, o, ldo);
    else
        dec_pv(p, ldp, nr, v, dt, nk, dv, o, ldo);
}

#endif
