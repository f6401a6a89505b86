/* Portable linear-attention micro-kernels: a cache-blocked GEMM over
 * general A strides and plain loops the compiler may vectorise. Also the
 * fallback for ISAs not compiled in. */
#include <math.h>
#include <string.h>
#include "linear.h"

static void scalar_gemm(int m, int n, int k, const float *A, int64_t rsa, int64_t csa,
                        const float *B, int64_t ldb, float *C, int64_t ldc, int acc,
                        attn_linear_pf *pf)
{
    enum { NB = 256 };
    float tmp[NB];
    for (int i = 0; i < m; i++) {
        float *c = C + (int64_t)i * ldc;
        for (int j0 = 0; j0 < n; j0 += NB) {
            const int nb = n - j0 < NB ? n - j0 : NB;
            for (int j = 0; j < nb; j++)
                tmp[j] = 0.0f;
            if (pf)
                attn_linear_pf_issue(pf, (k + ATTN_LINEAR_PF_STEPS - 1) / ATTN_LINEAR_PF_STEPS);
            for (int p = 0; p < k; p++) {
                const float a = A[(int64_t)i * rsa + (int64_t)p * csa];
                const float *b = B + (int64_t)p * ldb + j0;
                for (int j = 0; j < nb; j++)
                    tmp[j] += a * b[j];
            }
            if (acc == 0)
                for (int j = 0; j < nb; j++) c[j0 + j] = tmp[j];
            else if (acc > 0)
                for (int j = 0; j < nb; j++) c[j0 + j] += tmp[j];
            else
                for (int j = 0; j < nb; j++) c[j0 + j] -= tmp[j];
        }
    }
}

static void scalar_vexp(float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = expf(y[i]);
}

static void scalar_row_update(float *s, float a, float b, const float *u, float c, float *o,
                              int64_t n)
{
    for (int64_t j = 0; j < n; j++) {
        const float x = a * s[j] + b * u[j];
        s[j] = x;
        o[j] += c * x;
    }
}

static void scalar_axpy(float *y, float a, const float *x, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        y[j] += a * x[j];
}

static void scalar_mul_exp(float *dst, const float *x, const float *a, const float *b, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        dst[j] = x[j] * expf((a ? a[j] : 0.0f) - (b ? b[j] : 0.0f));
}

static void scalar_vmul(float *dst, const float *x, const float *y, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        dst[j] = x[j] * y[j];
}

static void scalar_scal(float *y, float a, int64_t n)
{
    for (int64_t j = 0; j < n; j++)
        y[j] *= a;
}

static void scalar_max_floor(float *dst, const float *x, float lo, int64_t n)
{
    for (int64_t j = 0; j < n; j++)     /* NaN compares false and stays NaN */
        dst[j] = x[j] < lo ? lo : x[j];
}

void attn_linear_gate_load_cols(float *G, float *AG, int64_t ldga, const float *g, int64_t ldg,
                                int rows, int64_t j0, int64_t n, float lo, float *dst,
                                int64_t ldd, const float *x, int64_t ldx, float scale)
{
    for (int64_t j = j0; j < n; j++) {
        float sum = 0.0f, prod = scale;
        for (int r = 0; r < rows; r++) {   /* NaN compares false and stays NaN */
            const float y = g[r * ldg + j] < lo ? lo : g[r * ldg + j];
            const float a = expf(y);
            sum += y;
            AG[r * ldga + j] = a;
            G[r * ldga + j] = sum;
            if (x) {
                prod *= a;
                dst[r * ldd + j] = x[r * ldx + j] * prod;
            }
        }
    }
}

static void scalar_gate_load(float *G, float *AG, int64_t ldga, const float *g, int64_t ldg,
                             int rows, int64_t n, float lo, float *dst, int64_t ldd,
                             const float *x, int64_t ldx, float scale, attn_linear_pf *pf)
{
    (void)pf;                                 /* the caller issues the walks */
    attn_linear_gate_load_cols(G, AG, ldga, g, ldg, rows, 0, n, lo, dst, ldd, x, ldx, scale);
}

/* Columns [j0, n) of gate_scan: element (r, j), x's row r times scale and
 * the running product of a's rows up to r (from r on with reverse), goes to
 * dst[r * rs + j * cs]. The scalar set's whole scan (rs = ldd, cs = 1; the
 * transposed one with rs = 1, cs = ldd) and the SIMD sets' columns past
 * their last vector. */
