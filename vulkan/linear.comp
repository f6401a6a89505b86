#version 450
/* attn_linear: the recurrent form of every kind (PLAIN with feature maps and
 * normalisation, DECAY, GLA, DELTA, GATED_DELTA, KDA), one token at a time,
 * for both API algorithms (the API promises the same answer to f32 rounding).
 *
 * Workgroup (slice, head h, sequence n) owns columns j0 .. j0+DVS-1 of the
 * f32 state S [Dk x Dv] of (n, h). Invocation li = c*KS + r holds, in
 * registers, column j0 + c at rows r, r + KS, ... (DKT of them): KS
 * invocations share a column, so Dk = 128 is 8 x 16 registers rather than
 * 128 in one invocation. Column sums (S^T k for the delta rule, q^T S for
 * the output, q^T z for the normaliser) reduce across those KS invocations
 * with xor shuffles (the subgroup build, KS a power of two no larger than
 * the smallest subgroup, so a column's invocations share a subgroup) or are
 * whole in one invocation (the plain build, KS = 1).
 *
 * Tokens are walked in blocks of TB: the block's q, k (l2-normalised,
 * feature-mapped, q scaled), gates as factors alpha = exp(g), beta and the
 * workgroup's v columns are staged in shared memory (three barriers per
 * block), then every invocation steps its part of S through the TB tokens
 * without barriers. Rows Dk .. DKP-1 are staged as zeros, so a padded row
 * contributes nothing.
 *
 * The kind, feature map and dtypes are run-time words (uniform branches):
 * only the shape is specialised, which keeps pipelines few (a compile costs
 * seconds on software devices). The normaliser z [Dk] is identical in every
 * column; each invocation keeps its rows of it and slice 0 writes it out.
 *
 * Chunk-parallel form (PLAIN, DECAY, GLA: S enters each step through a
 * diagonal map, so a chunk of tokens maps S to D (.) S + U, D the product
 * of its gates per row, U its state from zero). The push constant `phase`:
 *   0  whole sequences, as above;
 *   1  one workgroup z per (sequence, chunk of L tokens): from S = 0 and
 *      z = 0, writes U to the chunk's slot of SOUT and D (or, normalising,
 *      the chunk's sum of phi(k)) to ZOUT; no outputs;
 *   2  the same grid: S (and z) entering the chunk read from SIN (ZIN),
 *      where vulkan/linear_scan.comp left them; outputs only.
 * so long sequences spread over many workgroups, not one per column slice.
 * The delta kinds map S to A S + U, A = prod_t (I - beta_t k_t k_t^T) D_t
 * [Dk x Dk]: phase 1 also steps Dk more columns, column Dv + l starting
 * at e_l with v = 0, which end as A's column l (to ZOUT, [N*nch,H,Dk,Dk]);
 * vulkan/linear_scan.comp then applies the A's in order. */

layout(local_size_x_id = 0) in;
layout(constant_id = 0) const int WG = 64;    /* DVS * KS */
layout(constant_id = 1) const int DVS = 64;   /* state columns per workgroup */
layout(constant_id = 2) const int KS = 1;     /* invocations per column */
layout(constant_id = 3) const int DKT = 16;   /* rows per invocation: ceil(Dk / KS) */
layout(constant_id = 4) const int TB = 8;     /* tokens per staged block */

const int DKP = DKT * KS;                      /* Dk padded */

#extension GL_GOOGLE_include_directive : require
#if ATTN_SUBGROUP
#extension GL_KHR_shader_subgroup_shuffle : require
#endif
#include "common.glsl"

layout(std430, binding = 0) readonly buffer Qb { uint w[]; } Q;
layout(std430, binding = 1) readonly buffer Kb { uint w[]; } K;
layout(std430, binding = 2) readonly buffer Vb { uint w[]; } V;
layout(std430, binding = 3) buffer Ob { uint w[]; } O;
layout(std430, binding = 4) readonly buffer Gb { uint w[]; } G;
layout(std430, binding = 5) readonly buffer Bb { uint w[]; } BETA;
layout(std430, binding = 6) readonly buffer SIb { float w[]; } SIN;
layout(std430, binding = 7) buffer SOb { float w[]; } SOUT;
layout(std430, binding = 8) readonly buffer ZIb { float w[]; } ZIN;
layout(std430, binding = 9) buffer ZOb { float w[]; } ZOUT;
layout(std430, binding = 10) readonly buffer Pb { int w[]; } P;

layout(push_constant) uniform Push { int phase, chunk, nch; } pc;

/* Parameter words (src/vulkan/linear.c writes them in this order): views
 * as (element offset, strides...). */
const int P_Q = 0, P_K = 5, P_V = 10, P_O = 15, P_G = 20, P_B = 25, P_SI = 29, P_SO = 34,
          P_ZI = 39, P_ZO = 43, P_FLAGS = 47, P_LEN = 48, P_H = 49, P_DK = 50, P_DV = 51,
          P_KIND = 52, P_FEATURE = 53, P_IN_DT = 54, P_OUT_DT = 55, P_G_DT = 56, P_B_DT = 57,
          P_SCALE = 58, P_EPS = 59, P_AUX = 64;

