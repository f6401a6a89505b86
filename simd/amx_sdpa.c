/* AMX-BF16 softmax-attention kernel set (compiled with the AVX-512 flags plus
 * -mamx-tile -mamx-bf16).
 *
 * For bf16 q/k/v, S = Q K^T and O = alpha O + P V run on the AMX tile unit:
 * tdpbf16ps computes C[16][16] (f32) += A[16][32] (bf16) x B[32][16] (bf16),
 * with B stored as 16 rows of bf16 pairs (word (p, n) = (B[2p][n], B[2p+1][n])).
 * Everything else -- f32/f16 inputs, the online softmax, exp -- is the
 * avx512_bf16 set's: each packed tile starts with a 64-byte header whose tag
 * says which set's layout follows.
 *
 * bf16 layouts (every tile is 16 rows x 64 bytes):
 *   Q  (load_q)    bf16 rows, pre-scaled, written into the driver's f32 Q
 *      buffer (row stride ldq floats, which always has room for them); dims
 *      zero-padded to a multiple of 32, rows zero-padded to a multiple of 16
 *      (bq is a multiple of 32) so partial blocks need no tile reconfiguration.
 *   K  (pack_k)    words [dpad/2][ldk], ldk = round_up(nk, 16):
 *      word (p, j) = (K[j][2p], K[j][2p+1]) -- the B operand of Q K^T.
 *   V  (pack_v)    words [kpad/2][ldv], kpad = round_up(nk, 32), ldv = round_up(dv, 16):
 *      word (p, c) = (V[2p][c], V[2p+1][c]), zero for keys >= nk.
 *   P  (pv)        rounded to bf16 per 32 rows into a stack buffer, keys >= nk zero,
 *      so the zero-padded keys of the last tile add nothing.
 *
 * Register use: tmm0-3 accumulate a 2x2 block of C tiles (32 rows x 32
 * columns), tmm4-5 hold the two A tiles, tmm6-7 the two B tiles; each A and B
 * load then feeds two tdpbf16ps. The tile configuration is loaded once per
 * thread per call (thread_begin) and released after (thread_end). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "../src/cpu/kernels.h"
#include "transpose_avx512.h"

#define A_HDR 16                 /* floats of tag header in front of each packed tile */
#define A_TAG_AMX 0x31584d41u    /* "AMX1" */
#define A_TAG_BASE 0u
#define A_BK_MAX 256             /* bound on bk: the bf16 P buffer lives on the stack */

static const attn_cpu_kernels *base(void) { return attn_cpu_kernels_avx512_bf16(); }

static inline int64_t a_round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
static inline int a_min(int a, int b) { return a < b ? a : b; }
static inline __mmask16 a_mask16(int64_t n)
{
    return n <= 0 ? 0 : n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u);
}
static inline __mmask32 a_mask32(int64_t n)
{
    return n <= 0 ? 0 : n >= 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << n) - 1u);
}
static inline uint32_t a_tag(const float *p) { uint32_t t; memcpy(&t, p, 4); return t; }
static inline void a_set_tag(float *p, uint32_t t) { memcpy(p, &t, 4); }

/* ------------------------------------------------------------------ */
/* Tile configuration                                                   */
/* ------------------------------------------------------------------ */

/* The 64-byte ldtilecfg operand (palette 1). */
typedef struct a_tilecfg {
    uint8_t  palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t  rows[16];
} a_tilecfg;

/* Every tile 16 rows x 64 bytes. A constant object: gcc's _tile_loadconfig
 * tells the compiler it reads only 8 bytes, so a config built on the stack
 * just before it could lose its stores. */
static const a_tilecfg a_cfg __attribute__((aligned(64))) = {
    .palette = 1,
    .colsb = { 64, 64, 64, 64, 64, 64, 64, 64 },
    .rows = { 16, 16, 16, 16, 16, 16, 16, 16 },
};

static void a_thread_begin(void) { _tile_loadconfig(&a_cfg); }

static void a_thread_end(void) { _tile_release(); }

/* ------------------------------------------------------------------ */
/* Tile sizes, Q rows, K/V packing                                      */
/* ------------------------------------------------------------------ */

/* The avx512 set's sizes (the f32/f16 fallback runs with them too), rounded
 * to whole 2x2 tile blocks: bq to 32 rows, bk to 32 keys. */
static void a_tile_sizes(int64_t d, int64_t dv, int *bq, int *bk)
{
    base()->tile_sizes(d, dv, bq, bk);
    *bq = (int)a_round_up(*bq, 32);
    *bk = a_min((int)a_round_up(*bk, 32), A_BK_MAX);
}

