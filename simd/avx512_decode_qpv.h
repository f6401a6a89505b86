/* P.V for Q8/Q4 values on AVX-512 (included by avx512_decode.c after the
 * template and avx512_decode_meta.h). The float loaders of decode_tmpl.h multiply every 16 values
 * by their block scale (and add the Q4 min), for each key: here the scale
 * moves to the probabilities instead, once per (row, key, block):
 *     o[r][c] += sum_j p[r][j] * (sv_jb * v_jc + mv_jb)
 *              = sum_j w[r][b][j] * v_jc + sum_j p[r][j] * mv_jb,
 *     w[r][b][j] = p[r][j] * sv_jb   (b = c / 32)
 * w is computed 16 keys at a time (the scales of 16 rows from the run's
 * meta, avx512_decode_meta.h), the Q4 min term as 16-lane dot products
 * added once per tile. The inner loop is then integer -> f32 conversion
 * (Q4: a table lookup) and one FMA per (row, 16 values), with w broadcast
 * from memory. Register tile: 4 rows x
 * 64 dims (two blocks), as in decode_tmpl.h. */
#ifndef ATTN_AVX512_DECODE_QPV_H
#define ATTN_AVX512_DECODE_QPV_H

/* 16 values of the pass's dims 16cc.. of row vd (Q8: int8 at dims c0..;
 * Q4: block c0/32 + cc/2, low nibbles for even cc, high for odd). */
static inline __m512 qvals16(int q4, const uint8_t *vd, int64_t c0, int cc)
{
    if (!q4)
        return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(vd + c0 + 16 * cc))));
    /* a byte per dword; the float of a nibble is a table lookup (vpermps reads
     * an index's low 4 bits: no mask, no conversion) */
    const __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(vd + c0 / 2 + 16 * (cc / 2))));
    const __m512 nibble = _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    return _mm512_permutexvar_ps((cc & 1) ? _mm512_srli_epi32(x, 4) : x, nibble);
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
            const int64_t pass_bytes = c0 * rb / dv;   /* where its values start in a row */
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
                    if (c0 == 0)   /* the meta of the 16 keys dec_qpf_keys ahead */
                        for (int64_t mb = 0; mb < 32 * v->meta_per_row; mb += 64)
                            __builtin_prefetch((const uint8_t *)attn_kv_meta_ahead(v, j0 + j + dec_qpf_keys, nk) + mb, 0, 3);
                    const int n = dec_min(jn - j, 16);
                    const __mmask16 keys = (__mmask16)((1u << n) - 1u);
                    const meta16 mt = meta16_load(v, v->meta_per_row, j0 + j, n);
                    for (int h = 0; h < nh; h++) {
                        __m512 sv, mv;
                        meta16_block(q4, &mt, c0 / 32 + h, &sv, &mv);
                        DEC_UNROLL for (int r = 0; r < 4; r++) {
                            const __m512 pr = _mm512_maskz_loadu_ps(keys, p + (r0 + dec_min(r, rn - 1)) * ldp + j0 + j);
                            _mm512_store_ps(&w[r][h][j], _mm512_mul_ps(pr, sv));
                            if (q4)
                                msum[r][h] = _mm512_fmadd_ps(pr, mv, msum[r][h]);
                        }
                    }
                }
                const uint8_t *pf = NULL;   /* this pass's bytes of the row dec_qpf_keys ahead */
                for (int j = 0; j < jn; j++) {
                    const uint8_t *vd = v->data + (j0 + j) * rb;
                    if (j % 16 == 0)
                        pf = attn_kv_row_ahead(v, j0 + j + dec_qpf_keys, nk) + pass_bytes;
                    __builtin_prefetch(pf + (j % 16) * rb, 0, 3);
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