const int F_VARLEN = 1, F_STATE_IN = 2, F_STATE_OUT = 4, F_Z_IN = 8, F_Z_OUT = 16,
          F_L2NORM = 32, F_G = 64, F_G_CHANNEL = 128, F_DECAY_PARAM = 256, F_NORMALIZE = 512;

const int KIND_PLAIN = 0, KIND_DECAY = 1, KIND_GLA = 2, KIND_DELTA = 3, KIND_GATED_DELTA = 4,
          KIND_KDA = 5;
const int FEATURE_ELU1 = 1, FEATURE_RELU = 2;

ATTN_LOAD_ANY(load_q, Q)
ATTN_LOAD_ANY(load_k, K)
ATTN_LOAD_ANY(load_v, V)
ATTN_LOAD_ANY(load_g, G)
ATTN_LOAD_ANY(load_beta, BETA)
ATTN_STORE_ANY(store_out, O)

shared float qs[TB * DKP];
shared float ks[TB * DKP];
shared float as[TB * DKP];     /* per-channel gate factors (GLA, KDA) */
shared float vs[TB * DVS];
shared float sc[2 * TB];       /* per token: scalar gate factor, beta */

float column_sum(float x)
{
#if ATTN_SUBGROUP
    for (int o = KS / 2; o > 0; o /= 2)
        x += subgroupShuffleXor(x, uint(o));
#endif
    return x;
}

float feature(int f, float x)
{
    if (f == FEATURE_ELU1)
        return x > 0.0 ? x + 1.0 : exp(x);
    if (f == FEATURE_RELU)
        return max(x, 0.0);
    return x;
}

int view4(int at, int a, int b, int c, int d)
{
    return P.w[at] + a * P.w[at + 1] + b * P.w[at + 2] + c * P.w[at + 3] + d * P.w[at + 4];
}

int view3(int at, int a, int b, int c)
{
    return P.w[at] + a * P.w[at + 1] + b * P.w[at + 2] + c * P.w[at + 3];
}

