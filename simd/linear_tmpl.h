/* Linear-attention micro-kernels, written once over a small vector
 * vocabulary that each ISA file defines before including this:
 *   LV           floats per vector          LVEC      the vector type
 *   LLOAD(p)     unaligned load             LSTORE(p, x)  unaligned store
 *   LSET1(a)     broadcast                  LZERO()
 *   LFMA(a,b,c)  a*b + c                    LADD/LSUB/LMUL(a,b)
 *   LEXP(x)      vector exp (-inf -> 0)
 *   LNAME(x)     prefixes the static functions
 * Tails narrower than a vector use scalar code. The GEMM keeps a 6 x 2-vector
 * block of C in registers and streams B rows through it, A entries broadcast
 * from memory with general strides (row-major or transposed A). */
#include <math.h>
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

/* Rows [i0, i0+6) x one vector of columns at j. */
static inline void LNAME(tile6x1)(int k, const float *A, int64_t rsa, int64_t csa,
                                  const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    LVEC c0 = LZERO(), c1 = LZERO(), c2 = LZERO(), c3 = LZERO(), c4 = LZERO(), c5 = LZERO();
    const float *a = A, *b = B;
    for (int p = 0; p < k; p++, a += csa, b += ldb) {
        const LVEC b0 = LLOAD(b);
        c0 = LFMA(LSET1(a[0]), b0, c0);
        c1 = LFMA(LSET1(a[rsa]), b0, c1);
        c2 = LFMA(LSET1(a[2 * rsa]), b0, c2);
        c3 = LFMA(LSET1(a[3 * rsa]), b0, c3);
        c4 = LFMA(LSET1(a[4 * rsa]), b0, c4);
        c5 = LFMA(LSET1(a[5 * rsa]), b0, c5);
    }
    LSTORE(C, LNAME(combine)(c0, C, acc));
    LSTORE(C + ldc, LNAME(combine)(c1, C + ldc, acc));
    LSTORE(C + 2 * ldc, LNAME(combine)(c2, C + 2 * ldc, acc));
    LSTORE(C + 3 * ldc, LNAME(combine)(c3, C + 3 * ldc, acc));
    LSTORE(C + 4 * ldc, LNAME(combine)(c4, C + 4 * ldc, acc));
    LSTORE(C + 5 * ldc, LNAME(combine)(c5, C + 5 * ldc, acc));
}

/* Four rows x one vector of columns. */
static inline void LNAME(tile4x1)(int k, const float *A, int64_t rsa, int64_t csa,
                                  const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    LVEC c0 = LZERO(), c1 = LZERO(), c2 = LZERO(), c3 = LZERO();
    const float *a = A, *b = B;
    for (int p = 0; p < k; p++, a += csa, b += ldb) {
        const LVEC b0 = LLOAD(b);
        c0 = LFMA(LSET1(a[0]), b0, c0);
        c1 = LFMA(LSET1(a[rsa]), b0, c1);
        c2 = LFMA(LSET1(a[2 * rsa]), b0, c2);
        c3 = LFMA(LSET1(a[3 * rsa]), b0, c3);
    }
    LSTORE(C, LNAME(combine)(c0, C, acc));
    LSTORE(C + ldc, LNAME(combine)(c1, C + ldc, acc));
    LSTORE(C + 2 * ldc, LNAME(combine)(c2, C + 2 * ldc, acc));
    LSTORE(C + 3 * ldc, LNAME(combine)(c3, C + 3 * ldc, acc));
}

/* One row x four vectors of columns. */
static inline void LNAME(tile1x4)(int k, const float *A, int64_t csa, const float *B,
                                  int64_t ldb, float *C, int acc)
{
    LVEC c0 = LZERO(), c1 = LZERO(), c2 = LZERO(), c3 = LZERO();
    const float *a = A, *b = B;
    for (int p = 0; p < k; p++, a += csa, b += ldb) {
        const LVEC x = LSET1(a[0]);
        c0 = LFMA(x, LLOAD(b), c0);
        c1 = LFMA(x, LLOAD(b + LV), c1);
        c2 = LFMA(x, LLOAD(b + 2 * LV), c2);
        c3 = LFMA(x, LLOAD(b + 3 * LV), c3);
    }
    LSTORE(C, LNAME(combine)(c0, C, acc));
    LSTORE(C + LV, LNAME(combine)(c1, C + LV, acc));
    LSTORE(C + 2 * LV, LNAME(combine)(c2, C + 2 * LV, acc));
    LSTORE(C + 3 * LV, LNAME(combine)(c3, C + 3 * LV, acc));
}

