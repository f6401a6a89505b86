#version 450
/* attn_sdpa with cooperative matrices (VK_KHR_cooperative_matrix, 16x16x16
 * f16 x f16 + f32 at subgroup scope): f16 q, k, v; f32 accumulation.
 *
 * A workgroup owns BQ = 16*NW query rows of one head of one sequence (kept
 * in shared memory as f16 for the whole run) and streams the keys in tiles
 * of BK. Per tile:
 *   S = Q K^T    each subgroup takes 16-row blocks: cooperative MulAdds over
 *                the head dim into f32 S in shared memory;
 *   S -> P       TPR = WG/BQ invocations per row apply the score transform
 *                (sdpa_common.glsl), the online softmax (or sigmoid) and
 *                rescale the row of O; P as f16 to shared memory, while the
 *                V tile replaces the K tile;
 *   O += P V     cooperative MulAdds with O (f32, shared memory) as the
 *                accumulator: the per-row rescale of O is done by scalar code,
 *                as a cooperative matrix has no row index.
 * Built only with a compiler that knows GL_KHR_cooperative_matrix; built
 * everywhere with ATTN_COOPMAT_EMULATE=1, where the two products are plain
 * loops, so that the rest of the shader is tested on any device with
 * shaderFloat16 (ATTN_VULKAN_COOPMAT=emulate). */
#extension GL_GOOGLE_include_directive : require
#if !ATTN_COOPMAT_EMULATE
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#endif
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const int WG = 64;       /* invocations, a multiple of BQ */
layout(constant_id = 1) const int NW = 2;        /* 16-row blocks per workgroup */
layout(constant_id = 2) const int BK = 32;       /* keys per tile, a multiple of 16 */
layout(constant_id = 3) const int D = 128;       /* multiples of 16 */
layout(constant_id = 4) const int DV = 128;
layout(constant_id = 5) const int KVN = 4096;    /* BK * max(D, DV) */

const int BQ = 16 * NW;
const int NT = WG;
const int TPR = WG / BQ;                         /* invocations per row */
const int IN_DT = 1;                             /* f16 */

#include "common.glsl"
#include "sdpa_common.glsl"

#define MAT_A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MAT_B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define MAT_C coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>

shared float16_t Qs[BQ * D];     /* [BQ][D] */
shared float16_t KV[KVN];        /* K tile [BK][D], then V tile [BK][DV] */
shared float Ss[BQ * BK];        /* [BQ][BK] scores */
shared float16_t Ps[BQ * BK];    /* [BQ][BK] probabilities */
shared float Os[BQ * DV];        /* [BQ][DV] unnormalised output */
shared float red[BQ * TPR];      /* per-row partial max / sum */

