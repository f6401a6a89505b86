/* P.V for Q8 values with AVX512-VNNI 16-bit dot products (vpdpwssd), and
 * the integer P.V's driver and weights for Q8 and Q4 (Q4's 8-bit pass:
 * avx512_decode_bpv.h). Included by avx512_decode.c after
 * avx512_decode_vnni.h; reached only through the kernel table for CPUs
 * with ATTN_CPU_AVX512_VNNI.
 *
 * The float P.V (avx512_decode_qpv.h) spends, per key and 16 output dims,
 * a widening and a conversion to f32 and then one FMA per query row. Here
 * the weights w[r][b][j] = p[r][j] * sv_jb (the block scale folded into P,
 * as there) become 16-bit integers, per chunk of up to 64 keys:
 *     wq = round(w / step_rb),   step_rb = pmax_r * svmax_b / 32767,
 * pmax_r = max_j |p[r][j]|, svmax_b = max_j |sv_jb| over the chunk (so
 * |wq| <= 32767). A dword lane then holds the int16 values of one dim of
 * keys j and j + 1, and one vpdpwssd adds both keys' products for 16 dims
 * of a row, with the pair of weights (a dword of wq) broadcast. The weights
 * are packed by vpackssdw, which interleaves two groups of 16 keys per
 * 128-bit lane; the pass visits the key pairs in that order (integer sums
 * do not depend on it). Per pair of keys and 64 dims: 4 vectors of pairs
 * (two byte interleaves, four sign extensions) and 16 dot products, where
 * the float path spends 2 x (4 widenings + 4 conversions + 16 FMAs).
 * The chunk's int32 sums (at most 64 * 32767 * 127 < 2^31 in magnitude)
 * are converted once and scaled by step_rb into o.
 *
 * Error: |wq step - w| <= step / 2, 1.5e-5 of the bound pmax_r svmax_b on
 * the chunk's weights: far below the quantisation of the values themselves
 * (Q8 0.7% rms), and within test_decode's tolerance against the
 * exact float P.V of the dequantised values (2e-4 of the row's largest
 * output).
 *
 * Q4 now takes 8-bit weights under a bound of its own (avx512_decode_bpv.h);
 * Q8 keeps these 15-bit ones: simulated on cases like test_decode's (N(0,1)
 * data, L <= 1200, block scales left out), the P.V error reaches 22x the
 * float tolerance with 255 levels a chunk, 1.7x with 12-bit weights, 0.22x
 * with 15-bit ones, and Q8's own error (0.7%) leaves no room for more.
 * Measured and dropped for Q4's former 16-bit pass (L = 32K, one thread,
 * hot, builds alternated): the pair words by two vpermi2b (VBMI)
 * instead of interleaves, lane moves and widenings: 3% slower. The 16 dot
 * products of a pair in one asm statement (a third fewer accumulator
 * moves): no change. */
#ifndef ATTN_AVX512_DECODE_WPV_H
#define ATTN_AVX512_DECODE_WPV_H

/* Keys per integer sum (also the weight buffers' length); blocks whose
 * weights are made at once (128 dims: their maxima and Q4 min sums fit in
 * registers, wpv_weights). */
enum { wpv_chunk = 64, wpv_blocks = 4 };

/* The nibble the Q4 8-bit pass centres its weights' rounding errors on
 * (avx512_decode_bpv.h): the middle of 0..15. */
static const float bpv_centre = 7.5f;

/* acc += x . (w[0], w[1]) broadcast: the int16 weights of keys j and j + 1
 * against their values in x. Written as asm because gcc 12 copies a
 * loop-carried accumulator in and out of each vpdpwssd intrinsic (two moves
 * per dot product, and spills with 16 accumulators). */
VNNI_INLINE __m512i wpv_dot(__m512i acc, __m512i x, const int16_t *w)
{
    __asm__("vpdpwssd %2%{1to16%}, %1, %0" : "+v"(acc) : "v"(x), "m"(*(const int32_t *)(const void *)w));
    return acc;
}

/* Q8 dims c0..c0+63 of rows a and b (key j, key j + 1) as 4 vectors of
 * int16 pairs; m masks the pass's bytes. Lanes, as dims from c0 (vectors
 * 0-1 are block c0/32, vectors 2-3 the next):
 *   [0-7, 16-23], [8-15, 24-31], [32-39, 48-55], [40-47, 56-63] */
