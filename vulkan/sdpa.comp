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
 * bindings in units of EPL elements: 4 (VEC 1: a uvec4 of f32, or a uvec2
 * of two f16/bf16 pairs) or 8 (VEC 2, 16-bit dtypes whose head dims,
 * strides and offsets are multiples of 8: a uvec4), so a 16-bit tile takes
 * as many 16-byte loads as f32 takes for half of it. 16-bit outputs are
 * written with word atomics (two invocations may own the two halves of one
 * word). Indices are 32-bit: the host rejects tensors whose offsets do not
 * fit.
 *
 * PREF (VEC only): the next K chunk (PREF 1), and also the next V chunk
 * (PREF 2), is read from global memory into registers, as raw units, while
 * the current one is multiplied out of shared memory; the loads' latency
 * then hides behind the FMAs instead of stalling between two barriers.
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
layout(constant_id = 12) const int PREF = 0;   /* VEC: 1 next K chunk, 2 also next V chunk */
layout(constant_id = 13) const int FEATS = -1;  /* the call's flags (F_*): the
                                                   loop keeps only their code */
#define FEATS_MASK FEATS

const int BQ = TY * RM;
const int BK = TX * RN;
const int NT = TX * TY;
const int DVP = DVT * TX;      /* padded V tile row */
const int BQP = BQ + 4;        /* transposed P and Q rows (padded) */
const int BKP = BK + 4;        /* transposed K rows (padded) */
const int KOFF = (DC * BQP + 3) / 4 * 4;   /* KsT in stage, 16-byte aligned */
const int EPL = VEC == 2 ? 8 : 4;          /* elements per unit load (VEC) */
const int KU = BK * (DC / EPL), QU = BQ * (DC / EPL), VU = KC * (DVP / EPL);  /* units of a chunk */
const int NUK = (KU + NT - 1) / NT, NUV = (VU + NT - 1) / NT;   /* per invocation (PREF) */
const bool G4M = RM % 4 == 0, G4N = RN % 4 == 0, G4C = DVT % 4 == 0;  /* owned in groups of 4 */

#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
#if ATTN_SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"
#include "sdpa_common.glsl"

/* Unit views of the inputs (VEC only): f32 and 8 16-bit elements as uvec4,
 * 4 16-bit elements as uvec2. */
layout(std430, binding = 0) readonly buffer Q4b { uvec4 w[]; } Q4;
layout(std430, binding = 1) readonly buffer K4b { uvec4 w[]; } K4;
layout(std430, binding = 2) readonly buffer V4b { uvec4 w[]; } V4;
layout(std430, binding = 0) readonly buffer Q2b { uvec2 w[]; } Q2;
layout(std430, binding = 1) readonly buffer K2b { uvec2 w[]; } K2;
layout(std430, binding = 2) readonly buffer V2b { uvec2 w[]; } V2;

/* uvec4 NAME(int i): the unit of EPL elements from element i (a multiple
 * of EPL) as raw words; 4 16-bit elements in .xy. */
#define RAW(NAME, B4, B2) \
    uvec4 NAME(int i) { \
        if (VEC == 2) \
            return B4.w[uint(i) >> 3]; \
        if (IN_DT == DT_F32) \
            return B4.w[uint(i) >> 2]; \
        return uvec4(B2.w[uint(i) >> 2], 0u, 0u); \
    }
RAW(raw_q, Q4, Q2)
RAW(raw_k, K4, K2)
RAW(raw_v, V4, V2)

/* Elements 4h..4h+3 of a unit as floats. */
vec4 unit4(uvec4 u, int h)
{
    if (IN_DT == DT_F32)
        return uintBitsToFloat(u);
    const uvec2 w = h == 0 ? u.xy : u.zw;
    if (IN_DT == DT_F16)
        return vec4(unpackHalf2x16(w.x), unpackHalf2x16(w.y));
    return uintBitsToFloat(uvec4(w.x << 16, w.x & 0xffff0000u, w.y << 16, w.y & 0xffff0000u));
}

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

/* Unit u, number t of a chunk of DC dims (see UNIT_T: row r, dims c..),
 * into stage transposed: element e at base + (c + e) * rp + r. */
void put_t(int base, int rp, int t, uvec4 u)
{
    const int r = t / (DC / EPL), c = t % (DC / EPL) * EPL;
    [[unroll]] for (int h = 0; h < EPL / 4; h++) {
        const vec4 x = unit4(u, h);
        [[unroll]] for (int e = 0; e < 4; e++)
            stage_set(base + (c + 4 * h + e) * rp + r, x[e]);
    }
}

