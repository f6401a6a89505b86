/* Block parameters of 16 consecutive Q8/Q4 keys on AVX-512, one block at a
 * time, with key i in lane i (included by avx512_decode.c before the Q8/Q4
 * kernels that use them: avx512_decode_qpv.h, avx512_decode_vnni.h).
 *
 * A run's meta rows are contiguous (kv_cache.h): row j at meta + j * mpr
 * (mpr f16 a row: Q8 one scale per block, Q4 a (scale, min) pair, one
 * dword, per block). Where a row is 1, 2 or 4 dwords (Q8 with D = 64, 128,
 * 256; Q4 with D = 32, 64, 128) the 16 rows are loaded as they lie, one to
 * four vectors, and a block's column is picked out with one dword permute
 * (two and a blend for 4 dwords a row). Other heads gather the column from
 * the rows, which costs several times more (a 16-lane gather per block). */
#ifndef ATTN_AVX512_DECODE_META_H
#define ATTN_AVX512_DECODE_META_H

/* Keys ahead that the Q8/Q4 kernels prefetch, K rows in the scores and V
 * rows in P.V, with their meta. A multiple of 16: each group of 16 keys
 * prefetches one whole later group of its run (or of the next run, when
 * the run is a page of a multiple of 16 tokens). Measured with one thread
 * on a 2-core Sapphire Rapids VM, Q4, pages of 64: at L = 32K first 32 and
 * 48 alike, 16 (the rows then arrive late) 5-10% slower, 24 and 40 (groups
 * split across the run's end) 20% slower; with the faster kernels since,
 * at L = 16K, 48 is 4-5% faster than 32, and 64 or more slower (80: 4%,
 * 128: 15%; past the next page the rows ahead are not the ones read next). */
enum { dec_qpf_keys = 48 };

/* Their __builtin_prefetch locality in the VNNI kernels: 2 (prefetcht1,
 * into L2), not 3 (into L1). The rows are read a few hundred ns later and
 * an L2 hit is cheap to wait for; a cold stream (one thread: ~1/3 of the
 * time is waiting on memory) is limited by the misses a core keeps in
 * flight, and L1 has the fewest slots for them. Measured, one thread
 * pinned, L = 32K, Q4, builds alternated on a busy 2-core Sapphire Rapids
 * VM: cold 5.14 against 5.27 ms (median of 7-8 runs of the least CPU time
 * a call), hot alike (3.8-3.9 ms).
 * Also measured so (Q4): prefetching only the first 16 rows of each next
 * run, leaving the rest of a plane to the L2 streamer: cold 40% slower,
 * hot 10%; issuing a 16-key group's row and meta prefetches one block of
 * the scores' loop at a time instead of all at once: within 1%. */
enum { dec_qpf_locality = 2 };

typedef struct meta16 {
    __m512i z[4];               /* the rows' meta, n * dpr dwords, zero past them */
    const attn_kv_rows *x;
    int j0, n;                  /* keys j0 .. j0 + n - 1 of the run (1 <= n <= 16) */
    int dpr;                    /* dwords a row: 1, 2 or 4, else 0 (gather) */
} meta16;