VNNI_INLINE void wpv_pairs(const uint8_t *a, const uint8_t *b, int64_t c0, __mmask64 m, __m512i *x)
{
    const __m512i va = _mm512_maskz_loadu_epi8(m, a + c0), vb = _mm512_maskz_loadu_epi8(m, b + c0);
    const __m512i lo = _mm512_unpacklo_epi8(va, vb), hi = _mm512_unpackhi_epi8(va, vb);
    x[0] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(lo));
    x[1] = _mm512_cvtepi8_epi16(_mm512_castsi512_si256(hi));
    x[2] = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(lo, 1));
    x[3] = _mm512_cvtepi8_epi16(_mm512_extracti64x4_epi64(hi, 1));
}

/* Integer weights of keys j0..j0+jn-1 for rows pr[0..3] and the nbk
 * blocks from bb (nbk <= wpv_blocks): wq[r][b], per 32 keys 16 dwords of
 * key pairs in vpackssdw's order (dword 4L + i, i < 2: keys 4L + 2i and
 * the next; i >= 2: keys 16 + 4L + 2(i - 2) and the next), zero past jn up
 * to the next multiple of 32; step[r][b]. The row side (pmax, p scaled to
 * 32767 / pmax) is shared by all blocks.
 * For Q4 (its 8-bit pass) the weights are bytes on 127 levels instead,
 * wq[r][b] read as int8_t[64] in vpackss order (dword 4L + g: keys 16g +
 * 4L .. 16g + 4L + 3), and the min term takes the chunk's rounding errors
 * at the middle nibble: msum[r][b] = sum_j p[r][j] (mv_jb + 7.5 sv_jb) -
 * 7.5 step sum_j wq, so that the pass's error is sum_j (wq step - w)
 * (n_j - 7.5) (values n_j sv + mv): the exact total weight, and errors half
 * as large for values spread over the 16 levels.
 *
 * The block loops are unrolled to wpv_blocks with nbk as a guard, so that
 * the per-block maxima and the 16 Q4 min sums (row r, block b: ms[4r + b])
 * stay in registers: scaled p and the block scales go through the small
 * stack arrays ps and sv (loads are cheap, spilled accumulators are not). */
