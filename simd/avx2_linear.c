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
#define LTRANSPOSE_VL 1   /* transpose_vl from transpose_avx2.h */
#define LSTREAM(p, x) _mm256_stream_ps((p), (x))
#define LFENCE() _mm_sfence()

#include "transpose_avx2.h"
#include "linear_tmpl.h"

static const attn_linear_kernels kernels = {
    .name = "avx2",
    .gemm = avx2_lin_gemm,
    .chunk_products = avx2_lin_chunk_products,
    .vexp = avx2_lin_vexp,
    .row_update = avx2_lin_row_update,
    .axpy = avx2_lin_axpy,
    .mul_exp = avx2_lin_mul_exp,
    .vmul = avx2_lin_vmul,
    .scal = avx2_lin_scal,
    .max_floor = avx2_lin_max_floor,
    .gate_load = avx2_lin_gate_load,
    .gate_scan = avx2_lin_gate_scan,
    .gate_scan_t = avx2_lin_gate_scan_t,
    .transpose = avx2_lin_transpose,
    .stream_rows = avx2_lin_stream_rows,
};

const attn_linear_kernels *attn_linear_kernels_avx2(void) { return &kernels; }
