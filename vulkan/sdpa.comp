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

layout(std430, binding = 0) readonly buffer Qb { uint w[]; } Q;
layout(std430, binding = 1) readonly buffer Kb { uint w[]; } K;
layout(std430, binding = 2) readonly buffer Vb { uint w[]; } V;
layout(std430, binding = 3) buffer Ob { uint w[]; } O;
layout(std430, binding = 4) buffer Lb { float w[]; } L;
layout(std430, binding = 5) readonly buffer Mb { uint w[]; } MASK;
layout(std430, binding = 6) readonly buffer Gb { uint w[]; } GATE;
layout(std430, binding = 7) readonly buffer Bb { uint w[]; } BMASK;
layout(std430, binding = 9) readonly buffer Pb { int w[]; } P;

/* Parameter words (src/vulkan/sdpa.c writes them in this order). */
const int P_Q = 0, P_K = 5, P_V = 10, P_O = 15, P_OUT_DT = 20, P_L = 21, P_M = 25,
          P_MASK_DT = 30, P_G = 31, P_GATE_DT = 36, P_B = 37, P_FLAGS = 42, P_HQ = 43,
          P_GROUP = 44, P_SQ = 45, P_SK = 46, P_NSEQ = 47, P_SCALE = 48, P_SOFTCAP = 49,
          P_SIGBIAS = 50, P_WL = 51, P_WR = 52, P_SINKS = 53, P_BQ = 54, P_BK = 55, P_AUX = 64;

const int F_CAUSAL = 1, F_SIGMOID = 2, F_ALIBI = 4, F_SINKS = 8, F_VARLEN = 16, F_LSE = 32,
          F_MASK = 64, F_GATE = 128, F_BMASK = 256, F_SOFTCAP = 512;

ATTN_LOAD_FIXED(load_q, Q, IN_DT)
ATTN_LOAD_FIXED(load_k, K, IN_DT)
ATTN_LOAD_FIXED(load_v, V, IN_DT)
ATTN_LOAD_ANY(load_mask, MASK)
ATTN_LOAD_ANY(load_gate, GATE)
ATTN_LOAD_ANY(load_bmask, BMASK)
ATTN_STORE_ANY(store_out, O)

float pf(int i) { return intBitsToFloat(P.w[i]); }

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
shared int bm_any, bm_all;

