/* AVX2 + FMA linear-attention micro-kernels (simd/linear_tmpl.h). */
#include <immintrin.h>
#include "exp_avx2.h"

#define LV 8
#define LVEC __m256
#define LLOAD(p) _mm256_loadu_ps(p)
#define LSTORE(p, x) _mm256_storeu_ps((p), (x))
#define LSET1(a) _mm256_set1_ps(a)
#define LZERO() _mm256_setzero_ps()
#define LFMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#define LADD(a, b) _mm256_add_ps((a), (b))
#define LSUB(a, b) _mm256_sub_ps((a), (b))
#define LMUL(a, b) _mm256_mul_ps((a), (b))
#define LMAXF(lo, x) _mm256_max_ps((lo), (x))   /* the second operand on NaN */
#define LEXP(x) attn_exp_avx2(x)
#define LMR 6
#define LNAME(x) avx2_lin_##x
#define LTRANSPOSE avx2_transpose8
#define LSTREAM(p, x) _mm256_stream_ps((p), (x))
#define LFENCE() _mm_sfence()

/* 8 x 8 block: unpack pairs of rows, shuffle_ps gathers four rows of a
 * column per 128-bit half, permute2f128 joins the halves of rows 0-3 and 4-7. */
static inline void avx2_transpose8(float *dst, int64_t ldd, const float *src, int64_t lds)
{
    __m256 r[8], u[8];
    for (int i = 0; i < 8; i++)
        r[i] = _mm256_loadu_ps(src + i * lds);
    for (int g = 0; g < 2; g++) {
        const __m256 t0 = _mm256_unpacklo_ps(r[4 * g], r[4 * g + 1]);
        const __m256 t1 = _mm256_unpackhi_ps(r[4 * g], r[4 * g + 1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
        const __m256 t3 = _mm256_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
        u[4 * g + 0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * g + 2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    }
    for (int m = 0; m < 4; m++) {
        _mm256_storeu_ps(dst + m * ldd, _mm256_permute2f128_ps(u[m], u[4 + m], 0x20));
        _mm256_storeu_ps(dst + (4 + m) * ldd, _mm256_permute2f128_ps(u[m], u[4 + m], 0x31));
    }
}
#include "linear_tmpl.h"

static const attn_linear_kernels kernels = {
    .name = "avx2",
    .gemm = avx2_lin_gemm,
    .vexp = avx2_lin_vexp,
    .row_update = avx2_lin_row_update,
    .axpy = avx2_lin_axpy,
    .mul_exp = avx2_lin_mul_exp,
    .vmul = avx2_lin_vmul,
    .scal = avx2_lin_scal,
    .max_floor = avx2_lin_max_floor,
    .transpose = avx2_lin_transpose,
    .stream_rows = avx2_lin_stream_rows,
};

const attn_linear_kernels *attn_linear_kernels_avx2(void) { return &kernels; }