void attn_linear_gate_scan_cols(float *dst, int64_t rs, int64_t cs, const float *x, int64_t ldx,
                                const float *a, int64_t lda, int rows, int64_t j0, int64_t n,
                                int reverse, float scale)
{
    for (int64_t j = j0; j < n; j++) {
        float prod = scale;
        for (int i = 0; i < rows; i++) {
            const int64_t r = reverse ? rows - 1 - i : i;
            if (!reverse)
                prod *= a[r * lda + j];
            dst[r * rs + j * cs] = x[r * ldx + j] * prod;
            if (reverse)
                prod *= a[r * lda + j];
        }
    }
}

static void scalar_gate_scan(float *dst, int64_t ldd, const float *x, int64_t ldx,
                             const float *a, int64_t lda, int rows, int64_t n, int reverse,
                             float scale)
{
    attn_linear_gate_scan_cols(dst, ldd, 1, x, ldx, a, lda, rows, 0, n, reverse, scale);
}

void attn_linear_gate_scan_t_cols(float *dst, float *dst2, const float *e, int64_t ldd,
                                  const float *x, int64_t ldx, const float *a, int64_t lda,
                                  int rows, int64_t j0, int64_t n, int reverse, float scale)
{
    attn_linear_gate_scan_cols(dst, 1, ldd, x, ldx, a, lda, rows, j0, n, reverse, scale);
    for (int64_t c = j0; c < n; c++)
        for (int r = 0; r < rows; r++)
            dst2[c * ldd + r] = dst[c * ldd + r] * e[c];
}

static void scalar_gate_scan_t(float *dst, float *dst2, const float *e, int64_t ldd,
                               const float *x, int64_t ldx, const float *a, int64_t lda,
                               int rows, int64_t n, int reverse, float scale)
{
    attn_linear_gate_scan_t_cols(dst, dst2, e, ldd, x, ldx, a, lda, rows, 0, n, reverse, scale);
}

static void scalar_transpose(float *dst, int64_t ldd, const float *src, int64_t lds, int rows,
                             int cols)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++)
            dst[c * ldd + r] = src[r * lds + c];
}

static void scalar_stream_rows(float *dst, int64_t ldd, const float *src, int64_t lds, int rows,
                               int64_t n)
{
    for (int r = 0; r < rows; r++)
        memcpy(dst + r * ldd, src + r * lds, (size_t)n * sizeof *dst);
}

void attn_linear_chunk_products_cols(int n, int dk, int j0, int j1, const float *Qh, int64_t lq,
                                     const float *A, int64_t la, const float *U, int64_t lu,
                                     const float *KT, int64_t lkt, const float *d, float *S,
                                     int64_t lds, float *O, int64_t lo)
{
    for (int j = j0; j < j1; j++) {
        for (int i = 0; i < n; i++) {
            float s = 0.0f;
            for (int p = 0; p < dk; p++)
                s += Qh[(int64_t)i * lq + p] * S[(int64_t)p * lds + j];
            for (int r = 0; r <= i; r++)
                s += A[(int64_t)i * la + r] * U[(int64_t)r * lu + j];
            O[(int64_t)i * lo + j] = s;
        }
        for (int p = 0; p < dk; p++) {
            float s = 0.0f;
            for (int r = 0; r < n; r++)
                s += KT[(int64_t)p * lkt + r] * U[(int64_t)r * lu + j];
            S[(int64_t)p * lds + j] = d[p] * S[(int64_t)p * lds + j] + s;
        }
    }
}

/* The whole product column by column: each column of S is read by the
 * output's dot products, then updated. */
static void scalar_chunk_products(int n, int dk, int dv, const float *Qh, int64_t lq,
                                  const float *A, int64_t la, const float *U, int64_t lu,
                                  const float *KT, int64_t lkt, const float *d, float *S,
                                  int64_t lds, float *O, int64_t lo, int stream,
                                  attn_linear_pf *pf)
{
    (void)stream;                     /* plain stores */
    (void)pf;                         /* the chunk issues what is left after its products */
    attn_linear_chunk_products_cols(n, dk, 0, dv, Qh, lq, A, la, U, lu, KT, lkt, d, S, lds, O,
                                    lo);
}

const attn_linear_kernels attn_linear_kernels_scalar = {
    .name = "scalar",
    .gemm = scalar_gemm,
    .chunk_products = scalar_chunk_products,
    .vexp = scalar_vexp,
    .row_update = scalar_row_update,
    .axpy = scalar_axpy,
    .mul_exp = scalar_mul_exp,
    .vmul = scalar_vmul,
    .scal = scalar_scal,
    .max_floor = scalar_max_floor,
    .gate_load = scalar_gate_load,
    .gate_scan = scalar_gate_scan,
    .gate_scan_t = scalar_gate_scan_t,
    .transpose = scalar_transpose,
    .stream_rows = scalar_stream_rows,
};