VNNI_INLINE void wpv_weights(int q4, const float *const *pr, const attn_kv_rows *v, int64_t mpr,
                             int j0, int jn, int64_t bb, int nbk, int16_t (*wq)[wpv_blocks][wpv_chunk],
                             float (*step)[wpv_blocks], float (*msum)[wpv_blocks])
{
    const float levels = q4 ? 127.0f : 32767.0f, per_level = q4 ? 1.0f / 127.0f : 1.0f / 32767.0f;
    const int ng = (jn + 15) / 16;
    float sv[wpv_blocks][wpv_chunk] __attribute__((aligned(64)));   /* keys past ng groups unread */
    float ps[4][wpv_chunk] __attribute__((aligned(64)));
    __m512 pm[4], sm[wpv_blocks], ms[16], wsum[16];   /* wsum: Q4's sums of the byte weights */
    DEC_UNROLL for (int i = 0; i < 16; i++) wsum[i] = _mm512_setzero_ps();
    DEC_UNROLL for (int r = 0; r < 4; r++) pm[r] = _mm512_setzero_ps();
    DEC_UNROLL for (int b = 0; b < wpv_blocks; b++) sm[b] = _mm512_setzero_ps();
    DEC_UNROLL for (int i = 0; i < 16; i++) ms[i] = _mm512_setzero_ps();
    for (int g = 0; g < ng; g++) {
        const int n = dec_min(jn - 16 * g, 16);
        const __mmask16 keys = (__mmask16)((1u << n) - 1u);
        __m512 pg[4];
        DEC_UNROLL for (int r = 0; r < 4; r++) {
            pg[r] = _mm512_maskz_loadu_ps(keys, pr[r] + j0 + 16 * g);
            _mm512_store_ps(&ps[r][16 * g], pg[r]);
            pm[r] = _mm512_max_ps(pm[r], _mm512_abs_ps(pg[r]));
        }
        const meta16 mt = meta16_load(v, mpr, j0 + 16 * g, n);
        const int all4 = q4 && mt.dpr == 4;   /* D = 128: the 4 blocks' (bb = 0) columns at once */
        __m512i col4[4];
        if (all4)
            meta16_q4_cols(&mt, col4);
        DEC_UNROLL for (int b = 0; b < wpv_blocks; b++) {
            if (b >= nbk)
                break;
            __m512 s, m;
            if (all4) {
                meta16_q4_params(col4[b], &s, &m);
            } else {
                meta16_block(q4, &mt, bb + b, &s, &m);
            }
            _mm512_store_ps(&sv[b][16 * g], s);
            sm[b] = _mm512_max_ps(sm[b], _mm512_abs_ps(s));
            if (q4) {   /* the min term of the centred nibbles (bpv_centre) */
                m = _mm512_fmadd_ps(s, _mm512_set1_ps(bpv_centre), m);
                DEC_UNROLL for (int r = 0; r < 4; r++) ms[4 * r + b] = _mm512_fmadd_ps(pg[r], m, ms[4 * r + b]);
            }
        }
    }
    float maxima[8];   /* pmax[r], then svmax[b] */
    const __m512 mx[8] = { pm[0], pm[1], pm[2], pm[3], sm[0], sm[1], sm[2], sm[3] };
    reduce_max8(mx, maxima);
    const float *pmax = maxima;
    DEC_UNROLL for (int r = 0; r < 4; r++) {
        const __m512 pinv = _mm512_set1_ps(pmax[r] > 0.0f ? levels / pmax[r] : 0.0f);
        for (int g = 0; g < ng; g++)
            _mm512_store_ps(&ps[r][16 * g], _mm512_mul_ps(_mm512_load_ps(&ps[r][16 * g]), pinv));
    }
    DEC_UNROLL for (int b = 0; b < wpv_blocks; b++) {
        if (b >= nbk)
            break;
        const float svmax = maxima[4 + b];
        const __m512 sinv = _mm512_set1_ps(svmax > 0.0f ? 1.0f / svmax : 0.0f);
        DEC_UNROLL for (int r = 0; r < 4; r++) step[r][b] = pmax[r] * svmax * per_level;
        if (q4) {   /* 64 keys: groups 0-3 packed to bytes (zero past ng), and their sums */
            __m512 s[4];
            DEC_UNROLL for (int g = 0; g < 4; g++)
                s[g] = g < ng ? _mm512_mul_ps(_mm512_load_ps(&sv[b][16 * g]), sinv) : _mm512_setzero_ps();
            DEC_UNROLL for (int r = 0; r < 4; r++) {   /* |product| <= 127 (+ rounding): saturate */
                __m512i w[4];
                DEC_UNROLL for (int g = 0; g < 4; g++)
                    w[g] = g < ng ? _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(&ps[r][16 * g]), s[g]))
                                  : _mm512_setzero_si512();
                const __m512i bytes = _mm512_packs_epi16(_mm512_packs_epi32(w[0], w[1]), _mm512_packs_epi32(w[2], w[3]));
                _mm512_store_si512(wq[r][b], bytes);
                wsum[4 * r + b] = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                                                         _mm512_set1_epi8(1), bytes));
            }
            continue;
        }
        for (int g = 0; g < ng; g += 2) {   /* 32 keys: packs of groups g and g + 1 */
            const __m512 s0 = _mm512_mul_ps(_mm512_load_ps(&sv[b][16 * g]), sinv);
            const __m512 s1 = g + 1 < ng ? _mm512_mul_ps(_mm512_load_ps(&sv[b][16 * g + 16]), sinv)
                                         : _mm512_setzero_ps();
            DEC_UNROLL for (int r = 0; r < 4; r++) {   /* |product| <= 32767 (+ rounding): saturate */
                const __m512i w0 = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(&ps[r][16 * g]), s0));
                const __m512i w1 = g + 1 < ng ? _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_load_ps(&ps[r][16 * g + 16]), s1))
                                              : _mm512_setzero_si512();
                _mm512_store_si512(&wq[r][b][16 * g], _mm512_packs_epi32(w0, w1));
            }
        }
    }
    if (q4) {
        float t[16] __attribute__((aligned(64))), n[16] __attribute__((aligned(64)));
        _mm512_store_ps(t, reduce16(ms));   /* lane 4b + r: row r, block b */
        _mm512_store_ps(n, reduce16(wsum));
        DEC_UNROLL for (int b = 0; b < wpv_blocks; b++)
            DEC_UNROLL for (int r = 0; r < 4; r++)
                msum[r][b] = t[4 * b + r] - bpv_centre * step[r][b] * n[4 * b + r];
    }
}

/* Adds to acc the products of the key pair (a, b) with the pair's weights
 * (wq + j) for the pass's blocks (weights of block b at wq[r][b]). */
VNNI_INLINE void wpv_pair_fma(int nh, int16_t (*wq)[wpv_blocks][wpv_chunk], int bw, int j,
                              const uint8_t *a, const uint8_t *b, int64_t c0, __mmask64 m,
                              __m512i (*acc)[4])
{
    __m512i x[4];
    wpv_pairs(a, b, c0, m, x);
    DEC_UNROLL for (int r = 0; r < 4; r++)
        DEC_UNROLL for (int cc = 0; cc < 2 * nh; cc++)
            acc[r][cc] = wpv_dot(acc[r][cc], x[cc], &wq[r][bw + cc / 2][j]);
}

