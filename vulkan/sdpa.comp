#version 450
/* attn_sdpa: FlashAttention-2 as a Vulkan 1.1 compute shader (the plain
 * path: no cooperative matrix, runs wherever Vulkan compute runs).
 *
 * A workgroup of TX x TY invocations owns BQ = TY*RM query rows of one
 * head of one sequence and streams the keys in tiles of BK = TX*RN:
 *   S = Q K^T   Q and K staged through shared memory in chunks of DC dims;
 *               invocation (tx, ty) accumulates an RM x RN block of rows
 *               and keys in registers.
 *   S -> P      scale, soft-cap, ALiBi, masks and visibility in registers;
 *               the row max is reduced across the TX invocations of a row
 *               through shared memory; online softmax (running max m,
 *               running partial sum l per invocation) in registers.
 *   O += P V    P goes to shared memory (transposed), V in chunks of KC
 *               keys; each invocation owns RM rows and DVT columns of O.
 * The key range a block can see (causal / window / sink tokens) is computed
 * once: tiles outside it are skipped, tiles fully inside it skip the
 * per-element visibility test.
 *
 * Which rows, keys and columns an invocation owns (own()): where its count
 * R is a multiple of 4, groups of 4 consecutive ones, the groups of the
 * invocations interleaved (group g of invocation t at (g*T + t)*4); else
 * single ones interleaved (e*T + t). The inner loops then read a group as
 * one vec4 of shared memory, and the invocations of a subgroup read
 * consecutive vec4s (no bank conflict), where contiguous blocks of 8 would
 * be a 2-way conflict. Shared arrays are vec4[] for those 16-byte reads;
 * transposed rows are padded by 4 floats, which keeps them 16-byte aligned
 * and spreads the transposing stores over 8 banks instead of one.
 *
 * Global memory: every tensor is a uint[] storage buffer addressed in
 * elements of its dtype (f16/bf16: half a word, u8: a byte), so no
 * 8/16-bit storage feature is needed. With VEC (the host checked unit
 * innermost strides, head dims multiples of 4 and element offsets of rows
 * multiples of 4) Q, K and V are also read through aliases of their
 * bindings 4 elements at a time: a uvec4 for f32, a uvec2 (two f16/bf16
 * pairs) for 16-bit dtypes; with VEC 2 (16-bit dtypes, head dims, strides
 * and offsets multiples of 8) 8 elements at a time through the uvec4
 * alias, so a 16-bit tile takes as many 16-byte loads as f32 takes for half
 * of it (half the load instructions of VEC 1). 16-bit outputs are written with word atomics
 * (two invocations may own the two halves of one word). Indices are
 * 32-bit: the host rejects tensors whose offsets do not fit.
 *
 * Loops over an invocation's rows, keys and columns are unrolled
 * ([[unroll]]) so that its arrays stay in registers.
 *
 * Built twice: plain, and with ATTN_SUBGROUP=1 (the subgroup path, for
 * devices with subgroup shuffles whose smallest subgroup holds TX
 * invocations): the row max and row sum are then reduced across the TX
 * invocations of a row with xor shuffles instead of through shared memory
 * and a barrier. A row's invocations are TX consecutive (and, TX being a
 * power of two, aligned) invocation indices, hence in one subgroup. */

layout(local_size_x_id = 0, local_size_y_id = 1) in;
layout(constant_id = 0) const int TX = 8;
layout(constant_id = 1) const int TY = 8;
layout(constant_id = 2) const int RM = 2;
layout(constant_id = 3) const int RN = 2;
layout(constant_id = 4) const int DC = 16;     /* dims per Q/K chunk */
layout(constant_id = 5) const int KC = 16;     /* keys per V chunk */
layout(constant_id = 6) const int D = 64;
layout(constant_id = 7) const int DV = 64;
layout(constant_id = 8) const int IN_DT = 0;   /* dtype of q, k, v */
layout(constant_id = 9) const int DVT = 8;     /* O columns per invocation: ceil(DV / TX) */
layout(constant_id = 10) const int STAGE = 1024; /* max(KOFF + DC*BKP, KC*DVP) */
layout(constant_id = 11) const int VEC = 0;    /* 1: 4-element, 2: 8-element (16-bit) loads */
layout(constant_id = 12) const int FEATS = -1;  /* the call's flags (F_*): the
                                                   loop keeps only their code */
