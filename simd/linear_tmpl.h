/* Linear-attention micro-kernels, written once over a small vector
 * vocabulary that each ISA file defines before including this:
 *   LV           floats per vector          LVEC      the vector type
 *   LLOAD(p)     unaligned load             LSTORE(p, x)  unaligned store
 *   LSET1(a)     broadcast                  LZERO()
 *   LFMA(a,b,c)  a*b + c                    LADD/LSUB/LMUL(a,b)
 *   LMAXF(lo,x)  max(lo, x), x when x is NaN
 *   LEXP(x)      vector exp (-inf -> 0)
 *   LNAME(x)     prefixes the static functions
 *   LMR          rows of the GEMM register tile (6 or 8)
 *   LNV          optional: vectors across the widest register tile, 2 (the
 *                default) or 3; LMR x LNV accumulators plus LNV + 1 more
 *                vectors must fit the register file
 *   LTRANSPOSE_VL   optional: the ISA's in-register transpose_vl(LVEC r[LV])
 *                   (simd/transpose_*.h) is included and used for LV x LV blocks
 *                in registers (the Gram's key transposes)
 *   LSTREAM(p, x), LFENCE()  optional: non-temporal store of a vector to an
 *                aligned p, and the fence that orders such stores
 * Tails narrower than a vector use scalar code. The GEMM keeps an LMR x
 * LNV-vector block of C in registers and streams B rows through it, A entries
 * broadcast from memory with general strides (row-major or transposed A). */
#include <math.h>
#ifndef LNV
#define LNV 2
#endif
#include "../src/cpu/linear.h"

static inline LVEC LNAME(combine)(LVEC r, const float *c, int acc)
{
    if (acc == 0) return r;
    return acc > 0 ? LADD(LLOAD(c), r) : LSUB(LLOAD(c), r);
}

static inline void LNAME(store1)(float *c, float r, int acc)
{
    *c = acc == 0 ? r : acc > 0 ? *c + r : *c - r;
}

/* Rows of B ahead of the step where tile_steps prefetches them (pfb). */
#define PFB_ROWS 8

/* One multiply-add step of the register tile: row p of B (at B) against
 * column p of the tile's rows of A (at A, rows 4.. at A4). */
static inline __attribute__((always_inline)) void
LNAME(tile_step)(const int R, const int NV, LVEC c[LMR][LNV], const float *A, const float *A4,
                 int64_t rsa, const float *B, int64_t ldb, int pfb)
{
    LVEC b[LNV];
#pragma GCC unroll 3
    for (int v = 0; v < NV; v++) {
        if (pfb)
            __builtin_prefetch(B + PFB_ROWS * ldb + v * LV);
        b[v] = LLOAD(B + v * LV);
    }
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        const LVEC x = LSET1(r < 4 ? A[r * rsa] : A4[(r - 4) * rsa]);
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            c[r][v] = LFMA(x, b[v], c[r][v]);
    }
}

/* The register tile: R rows x NV vectors of C (R <= LMR, NV <= LNV) held in
 * registers while k rows of B stream through, one broadcast of A per row
 * and step. R and NV are constants at every call, so the loops unroll and
 * the accumulators stay in registers (LMR x NV + NV + 1 vector registers). The
 * steps go in groups of ATTN_LINEAR_PF_STEPS, one line of pf before each
 * group, so the steps themselves carry no test for it. */
