/* Portable decode kernels: each cache row is converted to f32 once (into a
 * row on the stack) and used for every query row. Also the selection of the
 * decode kernel set by ISA. */
#include "config.h"
#include "decode_kernels.h"
#include "quant.h"

static void scalar_qk(const float *q, int64_t ldq, int nr, const attn_kv_rows *k, attn_dtype dt,
                      int nk, int64_t d, float *s, int64_t lds)
{
    float row[4096];
    for (int j = 0; j < nk; j++) {
        attn_kv_load_row(dt, k->data + j * k->row_bytes, k->meta + j * k->meta_per_row, d, row);
        for (int r = 0; r < nr; r++) {
            const float *qr = q + r * ldq;
            float acc = 0.0f;
            for (int64_t c = 0; c < d; c++)
                acc += qr[c] * row[c];
            s[r * lds + j] = acc;
        }
    }
}

static void scalar_pv(const float *p, int64_t ldp, int nr, const attn_kv_rows *v, attn_dtype dt,
                      int nk, int64_t dv, float *o, int64_t ldo)
{
    float row[4096];
    for (int j = 0; j < nk; j++) {
        attn_kv_load_row(dt, v->data + j * v->row_bytes, v->meta + j * v->meta_per_row, dv, row);
        for (int r = 0; r < nr; r++) {
            const float pj = p[r * ldp + j];
            if (pj == 0.0f)
                continue;
            float *orow = o + r * ldo;
            for (int64_t c = 0; c < dv; c++)
                orow[c] += pj * row[c];
        }
    }
}

const attn_cpu_decode_kernels attn_cpu_decode_scalar = {
    .name = "scalar",
    .qk = scalar_qk,
    .pv = scalar_pv,
};

const attn_cpu_decode_kernels *attn_cpu_decode_kernels_for(attn_isa isa, uint64_t features)
{
    const attn_cpu_decode_kernels *k = NULL;
    (void)features;   /* unused when no x86 kernel set is built */
    switch (isa) {
#ifdef HAVE_AVX512_KERNELS
    case ATTN_ISA_AVX512:
        k = (features & ATTN_CPU_AVX512_VNNI) ? attn_cpu_decode_avx512_vnni() : attn_cpu_decode_avx512();
        break;
#endif
#ifdef HAVE_AVX2_KERNELS
    case ATTN_ISA_AVX2:   k = attn_cpu_decode_avx2(); break;
#endif
#ifdef HAVE_NEON_KERNELS
    case ATTN_ISA_NEON:   k = attn_cpu_decode_neon(); break;
#endif
    default: break;
    }
    return k ? k : &attn_cpu_decode_scalar;
}
