#version 450
/* bench/vk-roof: the parts of the FlashAttention loop of
 * vulkan/sdpa_coopmat2.comp (workgroup-scope matrices of
 * VK_NV_cooperative_matrix2, f16 x f16 + f32) taken one at a time, with
 * its shapes: WG invocations, BQ query rows, BK keys per tile, head dim D.
 * Workgroup w takes head w % HEADS of K and V, stored as [S, HEADS, D]
 * rows (libattn's layout; V after K in the same buffer), and NTILES tiles.
 * MODE:
 *   0  S += Q K^T, K^T loaded once          (the matrix units)
 *   1  S += Q K^T, K^T loaded every tile    (+ its tensor loads)
 *   2  S = Q K^T; P = f16(S); O += P V, K and V loaded every tile
 *   3  the whole step: 2 with the online softmax (row reductions)
 *   4  as 3, the next tile's K and V loaded before this tile's products
 * KLOAD: K^T through a transposing tensor view (0) or coopMatLoad of K
 * column-major (1). KV_LAYOUT: K and V as [S, HEADS, D] rows, V after K
 * (0, libattn's); each head's rows contiguous, [HEADS, S, D], V after K
 * (1); the same with V read from K's rows (2: half the bytes). Built twice: as is, tensor layouts with undefined
 * clamping; with -DCLAMP, with constant clamping (what libattn needs for a
 * sequence's last tile). */
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const int WG = 256;
layout(constant_id = 1) const int BQ = 128;
layout(constant_id = 2) const int BK = 64;
layout(constant_id = 3) const int D = 128;
layout(constant_id = 4) const int MODE = 0;
layout(constant_id = 5) const int KLOAD = 0;
layout(constant_id = 6) const int KV_LAYOUT = 0;

#ifdef CLAMP
#define LAYOUT tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV>
#define MK_LAYOUT createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV)
#else
#define LAYOUT tensorLayoutNV<2>
#define MK_LAYOUT createTensorLayoutNV(2)
#endif

layout(std430, binding = 0) readonly buffer Qb { float16_t h[]; } Q;   /* [64][BQ][D] */
layout(std430, binding = 1) readonly buffer Kb { float16_t h[]; } KV;  /* K, then V */
layout(std430, binding = 2) buffer Ob { float f[]; } O;
layout(push_constant) uniform PC { int ntiles; int nk; int heads; float scale; } pc;

#define ACC(r, c) coopmat<float, gl_ScopeWorkgroup, r, c, gl_MatrixUseAccumulator>
#define MAT_A(r, c) coopmat<float16_t, gl_ScopeWorkgroup, r, c, gl_MatrixUseA>
#define MAT_B(r, c) coopmat<float16_t, gl_ScopeWorkgroup, r, c, gl_MatrixUseB>

float red_max(const in float a, const in float b) { return max(a, b); }
float red_add(const in float a, const in float b) { return a + b; }
float elem_max(const in uint r, const in uint c, const in float x, const in float y)
{
    return max(x, y);
}
float elem_exp(const in uint r, const in uint c, const in float x, const in float m)
{
    return exp(x - m);
}