static inline __attribute__((always_inline)) void
LNAME(tile_steps)(const int R, const int NV, LVEC c[LMR][LNV], int k, const float *A, int64_t rsa,
                  int64_t csa, const float *B, int64_t ldb, int pfb, attn_linear_pf *pf)
{
    /* Rows 4.. are addressed from a second pointer: row offsets 0..3 rsa
     * from each of two bases need two index registers, where eight separate
     * offsets spilled to the stack and reloaded every step. */
    const float *A4 = A + 4 * rsa;
    const char *nx = pf ? pf->next : NULL;     /* pf's next line (attn_linear_pf_line) */
    int p = 0;
    for (; p + ATTN_LINEAR_PF_STEPS <= k; p += ATTN_LINEAR_PF_STEPS) {
        if (nx)
            nx = attn_linear_pf_line(pf, nx);
#pragma GCC unroll 8
        for (int q = 0; q < ATTN_LINEAR_PF_STEPS; q++, A += csa, A4 += csa, B += ldb)
            LNAME(tile_step)(R, NV, c, A, A4, rsa, B, ldb, pfb);
    }
    if (nx && p < k)
        nx = attn_linear_pf_line(pf, nx);
    for (; p < k; p++, A += csa, A4 += csa, B += ldb)
        LNAME(tile_step)(R, NV, c, A, A4, rsa, B, ldb, pfb);
    if (pf)
        pf->next = nx;
}

static inline __attribute__((always_inline)) void
LNAME(tile_zero)(const int R, const int NV, LVEC c[LMR][LNV])
{
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++)
            c[r][v] = LZERO();
}

/* C = c, C +/-= c (acc), or C = d[r] * C + c (d not NULL). */
static inline __attribute__((always_inline)) void
LNAME(tile_store)(const int R, const int NV, LVEC c[LMR][LNV], float *C, int64_t ldc, int acc,
                  const float *d)
{
#pragma GCC unroll 16
    for (int r = 0; r < R; r++)
#pragma GCC unroll 3
        for (int v = 0; v < NV; v++) {
            float *cp = C + r * ldc + v * LV;
            LSTORE(cp, d ? LFMA(LSET1(d[r]), LLOAD(cp), c[r][v]) : LNAME(combine)(c[r][v], cp, acc));
        }
}

static inline __attribute__((always_inline)) void
LNAME(tile)(const int R, const int NV, int k, const float *A, int64_t rsa, int64_t csa,
            const float *B, int64_t ldb, float *C, int64_t ldc, int acc, const float *d,
            attn_linear_pf *pf)
{
    LVEC c[LMR][LNV];
    LNAME(tile_zero)(R, NV, c);
    LNAME(tile_steps)(R, NV, c, k, A, rsa, csa, B, ldb, 0, pf);
    LNAME(tile_store)(R, NV, c, C, ldc, acc, d);
}

/* Rows [0, m) of one column block of NV vectors: full LMR-row tiles, then
 * one tile of the leftover rows. d: each row of C decays by its factor as
 * the products are added, C = d[r] C + A B (NULL: acc applies). */
static inline __attribute__((always_inline)) void
LNAME(column_block)(const int NV, int m, int k, const float *A, int64_t rsa, int64_t csa,
                    const float *B, int64_t ldb, float *C, int64_t ldc, int acc,
                    const float *d, attn_linear_pf *pf)
{
    int i = 0;
    for (; i + LMR <= m; i += LMR)
        LNAME(tile)(LMR, NV, k, A + i * rsa, rsa, csa, B, ldb, C + i * ldc, ldc, acc,
                    d ? d + i : NULL, pf);
    A += i * rsa;
    C += i * ldc;
    d = d ? d + i : NULL;
    switch (m - i) {
#define LEFT(r) case r: LNAME(tile)(r, NV, k, A, rsa, csa, B, ldb, C, ldc, acc, d, pf); break;
    LEFT(1) LEFT(2) LEFT(3) LEFT(4) LEFT(5)
#if LMR > 6
    LEFT(6) LEFT(7)
#endif
#undef LEFT
    default: break;
    }
}

/* Column blocks of LNV vectors (B panel of k x LNV vectors stays in L1 while
 * every row tile of C passes over it), then one block of the vectors left,
 * then the columns past the last full vector in scalar code. */
