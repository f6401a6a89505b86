/* The portable kernel set: plain C that runs on any CPU. It is also the
 * fallback for ISAs not compiled in, so it favours clarity over speed;
 * K and V tiles are packed as plain row-major [bk][d] / [bk][dv]. */
#include <math.h>
#include "kernels.h"
#include "half.h"
#include "stream_store.h"

static void scalar_tile_sizes(int64_t d, int64_t dv, int *bq, int *bk)
{
    (void)dv;
    *bq = 32;
    *bk = d > 128 ? 32 : 64;
}

static void scalar_load_rows(float *dst, int64_t ldd, const void *src, attn_dtype dt,
                             int64_t rs, int64_t cs, int n, int64_t d, float scale)
{
    for (int i = 0; i < n; i++) {
        float *row = dst + (int64_t)i * ldd;
        for (int64_t c = 0; c < d; c++)
            row[c] = scale * attn_load_f32(src, dt, i * rs + c * cs);
        for (int64_t c = d; c < ldd; c++)
            row[c] = 0.0f;
    }
}

static size_t scalar_k_tile_floats(int bk, int64_t d) { return (size_t)bk * (size_t)d; }

static void scalar_pack_rows(float *dst, const void *src, attn_dtype dt, int64_t rs,
                             int64_t cs, int nk, int bk, int64_t d)
{
    (void)bk;
    for (int j = 0; j < nk; j++)
        for (int64_t c = 0; c < d; c++)
            dst[(int64_t)j * d + c] = attn_load_f32(src, dt, j * rs + c * cs);
}

static void scalar_qk(const float *q, int64_t ldq, int nq, const float *k, int nk,
                      int64_t d, float *s, int64_t lds)
{
    for (int i = 0; i < nq; i++) {
        const float *qi = q + (int64_t)i * ldq;
        for (int j = 0; j < nk; j++) {
            const float *kj = k + (int64_t)j * d;
            float acc = 0.0f;
            for (int64_t c = 0; c < d; c++)
                acc += qi[c] * kj[c];
            s[(int64_t)i * lds + j] = acc;
        }
    }
}

static void scalar_qk_runs(const float *const *q, int nq, const float *const *kruns,
                           int nruns, int panel_nk, int j0, int nk, int64_t d, float *s,
                           int64_t lds, int64_t pitch)
{
    (void)panel_nk;
    for (int i = 0; i < nq; i++)
        for (int r = 0; r < nruns; r++)
            scalar_qk(q[i], d, 1, kruns[r] + (int64_t)j0 * d, nk, d,
                      s + (int64_t)i * lds + r * pitch, lds);
}

static void scalar_pv(const float *p, int64_t ldp, int nq, const float *v, int nk,
                      int64_t dv, const float *alpha, float *o, int64_t ldo)
{
    for (int i = 0; i < nq; i++) {
        float *oi = o + (int64_t)i * ldo;
        const float a = alpha[i];
        for (int64_t c = 0; c < dv; c++)
            oi[c] *= a;
        for (int j = 0; j < nk; j++) {
            const float pij = p[(int64_t)i * ldp + j];
            if (pij == 0.0f)
                continue;
            const float *vj = v + (int64_t)j * dv;
            for (int64_t c = 0; c < dv; c++)
                oi[c] += pij * vj[c];
        }
    }
}

static void scalar_pv_runs(const float *p, int64_t ldp, int nq, const float *const *vruns,
                           int nruns, int j0, const int *klo, const int *khi, int64_t pitch,
                           int64_t dv, const float *scale, float *o, int64_t ldo)
{
    for (int i = 0; i < nq; i++) {
        float *oi = o + (int64_t)i * ldo;
        for (int64_t c = 0; c < dv; c++)
            oi[c] = 0.0f;
        for (int r = 0; r < nruns; r++)
            for (int j = klo[i]; j < khi[i]; j++) {
                const float pij = p[(int64_t)i * ldp + r * pitch + j];
                const float *vj = vruns[r] + (int64_t)(j0 + j) * dv;
                for (int64_t c = 0; c < dv; c++)
                    oi[c] += pij * vj[c];
            }
        for (int64_t c = 0; c < dv; c++)
            oi[c] *= scale[i];
    }
}

static void scalar_softmax_runs(float *s, int64_t lds, int nq, int nruns, int64_t pitch,
                                int64_t rstride, float scale, const float *bias, int64_t ldb,
                                float *m, float *l)
{
    for (int i = 0; i < nq; i++) {
        float *row = s + (int64_t)i * lds;
        const float *b = bias + (int64_t)i * ldb;
        float mx = -INFINITY, sum = 0.0f;
        for (int r = 0; r < nruns; r++)
            for (int64_t c = 0; c < pitch; c++)
                mx = fmaxf(mx, fmaf(row[r * rstride + c], scale, b[c]));
        for (int r = 0; r < nruns; r++)
            for (int64_t c = 0; c < pitch; c++) {
                float *x = row + r * rstride + c;
                *x = expf(fmaf(*x, scale, b[c]) - mx);
                sum += *x;
            }
        m[i] = mx;
        l[i] = sum;
    }
}

static void scalar_vexp(float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        y[i] = expf(y[i]);
}

static void scalar_store_stream(float *dst, const float *src, int64_t n)
{
    attn_cpu_store_scaled_stream(dst, src, n, 1.0f);
}

const attn_cpu_kernels attn_cpu_kernels_scalar = {
    .name = "scalar",
    .isa = ATTN_ISA_SCALAR,
    .tile_sizes = scalar_tile_sizes,
    .load_rows = scalar_load_rows,
    .k_tile_floats = scalar_k_tile_floats,
    .v_tile_floats = scalar_k_tile_floats,
    .pack_k = scalar_pack_rows,
    .pack_v = scalar_pack_rows,
    .qk = scalar_qk,
    .qk_runs = scalar_qk_runs,
    .pv = scalar_pv,
    .pv_runs = scalar_pv_runs,
    .softmax_runs = scalar_softmax_runs,
    .store_stream = scalar_store_stream,
    .vexp = scalar_vexp,
};