/* One Q8 pass (dims c0..c0+32nh-1, blocks bw.. of the weights) over a
 * chunk: int32 sums over the key pairs, then o[r] += step * sums for rows
 * r < rn. */
VNNI_INLINE void wpv_pass(int nh, int full, int16_t (*wq)[wpv_blocks][wpv_chunk],
                          float (*step)[wpv_blocks], int bw, const attn_kv_rows *v, int64_t rb,
                          int j0, int jn, int nk, int64_t c0, float *const *orow, int rn)
{
    const __mmask64 m = nh == 2 ? ~0ull : 0xffffffffull;
    __m512i acc[4][4];
    DEC_UNROLL for (int r = 0; r < 4; r++)
        DEC_UNROLL for (int cc = 0; cc < 4; cc++) acc[r][cc] = _mm512_setzero_si512();
    const uint8_t *rows = v->data + (int64_t)j0 * rb;
    /* Per 32-key block, quads q of weights 8q, 8q + 2, 8q + 4, 8q + 6 (packed
     * order, wpv_weights): the key pairs from 4q, 4q + 2, 16 + 4q, 18 + 4q */
    for (int kb = 0; kb < jn; kb += 32)
        for (int q = 0; q < 4; q++) {
            const int k = kb + 4 * q;
            /* this pass's bytes of the rows dec_qpf_keys ahead (a hint: a quad
             * straddling the run's end goes on in its page) */
            DEC_UNROLL for (int h = 0; h < 2; h++) {
                const uint8_t *pf = attn_kv_row_ahead(v, j0 + k + 16 * h + dec_qpf_keys, nk) + c0;
                DEC_UNROLL for (int t = 0; t < 4; t++) __builtin_prefetch(pf + t * rb, 0, dec_qpf_locality);
            }
            const uint8_t *rk = rows + (int64_t)k * rb;
            DEC_UNROLL for (int t = 0; t < 4; t++) {
                const int kt = 16 * (t / 2) + 2 * (t % 2);   /* from k */
                if (full)
                    wpv_pair_fma(nh, wq, bw, kb + 8 * q + 2 * t, rk + kt * rb, rk + (kt + 1) * rb, c0, m, acc);
                else   /* keys past jn have weight 0: read the last row instead */
                    wpv_pair_fma(nh, wq, bw, kb + 8 * q + 2 * t, rows + dec_min(k + kt, jn - 1) * rb,
                                 rows + dec_min(k + kt + 1, jn - 1) * rb, c0, m, acc);
            }
        }
    DEC_UNROLL for (int r = 0; r < 4; r++) {
        if (r >= rn)   /* rows past rn repeat the last one: not stored */
            continue;
        __m512 f[4];
        DEC_UNROLL for (int cc = 0; cc < 2 * nh; cc++)
            f[cc] = _mm512_mul_ps(_mm512_cvtepi32_ps(acc[r][cc]), _mm512_set1_ps(step[r][bw + cc / 2]));
        DEC_UNROLL for (int h = 0; h < nh; h++) {   /* lanes back to dim order (wpv_pairs) */
            const __m512 x0 = f[2 * h], x1 = f[2 * h + 1];
            f[2 * h] = _mm512_shuffle_f32x4(x0, x1, 0x44);
            f[2 * h + 1] = _mm512_shuffle_f32x4(x0, x1, 0xee);
        }
        DEC_UNROLL for (int cc = 0; cc < 2 * nh; cc++) {
            float *dst = orow[r] + c0 + 16 * cc;
            _mm512_store_ps(dst, _mm512_add_ps(_mm512_load_ps(dst), f[cc]));
        }
    }
}

/* The 8-bit passes for Q4 (avx512_decode_bpv.h, included after this file). */
VNNI_INLINE void bpv_pass(int nh, int full, int16_t (*wq)[wpv_blocks][wpv_chunk],
                          float (*step)[wpv_blocks], float (*msum)[wpv_blocks], int bw,
                          const attn_kv_rows *v, int64_t rb, int j0, int jn, int nk, int64_t c0,
                          int64_t pass_bytes, float *const *orow, int rn);
VNNI_INLINE void bpv_pass4(int full, int16_t (*wq)[wpv_blocks][wpv_chunk], float (*step)[wpv_blocks],
                           float (*msum)[wpv_blocks], const attn_kv_rows *v, int64_t rb, int j0, int jn,
                           int nk, int64_t c0, int64_t pass_bytes, float *const *orow, int rn);

