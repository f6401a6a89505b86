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

static void LNAME(gemm)(int m, int n, int k, const float *A, int64_t rsa, int64_t csa,
                        const float *B, int64_t ldb, float *C, int64_t ldc, int acc)
{
    const int nv = n / LV * LV;
    int j = 0;
    for (; j + 2 * LV <= nv; j += 2 * LV) {
        int i = 0;
        for (; i + 6 <= m; i += 6) {
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
        for (; i < m; i++) {
            LVEC c0 = LZERO(), c1 = LZERO();
            const float *a = A + (int64_t)i * rsa;
            const float *b = B + j;
            for (int p = 0; p < k; p++, a += csa, b += ldb) {
                const LVEC x = LSET1(a[0]);
                c0 = LFMA(x, LLOAD(b), c0);
                c1 = LFMA(x, LLOAD(b + LV), c1);
            }
            float *c = C + (int64_t)i * ldc + j;
            LSTORE(c, LNAME(combine)(c0, c, acc));
            LSTORE(c + LV, LNAME(combine)(c1, c + LV, acc));
        }
    }
    for (; j < nv; j += LV)
        for (int i = 0; i < m; i++) {
            LVEC c0 = LZERO();
            const float *a = A + (int64_t)i * rsa;
            const float *b = B + j;
            for (int p = 0; p < k; p++, a += csa, b += ldb)
                c0 = LFMA(LSET1(a[0]), LLOAD(b), c0);
            float *c = C + (int64_t)i * ldc + j;
            LSTORE(c, LNAME(combine)(c0, c, acc));
        }
    for (; j < n; j++)
        for (int i = 0; i < m; i++) {
            float s = 0.0f;
            for (int p = 0; p < k; p++)
                s += A[(int64_t)i * rsa + (int64_t)p * csa] * B[(int64_t)p * ldb + j];
            LNAME(store1)(C + (int64_t)i * ldc + j, s, acc);
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