void main()
{
    const uint wg = gl_WorkGroupID.x, head = wg % uint(pc.heads);
    const uint rs = KV_LAYOUT == 0 ? uint(pc.heads * D) : uint(D);   /* row stride */
    const uint kbase = KV_LAYOUT == 0 ? head * uint(D) : head * uint(pc.nk * D);
    const uint vbase = KV_LAYOUT == 2 ? kbase : kbase + uint(pc.heads * pc.nk * D);

    tensorLayoutNV<2> tq = createTensorLayoutNV(2);
    tq = setTensorLayoutDimensionNV(tq, BQ, D);
    MAT_A(BQ, D) qa;
    coopMatLoadTensorNV(qa, Q.h, (wg % 64u) * uint(BQ * D), sliceTensorLayoutNV(tq, 0, BQ, 0, D));
    LAYOUT tk = MK_LAYOUT;
    tk = setTensorLayoutDimensionNV(tk, pc.nk, D);
    tk = setTensorLayoutStrideNV(tk, rs, 1);
    tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);

    MAT_B(D, BK) kt;
    MAT_B(BK, D) vb;
    if (KLOAD == 0)
        coopMatLoadTensorNV(kt, KV.h, kbase, sliceTensorLayoutNV(tk, 0, BK, 0, D), transposed);
    else
        coopMatLoad(kt, KV.h, kbase, rs, gl_CooperativeMatrixLayoutColumnMajor);
    coopMatLoadTensorNV(vb, KV.h, vbase, sliceTensorLayoutNV(tk, 0, BK, 0, D));
    ACC(BQ, BK) s = ACC(BQ, BK)(0.0);
    ACC(BQ, D) o = ACC(BQ, D)(0.0);
    ACC(BQ, 16) mrow = ACC(BQ, 16)(-1e30), lrow = ACC(BQ, 16)(0.0);

    /* Written out in full for each mode: on an NVIDIA H200 (driver 580) the
     * same step through a helper function with inout matrices, or with
     * the modes' loads under shared branches, ran 4-5x slower. */
    if (MODE == 4) {
        MAT_B(D, BK) ktn;
        MAT_B(BK, D) vbn;
        for (int it = 0; it < pc.ntiles; it++) {
            const int jn = ((it + 1) * BK) % pc.nk;
            coopMatLoadTensorNV(ktn, KV.h, kbase, sliceTensorLayoutNV(tk, jn, BK, 0, D),
                                transposed);
            coopMatLoadTensorNV(vbn, KV.h, vbase, sliceTensorLayoutNV(tk, jn, BK, 0, D));
            s = ACC(BQ, BK)(0.0);
            s = coopMatMulAdd(qa, kt, s);
            s = s * pc.scale;
            ACC(BQ, 16) tmax, mn, alpha, rsum;
            coopMatReduceNV(tmax, s, gl_CooperativeMatrixReduceRowNV, red_max);
            coopMatPerElementNV(mn, tmax, elem_max, mrow);
            coopMatPerElementNV(alpha, mrow, elem_exp, mn);
            mrow = mn;
            ACC(BQ, BK) mwide;
            coopMatReduceNV(mwide, mn, gl_CooperativeMatrixReduceRowNV, red_max);
            coopMatPerElementNV(s, s, elem_exp, mwide);
            lrow = lrow * alpha;
            ACC(BQ, D) alpha_o;
            coopMatReduceNV(alpha_o, alpha, gl_CooperativeMatrixReduceRowNV, red_max);
            o = o * alpha_o;
            coopMatReduceNV(rsum, s, gl_CooperativeMatrixReduceRowNV, red_add);
            lrow = lrow + rsum;
            const MAT_A(BQ, BK) pa = MAT_A(BQ, BK)(s);
            o = coopMatMulAdd(pa, vb, o);
            kt = ktn;
            vb = vbn;
        }
    } else
    for (int it = 0; it < pc.ntiles; it++) {
        const int j0 = (it * BK) % pc.nk;
        if (MODE >= 1 && KLOAD == 0)
            coopMatLoadTensorNV(kt, KV.h, kbase, sliceTensorLayoutNV(tk, j0, BK, 0, D), transposed);
        else if (MODE >= 1)
            coopMatLoad(kt, KV.h, kbase + uint(j0) * rs, rs, gl_CooperativeMatrixLayoutColumnMajor);
        if (MODE <= 1) {
            s = coopMatMulAdd(qa, kt, s);
        } else {
            s = ACC(BQ, BK)(0.0);
            s = coopMatMulAdd(qa, kt, s);
            if (MODE == 3) {
                s = s * pc.scale;
                ACC(BQ, 16) tmax, mn, alpha, rsum;
                coopMatReduceNV(tmax, s, gl_CooperativeMatrixReduceRowNV, red_max);
                coopMatPerElementNV(mn, tmax, elem_max, mrow);
                coopMatPerElementNV(alpha, mrow, elem_exp, mn);
                mrow = mn;
                ACC(BQ, BK) mwide;
                coopMatReduceNV(mwide, mn, gl_CooperativeMatrixReduceRowNV, red_max);
                coopMatPerElementNV(s, s, elem_exp, mwide);
                lrow = lrow * alpha;
                ACC(BQ, D) alpha_o;
                coopMatReduceNV(alpha_o, alpha, gl_CooperativeMatrixReduceRowNV, red_max);
                o = o * alpha_o;
                coopMatReduceNV(rsum, s, gl_CooperativeMatrixReduceRowNV, red_add);
                lrow = lrow + rsum;
            }
            const MAT_A(BQ, BK) pa = MAT_A(BQ, BK)(s);
            coopMatLoadTensorNV(vb, KV.h, vbase, sliceTensorLayoutNV(tk, j0, BK, 0, D));
            o = coopMatMulAdd(pa, vb, o);
        }
    }

    /* the results, so that nothing above is dead */
    tensorLayoutNV<2> to = createTensorLayoutNV(2);
    if (MODE <= 1) {
        to = setTensorLayoutDimensionNV(to, BQ, BK);
        coopMatStoreTensorNV(s, O.f, wg * uint(BQ * BK), sliceTensorLayoutNV(to, 0, BQ, 0, BK));
    } else {
        if (MODE >= 3) {
            ACC(BQ, D) lw;
            coopMatReduceNV(lw, lrow, gl_CooperativeMatrixReduceRowNV, red_max);
            o = o * lw;
        }
        to = setTensorLayoutDimensionNV(to, BQ, D);
        coopMatStoreTensorNV(o, O.f, wg * uint(BQ * D), sliceTensorLayoutNV(to, 0, BQ, 0, D));
    }
}
