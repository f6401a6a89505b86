#version 450
/* attn_sdpa with workgroup-scope cooperative matrices (VK_NV_cooperative_matrix2):
 * f16 q, k, v; f32 scores, softmax and accumulation.
 *
 * The whole FlashAttention step stays in matrices, with no shared-memory
 * round trip of the scores (what limits vulkan/sdpa_coopmat.comp, whose
 * KHR matrices have an opaque element layout, so that its softmax must go
 * through shared memory):
 *   S  = Q K^T                     Q (BQ x D) loaded once; K^T a tensor load
 *                                  with a transposing view, rows past the
 *                                  sequence read as 0 (clamped layout)
 *   S  = score(S)                  per element (sdpa_common.glsl's transform:
 *                                  scale, soft-cap, ALiBi, masks), or one
 *                                  scalar product where the tile needs none
 *   m' = max(m, rowmax(S))         row statistics as BQ x SW matrices whose
 *   a  = exp(m - m')               every column holds the row's value
 *   P  = exp(S - m')               m' spread back to BQ x BK by a row reduction
 *   l  = a l + rowsum(P)
 *   O  = a O + P V                 O in blocks of BQ x OC (OC = DV, or 16 where
 *                                  the output goes through shared memory); a
 *                                  and 1/l spread to that shape by reductions
 * The compiler stages workgroup-scope matrices through shared memory as it
 * sees fit (the device reserves cooperativeMatrixWorkgroupScopeReservedSharedMemory).
 *
 * Output: f16/f32 rows with unit column stride, no gate, 16-byte aligned
 * bases go out by tensor stores (rows past the block are dropped by the
 * clamped layout); anything else (bf16, gate, odd strides) through shared
 * memory, one 16-column block at a time, by sdpa_common.glsl's store_o. LSE
 * likewise through shared memory. The host (src/vulkan/sdpa.c) checks that
 * q, k and v rows start on 16-byte boundaries, as tensor loads require. */
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_NV_cooperative_matrix2 : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
#extension GL_EXT_control_flow_attributes : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const int WG = 128;      /* invocations, at most the device's
                                                    cooperativeMatrixWorkgroupScopeMaxWorkgroupSize */
layout(constant_id = 1) const int BQ = 64;       /* query rows per workgroup */
layout(constant_id = 2) const int BK = 64;       /* keys per tile */
layout(constant_id = 3) const int D = 128;       /* multiples of 16 */
layout(constant_id = 4) const int DV = 128;
layout(constant_id = 5) const int OC = 128;      /* columns per O block: DV, or 16
                                                    for the output through St */
layout(constant_id = 6) const int SW = 16;       /* columns of the row statistics:
                                                    the device's N granularity */
layout(constant_id = 7) const int FEATS = -1;    /* the call's flags (F_*): the
                                                    loop keeps only their code */
#define FEATS_MASK FEATS

const int NT = WG;
const int IN_DT = 1;                             /* f16 */
const int NOC = DV / OC;

#include "common.glsl"
#include "sdpa_common.glsl"

/* The q, k, v and output bindings again as f16 / f32 arrays for tensor
 * loads and stores. */
layout(std430, binding = 0) readonly buffer Qhb { float16_t h[]; } Qh;
layout(std430, binding = 1) readonly buffer Khb { float16_t h[]; } Kh;
layout(std430, binding = 2) readonly buffer Vhb { float16_t h[]; } Vh;
layout(std430, binding = 3) buffer Ohb { float16_t h[]; } Oh;
layout(std430, binding = 3) buffer Ofb { float f[]; } Of;

/* One 16-column block of O or the row statistics, for the generic output
 * and the LSE; the row maxima for the LSE. */
shared float St[BQ * SW];
shared float Sm[BQ];

#define ACC(r, c) coopmat<float, gl_ScopeWorkgroup, r, c, gl_MatrixUseAccumulator>
#define MAT_A(r, c) coopmat<float16_t, gl_ScopeWorkgroup, r, c, gl_MatrixUseA>
#define MAT_B(r, c) coopmat<float16_t, gl_ScopeWorkgroup, r, c, gl_MatrixUseB>

/* The workgroup's block, for the per-element score (a private global: the
 * element functions take only scalars and matrices). */
Block gk;

float elem_score(const in uint r, const in uint c, const in float x, const in int j0,
                 const in int j1, const in int full, const in int bmode)
{
    return score(gk, x, gk.i0 + int(r), j0 + int(c), j1, full != 0, bmode);
}

