/* P.V for Q4 values with AVX512-VNNI byte dot products (vpdpbusd), four
 * keys a dword lane. Included by avx512_decode.c after avx512_decode_wpv.h,
 * whose driver (wpv_with) makes the weights and calls these passes;
 * reached only through the kernel table for CPUs with ATTN_CPU_AVX512_VNNI.
 *
 * Weights: as in avx512_decode_wpv.h, w[r][b][j] = p[r][j] * sv_jb per
 * chunk of up to 64 keys, but rounded to nearest on 127 levels,
 *     wq = round(w / step_rb),   step_rb = pmax_r * svmax_b / 127,
 * so that they fit vpdpbusd's signed byte operand (broadcast: a dword of 4
 * keys' weights). The values are the unsigned side: a dword lane holds the
 * same byte of 4 consecutive keys, a vector the 16 bytes of one block, so
 * each dot product adds 4 keys x 16 dims for one query row, half the
 * vpdpwssd count of the 16-bit path. A byte x holds two nibbles, x = lo +
 * 16 hi (dims t and 16 + t of its block); lo = x & 15 takes one mask, and
 * instead of a shift and a second mask for hi the pass sums x . w itself:
 *     sum hi w = (sum x w - sum lo w) / 16   (exact in int32:
 *     at most 64 keys x 255 x 127 < 2^31).
 * Per 4 keys and 128 dims (bpv_pass4): 4 loads, 16 shuffles (two levels of
 * byte and word interleaves within 128-bit lanes, then a 4 x 4 transpose
 * of the lanes that gathers each block's), 4 masks and 32 dot products;
 * the 16-bit path spends 24 shuffles and widenings, 16 masks and shifts
 * and 64 dot products. On Sapphire Rapids vpdpbusd runs on ports 0 and 5
 * (two a cycle, measured), the shuffles on port 5 only, so both count.
 * Measured (L = 32K, one thread, builds alternated on a busy 2-core VM,
 * least CPU time a call): hot 3.5-3.7 ms against 3.8-4.1 for the 16-bit
 * path, cold 4.7-4.8 against 5.1-5.5. Dropped: the chunk's 16 quads
 * unrolled (gcc then spills more: 5% slower hot) or in one flat loop
 * (4% slower); vpermt2b for the interleaves (half a vpunpck's rate); one
 * block a pass (8 sums in registers, blocks 1-3 kept): hot 2-3% faster,
 * cold 2% slower.
 *
 * Accuracy: each key's weight is off by at most half a level, step_rb / 2,
 * 1/254 of the chunk's largest weight (the 16-bit path: 1/65534). For the
 * bound this puts on a decode's output (include/attn.h, ATTN_Q4) see
 * tests/test_decode.c, q4_pv_bounds. */
#ifndef ATTN_AVX512_DECODE_BPV_H
#define ATTN_AVX512_DECODE_BPV_H

/* The rows of keys k..k+3 of a chunk (keys past jn have weight 0: the
 * last row is read instead). */
VNNI_INLINE void bpv_quad_rows(int full, const uint8_t *rows, int64_t rb, int k, int jn, const uint8_t **q)
{
    DEC_UNROLL for (int t = 0; t < 4; t++) q[t] = rows + (full ? k + t : dec_min(k + t, jn - 1)) * rb;
}

/* Prefetches the bytes at off of the 4 rows dec_qpf_keys after key j (a
 * hint: a quad straddling the run's end goes on in its page). */
VNNI_INLINE void bpv_prefetch(const attn_kv_rows *v, int j, int nk, int64_t off, int64_t rb)
{
    const uint8_t *pf = attn_kv_row_ahead(v, j + dec_qpf_keys, nk) + off;
    DEC_UNROLL for (int t = 0; t < 4; t++) __builtin_prefetch(pf + t * rb, 0, dec_qpf_locality);
}

