#version 450
/* attn_sdpa with cooperative matrices (VK_KHR_cooperative_matrix, 16x16x16
 * f16 x f16 + f32 at subgroup scope): f16 q, k, v; f32 accumulation. The
 * FlashAttention layout: the output stays in registers.
 *
 * A workgroup of NW subgroups owns BQ = NW * R query rows of one head of one
 * sequence; subgroup s owns rows [s*R, s*R + R), R = 16 * RB. Its Q rows are
 * loaded once as cooperative A matrices (RB x D/16 of them) and its output
 * O as RB x DV/16 f32 accumulators, both kept in registers for the whole
 * run. The keys are streamed in tiles of BK through shared memory:
 *   K tile      loaded once for all subgroups (16-byte loads where the
 *               layout allows), with PF from registers the words were
 *               fetched into while the tile before computed;
 *   S = Q K^T   per subgroup, each K fragment used for its RB row blocks,
 *               stored to the subgroup's own shared S region;
 *   V tile      with SPLIT loaded with the K tile into a second buffer;
 *               else into the buffer the K tile held once every subgroup
 *               is done with it (two more workgroup barriers), while
 *   S -> P      the subgroup's invocations (TPR per row, RPI rows each)
 *               apply the score transform (sdpa_common.glsl) and the online
 *               softmax (or sigmoid) to their rows: row max and sum with
 *               subgroup shuffles, P as f16 to shared, and the factor alpha
 *               by which the row's O must shrink into a 16x16 block whose
 *               row r holds alpha[r];
 *   O *= alpha  a component-wise product with that block loaded as an
 *               accumulator: both have the same type and use, so their
 *               (opaque) element-to-invocation mapping is the same;
 *   O += P V    cooperative MulAdds, P loaded back as A matrices.
 * The end divides by the row sums the same way and writes O out through a
 * 16x16 staging block per fragment.
 *
 * Built only with a compiler that knows GL_KHR_cooperative_matrix; built
 * everywhere with ATTN_COOPMAT_EMULATE=1, where plain loops stand in for
 * the matrix operations (coopmat_emulate.glsl), so that this structure is
 * tested on any device with shaderFloat16 (ATTN_VULKAN_COOPMAT=emulate). */
#extension GL_GOOGLE_include_directive : require
#if !ATTN_COOPMAT_EMULATE
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_control_flow_attributes : require
/* Loops over arrays of matrices (and the prefetch words) unrolled, so that
 * the arrays stay in registers. Not in the emulation, where lavapipe would
 * unroll its element loops too. */
#define UNROLL [[unroll]]
#else
#define UNROLL
#endif
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_vote : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const int WG = 128;      /* NW * SG invocations */
layout(constant_id = 1) const int NW = 4;        /* subgroups */
layout(constant_id = 2) const int RB = 1;        /* 16-row blocks per subgroup */
layout(constant_id = 3) const int BK = 64;       /* keys per tile, a multiple of R */
layout(constant_id = 4) const int D = 128;       /* multiples of 16 */
layout(constant_id = 5) const int DV = 128;
layout(constant_id = 6) const int SG = 32;       /* the device's (fixed) subgroup size */
layout(constant_id = 7) const int PF = 1;        /* 1: prefetch K/V tiles into registers */
layout(constant_id = 8) const int SPLIT = 0;     /* 1: K and V tiles in two buffers */
layout(constant_id = 9) const int FEATS = -1;  /* the call's flags (F_*): the
                                                   loop keeps only their code */
#define FEATS_MASK FEATS

const int R = 16 * RB;                           /* rows per subgroup */
const int BQ = NW * R;
const int NT = WG;
const int IN_DT = 1;                             /* f16 */
/* Row transform: TPR invocations per row where the subgroup has more
 * invocations than rows, else each invocation takes RPI rows. */
const int TPR = SG >= R ? SG / R : 1;
const int RPI = SG >= R ? 1 : R / SG;
const int ND = D / 16, NDV = DV / 16, NK = BK / 16;

/* Shared strides in f16vec4 / vec4 units. The rows are padded by 16 bytes
 * so that the rows of a 16x16 fragment fall in different banks. */