/* One row x one vector: two partial sums over p to halve the dependency chain. */
static inline void LNAME(tile1x1)(int k, const float *A, int64_t csa, const float *B,
                                  int64_t ldb, float *C, int acc)
{
    LVEC c0 = LZERO(), c1 = LZERO();
    int p = 0;
    for (; p + 2 <= k; p += 2) {
        c0 = LFMA(LSET1(A[(int64_t)p * csa]), LLOAD(B + (int64_t)p * ldb), c0);
        c1 = LFMA(LSET1(A[(int64_t)(p + 1) * csa]), LLOAD(B + (int64_t)(p + 1) * ldb), c1);
    }
    if (p < k)
        c0 = LFMA(LSET1(A[(int64_t)p * csa]), LLOAD(B + (int64_t)p * ldb), c0);
    c0 = LADD(c0, c1);
    LSTORE(C, LNAME(combine)(c0, C, acc));
}

static void LNAME(gemm)(int m, int n, int k, const float *A, int64_t rsa, int64_t csa,
                        const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    const int nv = n / LV * LV, m6 = m / 6 * 6;
    int j = 0;
    /* Full 6-row blocks: 6 x 2 vectors, then 6 x 1 vector. */
    for (; j + 2 * LV <= nv; j += 2 * LV) {
        for (int i = 0; i < m6; i += 6) {
            LVEC c00 = LZERO(), c01 = LZERO(), c10 = LZERO(), c11 = LZERO();
            LVEC c20 = LZERO(), c21 = LZERO(), c30 = LZERO(), c31 = LZERO();
            LVEC c40 = LZERO(), c41 = LZERO(), c50 = LZERO(), c51 = LZERO();
            const float *a = A + (int64_t)i * rsa;
            const float *b = B + j;
            for (int p = 0; p < k; p++, a += csa, b += ldb) {
                const LVEC b0 = LLOAD(b), b1 = LLOAD(b + LV);
                LVEC x = LSET1(a[0]);
                c00 = LFMA(x, b0, c00); c01 = LFMA(x, b1, c01);
                x = LSET1(a[rsa]);
                c10 = LFMA(x, b0, c10); c11 = LFMA(x, b1, c11);
                x = LSET1(a[2 * rsa]);
                c20 = LFMA(x, b0, c20); c21 = LFMA(x, b1, c21);
                x = LSET1(a[3 * rsa]);
                c30 = LFMA(x, b0, c30); c31 = LFMA(x, b1, c31);
                x = LSET1(a[4 * rsa]);
                c40 = LFMA(x, b0, c40); c41 = LFMA(x, b1, c41);
                x = LSET1(a[5 * rsa]);
                c50 = LFMA(x, b0, c50); c51 = LFMA(x, b1, c51);
            }
            float *c = C + (int64_t)i * ldc + j;
#define LST(r, v0, v1) do { float *cr = c + (r) * ldc; \
                LSTORE(cr, LNAME(combine)(v0, cr, acc)); \
                LSTORE(cr + LV, LNAME(combine)(v1, cr + LV, acc)); } while (0)
            LST(0, c00, c01); LST(1, c10, c11); LST(2, c20, c21);
            LST(3, c30, c31); LST(4, c40, c41); LST(5, c50, c51);
#undef LST
        }
    }
    for (; j < nv; j += LV)
        for (int i = 0; i < m6; i += 6)
            LNAME(tile6x1)(k, A + (int64_t)i * rsa, rsa, csa, B + j, ldb,
                           C + (int64_t)i * ldc + j, ldc, acc);
    /* Leftover rows: four at a time for narrow C, then one at a time, four
     * vectors wide where possible. */
    int m4 = m6;
    if (nv < 4 * LV)
        for (; m4 + 4 <= m; m4 += 4)
            for (int jj = 0; jj < nv; jj += LV)
                LNAME(tile4x1)(k, A + (int64_t)m4 * rsa, rsa, csa, B + jj, ldb,
                               C + (int64_t)m4 * ldc + jj, ldc, acc);
    for (int i = m4; i < m; i++) {
        const float *a = A + (int64_t)i * rsa;
        float *c = C + (int64_t)i * ldc;
        int jj = 0;
        for (; jj + 4 * LV <= nv; jj += 4 * LV)
            LNAME(tile1x4)(k, a, csa, B + jj, ldb, c + jj, acc);
        for (; jj < nv; jj += LV)
            LNAME(tile1x1)(k, a, csa, B + jj, ldb, c + jj, acc);
    }
    /* Columns past the last full vector. */
    for (int jj = nv; jj < n; jj++)
        for (int i = 0; i < m; i++) {
            float s = 0.0f;
            for (int p = 0; p < k; p++)
                s += A[(int64_t)i * rsa + (int64_t)p * csa] * B[(int64_t)p * ldb + jj];
            LNAME(store1)(C + (int64_t)i * ldc + jj, s, acc);
        }
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