static size_t a_k_tile_floats(int bk, int64_t d)
{
    const size_t mine = (size_t)(a_round_up(d, 32) / 2 * a_round_up(bk, 16));
    const size_t theirs = base()->k_tile_floats(bk, d);
    return A_HDR + (mine > theirs ? mine : theirs);
}

static size_t a_v_tile_floats(int bk, int64_t dv)
{
    const size_t mine = (size_t)(a_round_up(bk, 32) / 2 * a_round_up(dv, 16));
    const size_t theirs = base()->v_tile_floats(bk, dv);
    return A_HDR + (mine > theirs ? mine : theirs);
}

/* Elements c0..c0+15 (< n) of a bf16 row with column stride cs, as 32-bit
 * lanes holding the bf16 bits in their low half; lanes past n and a NULL
 * row give 0. */
static inline __m512i a_load_u16(const uint16_t *row, int64_t cs, int64_t c0, int64_t n)
{
    if (!row)
        return _mm512_setzero_si512();
    if (cs == 1)
        return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(a_mask16(n - c0), row + c0));
    uint32_t w[16];
    for (int t = 0; t < 16; t++)
        w[t] = c0 + t < n ? row[(c0 + t) * cs] : 0u;
    return _mm512_loadu_si512(w);
}

/* Elements c0..c0+31 (< n) of a bf16 row as 16 words of consecutive pairs. */
static inline __m512 a_load_pairs(const uint16_t *row, int64_t cs, int64_t c0, int64_t n)
{
    if (cs == 1)
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(a_mask32(n - c0), row + c0));
    uint16_t e[32];
    for (int t = 0; t < 32; t++)
        e[t] = c0 + t < n ? row[(c0 + t) * cs] : 0u;
    return _mm512_castsi512_ps(_mm512_loadu_si512(e));
}

static void a_load_rows(float *dst, int64_t ldd, const void *src, attn_dtype dt,
                        int64_t rs, int64_t cs, int n, int64_t d, float scale)
{
    base()->load_rows(dst, ldd, src, dt, rs, cs, n, d, scale);
}

/* Q rows of attn_sdpa as pre-scaled bf16 (see the layout note at the top). */
static void a_load_q(float *dst, int64_t ldd, const void *src, attn_dtype dt,
                     int64_t rs, int64_t cs, int n, int64_t d, float scale)
{
    if (dt != ATTN_BF16) {
        base()->load_rows(dst, ldd, src, dt, rs, cs, n, d, scale);
        return;
    }
    const __m512 vs = _mm512_set1_ps(scale);
    const int64_t dpad = a_round_up(d, 32);
    const int npad = (int)a_round_up(n, 16);
    for (int i = 0; i < npad; i++) {
        uint16_t *o = (uint16_t *)(dst + i * ldd);
        const uint16_t *s = i < n ? (const uint16_t *)src + i * rs : NULL;
        for (int64_t c = 0; c < dpad; c += 32) {
            const __m512 lo = _mm512_castsi512_ps(_mm512_slli_epi32(a_load_u16(s, cs, c, d), 16));
            const __m512 hi = _mm512_castsi512_ps(_mm512_slli_epi32(a_load_u16(s, cs, c + 16, d), 16));
            _mm512_storeu_si512(o + c, (__m512i)_mm512_cvtne2ps_pbh(_mm512_mul_ps(hi, vs),
                                                                     _mm512_mul_ps(lo, vs)));
        }
    }
}

/* K [nk][d] -> pair rows of keys: a 16 x 16 transpose of 32-bit words per
 * block of 16 keys x 32 dims. */
static void a_pack_k(float *dst, const void *src, attn_dtype dt, int64_t rs, int64_t cs,
                     int nk, int bk, int64_t d)
{
    if (dt != ATTN_BF16) {
        a_set_tag(dst, A_TAG_BASE);
        base()->pack_k(dst + A_HDR, src, dt, rs, cs, nk, bk, d);
        return;
    }
    a_set_tag(dst, A_TAG_AMX);
    float *o = dst + A_HDR;
    const uint16_t *s = (const uint16_t *)src;
    const int64_t ldk = a_round_up(nk, 16), np = a_round_up(d, 32) / 2;
    for (int j0 = 0; j0 < nk; j0 += 16) {
        const int nr = a_min(16, nk - j0);
        for (int64_t p0 = 0; p0 < np; p0 += 16) {
            __m512 r[16];
T_UNROLL
            for (int t = 0; t < 16; t++)
                r[t] = t < nr ? a_load_pairs(s + (j0 + t) * rs, cs, 2 * p0, d) : _mm512_setzero_ps();
            transpose_vl(r);
T_UNROLL
            for (int t = 0; t < 16; t++)
                _mm512_storeu_ps(o + (p0 + t) * ldk + j0, r[t]);
        }
    }
}