const int DMAX = D > DV ? D : DV;
const int KVS = (DMAX + 8) / 4;                  /* K or V tile row [BK][DMAX + 8] */
const int SS = (BK + 4) / 4;                     /* S row, f32 [R][BK + 4] */
const int PS = (BK + 8) / 4;                     /* P row, f16 [R][BK + 8] */
/* 16-byte words of one K or V tile per invocation, for the prefetch (a
 * second set for V with SPLIT). */
const int NPRE = PF != 0 ? (BK * (DMAX / 8) + NT - 1) / NT : 1;
const int NPREV = SPLIT != 0 ? NPRE : 1;
const int VOFF = SPLIT != 0 ? BK * KVS : 0;      /* the V tile in KV */

#include "common.glsl"
#include "sdpa_common.glsl"

/* The q, k, v bindings again as 16-byte words, for the vector loads. */
layout(std430, binding = 0) readonly buffer Q4b { uvec4 w[]; } Q4;
layout(std430, binding = 1) readonly buffer K4b { uvec4 w[]; } K4;
layout(std430, binding = 2) readonly buffer V4b { uvec4 w[]; } V4;

shared f16vec4 KV[(1 + SPLIT) * BK * KVS];       /* K tile, V tile after it or in its place */
shared vec4 Ss[NW * R * SS];                     /* per subgroup: scores, output staging */
shared f16vec4 Ps[NW * R * PS];                  /* per subgroup: probabilities */
shared vec4 Al[NW * R * 4];                      /* per subgroup: [R][16] row factors */

#if ATTN_COOPMAT_EMULATE
#include "coopmat_emulate.glsl"
#else
#define MAT_A coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseA>
#define MAT_B coopmat<float16_t, gl_ScopeSubgroup, 16, 16, gl_MatrixUseB>
#define MAT_C coopmat<float, gl_ScopeSubgroup, 16, 16, gl_MatrixUseAccumulator>
#define DECL_A(name, n) MAT_A name[n]
#define DECL_C(name, n, base) MAT_C name[n]
#define C_ZERO(m) m = MAT_C(0.0)
#define C_SCALE(m, f) m = m * f
#define LOAD_Q(m, off, slot) coopMatLoad(m, KV, off, KVS, gl_CooperativeMatrixLayoutRowMajor)
#define LOAD_P(m, off) coopMatLoad(m, Ps, off, PS, gl_CooperativeMatrixLayoutRowMajor)
#define LOAD_KT(m, off) coopMatLoad(m, KV, off, KVS, gl_CooperativeMatrixLayoutColumnMajor)
#define LOAD_V(m, off) coopMatLoad(m, KV, VOFF + (off), KVS, gl_CooperativeMatrixLayoutRowMajor)
#define LOAD_AL(m, off) coopMatLoad(m, Al, off, 4, gl_CooperativeMatrixLayoutRowMajor)
#define STORE_S(m, off) coopMatStore(m, Ss, off, SS, gl_CooperativeMatrixLayoutRowMajor)
#define MMA(c, a, b) c = coopMatMulAdd(a, b, c)
#endif

float s_get(int i) { return Ss[i >> 2][i & 3]; }
void s_set(int i, float x) { Ss[i >> 2][i & 3] = x; }

/* n rows of f16 elements from buffer B (row r at element base + r * rs,
 * column c at + c * cs) into KV from dst on, zero for rows >= valid:
 * 16-byte loads through B4 when each row starts on a 16-byte boundary and
 * is contiguous, else element by element. */
#define LOAD_ROWS(dst, B4, load1, base, rs, cs, n, valid, width) { \
    if (VEC_OK(base, rs, cs)) { \
        for (int t = lid; t < n * (width / 8); t += NT) { \
            const int j = t / (width / 8), c8 = t % (width / 8); \
            const uvec4 u = j < valid ? B4.w[((base + j * rs) >> 3) + c8] : uvec4(0u); \
            KV[dst + j * KVS + 2 * c8] = f16vec4(unpackFloat2x16(u.x), unpackFloat2x16(u.y)); \
            KV[dst + j * KVS + 2 * c8 + 1] = f16vec4(unpackFloat2x16(u.z), unpackFloat2x16(u.w)); \
        } \
    } else { \
        for (int t = lid; t < n * width; t += NT) { \
            const int j = t / width, c = t % width; \
            KV[dst + j * KVS + (c >> 2)][c & 3] = \
                float16_t(j < valid ? load1(base + j * rs + c * cs) : 0.0); \
        } \
    } \
}