#define FEATS_MASK FEATS

const int BQ = TY * RM;
const int BK = TX * RN;
const int NT = TX * TY;
const int DVP = DVT * TX;      /* padded V tile row */
const int BQP = BQ + 4;        /* transposed P and Q rows (padded) */
const int BKP = BK + 4;        /* transposed K rows (padded) */
const int KOFF = (DC * BQP + 3) / 4 * 4;   /* KsT in stage, 16-byte aligned */
const bool G4M = RM % 4 == 0, G4N = RN % 4 == 0, G4C = DVT % 4 == 0;  /* owned in groups of 4 */

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if ATTN_SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"
#include "sdpa_common.glsl"

/* 4-element views of the inputs (VEC only): f32 as uvec4, 16-bit as uvec2. */
layout(std430, binding = 0) readonly buffer Q4b { uvec4 w[]; } Q4;
layout(std430, binding = 1) readonly buffer K4b { uvec4 w[]; } K4;
layout(std430, binding = 2) readonly buffer V4b { uvec4 w[]; } V4;
layout(std430, binding = 0) readonly buffer Q2b { uvec2 w[]; } Q2;
layout(std430, binding = 1) readonly buffer K2b { uvec2 w[]; } K2;
layout(std430, binding = 2) readonly buffer V2b { uvec2 w[]; } V2;

vec4 unpack4(uvec2 u)
{
    if (IN_DT == DT_F16)
        return vec4(unpackHalf2x16(u.x), unpackHalf2x16(u.y));
    return uintBitsToFloat(uvec4(u.x << 16, u.x & 0xffff0000u, u.y << 16, u.y & 0xffff0000u));
}

/* vec4 NAME(int i): elements i..i+3 (i a multiple of 4) of an input. */
#define LOAD4(NAME, B4, B2) \
    vec4 NAME(int i) { \
        return IN_DT == DT_F32 ? uintBitsToFloat(B4.w[uint(i) >> 2]) : unpack4(B2.w[uint(i) >> 2]); \
    }
LOAD4(load4_q, Q4, Q2)
LOAD4(load4_k, K4, K2)
LOAD4(load4_v, V4, V2)

/* NAME(i, lo, hi): elements i..i+7 (i a multiple of 8) of a 16-bit input. */
#define LOAD8(NAME, B4) \
    void NAME(int i, out vec4 lo, out vec4 hi) { \
        const uvec4 u = B4.w[uint(i) >> 3]; \
        lo = unpack4(u.xy); \
        hi = unpack4(u.zw); \
    }
LOAD8(load8_q, Q4)
LOAD8(load8_k, K4)
LOAD8(load8_v, V4)

#if ATTN_SUBGROUP
float row_max(float x)
{
    [[unroll]] for (int o = TX / 2; o > 0; o /= 2)
        x = max(x, subgroupShuffleXor(x, uint(o)));
    return x;
}

float row_sum(float x)
{
    [[unroll]] for (int o = TX / 2; o > 0; o /= 2)
        x += subgroupShuffleXor(x, uint(o));
    return x;
}
#endif

shared vec4 stage[(STAGE + 3) / 4];
shared vec4 PsT[(BK * BQP + 3) / 4];
shared float red[BQ * TX];

/* Index (among T*R) of the e-th of the R owned by invocation t (see top). */
int own(int e, int t, int T, bool g4)
{
    return g4 ? ((e >> 2) * T + t) * 4 + (e & 3) : e * T + t;
}

void stage_set(int i, float x) { stage[i >> 2][i & 3] = x; }

/* dst[e] = A[base + own(e, t, T, G)] for e < R (A a shared vec4[], base a
 * multiple of 4 when G): one vec4 read per group of 4 when G. */