/* V [nk][dv] -> rows of key pairs, zero-padded to 32 keys. */
static void a_pack_v(float *dst, const void *src, attn_dtype dt, int64_t rs, int64_t cs,
                     int nk, int bk, int64_t dv)
{
    if (dt != ATTN_BF16) {
        a_set_tag(dst, A_TAG_BASE);
        base()->pack_v(dst + A_HDR, src, dt, rs, cs, nk, bk, dv);
        return;
    }
    a_set_tag(dst, A_TAG_AMX);
    uint32_t *o = (uint32_t *)(dst + A_HDR);
    const uint16_t *s = (const uint16_t *)src;
    const int64_t ldv = a_round_up(dv, 16), kpad = a_round_up(nk, 32);
    for (int64_t j = 0; j < kpad; j += 2) {
        const uint16_t *r0 = j < nk ? s + j * rs : NULL;
        const uint16_t *r1 = j + 1 < nk ? s + (j + 1) * rs : NULL;
        uint32_t *oj = o + (j / 2) * ldv;
        for (int64_t c = 0; c < ldv; c += 16) {
            const __m512i a = a_load_u16(r0, cs, c, dv), b = a_load_u16(r1, cs, c, dv);
            _mm512_storeu_si512(oj + c, _mm512_or_si512(a, _mm512_slli_epi32(b, 16)));
        }
    }
}

/* ------------------------------------------------------------------ */
/* S = Q K^T and O = alpha O + P V on tiles                             */
/* ------------------------------------------------------------------ */

/* Accumulators 0-3 (rows r, r+1 x columns c, c+1 of 16 x 16 tiles; r2 /
 * c2: the second row / column exists) += A B over n steps of 32: A rows in
 * a0 / a1 (stride sa bytes, 64 bytes a step), B pair rows at b (stride sb
 * bytes, bstep words a step). Tiles 4-5 hold A, 6-7 hold B. */
static inline __attribute__((always_inline)) void
a_dot_2x2(const char *a0, const char *a1, int64_t sa, const uint32_t *b, int64_t bstep,
          int64_t sb, int n, int r2, int c2)
{
    for (int x = 0; x < n; x++) {
        const uint32_t *b0 = b + x * bstep;
        _tile_loadd(4, a0 + 64 * x, sa);
        _tile_loadd(6, b0, sb);
        _tile_dpbf16ps(0, 4, 6);
        if (c2) {
            _tile_loadd(7, b0 + 16, sb);
            _tile_dpbf16ps(1, 4, 7);
        }
        if (r2) {
            _tile_loadd(5, a1 + 64 * x, sa);
            _tile_dpbf16ps(2, 5, 6);
            if (c2)
                _tile_dpbf16ps(3, 5, 7);
        }
    }
}

static void a_qk(const float *q, int64_t ldq, int nq, const float *kp, int nk, int64_t d,
                 float *s, int64_t lds)
{
    if (a_tag(kp) != A_TAG_AMX) {
        base()->qk(q, ldq, nq, kp + A_HDR, nk, d, s, lds);
        return;
    }
    const uint32_t *k = (const uint32_t *)(kp + A_HDR);
    const int64_t ldk = a_round_up(nk, 16);
    const int rt = (nq + 15) / 16, ct = (nk + 15) / 16, dc = (int)((d + 31) / 32);
    const int64_t sq = ldq * 4, sk = ldk * 4, ss = lds * 4;   /* strides in bytes */
    for (int r = 0; r < rt; r += 2) {
        const int r2 = r + 1 < rt;
        const char *a0 = (const char *)(q + 16 * r * ldq), *a1 = a0 + 16 * sq;
        for (int c = 0; c < ct; c += 2) {
            const int c2 = c + 1 < ct;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            a_dot_2x2(a0, a1, sq, k + 16 * c, 16 * ldk, sk, dc, r2, c2);
            float *s0 = s + 16 * r * lds + 16 * c;
            _tile_stored(0, s0, ss);
            if (c2)
                _tile_stored(1, s0 + 16, ss);
            if (r2) {
                _tile_stored(2, s0 + 16 * lds, ss);
                if (c2)
                    _tile_stored(3, s0 + 16 * lds + 16, ss);
            }
        }
    }
}

/* Rows [i0, i0 + nr) of P (f32) -> bf16 rows of kpad keys (row stride kpad),
 * keys >= nk and rows >= nq zero. */
static void a_p_to_bf16(uint16_t *dst, int kpad, const float *p, int64_t ldp, int i0, int nr,
                        int nq, int nk)
{
    for (int i = 0; i < nr; i++) {
        uint16_t *o = dst + i * kpad;
        const float *row = p + (i0 + i) * ldp;
        const int n = i0 + i < nq ? nk : 0;
        for (int f = 0; f < kpad; f += 32) {
            const __m512 lo = _mm512_maskz_loadu_ps(a_mask16(n - f), row + f);
            const __m512 hi = _mm512_maskz_loadu_ps(a_mask16(n - f - 16), row + f + 16);
            _mm512_storeu_si512(o + f, (__m512i)_mm512_cvtne2ps_pbh(hi, lo));
        }
    }
}