/* Whether rows of buffer B (start base, stride rs, column stride cs) can
 * be read as 16-byte words. */
#define VEC_OK(base, rs, cs) (cs == 1 && (base & 7) == 0 && (rs & 7) == 0)

/* The prefetch: a tile's 16-byte words into the array pre (global loads
 * in flight while the subgroups compute), later put into KV from dst on.
 * Word t = lid + NT * i. */
#define FETCH(pre, B4, base, rs, valid, width) { \
    UNROLL for (int i = 0; i < NPRE; i++) { \
        const int t = lid + NT * i, j = t / (width / 8), c8 = t % (width / 8); \
        pre[i] = t < BK * (width / 8) && j < valid ? B4.w[((base + j * rs) >> 3) + c8] \
                                                   : uvec4(0u); \
    } }
#define PUT(dst, pre, width) { \
    UNROLL for (int i = 0; i < NPRE; i++) { \
        const int t = lid + NT * i, j = t / (width / 8), c8 = t % (width / 8); \
        if (t < BK * (width / 8)) { \
            KV[dst + j * KVS + 2 * c8] = \
                f16vec4(unpackFloat2x16(pre[i].x), unpackFloat2x16(pre[i].y)); \
            KV[dst + j * KVS + 2 * c8 + 1] = \
                f16vec4(unpackFloat2x16(pre[i].z), unpackFloat2x16(pre[i].w)); \
        } \
    } }

/* The maximum and the sum over a row's TPR invocations (adjacent lanes). */
float row_max(float x)
{
    for (int o = 1; o < TPR; o *= 2)
        x = max(x, subgroupShuffleXor(x, o));
    return x;
}

float row_sum(float x)
{
    for (int o = 1; o < TPR; o *= 2)
        x += subgroupShuffleXor(x, o);
    return x;
}

