#version 450
/* attn_sdpa: FlashAttention-2 as a Vulkan 1.1 compute shader (the plain
 * path: no extension, runs wherever Vulkan compute runs).
 *
 * A workgroup of TX x TY invocations owns BQ = TY*RM query rows of one
 * head of one sequence and streams the keys in tiles of BK = TX*RN:
 *   S = Q K^T   Q and K staged through shared memory in chunks of DC dims;
 *               invocation (tx, ty) accumulates the RM x RN block of rows
 *               ty*RM.. and keys tx*RN.. in registers.
 *   S -> P      scale, soft-cap, ALiBi, masks and visibility in registers;
 *               the row max is reduced across the TX invocations of a row
 *               through shared memory; online softmax (running max m,
 *               running partial sum l per invocation) in registers.
 *   O += P V    P goes to shared memory (transposed), V in chunks of KC
 *               keys; each invocation owns rows ty*RM.. and the DVT
 *               contiguous columns tx*DVT.. of O.
 * The key range a block can see (causal / window / sink tokens) is computed
 * once: tiles outside it are skipped, tiles fully inside it skip the
 * per-element visibility test.
 *
 * Every tensor is a uint[] storage buffer addressed in elements of its
 * dtype (f16/bf16: half a word, u8: a byte), so no 8/16-bit storage
 * feature is needed; 16-bit outputs are written with word atomics (two
 * invocations may own the two halves of one word). Indices are 32-bit:
 * the host rejects tensors whose offsets do not fit.
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
layout(constant_id = 10) const int STAGE = 1024; /* max(DC*(BQP+BKP), KC*DVT*TX) */

const int BQ = TY * RM;
const int BK = TX * RN;
const int NT = TX * TY;
const int DVP = DVT * TX;      /* padded V tile row */
const int BQP = BQ + 1;        /* transposed P and Q rows (padded) */
const int BKP = BK + 1;        /* transposed K rows (padded) */

#extension GL_GOOGLE_include_directive : require
#if ATTN_SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"
#include "sdpa_common.glsl"

#if ATTN_SUBGROUP
float row_max(float x)
{
    for (int o = TX / 2; o > 0; o /= 2)
        x = max(x, subgroupShuffleXor(x, uint(o)));
    return x;
}

float row_sum(float x)
{
    for (int o = TX / 2; o > 0; o /= 2)
        x += subgroupShuffleXor(x, uint(o));
    return x;
}
#endif

shared float stage[STAGE];
shared float PsT[BK * BQP];
shared float red[BQ * TX];