void main()
{
    const int lid = int(gl_LocalInvocationID.x);
    const int r = lid % BQ, part = lid / BQ;     /* scalar phases: row r, columns part + TPR*n */
    const int qb = int(gl_NumWorkGroups.x) - 1 - int(gl_WorkGroupID.x);  /* heavy blocks first */
    Block k;
    block_init(k, qb, int(gl_WorkGroupID.y), int(gl_WorkGroupID.z));
    const int qs1 = P.w[P_Q + 2], qs3 = P.w[P_Q + 4], ks1 = P.w[P_K + 2], ks3 = P.w[P_K + 4];
    const int vs1 = P.w[P_V + 2], vs3 = P.w[P_V + 4];

    for (int t = lid; t < BQ * D; t += NT) {
        const int i = t / D, c = t % D;
        Qs[t] = float16_t(i < k.nq ? load_q(k.qrow + i * qs1 + c * qs3) : 0.0);
    }
    for (int t = lid; t < BQ * DV; t += NT)
        Os[t] = 0.0;
    /* Each of a row's TPR invocations tracks the row max (all the same)
     * and its own partial sum. */
    float m_row = sink_logit(k);
    float l_part = ((k.flags & F_SINKS) != 0 && part == 0) ? 1.0 : 0.0;

    /* The visible tiles (block_init): a group-uniform trip count, no break,
     * continue or jump of the counter around the barriers. */
    for (int it = 0; it < k.ntiles; it++) {
        const int j0 = tile_start(k, it), j1 = min(j0 + BK, k.skb);
        const bool full = tile_full(k, j0, j1);
        const int bmode = tile_bmode(k, j0, j1, lid);
        /* a tile the block mask hides: skipped by the whole workgroup */
        if (bmode != 0) {
            const int kt = k.krow + j0 * ks1, vt = k.vrow + j0 * vs1;

            barrier();                                /* last tile's P V is done with KV and Os */
            for (int t = lid; t < BK * D; t += NT) {
                const int j = t / D, c = t % D;
                KV[t] = float16_t(j0 + j < j1 ? load_k(kt + j * ks1 + c * ks3) : 0.0);
            }
            barrier();
#if ATTN_COOPMAT_EMULATE
            for (int t = lid; t < BQ * BK; t += NT) {
                const int i = t / BK, j = t % BK;
                float acc = 0.0;
                for (int c = 0; c < D; c++)
                    acc += float(Qs[i * D + c]) * float(KV[j * D + c]);
                Ss[t] = acc;
            }
#else
            for (int rb = int(gl_SubgroupID); rb < NW; rb += int(gl_NumSubgroups))
                for (int n = 0; n < BK / 16; n++) {
                    MAT_C acc = MAT_C(0.0);
                    for (int c = 0; c < D / 16; c++) {
                        MAT_A a;
                        MAT_B kb;
                        coopMatLoad(a, Qs, rb * 16 * D + c * 16, D,
                                    gl_CooperativeMatrixLayoutRowMajor);
                        coopMatLoad(kb, KV, n * 16 * D + c * 16, D,
                                    gl_CooperativeMatrixLayoutColumnMajor);
                        acc = coopMatMulAdd(a, kb, acc);
                    }
                    coopMatStore(acc, Ss, rb * 16 * BK + n * 16, BK,
                                 gl_CooperativeMatrixLayoutRowMajor);
                }
#endif
            barrier();

            /* Scores and the row's partial max; the V tile replaces the K tile. */
            const int ii = k.i0 + r;
            float pm = NEG_INF;
            for (int j = part; j < BK; j += TPR) {
                const float x = score(k, Ss[r * BK + j], ii, j0 + j, j1, full, bmode);
                Ss[r * BK + j] = x;
                pm = max(pm, x);
            }
            red[r * TPR + part] = pm;
            for (int t = lid; t < BK * DV; t += NT) {
                const int j = t / DV, c = t % DV;
                KV[t] = float16_t(j0 + j < j1 ? load_v(vt + j * vs1 + c * vs3) : 0.0);
            }
            barrier();

            /* Online softmax (or sigmoid): P, and O's row rescaled. */
            float alpha = 1.0;
            if (!k.sigmoid) {
                float mt = red[r * TPR];
                for (int t = 1; t < TPR; t++)
                    mt = max(mt, red[r * TPR + t]);
                const float mn = max(m_row, mt);
                if (mn != NEG_INF) {
                    alpha = exp(m_row - mn);
                    m_row = mn;
                }
            }
            float sum = 0.0;
            for (int j = part; j < BK; j += TPR) {
                const float x = Ss[r * BK + j];
                const float p = k.sigmoid ? sigmoid_p(x) :
                    (m_row == NEG_INF ? 0.0 : exp(x - m_row));
                Ps[r * BK + j] = float16_t(p);
                sum += p;
            }
            l_part = l_part * alpha + sum;
            if (alpha != 1.0)
                for (int c = part; c < DV; c += TPR)
                    Os[r * DV + c] *= alpha;
            barrier();

#if ATTN_COOPMAT_EMULATE
            for (int t = lid; t < BQ * DV; t += NT) {
                const int i = t / DV, c = t % DV;
                float acc = Os[t];
                for (int kk = 0; kk < BK; kk++)
                    acc += float(Ps[i * BK + kk]) * float(KV[kk * DV + c]);
                Os[t] = acc;
            }
#else
            for (int rb = int(gl_SubgroupID); rb < NW; rb += int(gl_NumSubgroups))
                for (int c = 0; c < DV / 16; c++) {
                    MAT_C acc;
                    coopMatLoad(acc, Os, rb * 16 * DV + c * 16, DV,
                                gl_CooperativeMatrixLayoutRowMajor);
                    for (int kk = 0; kk < BK / 16; kk++) {
                        MAT_A a;
                        MAT_B vb;
                        coopMatLoad(a, Ps, rb * 16 * BK + kk * 16, BK,
                                    gl_CooperativeMatrixLayoutRowMajor);
                        coopMatLoad(vb, KV, kk * 16 * DV + c * 16, DV,
                                    gl_CooperativeMatrixLayoutRowMajor);
                        acc = coopMatMulAdd(a, vb, acc);
                    }
                    coopMatStore(acc, Os, rb * 16 * DV + c * 16, DV,
                                 gl_CooperativeMatrixLayoutRowMajor);
                }
#endif
        }
    }

    /* Full row sums, normalise, gate, store. */
    barrier();
    red[r * TPR + part] = l_part;
    barrier();
    const int ii = k.i0 + r;
    if (ii > k.ilast)
        return;
    float lsum = 0.0;
    for (int t = 0; t < TPR; t++)
        lsum += red[r * TPR + t];
    const float inv = k.sigmoid ? 1.0 : (lsum > 0.0 ? 1.0 / lsum : 0.0);
    for (int c = part; c < DV; c += TPR)
        store_o(k, ii, c, Os[r * DV + c] * inv);
    if (part == 0)
        store_lse(k, ii, m_row, lsum);
}