void main()
{
    const int lid = int(gl_LocalInvocationID.x);
    const int sg = lid / SG, lane = lid % SG;
    const int part = lane % TPR;                 /* row transform: columns part + TPR*n */
    /* query blocks in y, last first: every head's heavy (causal) blocks
     * start before any light one, so the dispatch ends on short blocks */
    const int qb = int(gl_NumWorkGroups.y) - 1 - int(gl_WorkGroupID.y);
    Block k;
    block_init(k, qb, int(gl_WorkGroupID.x), int(gl_WorkGroupID.z));
    const int qs1 = P.w[P_Q + 2], qs3 = P.w[P_Q + 4], ks1 = P.w[P_K + 2], ks3 = P.w[P_K + 4];
    const int vs1 = P.w[P_V + 2], vs3 = P.w[P_V + 4];
    const int s_base = sg * R * SS, p_base = sg * R * PS, a_base = sg * R * 4;

    /* Q: staged through KV, BK rows at a time (R divides BK, so a
     * subgroup's rows arrive together), into registers. */
    DECL_A(qf, RB * ND);
    for (int q0 = 0; q0 < BQ; q0 += BK) {
        barrier();
        LOAD_ROWS(0, Q4, load_q, k.qrow + q0 * qs1, qs1, qs3, min(BK, BQ - q0), k.nq - q0, D);
        barrier();
        if (sg * R >= q0 && sg * R < q0 + BK)
            UNROLL for (int rb = 0; rb < RB; rb++)
                UNROLL for (int c = 0; c < ND; c++)
                    LOAD_Q(qf[rb * ND + c], (sg * R - q0 + rb * 16) * KVS + c * 4, rb * ND + c);
    }
    DECL_C(o, RB * NDV, 0);
    UNROLL for (int i = 0; i < RB * NDV; i++)
        C_ZERO(o[i]);

    /* The rows this invocation transforms: lane / TPR + q * (SG / TPR). Their
     * running max m and sum l (the whole row's: the TPR invocations of a row
     * hold the same values). */
    float m[RPI], l[RPI];
    UNROLL for (int q = 0; q < RPI; q++) {
        m[q] = sink_logit(k);
        l[q] = (k.flags & F_SINKS) != 0 ? 1.0 : 0.0;
    }

    /* With PF, a tile's K is fetched while the tile before it computes its
     * P V, and its V while it computes S; with SPLIT, both while the tile
     * before it computes. pre_k, pre_v: the tiles whose K, V are in pre,
     * prev. */
    const bool pf_k = PF != 0 && VEC_OK(k.krow, ks1, ks3);
    const bool pf_v = PF != 0 && VEC_OK(k.vrow, vs1, vs3);
    uvec4 pre[NPRE], prev[NPREV];
    int pre_k = -1, pre_v = -1;
    if (k.ntiles > 0) {
        const int j0 = tile_start(k, 0), n = min(BK, k.skb - j0);
        if (pf_k) {
            FETCH(pre, K4, k.krow + j0 * ks1, ks1, n, D);
            pre_k = 0;
        }
        if (SPLIT != 0 && pf_v) {
            FETCH(prev, V4, k.vrow + j0 * vs1, vs1, n, DV);
            pre_v = 0;
        }
    }

    /* The visible tiles (block_init): a group-uniform trip count, no break,
     * continue or jump of the counter around the barriers. */
    for (int it = 0; it < k.ntiles; it++) {
        const int j0 = tile_start(k, it), j1 = min(j0 + BK, k.skb);
        const bool full = tile_full(k, j0, j1);
        const int bmode = tile_bmode(k, j0, j1, lid);
        /* a tile the block mask hides: skipped by the whole workgroup */
        if (bmode != 0) {
            const int jn = it + 1 < k.ntiles ? tile_start(k, it + 1) : 0;
            const int nn = min(BK, k.skb - jn);
            barrier();                                /* last tile's products are done with KV */
            if (pre_k == it)
                PUT(0, pre, D)
            else
                LOAD_ROWS(0, K4, load_k, k.krow + j0 * ks1, ks1, ks3, BK, j1 - j0, D);
            if (SPLIT != 0) {
                if (pre_v == it)
                    PUT(VOFF, prev, DV)
                else
                    LOAD_ROWS(VOFF, V4, load_v, k.vrow + j0 * vs1, vs1, vs3, BK, j1 - j0, DV);
            }
            barrier();
            if (SPLIT != 0 && it + 1 < k.ntiles) {
                if (pf_k) {
                    FETCH(pre, K4, k.krow + jn * ks1, ks1, nn, D);
                    pre_k = it + 1;
                }
                if (pf_v) {
                    FETCH(prev, V4, k.vrow + jn * vs1, vs1, nn, DV);
                    pre_v = it + 1;
                }
            }
            if (SPLIT == 0 && pf_v)
                FETCH(pre, V4, k.vrow + j0 * vs1, vs1, j1 - j0, DV);

            /* S = Q K^T: each K fragment once for the subgroup's row blocks. */
            UNROLL for (int n = 0; n < NK; n++) {
                DECL_C(s, RB, RB * NDV);
                UNROLL for (int rb = 0; rb < RB; rb++)
                    C_ZERO(s[rb]);
                UNROLL for (int c = 0; c < ND; c++) {
                    MAT_B kb;
                    LOAD_KT(kb, n * 16 * KVS + c * 4);
                    UNROLL for (int rb = 0; rb < RB; rb++)
                        MMA(s[rb], qf[rb * ND + c], kb);
                }
                UNROLL for (int rb = 0; rb < RB; rb++)
                    STORE_S(s[rb], s_base + rb * 16 * SS + n * 4);
            }
            if (SPLIT == 0) {
                barrier();                            /* S is in; every subgroup is done with K */
                if (pf_v)
                    PUT(0, pre, DV)
                else
                    LOAD_ROWS(0, V4, load_v, k.vrow + j0 * vs1, vs1, vs3, BK, j1 - j0, DV);
                if (pf_k && it + 1 < k.ntiles) {
                    FETCH(pre, K4, k.krow + jn * ks1, ks1, nn, D);
                    pre_k = it + 1;
                }
            } else {
                subgroupBarrier();                    /* the subgroup's S is in */
            }

            /* Online softmax (or sigmoid) of the subgroup's rows: P, and the
             * factors alpha of O's rows. */
            bool rescale = false;
            UNROLL for (int q = 0; q < RPI; q++) {
                const int row = lane / TPR + q * (SG / TPR);
                const int ii = k.i0 + sg * R + row;
                float pm = NEG_INF;
                for (int j = part; j < BK; j += TPR) {
                    const int si = s_base * 4 + row * SS * 4 + j;
                    const float x = score(k, s_get(si), ii, j0 + j, j1, full, bmode);
                    s_set(si, x);
                    pm = max(pm, x);
                }
                float alpha = 1.0;
                if (!k.sigmoid) {
                    const float mn = max(m[q], row_max(pm));
                    if (mn != NEG_INF) {
                        alpha = exp(m[q] - mn);
                        m[q] = mn;
                    }
                }
                float sum = 0.0;
                for (int j = part; j < BK; j += TPR) {
                    const float x = s_get(s_base * 4 + row * SS * 4 + j);
                    const float p = k.sigmoid ? sigmoid_p(x) :
                        (m[q] == NEG_INF ? 0.0 : exp(x - m[q]));
                    Ps[p_base + row * PS + (j >> 2)][j & 3] = float16_t(p);
                    sum += p;
                }
                l[q] = l[q] * alpha + row_sum(sum);
                for (int c = part; c < 4; c += TPR)
                    Al[a_base + row * 4 + c] = vec4(alpha);
                rescale = rescale || alpha != 1.0;
            }
            subgroupBarrier();                        /* P and alpha are visible */
            if (subgroupAny(rescale))
                UNROLL for (int rb = 0; rb < RB; rb++) {
                    DECL_C(f, 1, RB * NDV + RB);
                    LOAD_AL(f[0], a_base + rb * 16 * 4);
                    UNROLL for (int c = 0; c < NDV; c++)
                        C_SCALE(o[rb * NDV + c], f[0]);
                }
            DECL_A(pa, RB * NK);
            UNROLL for (int rb = 0; rb < RB; rb++)
                UNROLL for (int kk = 0; kk < NK; kk++)
                    LOAD_P(pa[rb * NK + kk], p_base + rb * 16 * PS + kk * 4);
            if (SPLIT == 0)
                barrier();                            /* the V tile is in */

            UNROLL for (int c = 0; c < NDV; c++)
                UNROLL for (int kk = 0; kk < NK; kk++) {
                    MAT_B vb;
                    LOAD_V(vb, kk * 16 * KVS + c * 4);
                    UNROLL for (int rb = 0; rb < RB; rb++)
                        MMA(o[rb * NDV + c], pa[rb * NK + kk], vb);
                }
        }
    }

    /* O / l (1 for the sigmoid score), LSE, and O out through the S region
     * one 16x16 fragment at a time (gate and dtype in store_o). */
    UNROLL for (int q = 0; q < RPI; q++) {
        const int row = lane / TPR + q * (SG / TPR);
        const float inv = k.sigmoid ? 1.0 : (l[q] > 0.0 ? 1.0 / l[q] : 0.0);
        for (int c = part; c < 4; c += TPR)
            Al[a_base + row * 4 + c] = vec4(inv);
        const int ii = k.i0 + sg * R + row;
        if (part == 0 && ii <= k.ilast)
            store_lse(k, ii, m[q], l[q]);
    }
    subgroupBarrier();
    /* f16 output with even offsets, no gate: two columns per 32-bit store
     * rather than store_o's two atomics per element. */
    const int ob = P.w[P_O] + k.bt * P.w[P_O + 1] + k.h * P.w[P_O + 3], os2 = P.w[P_O + 2];
    const bool pairs = P.w[P_OUT_DT] == DT_F16 && (k.flags & F_GATE) == 0 &&
                       P.w[P_O + 4] == 1 && ((ob | os2) & 1) == 0;
    UNROLL for (int rb = 0; rb < RB; rb++) {
        DECL_C(f, 1, RB * NDV + RB);
        LOAD_AL(f[0], a_base + rb * 16 * 4);
        UNROLL for (int c = 0; c < NDV; c++) {
            C_SCALE(o[rb * NDV + c], f[0]);
            STORE_S(o[rb * NDV + c], s_base);
            subgroupBarrier();
            for (int e = pairs ? 2 * lane : lane; e < 256; e += pairs ? 2 * SG : SG) {
                const int ii = k.i0 + sg * R + rb * 16 + e / 16;
                const int si = s_base * 4 + (e / 16) * SS * 4 + e % 16;
                if (ii > k.ilast)
                    continue;
                if (pairs)
                    O.w[(ob + (k.q0 + ii) * os2 + c * 16 + e % 16) >> 1] =
                        packHalf2x16(vec2(s_get(si), s_get(si + 1)));
                else
                    store_o(k, ii, c * 16 + e % 16, s_get(si));
            }
            subgroupBarrier();
        }
    }
}