/* The nibble bytes of the 4 keys' rows q at byte off, for nh blocks (16
 * bytes each): x[h] dword t = byte t of block h of the 4 keys. */
VNNI_INLINE void bpv_quads(int nh, const uint8_t *const *q, int64_t off, __m512i *x)
{
    const uint8_t *a = q[0], *b = q[1], *c = q[2], *d = q[3];
    if (nh == 2) {
        /* 128-bit lane h: block h; bytes t = 0-7 (lo) and 8-15 (hi) of two keys as words */
        const __m256i ka = _mm256_loadu_si256((const __m256i *)(a + off));
        const __m256i kb = _mm256_loadu_si256((const __m256i *)(b + off));
        const __m256i kc = _mm256_loadu_si256((const __m256i *)(c + off));
        const __m256i kd = _mm256_loadu_si256((const __m256i *)(d + off));
        const __m256i ab0 = _mm256_unpacklo_epi8(ka, kb), ab1 = _mm256_unpackhi_epi8(ka, kb);
        const __m256i cd0 = _mm256_unpacklo_epi8(kc, kd), cd1 = _mm256_unpackhi_epi8(kc, kd);
        /* y[i], lane h: block h, dwords t = 4i..4i+3 */
        const __m256i y0 = _mm256_unpacklo_epi16(ab0, cd0), y1 = _mm256_unpackhi_epi16(ab0, cd0);
        const __m256i y2 = _mm256_unpacklo_epi16(ab1, cd1), y3 = _mm256_unpackhi_epi16(ab1, cd1);
        const __m512i z01 = _mm512_inserti64x4(_mm512_castsi256_si512(y0), y1, 1);
        const __m512i z23 = _mm512_inserti64x4(_mm512_castsi256_si512(y2), y3, 1);
        x[0] = _mm512_shuffle_i64x2(z01, z23, 0x88);   /* lanes 0, 2 of each */
        x[1] = _mm512_shuffle_i64x2(z01, z23, 0xdd);   /* lanes 1, 3 */
    } else {
        const __m128i ka = _mm_loadu_si128((const __m128i *)(a + off));
        const __m128i kb = _mm_loadu_si128((const __m128i *)(b + off));
        const __m128i kc = _mm_loadu_si128((const __m128i *)(c + off));
        const __m128i kd = _mm_loadu_si128((const __m128i *)(d + off));
        const __m128i ab0 = _mm_unpacklo_epi8(ka, kb), ab1 = _mm_unpackhi_epi8(ka, kb);
        const __m128i cd0 = _mm_unpacklo_epi8(kc, kd), cd1 = _mm_unpackhi_epi8(kc, kd);
        const __m256i y01 = _mm256_set_m128i(_mm_unpackhi_epi16(ab0, cd0), _mm_unpacklo_epi16(ab0, cd0));
        const __m256i y23 = _mm256_set_m128i(_mm_unpackhi_epi16(ab1, cd1), _mm_unpacklo_epi16(ab1, cd1));
        x[0] = _mm512_inserti64x4(_mm512_castsi256_si512(y01), y23, 1);
    }
}