static void a_pv(const float *p, int64_t ldp, int nq, const float *vp, int nk, int64_t dv,
                 const float *alpha, float *o, int64_t ldo)
{
    if (a_tag(vp) != A_TAG_AMX) {
        base()->pv(p, ldp, nq, vp + A_HDR, nk, dv, alpha, o, ldo);
        return;
    }
    const uint32_t *v = (const uint32_t *)(vp + A_HDR);
    const int64_t ldv = a_round_up(dv, 16);
    const int rt = (nq + 15) / 16, ct = (int)((dv + 15) / 16), kc = (nk + 31) / 32;
    const int kpad = 32 * kc;
    const int64_t sp = 2 * kpad, sv = ldv * 4, so = ldo * 4;  /* strides in bytes */
    uint16_t pb[32 * A_BK_MAX] __attribute__((aligned(64)));
    for (int r = 0; r < rt; r += 2) {
        const int r2 = r + 1 < rt;
        a_p_to_bf16(pb, kpad, p, ldp, 16 * r, r2 ? 32 : 16, nq, nk);
        /* online-softmax rescale of this block's accumulator rows */
        for (int i = 16 * r; i < a_min(16 * r + 32, nq); i++) {
            if (alpha[i] == 1.0f)
                continue;
            const __m512 a = _mm512_set1_ps(alpha[i]);
            for (int64_t c = 0; c < 16 * ct; c += 16)
                _mm512_storeu_ps(o + i * ldo + c, _mm512_mul_ps(a, _mm512_loadu_ps(o + i * ldo + c)));
        }
        const char *a0 = (const char *)pb, *a1 = a0 + 16 * sp;
        for (int c = 0; c < ct; c += 2) {
            const int c2 = c + 1 < ct;
            float *o0 = o + 16 * r * ldo + 16 * c;
            _tile_loadd(0, o0, so);
            if (c2)
                _tile_loadd(1, o0 + 16, so);
            if (r2) {
                _tile_loadd(2, o0 + 16 * ldo, so);
                if (c2)
                    _tile_loadd(3, o0 + 16 * ldo + 16, so);
            }
            a_dot_2x2(a0, a1, sp, v + 16 * c, 16 * ldv, sv, kc, r2, c2);
            _tile_stored(0, o0, so);
            if (c2)
                _tile_stored(1, o0 + 16, so);
            if (r2) {
                _tile_stored(2, o0 + 16 * ldo, so);
                if (c2)
                    _tile_stored(3, o0 + 16 * ldo + 16, so);
            }
        }
    }
}

static void a_vexp(float *y, int64_t n) { base()->vexp(y, n); }

static void a_softmax_rows(float *s, int64_t lds, int nq, int nk, float *m, float *l, float *alpha)
{
    base()->softmax_rows(s, lds, nq, nk, m, l, alpha);
}

/* Tiles of the base set go to its attend; AMX tiles through the three passes. */
static void a_attend(const float *q, int64_t ldq, int nq, const float *kp, const float *vp,
                     int nk, int64_t d, int64_t dv, float *s, int64_t lds, float *m, float *l,
                     float *alpha, float *o, int64_t ldo)
{
    if (a_tag(kp) != A_TAG_AMX && a_tag(vp) != A_TAG_AMX) {
        base()->attend(q, ldq, nq, kp + A_HDR, vp + A_HDR, nk, d, dv, s, lds, m, l, alpha, o,
                       ldo);
        return;
    }
    a_qk(q, ldq, nq, kp, nk, d, s, lds);
    a_softmax_rows(s, lds, nq, nk, m, l, alpha);
    a_pv(s, lds, nq, vp, nk, dv, alpha, o, ldo);
}

const attn_cpu_kernels *attn_cpu_kernels_amx(void)
{
    static const attn_cpu_kernels k = {
        .name = "amx_bf16",
        .isa = ATTN_ISA_AVX512,
        .tile_sizes = a_tile_sizes,
        .load_rows = a_load_rows,
        .load_q = a_load_q,
        .k_tile_floats = a_k_tile_floats,
        .v_tile_floats = a_v_tile_floats,
        .pack_k = a_pack_k,
        .pack_v = a_pack_v,
        .qk = a_qk,
        .pv = a_pv,
        .vexp = a_vexp,
        .softmax_rows = a_softmax_rows,
        .attend = a_attend,
        .thread_begin = a_thread_begin,
        .thread_end = a_thread_end,
    };
    return &k;
}