#define GATHER(dst, A, base, R, T, t, G) \
    if (G) { \
        [[unroll]] for (int e_ = 0; e_ < (R); e_ += 4) { \
            const vec4 x_ = A[((base) >> 2) + (e_ >> 2) * (T) + (t)]; \
            dst[e_] = x_.x; dst[e_ + 1] = x_.y; dst[e_ + 2] = x_.z; dst[e_ + 3] = x_.w; \
        } \
    } else { \
        [[unroll]] for (int e_ = 0; e_ < (R); e_++) { \
            const int i_ = (base) + e_ * (T) + (t); \
            dst[e_] = A[i_ >> 2][i_ & 3]; \
        } \
    }

void main()
{
    const int tx = int(gl_LocalInvocationID.x), ty = int(gl_LocalInvocationID.y);
    const int lid = ty * TX + tx;
    /* query blocks in y, last first: every head's heavy (causal) blocks
     * start before any light one, so the dispatch ends on short blocks */
    const int qb = int(gl_NumWorkGroups.y) - 1 - int(gl_WorkGroupID.y);
    Block k;
    block_init(k, qb, int(gl_WorkGroupID.x), int(gl_WorkGroupID.z));
    const int qs1 = P.w[P_Q + 2], qs3 = P.w[P_Q + 4], ks1 = P.w[P_K + 2], ks3 = P.w[P_K + 4];
    const int vs1 = P.w[P_V + 2], vs3 = P.w[P_V + 4];

    float m[RM], l[RM], o[RM * DVT], s[RM * RN];
    [[unroll]] for (int i = 0; i < RM; i++) {
        m[i] = sink_logit(k);
        l[i] = ((k.flags & F_SINKS) != 0 && tx == 0) ? 1.0 : 0.0;  /* partial sum per tx */
        [[unroll]] for (int c = 0; c < DVT; c++)
            o[i * DVT + c] = 0.0;
    }

    /* The visible tiles (block_init): a group-uniform trip count, no break,
     * continue or jump of the counter around the barriers. */
    for (int it = 0; it < k.ntiles; it++) {
        const int j0 = tile_start(k, it), j1 = min(j0 + BK, k.skb);
        const bool full = tile_full(k, j0, j1);
        const int bmode = tile_bmode(k, j0, j1, lid);
        /* a tile the block mask hides: skipped by the whole workgroup */
        if (bmode != 0) {
            const int kt = k.krow + j0 * ks1, vt = k.vrow + j0 * vs1;   /* this tile's first key */
            /* S = Q K^T over chunks of DC dims: QsT [DC][BQP], KsT [DC][BKP]
             * (at KOFF). Consecutive invocations load consecutive dims
             * of a row (coalesced global reads). */
            [[unroll]] for (int i = 0; i < RM * RN; i++)
                s[i] = 0.0;
            for (int dc = 0; dc < D; dc += DC) {
                barrier();
                if (VEC == 2) {
                    for (int t = lid; t < BQ * (DC / 8); t += NT) {
                        const int r = t / (DC / 8), c = t % (DC / 8) * 8;
                        vec4 lo = vec4(0.0), hi = vec4(0.0);
                        if (r < k.nq && dc + c < D)
                            load8_q(k.qrow + r * qs1 + dc + c, lo, hi);
                        [[unroll]] for (int u = 0; u < 4; u++) {
                            stage_set((c + u) * BQP + r, lo[u]);
                            stage_set((c + 4 + u) * BQP + r, hi[u]);
                        }
                    }
                    for (int t = lid; t < BK * (DC / 8); t += NT) {
                        const int r = t / (DC / 8), c = t % (DC / 8) * 8;
                        vec4 lo = vec4(0.0), hi = vec4(0.0);
                        if (j0 + r < j1 && dc + c < D)
                            load8_k(kt + r * ks1 + dc + c, lo, hi);
                        [[unroll]] for (int u = 0; u < 4; u++) {
                            stage_set(KOFF + (c + u) * BKP + r, lo[u]);
                            stage_set(KOFF + (c + 4 + u) * BKP + r, hi[u]);
                        }
                    }
                } else if (VEC != 0) {
                    for (int t = lid; t < BQ * (DC / 4); t += NT) {
                        const int r = t / (DC / 4), c = t % (DC / 4) * 4;
                        const vec4 x = r < k.nq && dc + c < D ?
                            load4_q(k.qrow + r * qs1 + dc + c) : vec4(0.0);
                        [[unroll]] for (int u = 0; u < 4; u++)
                            stage_set((c + u) * BQP + r, x[u]);
                    }
                    for (int t = lid; t < BK * (DC / 4); t += NT) {
                        const int r = t / (DC / 4), c = t % (DC / 4) * 4;
                        const vec4 x = j0 + r < j1 && dc + c < D ?
                            load4_k(kt + r * ks1 + dc + c) : vec4(0.0);
                        [[unroll]] for (int u = 0; u < 4; u++)
                            stage_set(KOFF + (c + u) * BKP + r, x[u]);
                    }
                } else {
                    for (int t = lid; t < BQ * DC; t += NT) {
                        const int r = t / DC, c = t % DC;
                        stage_set(c * BQP + r, r < k.nq && dc + c < D ?
                                  load_q(k.qrow + r * qs1 + (dc + c) * qs3) : 0.0);
                    }
                    for (int t = lid; t < BK * DC; t += NT) {
                        const int r = t / DC, c = t % DC;
                        stage_set(KOFF + c * BKP + r, j0 + r < j1 && dc + c < D ?
                                  load_k(kt + r * ks1 + (dc + c) * ks3) : 0.0);
                    }
                }
                barrier();
                /* unrolled once DC is specialised: the shared reads of
                 * later dims go out ahead of the FMAs that use them */
                [[unroll]] for (int c = 0; c < DC; c++) {
                    float a[RM], bb[RN];
                    GATHER(a, stage, c * BQP, RM, TY, ty, G4M)
                    GATHER(bb, stage, KOFF + c * BKP, RN, TX, tx, G4N)
                    [[unroll]] for (int i = 0; i < RM; i++)
                        [[unroll]] for (int j = 0; j < RN; j++)
                            s[i * RN + j] = fma(a[i], bb[j], s[i * RN + j]);
                }
            }

            /* Scores: scale, soft-cap, ALiBi, masks, visibility. */
            [[unroll]] for (int i = 0; i < RM; i++)
                [[unroll]] for (int j = 0; j < RN; j++)
                    s[i * RN + j] = score(k, s[i * RN + j], k.i0 + own(i, ty, TY, G4M),
                                          j0 + own(j, tx, TX, G4N), j1, full, bmode);

            /* Online softmax (or sigmoid); P to shared memory. */
            if (!k.sigmoid) {
                float mts[RM];
                [[unroll]] for (int i = 0; i < RM; i++) {
                    float pm = s[i * RN];
                    [[unroll]] for (int j = 1; j < RN; j++)
                        pm = max(pm, s[i * RN + j]);
#if ATTN_SUBGROUP
                    mts[i] = row_max(pm);
#else
                    red[(ty * RM + i) * TX + tx] = pm;
#endif
                }
#if !ATTN_SUBGROUP
                barrier();
                [[unroll]] for (int i = 0; i < RM; i++) {
                    mts[i] = red[(ty * RM + i) * TX];
                    for (int t = 1; t < TX; t++)
                        mts[i] = max(mts[i], red[(ty * RM + i) * TX + t]);
                }
#endif
                [[unroll]] for (int i = 0; i < RM; i++) {
                    const float mn = max(m[i], mts[i]);
                    float alpha = 1.0, sum = 0.0;
                    if (mn == NEG_INF) {
                        [[unroll]] for (int j = 0; j < RN; j++)
                            s[i * RN + j] = 0.0;
                    } else {
                        alpha = exp(m[i] - mn);
                        [[unroll]] for (int j = 0; j < RN; j++) {
                            s[i * RN + j] = exp(s[i * RN + j] - mn);
                            sum += s[i * RN + j];
                        }
                        m[i] = mn;
                    }
                    l[i] = l[i] * alpha + sum;
                    [[unroll]] for (int c = 0; c < DVT; c++)
                        o[i * DVT + c] *= alpha;
                }
            } else {
                [[unroll]] for (int i = 0; i < RM * RN; i++)
                    s[i] = sigmoid_p(s[i]);
            }
            /* PsT [BK][BQP]: key row own(j), query column own(i). */
            [[unroll]] for (int j = 0; j < RN; j++) {
                const int kr = own(j, tx, TX, G4N) * BQP;
                if (G4M) {
                    [[unroll]] for (int i = 0; i < RM; i += 4)
                        PsT[(kr >> 2) + (i >> 2) * TY + ty] =
                            vec4(s[i * RN + j], s[(i + 1) * RN + j], s[(i + 2) * RN + j],
                                 s[(i + 3) * RN + j]);
                } else {
                    [[unroll]] for (int i = 0; i < RM; i++) {
                        const int pi = kr + own(i, ty, TY, false);
                        PsT[pi >> 2][pi & 3] = s[i * RN + j];
                    }
                }
            }

            /* O += P V over chunks of KC keys: Vs [KC][DVP]. */
            for (int kc = 0; kc < BK; kc += KC) {
                barrier();
                if (VEC == 2) {
                    for (int t = lid; t < KC * (DVP / 8); t += NT) {
                        const int r = t / (DVP / 8), c = t % (DVP / 8) * 8;
                        vec4 lo = vec4(0.0), hi = vec4(0.0);
                        if (j0 + kc + r < j1 && c < DV)
                            load8_v(vt + (kc + r) * vs1 + c, lo, hi);
                        stage[2 * t] = lo;
                        stage[2 * t + 1] = hi;
                    }
                } else if (VEC != 0) {
                    for (int t = lid; t < KC * (DVP / 4); t += NT) {
                        const int r = t / (DVP / 4), c = t % (DVP / 4) * 4;
                        stage[t] = j0 + kc + r < j1 && c < DV ?
                            load4_v(vt + (kc + r) * vs1 + c) : vec4(0.0);
                    }
                } else {
                    for (int t = lid; t < KC * DVP; t += NT) {
                        const int r = t / DVP, c = t % DVP;
                        stage_set(t, j0 + kc + r < j1 && c < DV ?
                                  load_v(vt + (kc + r) * vs1 + c * vs3) : 0.0);
                    }
                }
                barrier();
                [[unroll]] for (int kk = 0; kk < KC; kk++) {
                    float vv[DVT], pp[RM];
                    GATHER(vv, stage, kk * DVP, DVT, TX, tx, G4C)
                    GATHER(pp, PsT, (kc + kk) * BQP, RM, TY, ty, G4M)
                    [[unroll]] for (int i = 0; i < RM; i++)
                        [[unroll]] for (int c = 0; c < DVT; c++)
                            o[i * DVT + c] = fma(pp[i], vv[c], o[i * DVT + c]);
                }
            }
        }
    }

    /* Full row sums, normalise, gate, store. */
    float lsums[RM];
#if ATTN_SUBGROUP
    [[unroll]] for (int i = 0; i < RM; i++)
        lsums[i] = row_sum(l[i]);
#else
    barrier();
    [[unroll]] for (int i = 0; i < RM; i++)
        red[(ty * RM + i) * TX + tx] = l[i];
    barrier();
    [[unroll]] for (int i = 0; i < RM; i++) {
        lsums[i] = 0.0;
        for (int t = 0; t < TX; t++)
            lsums[i] += red[(ty * RM + i) * TX + t];
    }
#endif
    [[unroll]] for (int i = 0; i < RM; i++) {
        const int ii = k.i0 + own(i, ty, TY, G4M);
        if (ii <= k.ilast) {
            const float lsum = lsums[i];
            const float inv = k.sigmoid ? 1.0 : (lsum > 0.0 ? 1.0 / lsum : 0.0);
            [[unroll]] for (int c = 0; c < DVT; c++) {
                const int col = own(c, tx, TX, G4C);
                if (col < DV)
                    store_o(k, ii, col, o[i * DVT + c] * inv);
            }
            if (tx == 0)
                store_lse(k, ii, m[i], lsum);
        }
    }
}