/* The same for 4 blocks (64 bytes). */
VNNI_INLINE void bpv_quads4(const uint8_t *const *q, int64_t off, __m512i *x)
{
    /* 128-bit lane h: block h; as in bpv_quads, then the 4 x 4 lanes transposed */
    const __m512i ka = _mm512_loadu_si512(q[0] + off), kb = _mm512_loadu_si512(q[1] + off);
    const __m512i kc = _mm512_loadu_si512(q[2] + off), kd = _mm512_loadu_si512(q[3] + off);
    const __m512i ab0 = _mm512_unpacklo_epi8(ka, kb), ab1 = _mm512_unpackhi_epi8(ka, kb);
    const __m512i cd0 = _mm512_unpacklo_epi8(kc, kd), cd1 = _mm512_unpackhi_epi8(kc, kd);
    const __m512i y0 = _mm512_unpacklo_epi16(ab0, cd0), y1 = _mm512_unpackhi_epi16(ab0, cd0);
    const __m512i y2 = _mm512_unpacklo_epi16(ab1, cd1), y3 = _mm512_unpackhi_epi16(ab1, cd1);
    const __m512i y01l = _mm512_shuffle_i64x2(y0, y1, 0x44), y23l = _mm512_shuffle_i64x2(y2, y3, 0x44);
    const __m512i y01h = _mm512_shuffle_i64x2(y0, y1, 0xee), y23h = _mm512_shuffle_i64x2(y2, y3, 0xee);
    x[0] = _mm512_shuffle_i64x2(y01l, y23l, 0x88);
    x[1] = _mm512_shuffle_i64x2(y01l, y23l, 0xdd);
    x[2] = _mm512_shuffle_i64x2(y01h, y23h, 0x88);
    x[3] = _mm512_shuffle_i64x2(y01h, y23h, 0xdd);
}

/* Adds the quad's byte vectors x[0..nh-1] (blocks bw..) times their
 * weights (dword i of wq[r][bw + h]) to the sums. */
VNNI_INLINE void bpv_quad_dots(int nh, int16_t (*wq)[wpv_blocks][wpv_chunk], int bw, int i,
                               const __m512i *x, __m512i (*lo)[2], __m512i (*all)[2])
{
    DEC_UNROLL for (int h = 0; h < nh; h++) {
        const __m512i xl = _mm512_and_si512(x[h], _mm512_set1_epi8(0x0f));
        DEC_UNROLL for (int r = 0; r < 4; r++) {
            const int32_t *w = (const int32_t *)(const void *)wq[r][bw + h] + i;
            lo[r][h] = vnni_dot(lo[r][h], xl, w);
            all[r][h] = vnni_dot(all[r][h], x[h], w);
        }
    }
}

/* o[r] += step * sums + the min term, dims c0..c0+32nh-1 (blocks bw..),
 * rows r < rn; the sums are then cleared. */
VNNI_INLINE void bpv_store(int nh, float (*step)[wpv_blocks], float (*msum)[wpv_blocks], int bw,
                           int64_t c0, float *const *orow, int rn, __m512i (*lo)[2], __m512i (*all)[2])
{
    DEC_UNROLL for (int r = 0; r < 4; r++) {
        if (r < rn)   /* rows past rn repeat the last one: not stored */
            DEC_UNROLL for (int h = 0; h < nh; h++) {
                const __m512 st = _mm512_set1_ps(step[r][bw + h]), ms = _mm512_set1_ps(msum[r][bw + h]);
                const __m512i hi = _mm512_srai_epi32(_mm512_sub_epi32(all[r][h], lo[r][h]), 4);
                float *dst = orow[r] + c0 + 32 * h;
                _mm512_store_ps(dst, _mm512_add_ps(_mm512_load_ps(dst),
                                                   _mm512_fmadd_ps(_mm512_cvtepi32_ps(lo[r][h]), st, ms)));
                _mm512_store_ps(dst + 16, _mm512_add_ps(_mm512_load_ps(dst + 16),
                                                        _mm512_fmadd_ps(_mm512_cvtepi32_ps(hi), st, ms)));
            }
        DEC_UNROLL for (int h = 0; h < 2; h++) lo[r][h] = all[r][h] = _mm512_setzero_si512();
    }
}

/* Four blocks (dims c0..c0+127) over a chunk, in two passes of two blocks:
 * the first interleaves all four blocks' bytes of each quad (8 byte and
 * word interleaves and 8 lane moves, against 2 x 12 for two bpv_pass
 * calls), uses blocks 0-1 and keeps 2-3 in xs for the second. */
