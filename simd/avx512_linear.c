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
#define LNV 3   /* 8 x 3 tiles, 24 accumulators: fewer loads per multiply-add than
                 * 8 x 2; one tile over 1024 steps in cache, 74% -> 79% of the FMA roof */
#define LNAME(x) avx512_lin_##x
#define LTRANSPOSE_VL 1   /* transpose_vl from transpose_avx512.h */
#define LSTREAM(p, x) _mm512_stream_ps((p), (x))
#define LFENCE() _mm_sfence()

#include "transpose_avx512.h"
#include "linear_tmpl.h"

static const attn_linear_kernels kernels = {
    .name = "avx512",
    .gemm = avx512_lin_gemm,
    .chunk_products = avx512_lin_chunk_products,
    .vexp = avx512_lin_vexp,
    .row_update = avx512_lin_row_update,
    .axpy = avx512_lin_axpy,
    .mul_exp = avx512_lin_mul_exp,
    .vmul = avx512_lin_vmul,
    .scal = avx512_lin_scal,
    .max_floor = avx512_lin_max_floor,
    .gate_load = avx512_lin_gate_load,
    .gate_scan = avx512_lin_gate_scan,
    .gate_scan_t = avx512_lin_gate_scan_t,
    .transpose = avx512_lin_transpose,
    .stream_rows = avx512_lin_stream_rows,
};

const attn_linear_kernels *attn_linear_kernels_avx512(void) { return &kernels; }