static inline __m512i iota16(void)
{
    return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/* mpr: x->meta_per_row, or the same count known from the head size (quant.h),
 * so that a kernel specialised for it picks the layout at compile time. */
static inline __attribute__((always_inline)) meta16 meta16_load(const attn_kv_rows *x, int64_t mpr, int j0, int n)
{
    meta16 m;
    m.x = x;
    m.j0 = j0;
    m.n = n;
    m.dpr = mpr == 2 || mpr == 4 || mpr == 8 ? (int)(mpr / 2) : 0;
    const int nq = m.dpr;       /* vectors of 16 dwords that hold the 16 rows */
    const int dw = n * m.dpr;   /* dwords to load */
    const int32_t *src = (const int32_t *)(const void *)(x->meta + j0 * mpr);
    for (int q = 0; q < 4; q++)
        m.z[q] = q < nq && dw > 16 * q
                 ? _mm512_maskz_loadu_epi32(dw - 16 * q >= 16 ? (__mmask16)0xffff
                                                              : (__mmask16)((1u << (dw - 16 * q)) - 1u),
                                            src + 16 * q)
                 : _mm512_setzero_si512();
    return m;
}

/* Dword c of each row, lane i: row j0 + i (zero past n). Rows of 1, 2 or 4 dwords. */
static inline __m512i meta16_col(const meta16 *m, int64_t c)
{
    if (m->dpr == 1)
        return m->z[0];
    if (m->dpr == 2)
        return _mm512_permutex2var_epi32(m->z[0], _mm512_add_epi32(_mm512_slli_epi32(iota16(), 1),
                                                                   _mm512_set1_epi32((int)c)), m->z[1]);
    /* rows 0-7 lie in z[0..1], rows 8-15 in z[2..3]: the index's low 5 bits pick within a pair */
    const __m512i idx = _mm512_add_epi32(_mm512_slli_epi32(iota16(), 2), _mm512_set1_epi32((int)c));
    return _mm512_mask_blend_epi32((__mmask16)0xff00, _mm512_permutex2var_epi32(m->z[0], idx, m->z[1]),
                                   _mm512_permutex2var_epi32(m->z[2], idx, m->z[3]));
}

/* The dword at byte off of each row (lanes past n: row j0 + n - 1), gathered. */
static inline __m512i meta16_gather(const meta16 *m, int64_t off)
{
    const __m512i rows = _mm512_min_epi32(_mm512_add_epi32(_mm512_set1_epi32(m->j0), iota16()),
                                          _mm512_set1_epi32(m->j0 + m->n - 1));
    const __m512i idx = _mm512_add_epi32(_mm512_mullo_epi32(rows, _mm512_set1_epi32((int)(2 * m->x->meta_per_row))),
                                         _mm512_set1_epi32((int)off));
    return _mm512_i32gather_epi32(idx, (const void *)m->x->meta, 1);
}

/* The f16 in the low / high half of each dword, as f32. */
static inline __m512 lo_f16(__m512i w) { return _mm512_cvtph_ps(_mm512_cvtepi32_epi16(w)); }
static inline __m512 hi_f16(__m512i w) { return lo_f16(_mm512_srli_epi32(w, 16)); }

/* Block b's scale (sv) and, for Q4, min (mv; Q8: zero) of the 16 keys. A
 * gathered Q8 scale is the high half of the dword ending at it, so that no
 * read goes past the meta (the data precedes it in a page plane: nothing
 * is read before the plane either). */
static inline void meta16_block(int q4, const meta16 *m, int64_t b, __m512 *sv, __m512 *mv)
{
    *mv = _mm512_setzero_ps();
    if (q4) {
        const __m512i w = m->dpr ? meta16_col(m, b) : meta16_gather(m, 4 * b);
        *sv = lo_f16(w);
        *mv = hi_f16(w);
    } else if (m->dpr) {
        const __m512i w = meta16_col(m, b / 2);
        *sv = b & 1 ? hi_f16(w) : lo_f16(w);
    } else {
        *sv = hi_f16(meta16_gather(m, 2 * b - 2));
    }
}

/* Q4 keys with 4 blocks a row (D = 128, dpr 4): meta16_block's parameters
 * in fewer shuffles (the port they all queue on). meta16_q4_cols makes the
 * four columns of dwords at once (block b's (scale, min) of rows 0-15: two
 * dword permutes and a lane shuffle each, against three per block), and
 * meta16_q4_params splits one with a single word permute, scales to the low
 * half and mins to the high one, each converted as it lies (against two
 * two-shuffle narrowings). */
static inline __attribute__((always_inline)) void meta16_q4_cols(const meta16 *m, __m512i *col)
{
    /* lanes 0-7: rows 0-7 of z[0..1] (or 8-15 of z[2..3]) dword b, lanes 8-15 dword b + 1 */
    const __m512i i01 = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 1, 5, 9, 13, 17, 21, 25, 29);
    const __m512i i23 = _mm512_add_epi32(i01, _mm512_set1_epi32(2));
    const __m512i p01 = _mm512_permutex2var_epi32(m->z[0], i01, m->z[1]);
    const __m512i p23 = _mm512_permutex2var_epi32(m->z[0], i23, m->z[1]);
    const __m512i q01 = _mm512_permutex2var_epi32(m->z[2], i01, m->z[3]);
    const __m512i q23 = _mm512_permutex2var_epi32(m->z[2], i23, m->z[3]);
    col[0] = _mm512_shuffle_i64x2(p01, q01, 0x44);
    col[1] = _mm512_shuffle_i64x2(p01, q01, 0xee);
    col[2] = _mm512_shuffle_i64x2(p23, q23, 0x44);
    col[3] = _mm512_shuffle_i64x2(p23, q23, 0xee);
}

static inline __attribute__((always_inline)) void meta16_q4_params(__m512i col, __m512 *sv, __m512 *mv)
{
    /* words 0-15: the low (scale) word of dwords 0-15, words 16-31: the high (min) word */
    const __m512i split = _mm512_set_epi16(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1,
                                           30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
    const __m512i w = _mm512_permutexvar_epi16(split, col);
    *sv = _mm512_cvtph_ps(_mm512_castsi512_si256(w));
    *mv = _mm512_cvtph_ps(_mm512_extracti64x4_epi64(w, 1));
}

#endif