VNNI_INLINE void bpv_pass4(int full, int16_t (*wq)[wpv_blocks][wpv_chunk], float (*step)[wpv_blocks],
                           float (*msum)[wpv_blocks], const attn_kv_rows *v, int64_t rb, int j0, int jn,
                           int nk, int64_t c0, int64_t pass_bytes, float *const *orow, int rn)
{
    __m512i xs[wpv_chunk / 4][2];   /* blocks 2-3 of each quad, by weight dword */
    __m512i lo[4][2], all[4][2];
    DEC_UNROLL for (int r = 0; r < 4; r++)
        DEC_UNROLL for (int h = 0; h < 2; h++) lo[r][h] = all[r][h] = _mm512_setzero_si512();
    const uint8_t *rows = v->data + (int64_t)j0 * rb;
    const int ng = full ? 4 : (jn + 15) / 16;
    for (int g = 0; g < ng; g++)
        DEC_UNROLL for (int l = 0; l < 4; l++) {
            const int k = 16 * g + 4 * l;
            if (!full && k >= jn)
                break;
            bpv_prefetch(v, j0 + k, nk, pass_bytes, rb);
            const uint8_t *q[4];
            __m512i x[4];
            bpv_quad_rows(full, rows, rb, k, jn, q);
            bpv_quads4(q, pass_bytes, x);
            xs[4 * l + g][0] = x[2];
            xs[4 * l + g][1] = x[3];
            bpv_quad_dots(2, wq, 0, 4 * l + g, x, lo, all);
        }
    bpv_store(2, step, msum, 0, c0, orow, rn, lo, all);
    for (int g = 0; g < ng; g++)
        DEC_UNROLL for (int l = 0; l < 4; l++) {
            if (!full && 16 * g + 4 * l >= jn)
                break;
            bpv_quad_dots(2, wq, 2, 4 * l + g, xs[4 * l + g], lo, all);
        }
    bpv_store(2, step, msum, 2, c0 + 64, orow, rn, lo, all);
}

/* One pass (blocks bw, bw + nh - 1 of the weights: dims c0..c0+32nh-1)
 * over a chunk of jn keys: int32 sums per key quad, then o[r] += step *
 * sums + the Q4 min term for rows r < rn. wq[r][b] holds byte weights in
 * vpackss order (wpv_weights with w8): dword 4L + g is keys 16g + 4L ..
 * 16g + 4L + 3, zero past jn. */
VNNI_INLINE void bpv_pass(int nh, int full, int16_t (*wq)[wpv_blocks][wpv_chunk],
                          float (*step)[wpv_blocks], float (*msum)[wpv_blocks], int bw,
                          const attn_kv_rows *v, int64_t rb, int j0, int jn, int nk, int64_t c0,
                          int64_t pass_bytes, float *const *orow, int rn)
{
    __m512i lo[4][2], all[4][2];   /* sums of lo . w and of x . w */
    DEC_UNROLL for (int r = 0; r < 4; r++)
        DEC_UNROLL for (int h = 0; h < 2; h++) lo[r][h] = all[r][h] = _mm512_setzero_si512();
    const uint8_t *rows = v->data + (int64_t)j0 * rb;
    const int prefetch = pass_bytes % 64 == 0;   /* a later pass is in the same lines */
    const int ng = full ? 4 : (jn + 15) / 16;
    for (int g = 0; g < ng; g++)
        DEC_UNROLL for (int l = 0; l < 4; l++) {
            const int k = 16 * g + 4 * l;
            if (!full && k >= jn)
                break;
            if (prefetch)
                bpv_prefetch(v, j0 + k, nk, pass_bytes, rb);
            const uint8_t *q[4];
            __m512i x[2];
            bpv_quad_rows(full, rows, rb, k, jn, q);
            bpv_quads(nh, q, pass_bytes, x);
            bpv_quad_dots(nh, wq, bw, 4 * l + g, x, lo, all);
        }
    bpv_store(nh, step, msum, bw, c0, orow, rn, lo, all);
}

#endif