static inline __attribute__((always_inline)) void
LNAME(gemm_body)(int m, int n, int k, const float *A, int64_t rsa, int64_t csa, const float *B,
                 int64_t ldb, float *C, int64_t ldc, int acc, const float *d, attn_linear_pf *pf)
{
    const int nv = n / LV * LV;
    int j = 0;
    for (; j + LNV * LV <= nv; j += LNV * LV)
        LNAME(column_block)(LNV, m, k, A, rsa, csa, B + j, ldb, C + j, ldc, acc, d, pf);
    if (nv - j == 2 * LV)   /* left by LNV = 3 */
        LNAME(column_block)(2, m, k, A, rsa, csa, B + j, ldb, C + j, ldc, acc, d, pf);
    else if (j < nv)
        LNAME(column_block)(1, m, k, A, rsa, csa, B + j, ldb, C + j, ldc, acc, d, pf);
    for (int jj = nv; jj < n; jj++)
        for (int i = 0; i < m; i++) {
            float s = 0.0f;
            for (int p = 0; p < k; p++)
                s += A[(int64_t)i * rsa + (int64_t)p * csa] * B[(int64_t)p * ldb + jj];
            if (d)
                C[(int64_t)i * ldc + jj] = d[i] * C[(int64_t)i * ldc + jj] + s;
            else
                LNAME(store1)(C + (int64_t)i * ldc + jj, s, acc);
        }
}

/* A transposed (rsa = 1: the rows of a tile are adjacent floats) gets its own
 * copy of the loops with constant row offsets. */
static void LNAME(gemm)(int m, int n, int k, const float *A, int64_t rsa, int64_t csa,
                        const float *B, int64_t ldb, float *C, int64_t ldc, int acc,
                        attn_linear_pf *pf)
{
    if (rsa == 1)
        LNAME(gemm_body)(m, n, k, A, 1, csa, B, ldb, C, ldc, acc, NULL, pf);
    else
        LNAME(gemm_body)(m, n, k, A, rsa, csa, B, ldb, C, ldc, acc, NULL, pf);
}

/* One tile of chunk_products' output rows: Qh S + A U in one set of
 * accumulators (k2: the columns of A up to the tile's last row), stored
 * past the caches where asked and the ISA can. */
static inline __attribute__((always_inline)) void
LNAME(out_tile)(const int R, const int NV, int dk, const float *Qh, int64_t lq, const float *S,
                int64_t lds, int k2, const float *A, int64_t la, const float *U, int64_t lu,
                float *O, int64_t lo, int stream, int pfs, attn_linear_pf *pf)
{
    LVEC c[LMR][LNV];
    LNAME(tile_zero)(R, NV, c);
    LNAME(tile_steps)(R, NV, c, dk, Qh, lq, 1, S, lds, pfs, pf);
    LNAME(tile_steps)(R, NV, c, k2, A, la, 1, U, lu, 0, pf);
#ifdef LSTREAM
    if (stream) {
#pragma GCC unroll 16
        for (int r = 0; r < R; r++)
#pragma GCC unroll 3
            for (int v = 0; v < NV; v++)
                LSTREAM(O + r * lo + v * LV, c[r][v]);
        return;
    }
#endif
    (void)stream;
    LNAME(tile_store)(R, NV, c, O, lo, 0, NULL);
}

/* chunk_products over one block of NV column vectors: its output tiles
 * read the block of S into L1, the update tiles then read and write it
 * there. The first output tile meets the block in L2 or beyond (the state
 * of a head waits there while the other heads of its group run) and
 * prefetches it PFB_ROWS rows ahead. */