void main()
{
    const int li = int(gl_LocalInvocationID.x), c = li / KS, r = li % KS;
    const int h = int(gl_WorkGroupID.y), wz = int(gl_WorkGroupID.z);
    const int phase = pc.phase, n = phase == 0 ? wz : wz / pc.nch;
    const int flags = P.w[P_FLAGS], H = P.w[P_H], Dk = P.w[P_DK], Dv = P.w[P_DV];
    const int kind = P.w[P_KIND], feat = P.w[P_FEATURE];
    const int in_dt = P.w[P_IN_DT], g_dt = P.w[P_G_DT], b_dt = P.w[P_B_DT];
    const float scale = intBitsToFloat(P.w[P_SCALE]), eps = intBitsToFloat(P.w[P_EPS]);
    const int j = int(gl_WorkGroupID.x) * DVS + c;
    const bool live = j < Dv;
    const bool delta = kind >= KIND_DELTA;
    /* Phase 1 of the delta kinds: columns Dv .. Dv+Dk-1 step A from I. */
    const int acol = phase == 1 && delta ? j - Dv : -1;
    const bool norm = (flags & F_NORMALIZE) != 0;
    const bool chan = (flags & F_G_CHANNEL) != 0;
    const bool l2 = (flags & F_L2NORM) != 0;

    /* The sequence's tokens: [t0, t0 + len) of batch row bt. */
    int bt = n, t0 = 0, len = P.w[P_LEN];
    if ((flags & F_VARLEN) != 0) {
        const int cu = P_AUX + H;
        bt = 0;
        t0 = P.w[cu + n];
        len = P.w[cu + n + 1] - t0;
    }
    if (phase != 0) {
        const int first = (wz % pc.nch) * pc.chunk;
        t0 += first;
        len = clamp(len - first, 0, pc.chunk);
    }
    /* Chunk slots of the scratch buffers (phases 1, 2): [N*nch, H, Dk(, Dv)]. */
    const int slot_s = (wz * H + h) * Dk * Dv, slot_z = (wz * H + h) * Dk;
    const float decay_param = (flags & F_DECAY_PARAM) != 0 ? intBitsToFloat(P.w[P_AUX + h]) : 1.0;

    float s[DKT], z[DKT], d[DKT];
    for (int m = 0; m < DKT; m++) {
        const int i = r + KS * m;
        s[m] = 0.0;
        z[m] = 0.0;
        d[m] = 1.0;
        if (i >= Dk)
            continue;
        if (acol >= 0 && acol < Dk) {
            s[m] = i == acol ? 1.0 : 0.0;
        } else if (phase == 2) {
            s[m] = live ? SIN.w[slot_s + i * Dv + j] : 0.0;
            z[m] = norm ? ZIN.w[slot_z + i] : 0.0;
        } else if (phase == 0) {
            if (live && (flags & F_STATE_IN) != 0)
                s[m] = SIN.w[view4(P_SI, n, h, i, j)];
            if ((flags & F_Z_IN) != 0)
                z[m] = ZIN.w[view3(P_ZI, n, h, i)];
        }
    }

    for (int tb = 0; tb < len; tb += TB) {
        const int nt = min(TB, len - tb);
        barrier();     /* the previous block is consumed */
        for (int e = li; e < nt * DKP; e += WG) {
            const int tt = e / DKP, i = e % DKP, t = t0 + tb + tt;
            float qv = 0.0, kv = 0.0, av = 1.0;
            if (i < Dk) {
                if (phase != 1)    /* chunk sums need no q */
                    qv = load_q(in_dt, view4(P_Q, bt, t, h, i));
                kv = load_k(in_dt, view4(P_K, bt, t, h, i));
                if (chan)
                    av = exp(load_g(g_dt, view4(P_G, bt, t, h, i)));
            }
            qs[e] = qv;
            ks[e] = kv;
            as[e] = av;
        }
        for (int e = li; e < nt * DVS; e += WG) {
            const int tt = e / DVS, jj = int(gl_WorkGroupID.x) * DVS + e % DVS;
            vs[e] = jj < Dv ? load_v(in_dt, view4(P_V, bt, t0 + tb + tt, h, jj)) : 0.0;
        }
        for (int tt = li; tt < nt; tt += WG) {
            const int t = t0 + tb + tt;
            float a = decay_param;
            if ((flags & F_G) != 0 && !chan)
                a = exp(load_g(g_dt, view3(P_G, bt, t, h)));
            sc[2 * tt] = a;
            sc[2 * tt + 1] = delta ? load_beta(b_dt, view3(P_B, bt, t, h)) : 0.0;
        }
        barrier();
        /* q and k of each token: l2-normalised, feature-mapped, q scaled.
         * Column c's KS invocations hold every row between them, so token
         * tt0 + c is done by column c, its norms as column sums (the loop
         * is uniform: the shuffles run in converged control flow). */
        for (int tt0 = 0; tt0 < nt; tt0 += DVS) {
            const int tt = tt0 + c, row = tt * DKP + r;
            const bool mine = tt < nt;
            float nq = 1.0, nk = 1.0;
            if (l2) {
                float sq = 0.0, sk = 0.0;
                for (int m = 0; m < DKT && mine; m++) {
                    sq += qs[row + KS * m] * qs[row + KS * m];
                    sk += ks[row + KS * m] * ks[row + KS * m];
                }
                nq = inversesqrt(column_sum(sq) + 1e-6);
                nk = inversesqrt(column_sum(sk) + 1e-6);
            }
            for (int m = 0; m < DKT && mine; m++)
                if (r + KS * m < Dk) {     /* padding stays 0 (elu+1 maps 0 to 1) */
                    qs[row + KS * m] = scale * feature(feat, qs[row + KS * m] * nq);
                    ks[row + KS * m] = feature(feat, ks[row + KS * m] * nk);
                }
        }
        barrier();

        for (int tt = 0; tt < nt; tt++) {
            const int row = tt * DKP + r;
            const float a = sc[2 * tt], vj = vs[tt * DVS + c];
            if (chan) {
                for (int m = 0; m < DKT; m++) {
                    s[m] *= as[row + KS * m];
                    d[m] *= as[row + KS * m];
                }
            } else if (kind == KIND_DECAY || kind == KIND_GATED_DELTA) {
                for (int m = 0; m < DKT; m++) {
                    s[m] *= a;
                    d[m] *= a;
                }
            }
            float w = vj;
            if (delta) {
                float u = 0.0;
                for (int m = 0; m < DKT; m++)
                    u += s[m] * ks[row + KS * m];
                w = sc[2 * tt + 1] * (vj - column_sum(u));
            }
            float o = 0.0, den = 0.0;
            for (int m = 0; m < DKT; m++) {
                const float kv = ks[row + KS * m], qv = qs[row + KS * m];
                s[m] += kv * w;
                o += qv * s[m];
                if (norm) {
                    z[m] += kv;
                    den += qv * z[m];
                }
            }
            if (phase == 1)
                continue;
            o = column_sum(o);
            if (norm)
                o /= column_sum(den) + eps;
            if (r == 0 && live)
                store_out(P.w[P_OUT_DT], view4(P_O, bt, t0 + tb + tt, h, j), o);
        }
    }

    const bool first_column = c == 0 && gl_WorkGroupID.x == 0;
    for (int m = 0; m < DKT; m++) {
        const int i = r + KS * m;
        if (i >= Dk)
            continue;
        if (phase == 1) {
            if (live)
                SOUT.w[slot_s + i * Dv + j] = s[m];
            else if (acol >= 0 && acol < Dk)
                ZOUT.w[(slot_z + i) * Dk + acol] = s[m];
            if (first_column && !delta)
                ZOUT.w[slot_z + i] = norm ? z[m] : d[m];
        } else if (phase == 0) {
            if (live && (flags & F_STATE_OUT) != 0)
                SOUT.w[view4(P_SO, n, h, i, j)] = s[m];
            if (first_column && (flags & F_Z_OUT) != 0)
                ZOUT.w[view3(P_ZO, n, h, i)] = z[m];
        }
    }
}