/* Unit t of a transposed chunk of dims [c0, c0 + DC) from element row0
 * (row stride rs, nr rows present): row t / (DC / EPL), dims from
 * c0 + t % (DC / EPL) * EPL; zero past the rows and D. */
#define UNIT_T(RAWF, t, row0, rs, nr, c0) \
    ((t) / (DC / EPL) < (nr) && (c0) + (t) % (DC / EPL) * EPL < D ? \
     RAWF((row0) + (t) / (DC / EPL) * (rs) + (c0) + (t) % (DC / EPL) * EPL) : uvec4(0u))

/* Unit t of the V chunk of keys [kc0, kc0 + KC) of a tile, row-major
 * [KC][DVP] (row t / (DVP / EPL)); zero past the nk keys and DV. */
uvec4 v_unit(int t, int vt, int vs1, int nk, int kc0)
{
    const int r = t / (DVP / EPL), c = t % (DVP / EPL) * EPL;
    return kc0 + r < nk && c < DV ? raw_v(vt + (kc0 + r) * vs1 + c) : uvec4(0u);
}

void put_v(int t, uvec4 u)
{
    [[unroll]] for (int h = 0; h < EPL / 4; h++)
        stage[t * (EPL / 4) + h] = unit4(u, h);
}

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
            const int nk = j1 - j0;
            /* S = Q K^T over chunks of DC dims: QsT [DC][BQP], KsT [DC][BKP]
             * (at KOFF). Consecutive invocations load consecutive dims
             * of a row (coalesced global reads). */
            [[unroll]] for (int i = 0; i < RM * RN; i++)
                s[i] = 0.0;
            uvec4 pk[NUK];
            if (PREF >= 1)
                [[unroll]] for (int n = 0; n < NUK; n++)
                    pk[n] = UNIT_T(raw_k, lid + n * NT, kt, ks1, nk, 0);
            for (int dc = 0; dc < D; dc += DC) {
                barrier();
                if (VEC != 0) {
                    for (int t = lid; t < QU; t += NT)
                        put_t(0, BQP, t, UNIT_T(raw_q, t, k.qrow, qs1, k.nq, dc));
                } else {
                    for (int t = lid; t < BQ * DC; t += NT) {
                        const int r = t / DC, c = t % DC;
                        stage_set(c * BQP + r, r < k.nq && dc + c < D ?
                                  load_q(k.qrow + r * qs1 + (dc + c) * qs3) : 0.0);
                    }
                }
                if (PREF >= 1) {
                    [[unroll]] for (int n = 0; n < NUK; n++) {
                        const int t = lid + n * NT;
                        if (t < KU)
                            put_t(KOFF, BKP, t, pk[n]);
                    }
                    if (dc + DC < D)
                        [[unroll]] for (int n = 0; n < NUK; n++)
                            pk[n] = UNIT_T(raw_k, lid + n * NT, kt, ks1, nk, dc + DC);
                } else if (VEC != 0) {
                    for (int t = lid; t < KU; t += NT)
                        put_t(KOFF, BKP, t, UNIT_T(raw_k, t, kt, ks1, nk, dc));
                } else {
                    for (int t = lid; t < BK * DC; t += NT) {
                        const int r = t / DC, c = t % DC;
                        stage_set(KOFF + c * BKP + r, r < nk && dc + c < D ?
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
            /* the first V chunk's loads go out before the softmax */
            uvec4 pv[NUV];
            if (PREF >= 2)
                [[unroll]] for (int n = 0; n < NUV; n++)
                    pv[n] = v_unit(lid + n * NT, vt, vs1, nk, 0);

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
                if (PREF >= 2) {
                    [[unroll]] for (int n = 0; n < NUV; n++)
                        if (lid + n * NT < VU)
                            put_v(lid + n * NT, pv[n]);
                    if (kc + KC < BK)
                        [[unroll]] for (int n = 0; n < NUV; n++)
                            pv[n] = v_unit(lid + n * NT, vt, vs1, nk, kc + KC);
                } else if (VEC != 0) {
                    for (int t = lid; t < VU; t += NT)
                        put_v(t, v_unit(t, vt, vs1, nk, kc));
                } else {
                    for (int t = lid; t < KC * DVP; t += NT) {
                        const int r = t / DVP, c = t % DVP;
                        stage_set(t, kc + r < nk && c < DV ?
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