static inline __attribute__((always_inline)) void
LNAME(chunk_columns)(const int NV, int n, int dk, const float *Qh, int64_t lq, const float *A,
                     int64_t la, const float *U, int64_t lu, const float *KT, int64_t lkt,
                     const float *d, float *S, int64_t lds, float *O, int64_t lo,
                     int stream, attn_linear_pf *pf)
{
    int i = 0;
    /* The first tile, which prefetches S, apart: the other tiles' steps then
     * carry no test for it. */
    if (n >= LMR) {
        LNAME(out_tile)(LMR, NV, dk, Qh, lq, S, lds, LMR, A, la, U, lu, O, lo, stream, 1, pf);
        i = LMR;
    }
    for (; i + LMR <= n; i += LMR)
        LNAME(out_tile)(LMR, NV, dk, Qh + i * lq, lq, S, lds, i + LMR, A + i * la, la, U, lu,
                        O + i * lo, lo, stream, 0, pf);
    switch (n - i) {
#define LEFT(r) case r: LNAME(out_tile)(r, NV, dk, Qh + i * lq, lq, S, lds, n, A + i * la, la, \
                                        U, lu, O + i * lo, lo, stream, i == 0, pf); break;
    LEFT(1) LEFT(2) LEFT(3) LEFT(4) LEFT(5)
#if LMR > 6
    LEFT(6) LEFT(7)
#endif
#undef LEFT
    default: break;
    }
    LNAME(column_block)(NV, dk, n, KT, lkt, 1, U, lu, S, lds, 1, d, pf);
}

/* See attn_linear_kernels.chunk_products. Blocks of LNV column vectors,
 * then one block of the vectors left, then the columns past the last full
 * vector in scalar code. */
static void LNAME(chunk_products)(int n, int dk, int dv, const float *Qh, int64_t lq,
                                  const float *A, int64_t la, const float *U, int64_t lu,
                                  const float *KT, int64_t lkt, const float *d, float *S,
                                  int64_t lds, float *O, int64_t lo, int stream,
                                  attn_linear_pf *pf)
{
    const int nv = dv / LV * LV;
    int j = 0;
    for (; j + LNV * LV <= nv; j += LNV * LV)
        LNAME(chunk_columns)(LNV, n, dk, Qh, lq, A, la, U + j, lu, KT, lkt, d, S + j, lds, O + j,
                             lo, stream, pf);
    if (nv - j == 2 * LV)   /* left by LNV = 3 */
        LNAME(chunk_columns)(2, n, dk, Qh, lq, A, la, U + j, lu, KT, lkt, d, S + j, lds, O + j,
                             lo, stream, pf);
    else if (j < nv)
        LNAME(chunk_columns)(1, n, dk, Qh, lq, A, la, U + j, lu, KT, lkt, d, S + j, lds, O + j,
                             lo, stream, pf);
    if (nv < dv)
        attn_linear_chunk_products_cols(n, dk, nv, dv, Qh, lq, A, la, U, lu, KT, lkt, d, S, lds,
                                        O, lo);
#ifdef LFENCE
    if (stream)
        LFENCE();
#endif
}

static void LNAME(vexp)(float *y, int64_t n)
{
    int64_t i = 0;
    for (; i + LV <= n; i += LV)
        LSTORE(y + i, LEXP(LLOAD(y + i)));
    for (; i < n; i++)
        y[i] = expf(y[i]);
}

static void LNAME(row_update)(float *s, float a, float b, const float *u, float c, float *o,
                              int64_t n)
{
    const LVEC va = LSET1(a), vb = LSET1(b), vc = LSET1(c);
    int64_t j = 0;
    for (; j + LV <= n; j += LV) {
        const LVEC x = LFMA(va, LLOAD(s + j), LMUL(vb, LLOAD(u + j)));
        LSTORE(s + j, x);
        LSTORE(o + j, LFMA(vc, x, LLOAD(o + j)));
    }
    for (; j < n; j++) {
        const float x = a * s[j] + b * u[j];
        s[j] = x;
        o[j] += c * x;
    }
}

static void LNAME(axpy)(float *y, float a, const float *x, int64_t n)
{
    const LVEC va = LSET1(a);
    int64_t j = 0;
    for (; j + LV <= n; j += LV)
        LSTORE(y + j, LFMA(va, LLOAD(x + j), LLOAD(y + j)));
    for (; j < n; j++)
        y[j] += a * x[j];
}

