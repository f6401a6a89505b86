/* AArch64 NEON linear-attention micro-kernels (simd/linear_tmpl.h). */
#include <arm_neon.h>
#include "exp_neon.h"

#define LV 4
#define LVEC float32x4_t
#define LLOAD(p) vld1q_f32(p)
#define LSTORE(p, x) vst1q_f32((p), (x))
#define LSET1(a) vdupq_n_f32(a)
#define LZERO() vdupq_n_f32(0.0f)
#define LFMA(a, b, c) vfmaq_f32((c), (a), (b))
#define LADD(a, b) vaddq_f32((a), (b))
#define LSUB(a, b) vsubq_f32((a), (b))
#define LMUL(a, b) vmulq_f32((a), (b))
#define LMAXF(lo, x) vmaxq_f32((lo), (x))       /* NaN if either is NaN */
#define LEXP(x) attn_exp_neon(x)
#define LMR 8
#define LNAME(x) neon_lin_##x
#define LTRANSPOSE_VL 1   /* transpose_vl from transpose_neon.h */

#include "transpose_neon.h"
#include "linear_tmpl.h"

static const attn_linear_kernels kernels = {
    .name = "neon",
    .gemm = neon_lin_gemm,
    .chunk_products = neon_lin_chunk_products,
    .vexp = neon_lin_vexp,
    .row_update = neon_lin_row_update,
    .axpy = neon_lin_axpy,
    .mul_exp = neon_lin_mul_exp,
    .vmul = neon_lin_vmul,
    .scal = neon_lin_scal,
    .max_floor = neon_lin_max_floor,
    .gate_load = neon_lin_gate_load,
    .gate_scan = neon_lin_gate_scan,
    .gate_scan_t = neon_lin_gate_scan_t,
    .transpose = neon_lin_transpose,
    .stream_rows = neon_lin_stream_rows,
};

const attn_linear_kernels *attn_linear_kernels_neon(void) { return &kernels; }