/* P.V of Q8 (16-bit weights, wpv_pass) or Q4 (8-bit weights, bpv_pass). */
VNNI_INLINE void wpv_with(int q4, const float *p, int64_t ldp, int nr, const attn_kv_rows *v,
                          int nk, int64_t dv, float *o, int64_t ldo)
{
    int16_t wq[4][wpv_blocks][wpv_chunk] __attribute__((aligned(64)));
    float step[4][wpv_blocks], msum[4][wpv_blocks];
    /* the row's bytes and meta follow from dv (quant.h): constants where dv is */
    const int64_t nb = dv / 32, rb = q4 ? dv / 2 : dv, mpr = q4 ? 2 * nb : nb;
    for (int r0 = 0; r0 < nr; r0 += 4) {
        const int rn = dec_min(nr - r0, 4);
        const float *pr[4];
        float *orow[4];
        DEC_UNROLL for (int r = 0; r < 4; r++) {
            pr[r] = p + (r0 + dec_min(r, rn - 1)) * ldp;
            orow[r] = o + (r0 + dec_min(r, rn - 1)) * ldo;
        }
        for (int j0 = 0; j0 < nk; j0 += wpv_chunk) {
            const int jn = dec_min(nk - j0, wpv_chunk);
            if (r0 == 0)   /* the meta of the keys dec_qpf_keys ahead */
                for (int j = 0; j < jn; j += 16)
                    for (int64_t mb = 0; mb < 32 * mpr; mb += 64)
                        __builtin_prefetch((const uint8_t *)attn_kv_meta_ahead(v, j0 + j + dec_qpf_keys, nk) + mb, 0, dec_qpf_locality);
            for (int64_t b0 = 0; b0 < nb; b0 += wpv_blocks) {
                const int nbk = (int)(nb - b0 < wpv_blocks ? nb - b0 : wpv_blocks);
                if (jn == wpv_chunk)   /* whole chunks: the group loops unrolled */
                    wpv_weights(q4, pr, v, mpr, j0, wpv_chunk, b0, nbk, wq, step, msum);
                else
                    wpv_weights(q4, pr, v, mpr, j0, jn, b0, nbk, wq, step, msum);
                if (q4 && nbk == 4 && jn == wpv_chunk) {
                    bpv_pass4(1, wq, step, msum, v, rb, j0, jn, nk, 32 * b0, 16 * b0, orow, rn);
                    continue;
                }
                if (q4 && nbk == 4) {
                    bpv_pass4(0, wq, step, msum, v, rb, j0, jn, nk, 32 * b0, 16 * b0, orow, rn);
                    continue;
                }
                DEC_UNROLL for (int bw = 0; bw < nbk; bw += 2) {
                    const int64_t c0 = 32 * (b0 + bw), pass_bytes = c0 * rb / dv;
                    if (q4 && bw + 1 < nbk && jn == wpv_chunk)
                        bpv_pass(2, 1, wq, step, msum, bw, v, rb, j0, jn, nk, c0, pass_bytes, orow, rn);
                    else if (q4 && bw + 1 < nbk)
                        bpv_pass(2, 0, wq, step, msum, bw, v, rb, j0, jn, nk, c0, pass_bytes, orow, rn);
                    else if (q4)
                        bpv_pass(1, 0, wq, step, msum, bw, v, rb, j0, jn, nk, c0, pass_bytes, orow, rn);
                    else if (bw + 1 < nbk && jn == wpv_chunk)
                        wpv_pass(2, 1, wq, step, bw, v, rb, j0, jn, nk, c0, orow, rn);
                    else if (bw + 1 < nbk)
                        wpv_pass(2, 0, wq, step, bw, v, rb, j0, jn, nk, c0, orow, rn);
                    else
                        wpv_pass(1, 0, wq, step, bw, v, rb, j0, jn, nk, c0, orow, rn);
                }
            }
        }
    }
}

/* As for the scores, dv = 128 gets its own copy with the row layout fixed. */
__attribute__((target("avx512vnni")))
static void vnni_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                    int nk, int64_t dv, float *o, int64_t ldo)
{
    if (dt == ATTN_Q8)
        wpv_with(0, p, ldp, nr, v, nk, dv, o, ldo);
    else if (dt == ATTN_Q4 && dv == 128)
        wpv_with(1, p, ldp, nr, v, nk, 128, o, ldo);
    else if (dt == ATTN_Q4)
        wpv_with(1, p, ldp, nr, v, nk, dv, o, ldo);
    else
        dec_pv(p, ldp, nr, v, dt, nk, dv, o, ldo);
}

#endif