static void LNAME(mul_exp)(float *dst, const float *x, const float *a, const float *b, int64_t n)
{
    int64_t j = 0;
    if (a && b)
        for (; j + LV <= n; j += LV)
            LSTORE(dst + j, LMUL(LLOAD(x + j), LEXP(LSUB(LLOAD(a + j), LLOAD(b + j)))));
    else if (a)
        for (; j + LV <= n; j += LV)
            LSTORE(dst + j, LMUL(LLOAD(x + j), LEXP(LLOAD(a + j))));
    else if (b)
        for (; j + LV <= n; j += LV)
            LSTORE(dst + j, LMUL(LLOAD(x + j), LEXP(LSUB(LZERO(), LLOAD(b + j)))));
    else
        for (; j + LV <= n; j += LV)
            LSTORE(dst + j, LLOAD(x + j));
    for (; j < n; j++)
        dst[j] = x[j] * expf((a ? a[j] : 0.0f) - (b ? b[j] : 0.0f));
}

static void LNAME(vmul)(float *dst, const float *x, const float *y, int64_t n)
{
    int64_t j = 0;
    for (; j + LV <= n; j += LV)
        LSTORE(dst + j, LMUL(LLOAD(x + j), LLOAD(y + j)));
    for (; j < n; j++)
        dst[j] = x[j] * y[j];
}

static void LNAME(scal)(float *y, float a, int64_t n)
{
    const LVEC va = LSET1(a);
    int64_t j = 0;
    for (; j + LV <= n; j += LV)
        LSTORE(y + j, LMUL(va, LLOAD(y + j)));
    for (; j < n; j++)
        y[j] *= a;
}

/* NV column vectors of gate_load down the rows, the running sums and
 * products in registers (NV independent chains), a few of pf's walks with
 * each row; with_x is a constant at each call. */
static inline __attribute__((always_inline)) void
LNAME(gate_load_columns)(const int NV, const int with_x, float *G, float *AG, int64_t ldga,
                         const float *g, int64_t ldg, int rows, float lo, float *dst,
                         int64_t ldd, const float *x, int64_t ldx, float scale,
                         attn_linear_pf *pf)
{
    const LVEC vlo = LSET1(lo);
    LVEC sum[4], prod[4];
    for (int v = 0; v < NV; v++) {
        sum[v] = LZERO();
        prod[v] = LSET1(scale);
    }
    for (int64_t r = 0; r < rows; r++) {
        if (pf)
            attn_linear_pf_walk(pf, ATTN_LINEAR_PF_WALKS_PER_ROW);
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const LVEC y = LMAXF(vlo, LLOAD(g + r * ldg + v * LV));
            const LVEC a = LEXP(y);
            sum[v] = LADD(sum[v], y);           /* G_0 = 0 + y_0: -0 becomes +0 */
            LSTORE(AG + r * ldga + v * LV, a);
            LSTORE(G + r * ldga + v * LV, sum[v]);
            if (with_x) {
                prod[v] = LMUL(prod[v], a);
                LSTORE(dst + r * ldd + v * LV, LMUL(LLOAD(x + r * ldx + v * LV), prod[v]));
            }
        }
    }
}

/* Four column vectors at a time, then single vectors, then scalar columns
 * (see attn_linear_kernels.gate_load). */
static void LNAME(gate_load)(float *G, float *AG, int64_t ldga, const float *g, int64_t ldg,
                             int rows, int64_t n, float lo, float *dst, int64_t ldd,
                             const float *x, int64_t ldx, float scale, attn_linear_pf *pf)
{
    int64_t j = 0;
#define GATE_COLUMNS(NV) do {                                                                  \
        if (x)                                                                                 \
            LNAME(gate_load_columns)(NV, 1, G + j, AG + j, ldga, g + j, ldg, rows, lo, dst + j, \
                                     ldd, x + j, ldx, scale, pf);                              \
        else                                                                                   \
            LNAME(gate_load_columns)(NV, 0, G + j, AG + j, ldga, g + j, ldg, rows, lo, NULL,    \
                                     0, NULL, 0, scale, pf);                                   \
    } while (0)
    for (; j + 4 * LV <= n; j += 4 * LV)
        GATE_COLUMNS(4);
    for (; j + LV <= n; j += LV)
        GATE_COLUMNS(1);