void main()
{
    const int tx = int(gl_LocalInvocationID.x), ty = int(gl_LocalInvocationID.y);
    const int lid = ty * TX + tx;
    const int qb = int(gl_NumWorkGroups.x) - 1 - int(gl_WorkGroupID.x);  /* heavy blocks first */
    Block k;
    block_init(k, qb, int(gl_WorkGroupID.y), int(gl_WorkGroupID.z));
    const int qs1 = P.w[P_Q + 2], qs3 = P.w[P_Q + 4], ks1 = P.w[P_K + 2], ks3 = P.w[P_K + 4];
    const int vs1 = P.w[P_V + 2], vs3 = P.w[P_V + 4];

    float m[RM], l[RM], o[RM * DVT], s[RM * RN];
    for (int i = 0; i < RM; i++) {
        m[i] = sink_logit(k);
        l[i] = ((k.flags & F_SINKS) != 0 && tx == 0) ? 1.0 : 0.0;  /* partial sum per tx */
        for (int c = 0; c < DVT; c++)
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
            /* S = Q K^T over chunks of DC dims: QsT [DC][BQP], KsT [DC][BKP].
             * Consecutive invocations load consecutive dims of a row (coalesced
             * global reads) and store them a padded row apart (no shared-memory
             * bank conflicts). */
            for (int i = 0; i < RM * RN; i++)
                s[i] = 0.0;
            for (int dc = 0; dc < D; dc += DC) {
                barrier();
                for (int t = lid; t < BQ * DC; t += NT) {
                    const int r = t / DC, c = t % DC;
                    stage[c * BQP + r] = (r < k.nq && dc + c < D) ?
                        load_q(k.qrow + r * qs1 + (dc + c) * qs3) : 0.0;
                }
                for (int t = lid; t < BK * DC; t += NT) {
                    const int r = t / DC, c = t % DC;
                    stage[DC * BQP + c * BKP + r] = (j0 + r < j1 && dc + c < D) ?
                        load_k(kt + r * ks1 + (dc + c) * ks3) : 0.0;
                }
                barrier();
                for (int c = 0; c < DC; c++) {
                    float a[RM], bb[RN];
                    for (int i = 0; i < RM; i++)
                        a[i] = stage[c * BQP + ty * RM + i];
                    for (int j = 0; j < RN; j++)
                        bb[j] = stage[DC * BQP + c * BKP + tx * RN + j];
                    for (int i = 0; i < RM; i++)
                        for (int j = 0; j < RN; j++)
                            s[i * RN + j] = fma(a[i], bb[j], s[i * RN + j]);
                }
            }

            /* Scores: scale, soft-cap, ALiBi, masks, visibility. */
            for (int i = 0; i < RM; i++)
                for (int j = 0; j < RN; j++)
                    s[i * RN + j] = score(k, s[i * RN + j], k.i0 + ty * RM + i,
                                          j0 + tx * RN + j, j1, full, bmode);

            /* Online softmax (or sigmoid); P to shared memory. */
            if (!k.sigmoid) {
                float mts[RM];
                for (int i = 0; i < RM; i++) {
                    float pm = s[i * RN];
                    for (int j = 1; j < RN; j++)
                        pm = max(pm, s[i * RN + j]);
#if ATTN_SUBGROUP
                    mts[i] = row_max(pm);
#else
                    red[(ty * RM + i) * TX + tx] = pm;
#endif
                }
#if !ATTN_SUBGROUP
                barrier();
                for (int i = 0; i < RM; i++) {
                    mts[i] = red[(ty * RM + i) * TX];
                    for (int t = 1; t < TX; t++)
                        mts[i] = max(mts[i], red[(ty * RM + i) * TX + t]);
                }
#endif
                for (int i = 0; i < RM; i++) {
                    const float mn = max(m[i], mts[i]);
                    float alpha = 1.0, sum = 0.0;
                    if (mn == NEG_INF) {
                        for (int j = 0; j < RN; j++)
                            s[i * RN + j] = 0.0;
                    } else {
                        alpha = exp(m[i] - mn);
                        for (int j = 0; j < RN; j++) {
                            s[i * RN + j] = exp(s[i * RN + j] - mn);
                            sum += s[i * RN + j];
                        }
                        m[i] = mn;
                    }
                    l[i] = l[i] * alpha + sum;
                    for (int c = 0; c < DVT; c++)
                        o[i * DVT + c] *= alpha;
                }
            } else {
                for (int i = 0; i < RM * RN; i++)
                    s[i] = sigmoid_p(s[i]);
            }
            for (int j = 0; j < RN; j++)
                for (int i = 0; i < RM; i++)
                    PsT[(tx * RN + j) * BQP + ty * RM + i] = s[i * RN + j];

            /* O += P V over chunks of KC keys: Vs [KC][DVP]. */
            for (int kc = 0; kc < BK; kc += KC) {
                barrier();
                for (int t = lid; t < KC * DVP; t += NT) {
                    const int r = t / DVP, c = t % DVP;
                    stage[t] = (j0 + kc + r < j1 && c < DV) ?
                        load_v(vt + (kc + r) * vs1 + c * vs3) : 0.0;
                }
                barrier();
                for (int kk = 0; kk < KC; kk++) {
                    float vv[DVT], pp[RM];
                    for (int c = 0; c < DVT; c++)
                        vv[c] = stage[kk * DVP + tx * DVT + c];
                    for (int i = 0; i < RM; i++)
                        pp[i] = PsT[(kc + kk) * BQP + ty * RM + i];
                    for (int i = 0; i < RM; i++)
                        for (int c = 0; c < DVT; c++)
                            o[i * DVT + c] = fma(pp[i], vv[c], o[i * DVT + c]);
                }
            }
        }
    }

    /* Full row sums, normalise, gate, store. */
    float lsums[RM];
#if ATTN_SUBGROUP
    for (int i = 0; i < RM; i++)
        lsums[i] = row_sum(l[i]);
#else
    barrier();
    for (int i = 0; i < RM; i++)
        red[(ty * RM + i) * TX + tx] = l[i];
    barrier();
    for (int i = 0; i < RM; i++) {
        lsums[i] = 0.0;
        for (int t = 0; t < TX; t++)
            lsums[i] += red[(ty * RM + i) * TX + t];
    }
#endif
    for (int i = 0; i < RM; i++) {
        const int ii = k.i0 + ty * RM + i;
        if (ii > k.ilast)
            break;                                /* rows only grow with i */
        const float lsum = lsums[i];
        const float inv = k.sigmoid ? 1.0 : (lsum > 0.0 ? 1.0 / lsum : 0.0);
        for (int c = 0; c < DVT; c++) {
            const int col = tx * DVT + c;
            if (col >= DV)
                break;
            store_o(k, ii, col, o[i * DVT + c] * inv);
        }
        if (tx == 0)
            store_lse(k, ii, m[i], lsum);
    }
}