void main()
{
    const int tx = int(gl_LocalInvocationID.x), ty = int(gl_LocalInvocationID.y);
    const int lid = ty * TX + tx;
    const int qb = int(gl_NumWorkGroups.x) - 1 - int(gl_WorkGroupID.x);  /* heavy blocks first */
    const int h = int(gl_WorkGroupID.y);
    const int b = int(gl_WorkGroupID.z);
    const int flags = P.w[P_FLAGS], hq = P.w[P_HQ], nseq = P.w[P_NSEQ];
    const int hk = h / P.w[P_GROUP];

    int bt = b, q0 = 0, k0 = 0, sqb = P.w[P_SQ], skb = P.w[P_SK];
    if ((flags & F_VARLEN) != 0) {
        const int cu = P_AUX + 2 * hq;            /* after alibi and sinks */
        bt = 0;
        q0 = P.w[cu + b];
        sqb = P.w[cu + b + 1] - q0;
        k0 = P.w[cu + nseq + 1 + b];
        skb = P.w[cu + nseq + 2 + b] - k0;
    }
    const int i0 = qb * BQ;
    if (i0 >= sqb)
        return;                                   /* uniform: varlen padding */
    const int nq = min(BQ, sqb - i0);
    const int doff = skb - sqb;                   /* diag(i) = i + doff */

    const int qrow = P.w[P_Q] + bt * P.w[P_Q + 1] + (q0 + i0) * P.w[P_Q + 2] + h * P.w[P_Q + 3];
    const int krow = P.w[P_K] + bt * P.w[P_K + 1] + k0 * P.w[P_K + 2] + hk * P.w[P_K + 3];
    const int vrow = P.w[P_V] + bt * P.w[P_V + 1] + k0 * P.w[P_V + 2] + hk * P.w[P_V + 3];
    const int qs1 = P.w[P_Q + 2], qs3 = P.w[P_Q + 4], ks1 = P.w[P_K + 2], ks3 = P.w[P_K + 4];
    const int vs1 = P.w[P_V + 2], vs3 = P.w[P_V + 4];
    const bool causal = (flags & F_CAUSAL) != 0, sigmoid = (flags & F_SIGMOID) != 0;
    const float scale = pf(P_SCALE), softcap = pf(P_SOFTCAP);
    const float slope = (flags & F_ALIBI) != 0 ? pf(P_AUX + h) : 0.0;
    const int wl = P.w[P_WL], wr = P.w[P_WR], sink_tokens = P.w[P_SINKS];

    /* Keys by position: row i sees [lo(i), hi(i)] plus sinks [0, ns). */
    const int ilast = i0 + nq - 1;
    const int lo_first = wl >= 0 ? i0 + doff - wl : 0;
    const int lo_last = wl >= 0 ? ilast + doff - wl : 0;
    int hi_first = skb - 1, hi_last = skb - 1;
    if (wr >= 0) {
        hi_first = min(hi_first, i0 + doff + wr);
        hi_last = min(hi_last, ilast + doff + wr);
    }
    if (causal) {
        hi_first = min(hi_first, i0 + doff);
        hi_last = min(hi_last, ilast + doff);
    }
    const int klo = max(lo_first, 0), khi = hi_last;
    int ns = min(sink_tokens, skb);
    if (causal)
        ns = min(ns, ilast + doff + 1);

    float m[RM], l[RM], o[RM * DVT], s[RM * RN];
    const float sink = (flags & F_SINKS) != 0 ? pf(P_AUX + hq + h) : NEG_INF;
    for (int i = 0; i < RM; i++) {
        m[i] = sink;
        l[i] = ((flags & F_SINKS) != 0 && tx == 0) ? 1.0 : 0.0;  /* partial sum per tx */
        for (int c = 0; c < DVT; c++)
            o[i * DVT + c] = 0.0;
    }

    for (int j0 = 0; j0 < skb; j0 += BK) {
        const int j1 = min(j0 + BK, skb);
        const bool in_sinks = j0 < ns, in_range = j0 <= khi && j1 - 1 >= klo;
        if (!in_sinks && !in_range) {
            if (j0 > khi)
                break;
            if (j1 <= klo)
                j0 = max(j0, klo / BK * BK - BK);
            continue;
        }
        bool full;
        if (j1 <= ns)
            full = !causal || j1 - 1 <= i0 + doff;
        else
            full = j0 >= lo_last && j1 - 1 <= hi_first;

        /* Block mask verdict for the tile: 0 none, 1 all, 2 mixed. */
        int bmode = 1;
        const int bq = P.w[P_BQ], bk = P.w[P_BK];
        const int bbase = P.w[P_B] + b * P.w[P_B + 1] + h * P.w[P_B + 2];
        if ((flags & F_BMASK) != 0) {
            barrier();
            if (lid == 0) { bm_any = 0; bm_all = 1; }
            barrier();
            const int bi0 = i0 / bq, bj0 = j0 / bk;
            const int nbi = ilast / bq - bi0 + 1, nbj = (j1 - 1) / bk - bj0 + 1;
            bool any = false, all = true;
            for (int t = lid; t < nbi * nbj; t += NT) {
                const bool on = load_bmask_u8(bbase + (bi0 + t / nbj) * P.w[P_B + 3] +
                                        (bj0 + t % nbj) * P.w[P_B + 4]) != 0u;
                any = any || on;
                all = all && on;
            }
            if (any) atomicOr(bm_any, 1);
            if (!all) atomicAnd(bm_all, 0);
            barrier();
            bmode = bm_all != 0 ? 1 : bm_any != 0 ? 2 : 0;
            if (bmode == 0)
                continue;
        }

        const int kt = krow + j0 * ks1, vt = vrow + j0 * vs1;   /* this tile's first key */
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
                stage[c * BQP + r] = (r < nq && dc + c < D) ?
                    load_q(qrow + r * qs1 + (dc + c) * qs3) : 0.0;
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
        const bool edge = j1 - j0 < BK;
        const int mbase = P.w[P_M] + b * P.w[P_M + 1] + h * P.w[P_M + 2];
        const int mask_dt = P.w[P_MASK_DT];
        for (int i = 0; i < RM; i++) {
            const int ii = i0 + ty * RM + i;
            const bool row_ok = ii <= ilast;
            for (int j = 0; j < RN; j++) {
                const int jj = j0 + tx * RN + j;
                float x = s[i * RN + j] * scale;
                if ((flags & F_SOFTCAP) != 0)
                    x = softcap * attn_tanh(x / softcap);
                if ((flags & F_ALIBI) != 0)
                    x -= slope * float(abs(ii + doff - jj));
                if ((flags & F_MASK) != 0 && row_ok && jj < j1) {
                    const int mi = mbase + ii * P.w[P_M + 3] + jj * P.w[P_M + 4];
                    if (mask_dt == DT_U8) {
                        if (load_mask_u8(mi) == 0u)
                            x = NEG_INF;
                    } else {
                        x += load_mask(mask_dt, mi);
                    }
                }
                if (!full) {
                    const int dg = ii + doff;
                    bool vis = !(causal && jj > dg);
                    if (vis && jj >= sink_tokens) {
                        if (wl >= 0 && jj < dg - wl) vis = false;
                        if (wr >= 0 && jj > dg + wr) vis = false;
                    }
                    if (!vis)
                        x = NEG_INF;
                }
                if (bmode == 2 && row_ok && jj < j1 &&
                    load_bmask_u8(bbase + (ii / bq) * P.w[P_B + 3] + (jj / bk) * P.w[P_B + 4]) == 0u)
                    x = NEG_INF;
                if (edge && jj >= j1)
                    x = NEG_INF;
                s[i * RN + j] = x;
            }
        }

        /* Online softmax (or sigmoid); P to shared memory. */
        if (!sigmoid) {
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
            const float bias = pf(P_SIGBIAS);
            for (int i = 0; i < RM * RN; i++) {
                const float x = s[i] + bias;
                const float e = exp(-abs(x));
                s[i] = (x >= 0.0 ? 1.0 : e) / (1.0 + e);
            }
        }
        for (int j = 0; j < RN; j++)
            for (int i = 0; i < RM; i++)
                PsT[(tx * RN + j) * BQP + ty * RM + i] = s[i * RN + j];

        /* O += P V over chunks of KC keys: Vs [KC][DVP]. */
        for (int kc = 0; kc < BK; kc += KC) {
            barrier();
            for (int t = lid; t < KC * DVP; t += NT) {
                const int r = t / DVP, c = t % DVP;
                stage[t] = (j0 + kc + r < j1 && c < DV) ? load_v(vt + (kc + r) * vs1 + c * vs3) : 0.0;
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
    const int out_dt = P.w[P_OUT_DT], gate_dt = P.w[P_GATE_DT];
    for (int i = 0; i < RM; i++) {
        const int ii = i0 + ty * RM + i;
        if (ii > ilast)
            break;                                /* rows only grow with i */
        const float lsum = lsums[i];
        const float inv = sigmoid ? 1.0 : (lsum > 0.0 ? 1.0 / lsum : 0.0);
        const int row = q0 + ii;
        const int obase = P.w[P_O] + bt * P.w[P_O + 1] + row * P.w[P_O + 2] + h * P.w[P_O + 3];
        const int gbase = P.w[P_G] + bt * P.w[P_G + 1] + row * P.w[P_G + 2] + h * P.w[P_G + 3];
        for (int c = 0; c < DVT; c++) {
            const int col = tx * DVT + c;
            if (col >= DV)
                break;
            float x = o[i * DVT + c] * inv;
            if ((flags & F_GATE) != 0)
                x *= 1.0 / (1.0 + exp(-load_gate(gate_dt, gbase + col * P.w[P_G + 4])));
            store_out(out_dt, obase + col * P.w[P_O + 4], x);
        }
        if ((flags & F_LSE) != 0 && tx == 0)
            L.w[P.w[P_L] + bt * P.w[P_L + 1] + h * P.w[P_L + 2] + row * P.w[P_L + 3]] =
                lsum > 0.0 ? m[i] + log(lsum) : NEG_INF;
    }
}