#undef GATE_COLUMNS
    attn_linear_gate_load_cols(G, AG, ldga, g, ldg, rows, j, n, lo, dst, ldd, x, ldx, scale);
}

static void LNAME(max_floor)(float *dst, const float *x, float lo, int64_t n)
{
    const LVEC vlo = LSET1(lo);
    int64_t j = 0;
    for (; j + LV <= n; j += LV)
        LSTORE(dst + j, LMAXF(vlo, LLOAD(x + j)));
    for (; j < n; j++)
        dst[j] = x[j] < lo ? lo : x[j];
}

/* Four column vectors at a time, their running gate products in registers:
 * four independent multiply chains down the rows (one chain is bound by the
 * multiply latency); then single vectors, then scalar columns (see
 * attn_linear_kernels.gate_scan). */
static void LNAME(gate_scan)(float *dst, int64_t ldd, const float *x, int64_t ldx,
                             const float *a, int64_t lda, int rows, int64_t n, int reverse,
                             float scale)
{
    const int64_t first = reverse ? rows - 1 : 0, step = reverse ? -1 : 1;
    int64_t j = 0;
    for (; j + 4 * LV <= n; j += 4 * LV) {
        LVEC prod[4];
        for (int v = 0; v < 4; v++)
            prod[v] = LSET1(scale);
        for (int64_t i = 0, r = first; i < rows; i++, r += step)
#pragma GCC unroll 4
            for (int v = 0; v < 4; v++) {
                const float *ar = a + r * lda + j + v * LV;
                if (!reverse)
                    prod[v] = LMUL(prod[v], LLOAD(ar));
                LSTORE(dst + r * ldd + j + v * LV, LMUL(LLOAD(x + r * ldx + j + v * LV), prod[v]));
                if (reverse)
                    prod[v] = LMUL(prod[v], LLOAD(ar));
            }
    }
    for (; j + LV <= n; j += LV) {
        LVEC prod = LSET1(scale);
        for (int64_t i = 0, r = first; i < rows; i++, r += step) {
            if (!reverse)
                prod = LMUL(prod, LLOAD(a + r * lda + j));
            LSTORE(dst + r * ldd + j, LMUL(LLOAD(x + r * ldx + j), prod));
            if (reverse)
                prod = LMUL(prod, LLOAD(a + r * lda + j));
        }
    }
    attn_linear_gate_scan_cols(dst, ldd, 1, x, ldx, a, lda, rows, j, n, reverse, scale);
}

/* gate_scan written transposed (dst[c*ldd + r]): where the ISA has
 * transpose_vl and the rows come in whole vectors, each LV x LV block of
 * products goes through registers straight to its columns, so the scanned
 * rows are never stored and read back for a separate transpose. One multiply
 * chain per column vector; the chains of successive vectors are independent
 * and overlap out of order. Other shapes scan column by column in scalar
 * code. */
#ifdef LTRANSPOSE_VL
/* One column vector of gate_scan_t in LV x LV blocks; reverse is a constant
 * at each call, so the block's registers keep constant indices. */
static inline __attribute__((always_inline)) void
LNAME(gate_column_t)(float *dst, float *dst2, const float *e, int64_t ldd, const float *x,
                     int64_t ldx, const float *a, int64_t lda, int rows, const int reverse,
                     float scale)
{
    LVEC prod = LSET1(scale);
    for (int b = 0; b < rows / LV; b++) {
        const int64_t r0 = reverse ? rows - LV * (b + 1) : LV * b;
        LVEC blk[LV];
#pragma GCC unroll 16
        for (int i = 0; i < LV; i++) {
            const int k = reverse ? LV - 1 - i : i;
            const int64_t r = r0 + k;
            if (!reverse)
                prod = LMUL(prod, LLOAD(a + r * lda));
            blk[k] = LMUL(LLOAD(x + r * ldx), prod);
            if (reverse)
                prod = LMUL(prod, LLOAD(a + r * lda));
        }
        transpose_vl(blk);
#pragma GCC unroll 16
        for (int i = 0; i < LV; i++) {
            LSTORE(dst + i * ldd + r0, blk[i]);
            LSTORE(dst2 + i * ldd + r0, LMUL(blk[i], LSET1(e[i])));
        }
    }
}
#endif