float elem_sigmoid(const in uint r, const in uint c, const in float x)
{
    return x == NEG_INF ? 0.0 : sigmoid_p(x);
}

float elem_exp(const in uint r, const in uint c, const in float x, const in float m)
{
    return m == NEG_INF ? 0.0 : exp(x - m);
}

float elem_max(const in uint r, const in uint c, const in float x, const in float y)
{
    return max(x, y);
}

/* exp(m - m') with m' = -inf (nothing seen yet) giving 1 */
float elem_alpha(const in uint r, const in uint c, const in float m, const in float mn)
{
    return mn == NEG_INF ? 1.0 : exp(m - mn);
}

/* 1 / l, 0 for an empty row; 1 for the sigmoid score (no normalisation) */
float elem_inv(const in uint r, const in uint c, const in float l)
{
    return gk.sigmoid ? 1.0 : (l > 0.0 ? 1.0 / l : 0.0);
}

float red_max(const in float a, const in float b) { return max(a, b); }
float red_add(const in float a, const in float b) { return a + b; }

/* Whether rows of a binding can be tensor-loaded from element base with
 * row stride rs (16-byte aligned base, unit column stride). */
bool aligned16(int base, int cs, int esize) { return cs == 1 && (base * esize) % 16 == 0; }

void main()
{
    const int lid = int(gl_LocalInvocationID.x);
    const int qb = int(gl_NumWorkGroups.y) - 1 - int(gl_WorkGroupID.y);
    block_init(gk, qb, int(gl_WorkGroupID.x), int(gl_WorkGroupID.z));
    const Block k = gk;
    const int qs1 = P.w[P_Q + 2], ks1 = P.w[P_K + 2], vs1 = P.w[P_V + 2];

    /* Q rows past the block read as 0 (their scores are finite and their
     * output is never stored). */
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tq =
        createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    tq = setTensorLayoutDimensionNV(tq, k.nq, D);
    tq = setTensorLayoutStrideNV(tq, qs1, 1);
    MAT_A(BQ, D) qa = MAT_A(BQ, D)(0.0);
    if (k.nq > 0)                                 /* else a varlen padding block */
        coopMatLoadTensorNV(qa, Qh.h, k.qrow, sliceTensorLayoutNV(tq, 0, BQ, 0, D));

    /* K and V of the sequence: keys past its end read as 0 and are then
     * hidden by the score (j >= j1). K^T through a transposing view. */
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tk =
        createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    tk = setTensorLayoutDimensionNV(tk, max(k.skb, 1), D);
    tk = setTensorLayoutStrideNV(tk, ks1, 1);
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> tv =
        createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    tv = setTensorLayoutDimensionNV(tv, max(k.skb, 1), DV);
    tv = setTensorLayoutStrideNV(tv, vs1, 1);
    tensorViewNV<2, false, 1, 0> transposed = createTensorViewNV(2, false, 1, 0);

    ACC(BQ, OC) o[NOC];
    [[unroll]] for (int c = 0; c < NOC; c++)
        o[c] = ACC(BQ, OC)(0.0);
    ACC(BQ, SW) mrow = ACC(BQ, SW)(sink_logit(k));
    ACC(BQ, SW) lrow = ACC(BQ, SW)((k.flags & F_SINKS) != 0 ? 1.0 : 0.0);
    /* tiles needing no per-element transform: one scalar product */
    const bool plain = (k.flags & (F_SOFTCAP | F_ALIBI | F_MASK)) == 0;

    for (int it = 0; it < k.ntiles; it++) {
        const int j0 = tile_start(k, it), j1 = min(j0 + BK, k.skb);
        const bool full = tile_full(k, j0, j1);
        const int bmode = tile_bmode(k, j0, j1, lid);
        if (bmode == 0)
            continue;                             /* the block mask hides the tile */

        MAT_B(D, BK) kt;
        coopMatLoadTensorNV(kt, Kh.h, k.krow, sliceTensorLayoutNV(tk, j0, BK, 0, D), transposed);
        ACC(BQ, BK) s = ACC(BQ, BK)(0.0);
        s = coopMatMulAdd(qa, kt, s);
        if (plain && full && bmode == 1 && j1 - j0 == BK)
            s = s * k.scale;
        else
            coopMatPerElementNV(s, s, elem_score, j0, j1, full ? 1 : 0, bmode);

        ACC(BQ, SW) rs;
        if (k.sigmoid) {
            coopMatPerElementNV(s, s, elem_sigmoid);
        } else {
            ACC(BQ, SW) tmax, mn, alpha;
            coopMatReduceNV(tmax, s, gl_CooperativeMatrixReduceRowNV, red_max);
            coopMatPerElementNV(mn, tmax, elem_max, mrow);
            coopMatPerElementNV(alpha, mrow, elem_alpha, mn);
            mrow = mn;
            ACC(BQ, BK) mwide;
            coopMatReduceNV(mwide, mn, gl_CooperativeMatrixReduceRowNV, red_max);
            coopMatPerElementNV(s, s, elem_exp, mwide);
            lrow = lrow * alpha;
            ACC(BQ, OC) alpha_o;
            coopMatReduceNV(alpha_o, alpha, gl_CooperativeMatrixReduceRowNV, red_max);
            [[unroll]] for (int c = 0; c < NOC; c++)
                o[c] = o[c] * alpha_o;
        }
        coopMatReduceNV(rs, s, gl_CooperativeMatrixReduceRowNV, red_add);
        lrow = lrow + rs;

        const MAT_A(BQ, BK) pa = MAT_A(BQ, BK)(s);
        [[unroll]] for (int c = 0; c < NOC; c++) {
            MAT_B(BK, OC) vb;
            coopMatLoadTensorNV(vb, Vh.h, k.vrow, sliceTensorLayoutNV(tv, j0, BK, c * OC, OC));
            o[c] = coopMatMulAdd(pa, vb, o[c]);
        }
    }

    if (k.nq == 0)
        return;                                   /* uniform: a varlen padding block */
    /* LSE from the row statistics, through shared memory */
    if ((k.flags & F_LSE) != 0) {
        coopMatStore(mrow, St, 0, SW, gl_CooperativeMatrixLayoutRowMajor);
        barrier();
        for (int r = lid; r < BQ; r += NT)
            Sm[r] = St[r * SW];
        barrier();
        coopMatStore(lrow, St, 0, SW, gl_CooperativeMatrixLayoutRowMajor);
        barrier();
        for (int r = lid; r < k.nq; r += NT)
            store_lse(k, k.i0 + r, Sm[r], St[r * SW]);
        barrier();
    }

    ACC(BQ, SW) inv_row;
    coopMatPerElementNV(inv_row, lrow, elem_inv);
    ACC(BQ, OC) inv;
    coopMatReduceNV(inv, inv_row, gl_CooperativeMatrixReduceRowNV, red_max);
    const int odt = P.w[P_OUT_DT], os1 = P.w[P_O + 2], os4 = P.w[P_O + 4];
    const int orow = P.w[P_O] + k.bt * P.w[P_O + 1] + (k.q0 + k.i0) * os1 + k.h * P.w[P_O + 3];
    /* the host keeps O in one block (OC != 16) only where this holds */
    const bool direct = OC != 16 || (k.flags & F_GATE) == 0 &&
                        ((odt == DT_F16 && aligned16(orow, os4, 2)) ||
                         (odt == DT_F32 && aligned16(orow, os4, 4)));
    tensorLayoutNV<2, gl_CooperativeMatrixClampModeConstantNV> to =
        createTensorLayoutNV(2, gl_CooperativeMatrixClampModeConstantNV);
    to = setTensorLayoutDimensionNV(to, k.nq, DV);
    to = setTensorLayoutStrideNV(to, os1, 1);
    [[unroll]] for (int c = 0; c < NOC; c++) {
        const ACC(BQ, OC) oc = o[c] * inv;
        if (direct && odt == DT_F16) {
            const coopmat<float16_t, gl_ScopeWorkgroup, BQ, OC, gl_MatrixUseAccumulator> oh =
                coopmat<float16_t, gl_ScopeWorkgroup, BQ, OC, gl_MatrixUseAccumulator>(oc);
            coopMatStoreTensorNV(oh, Oh.h, orow, sliceTensorLayoutNV(to, 0, BQ, c * OC, OC));
        } else if (direct) {
            coopMatStoreTensorNV(oc, Of.f, orow, sliceTensorLayoutNV(to, 0, BQ, c * OC, OC));
        } else if (OC == 16) {                    /* the host picks OC = 16 for this path */
            coopMatStore(oc, St, 0, 16, gl_CooperativeMatrixLayoutRowMajor);
            barrier();
            for (int e = lid; e < BQ * 16; e += NT)
                if (e / 16 < k.nq)
                    store_o(k, k.i0 + e / 16, c * OC + e % 16, St[e]);
            barrier();
        }
    }
}
