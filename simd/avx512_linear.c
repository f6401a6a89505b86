/* AVX-512F linear-attention micro-kernels (simd/linear_tmpl.h). */
#include <immintrin.h>
#include "exp_avx512.h"

#define LV 16
#define LVEC __m512
#define LLOAD(p) _mm512_loadu_ps(p)
#define LSTORE(p, x) _mm512_storeu_ps((p), (x))
#define LSET1(a) _mm512_set1_ps(a)
#define LZERO() _mm512_setzero_ps()
#define LFMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define LADD(a, b) _mm512_add_ps((a), (b))
#define LSUB(a, b) _mm512_sub_ps((a), (b))
#define LMUL(a, b) _mm512_mul_ps((a), (b))
#define LMAXF(lo, x) _mm512_max_ps((lo), (x))   /* the second operand on NaN */
#define LEXP(x) attn_exp_avx512(x)
#define LMR 8
#define LNAME(x) avx512_lin_##x
#define LTRANSPOSE avx512_transpose16
#define LSTREAM(p, x) _mm512_stream_ps((p), (x))
#define LFENCE() _mm_sfence()

/* 16 x 16 block: pairs of rows interleave (unpack), groups of four rows
 * gather a column's four entries per 128-bit lane (shuffle_ps), then the
 * lanes of four groups combine into whole columns (two shuffle_f32x4). */
static inline void avx512_transpose16(float *dst, int64_t ldd, const float *src, int64_t lds)
{
    __m512 r[16], u[16];
    for (int i = 0; i < 16; i++)
        r[i] = _mm512_loadu_ps(src + i * lds);
    for (int g = 0; g < 4; g++) {
        const __m512 t0 = _mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]);
        const __m512 t1 = _mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]);
        const __m512 t2 = _mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
        const __m512 t3 = _mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
        u[4 * g + 0] = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 1] = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
        u[4 * g + 2] = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
        u[4 * g + 3] = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    }
    /* u[4g + m], lane L: rows 4g..4g+3 of column 4L + m. */
    for (int m = 0; m < 4; m++) {
        const __m512 lo01 = _mm512_shuffle_f32x4(u[m], u[4 + m], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 lo23 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], _MM_SHUFFLE(1, 0, 1, 0));
        const __m512 hi01 = _mm512_shuffle_f32x4(u[m], u[4 + m], _MM_SHUFFLE(3, 2, 3, 2));
        const __m512 hi23 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], _MM_SHUFFLE(3, 2, 3, 2));
        _mm512_storeu_ps(dst + (0 + m) * ldd, _mm512_shuffle_f32x4(lo01, lo23, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_ps(dst + (4 + m) * ldd, _mm512_shuffle_f32x4(lo01, lo23, _MM_SHUFFLE(3, 1, 3, 1)));
        _mm512_storeu_ps(dst + (8 + m) * ldd, _mm512_shuffle_f32x4(hi01, hi23, _MM_SHUFFLE(2, 0, 2, 0)));
        _mm512_storeu_ps(dst + (12 + m) * ldd, _mm512_shuffle_f32x4(hi01, hi23, _MM_SHUFFLE(3, 1, 3, 1)));
    }
}
#include "linear_tmpl.h"

static const attn_linear_kernels kernels = {
    .name = "avx512",
    .gemm = avx512_lin_gemm,
    .vexp = avx512_lin_vexp,
    .row_update = avx512_lin_row_update,
    .axpy = avx512_lin_axpy,
    .mul_exp = avx512_lin_mul_exp,
    .vmul = avx512_lin_vmul,
    .scal = avx512_lin_scal,
    .max_floor = avx512_lin_max_floor,
    .transpose = avx512_lin_transpose,
    .stream_rows = avx512_lin_stream_rows,
};

const attn_linear_kernels *attn_linear_kernels_avx512(void) { return &kernels; }