static void LNAME(gate_scan_t)(float *dst, float *dst2, const float *e, int64_t ldd,
                               const float *x, int64_t ldx, const float *a, int64_t lda, int rows,
                               int64_t n, int reverse, float scale)
{
    int64_t j = 0;
#ifdef LTRANSPOSE_VL
    for (; rows % LV == 0 && j + LV <= n; j += LV) {
        if (reverse)
            LNAME(gate_column_t)(dst + j * ldd, dst2 + j * ldd, e + j, ldd, x + j, ldx, a + j,
                                 lda, rows, 1, scale);
        else
            LNAME(gate_column_t)(dst + j * ldd, dst2 + j * ldd, e + j, ldd, x + j, ldx, a + j,
                                 lda, rows, 0, scale);
    }
#endif
    attn_linear_gate_scan_t_cols(dst, dst2, e, ldd, x, ldx, a, lda, rows, j, n, reverse, scale);
}

#ifdef LTRANSPOSE_VL
/* One LV x LV block: dst row c = src column c. */
static inline void LNAME(transpose_block)(float *dst, int64_t ldd, const float *src, int64_t lds)
{
    LVEC r[LV];
    for (int i = 0; i < LV; i++)
        r[i] = LLOAD(src + (int64_t)i * lds);
    transpose_vl(r);
    for (int i = 0; i < LV; i++)
        LSTORE(dst + (int64_t)i * ldd, r[i]);
}
#endif

/* dst[c*ldd + r] = src[r*lds + c]: LV x LV blocks through registers where
 * the ISA has transpose_vl, the ragged edges element by element. */
static void LNAME(transpose)(float *dst, int64_t ldd, const float *src, int64_t lds, int rows,
                             int cols)
{
    int r0 = 0;
#ifdef LTRANSPOSE_VL
    for (; r0 + LV <= rows; r0 += LV) {
        int c0 = 0;
        for (; c0 + LV <= cols; c0 += LV)
            LNAME(transpose_block)(dst + (int64_t)c0 * ldd + r0, ldd, src + (int64_t)r0 * lds + c0, lds);
        for (int r = r0; r < r0 + LV; r++)
            for (int c = c0; c < cols; c++)
                dst[(int64_t)c * ldd + r] = src[(int64_t)r * lds + c];
    }
#endif
    for (int r = r0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[(int64_t)c * ldd + r] = src[(int64_t)r * lds + c];
}

/* Row copies for outputs written once: vectors to aligned addresses go past
 * the caches with LSTREAM (the unaligned head and the tail of a row use
 * ordinary stores), then one fence makes them visible to other threads. */
static void LNAME(stream_rows)(float *dst, int64_t ldd, const float *src, int64_t lds, int rows,
                               int64_t n)
{
    for (int r = 0; r < rows; r++, dst += ldd, src += lds) {
        int64_t j = 0;
#ifdef LSTREAM
        for (; j < n && ((uintptr_t)(dst + j) & (LV * sizeof(float) - 1)); j++)
            dst[j] = src[j];
        for (; j + LV <= n; j += LV)
            LSTREAM(dst + j, LLOAD(src + j));
#else
        for (; j + LV <= n; j += LV)
            LSTORE(dst + j, LLOAD(src + j));
#endif
        for (; j < n; j++)
            dst[j] = src[j];
    }
#ifdef LFENCE
    LFENCE();
#endif
}
